"""GFN-xTB (tblite) single points -> per-atom electronic features.

:func:`compute_xtb_features` runs one SCF with the project's level of theory
(:class:`~cluster_gnn.config.XTBConfig`) and returns an :class:`AtomFeatures` with
Mulliken charges, s/p/d shell populations (Mulliken gross populations from the
density and overlap matrices, summed per shell), Wiberg/Mayer bond orders, and
cluster-level energy, HOMO-LUMO gap and dipole. Everything is in ASE units (Å, eV, e).

The calculation is spin-restricted with ``multiplicity - 1`` unpaired electrons and
Fermi smearing, so there is no per-atom spin density; the authors' DFT spin densities
are not reproduced here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import XTBConfig
from .errors import XTBConvergenceError
from .structures import check_spin

__all__ = ["AtomFeatures", "compute_xtb_features", "xtb_calculator", "ATOM_FEATURE_NAMES"]

_KELVIN_TO_HARTREE = 3.166808578545117e-06
_HARTREE_EV = 27.211386245988
_BOHR_ANGSTROM = 0.52917721090380

#: Names of the per-atom columns :meth:`AtomFeatures.table` returns, in order.
ATOM_FEATURE_NAMES = ("charge", "s_population", "p_population", "d_population", "valence_electrons")


@dataclass(frozen=True)
class AtomFeatures:
    """xTB electronic structure of one cluster.

    Attributes
    ----------
    atomic_numbers: shape ``[num_atoms]``.
    charges: Mulliken partial charges in e, shape ``[num_atoms]``; sums to the total charge.
    s_population, p_population, d_population: Mulliken valence-shell populations in e,
        shape ``[num_atoms]`` each (the xTB basis is valence-only).
    valence_electrons: valence electrons of the neutral atom in the xTB basis,
        shape ``[num_atoms]`` (``s + p + d + charge``).
    bond_orders: Wiberg/Mayer bond orders, shape ``[num_atoms, num_atoms]``.
    energy: total (free) energy in eV at the smearing temperature.
    homo_energy, lumo_energy, homo_lumo_gap: orbital energies and gap in eV (aufbau
        filling of the restricted orbitals: HOMO is orbital ceil(N_el / 2)).
    dipole: dipole moment in e·Å, shape ``[3]``.
    charge, multiplicity: total charge (e) and 2S+1 used.
    method: level-of-theory label, e.g. ``GFN1-xTB/5000K``.
    """

    atomic_numbers: np.ndarray
    charges: np.ndarray
    s_population: np.ndarray
    p_population: np.ndarray
    d_population: np.ndarray
    valence_electrons: np.ndarray
    bond_orders: np.ndarray
    energy: float
    homo_energy: float
    lumo_energy: float
    homo_lumo_gap: float
    dipole: np.ndarray
    charge: int
    multiplicity: int
    method: str
    extra: dict = field(default_factory=dict)

    @property
    def num_atoms(self) -> int:
        return int(len(self.atomic_numbers))

    def table(self) -> np.ndarray:
        """Per-atom features in the order of :data:`ATOM_FEATURE_NAMES`, shape ``[num_atoms, 5]``."""
        return np.column_stack([getattr(self, _FIELD[name]) for name in ATOM_FEATURE_NAMES]).astype(float)

    def to_dict(self) -> dict:
        """JSON-friendly dictionary (lists instead of arrays)."""
        out = {}
        for key, value in self.__dict__.items():
            out[key] = value.tolist() if isinstance(value, np.ndarray) else value
        return out


_FIELD = {
    "charge": "charges",
    "s_population": "s_population",
    "p_population": "p_population",
    "d_population": "d_population",
    "valence_electrons": "valence_electrons",
}


def xtb_calculator(charge: int, multiplicity: int, config: XTBConfig | None = None):
    """An ASE calculator (``tblite.ase.TBLite``) at the project's level of theory."""
    from tblite.ase import TBLite

    config = config or XTBConfig()
    return TBLite(
        method=config.method,
        charge=int(charge),
        multiplicity=int(multiplicity),
        electronic_temperature=config.electronic_temperature,
        max_iterations=config.max_iterations,
        accuracy=config.accuracy,
        verbosity=0,
    )


def compute_xtb_features(atoms, charge: int, multiplicity: int, config: XTBConfig | None = None) -> AtomFeatures:
    """One xTB single point on ``atoms`` -> :class:`AtomFeatures`.

    Parameters
    ----------
    atoms:
        :class:`ase.Atoms`, positions in Å.
    charge:
        Total charge in e (-1 for an anion).
    multiplicity:
        Spin multiplicity 2S+1; must fit the electron count.
    config:
        Level of theory (default :class:`XTBConfig()`).

    Raises
    ------
    StructureError
        if the multiplicity does not fit the electron count.
    XTBConvergenceError
        if the SCF fails.
    """
    from tblite.interface import Calculator

    config = config or XTBConfig()
    numbers = np.asarray(atoms.get_atomic_numbers())
    check_spin(numbers, charge, multiplicity)
    positions = np.asarray(atoms.get_positions(), dtype=float) / _BOHR_ANGSTROM
    try:
        calc = Calculator(config.method, numbers, positions, charge=float(charge), uhf=int(multiplicity) - 1)
        calc.set("verbosity", 0)
        calc.set("temperature", config.electronic_temperature * _KELVIN_TO_HARTREE)
        calc.set("max-iter", config.max_iterations)
        calc.set("accuracy", config.accuracy)
        calc.set("save-integrals", 1)
        res = calc.singlepoint()
        shell_atom = np.asarray(calc.get("shell-map"))
        shell_l = np.asarray(calc.get("angular-momenta"))
        orbital_shell = np.asarray(calc.get("orbital-map"))
        density = np.asarray(res.get("density-matrix"))
        overlap = np.asarray(res.get("overlap-matrix"))
        mulliken = np.asarray(res.get("charges"))
        bond_orders = np.asarray(res.get("bond-orders"))
        energy = float(res.get("energy")) * _HARTREE_EV
        orbital_energies = np.asarray(res.get("orbital-energies")) * _HARTREE_EV
        dipole = np.asarray(res.get("dipole")) * _BOHR_ANGSTROM
    except RuntimeError as e:  # tblite's errors derive from RuntimeError
        raise XTBConvergenceError(
            f"{config.label} SCF failed for {atoms.get_chemical_formula()} "
            f"(charge {charge}, multiplicity {multiplicity}): {str(e).strip().splitlines()[-1] if str(e).strip() else e}"
        ) from e
    if not np.isfinite(energy) or not np.all(np.isfinite(mulliken)):
        raise XTBConvergenceError(f"{config.label} SCF gave a non-finite energy or charge")

    if density.ndim == 3:  # spin channels
        density = density.sum(axis=0)
    gross = np.einsum("ij,ji->i", density, overlap)  # Mulliken gross orbital populations
    shell_pop = np.bincount(orbital_shell, weights=gross, minlength=len(shell_l))
    n = len(numbers)
    pops = np.zeros((n, 3))
    for l in (0, 1, 2):
        mask = shell_l == l
        pops[:, l] = np.bincount(shell_atom[mask], weights=shell_pop[mask], minlength=n)
    valence = np.rint(pops.sum(axis=1) + mulliken).astype(int)

    n_el = int(round(np.sum(valence) - charge))
    order = np.sort(orbital_energies)
    homo_index = max(int(np.ceil(n_el / 2)) - 1, 0)
    homo = float(order[homo_index])
    lumo = float(order[homo_index + 1]) if homo_index + 1 < len(order) else float("nan")
    return AtomFeatures(
        atomic_numbers=numbers,
        charges=mulliken,
        s_population=pops[:, 0],
        p_population=pops[:, 1],
        d_population=pops[:, 2],
        valence_electrons=valence,
        bond_orders=bond_orders,
        energy=energy,
        homo_energy=homo,
        lumo_energy=lumo,
        homo_lumo_gap=lumo - homo,
        dipole=dipole,
        charge=int(charge),
        multiplicity=int(multiplicity),
        method=config.label,
    )
