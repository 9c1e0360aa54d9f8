"""The DFT stage's SCF with the density-fitting integrals recomputed every cycle vs kept in memory.

For a pure functional (PBE) PySCF computes the Coulomb matrix from 3-centre integrals it
recomputes every cycle unless the molecule is flagged ``incore_anyway``, which
:func:`cluster_gnn.dft.run_dft` now sets. This runs the first rung of the ladder (smeared
SCF, one thread) on bundled clusters both ways and prints wall times, their ratio, the
energy difference and the size of the kept integrals. Needs the ``[dft]`` extra.

    python benchmarks/dft_density_fitting.py [--clusters Mo2S2- Rh3-]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "dft_density_fitting.txt"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", nargs="+", default=["Mo2S2-", "Rh3-"])
    args = parser.parse_args(argv)

    from pyscf import df, lib

    from cluster_gnn.datasets import load_structure
    from cluster_gnn.dft import DFTConfig, _molecule, _scf_object

    lib.num_threads(1)
    config = DFTConfig()
    lines = [f"{'cluster':10s} {'nao':>4s} {'naux':>5s} {'GB kept':>7s} {'recomputed s':>12s} {'kept s':>7s} "
             f"{'ratio':>6s} {'|dE| Eh':>9s}"]
    for name in args.clusters:
        atoms = load_structure(name)
        seconds, energies = {}, {}
        for kept in (False, True):
            mol = _molecule(atoms, int(atoms.info["charge"]), int(atoms.info["multiplicity"]), config)
            mol.incore_anyway = kept
            mf = _scf_object(mol, config, config.smearing)
            start = time.perf_counter()
            mf.kernel()
            seconds[kept], energies[kept] = time.perf_counter() - start, mf.e_tot
            if not mf.converged:
                print(f"{name}: the smeared SCF did not converge ({'kept' if kept else 'recomputed'})")
        naux = df.make_auxmol(mol, df.addons.make_auxbasis(mol, mp2fit=False)).nao
        gigabytes = naux * mol.nao * (mol.nao + 1) / 2 * 8 / 1e9
        lines.append(f"{name:10s} {mol.nao:4d} {naux:5d} {gigabytes:7.2f} {seconds[False]:12.1f} {seconds[True]:7.1f} "
                     f"{seconds[False] / seconds[True]:6.2f} {abs(energies[False] - energies[True]):9.1e}")
        print(lines[-1] if len(lines) > 2 else "\n".join(lines), flush=True)
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
