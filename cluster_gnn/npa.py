"""Natural population analysis (NPA) of a PySCF SCF -> per-atom charges, occupancies, spin.

PySCF's natural atomic orbitals (``pyscf.lo.orth_ao(mf, "nao")``) give every atom its natural
charge (valence nuclear charge, i.e. Z minus the ECP core, minus its natural electrons), the
occupancies of its valence s, p and d shells and its signed spin population (from the
alpha-minus-beta density). :func:`dft_descriptors` condenses them into the authors' metal
descriptors. :mod:`cluster_gnn.dft` runs the SCF; PySCF is imported only when called.
"""
from __future__ import annotations

import numpy as np

__all__ = ["METALS", "VALENCE_SHELLS", "DFT_DESCRIPTORS", "natural_population", "spin_square", "dft_descriptors"]

#: the metal elements of the bundled clusters
METALS = ("V", "Fe", "Co", "Mo", "Rh", "Ta")
#: valence shells (s, p, d) whose natural occupancies are reported, by element
VALENCE_SHELLS = {
    "H": ("1s", None, None), "C": ("2s", "2p", None), "N": ("2s", "2p", None), "S": ("3s", "3p", None),
    "V": ("4s", "4p", "3d"), "Fe": ("4s", "4p", "3d"), "Co": ("4s", "4p", "3d"),
    "Mo": ("5s", "5p", "4d"), "Rh": ("5s", "5p", "4d"), "Ta": ("6s", "6p", "5d"),
}
#: the authors' DFT-NBO descriptors that NPA recomputes, in the authors' names
DFT_DESCRIPTORS = ("1_Qmax", "1_Qmin", "2_Qave", "2_nsave", "2_ndave", "2_σave")


def natural_population(mf, mol):
    """Natural population analysis of a converged PySCF SCF ``mf`` of ``mol``: ``(symbols,
    charges [num_atoms] in e, valence shells [num_atoms, 3] (s, p, d occupancies in e,
    :data:`VALENCE_SHELLS`), spins [num_atoms] (alpha minus beta electrons))``."""
    from pyscf import lo

    c = lo.orth_ao(mf, "nao")
    s = mol.intor_symmetric("int1e_ovlp")
    cs = c.T @ s
    dm = np.asarray(mf.make_rdm1())
    total, spin = (dm[0] + dm[1], dm[0] - dm[1]) if dm.ndim == 3 else (dm, np.zeros_like(dm))
    occ = np.einsum("ip,pq,iq->i", cs, total, cs)
    occ_spin = np.einsum("ip,pq,iq->i", cs, spin, cs)
    labels = mol.ao_labels(fmt=False)
    n = mol.natm
    symbols = [mol.atom_symbol(i) for i in range(n)]
    z_valence = mol.atom_charges().astype(float)  # Z minus the ECP core
    electrons, spins, shells = np.zeros(n), np.zeros(n), np.zeros((n, 3))
    for k, (atom, _, shell, _) in enumerate(labels):
        electrons[atom] += occ[k]
        spins[atom] += occ_spin[k]
        for j, want in enumerate(VALENCE_SHELLS.get(symbols[atom], (None, None, None))):
            if shell == want:
                shells[atom, j] += occ[k]
    return symbols, z_valence - electrons, shells, spins


def spin_square(mf, mol) -> float:
    """<S^2> of the determinant of the occupied spin orbitals; 0 for RKS. With
    smearing, the N_alpha and N_beta most occupied orbitals of each spin."""
    from pyscf import scf

    if not isinstance(mf, scf.uhf.UHF):
        return 0.0
    (occ_a, occ_b), (c_a, c_b) = mf.mo_occ, mf.mo_coeff
    n_a, n_b = mol.nelec
    top_a, top_b = np.argsort(-occ_a, kind="stable")[:n_a], np.argsort(-occ_b, kind="stable")[:n_b]
    return float(scf.uhf.spin_square((c_a[:, top_a], c_b[:, top_b]), mol.intor_symmetric("int1e_ovlp"))[0])


def dft_descriptors(result) -> dict:
    """The authors' NPA descriptors (:data:`DFT_DESCRIPTORS`) of one
    :class:`~cluster_gnn.dft.DFTResult`: largest and smallest metal charge, mean metal charge
    (e), mean metal valence s and d occupancy (e), mean metal spin population (e)."""
    metal = np.array([s in METALS for s in result.symbols])
    q = result.charges[metal]
    return {"1_Qmax": float(q.max()), "1_Qmin": float(q.min()), "2_Qave": float(q.mean()),
            "2_nsave": float(result.s_valence[metal].mean()), "2_ndave": float(result.d_valence[metal].mean()),
            "2_σave": float(result.spin[metal].mean())}
