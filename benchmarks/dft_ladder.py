"""Changes to the DFT convergence ladder, each against the ladder without it, side by side:
``atomic`` (start with a Newton SCF from the superposition of atomic densities,
``DFTConfig.atomic_start``), ``settled`` (hand the smeared density to the polish once its
energy has settled, ``DFTConfig.settled_eh``) and ``swinging`` (go on to the Newton rung once
the smeared energy still swings by Hartrees at cycle ``swinging_from``, ``DFTConfig.swinging_eh``).

Runs :func:`cluster_gnn.dft.run_dft` (one thread) on bundled clusters at their committed
structures with the default settings and with that change undone, and prints CPU seconds,
their ratio, the SCF cycles and the rung of each, and the energy and largest charge
difference between the two results. Default clusters: for ``atomic`` three of 5-7 atoms (Mo,
Ta, Fe) and Mo5S4-; for ``settled`` two whose smeared DIIS never converges but settles and two
where it converges; for ``swinging`` two that swing to the end and one that still swings by
over 10 Eh at cycle 35 yet settles at 47 (the exit should leave it alone). Needs the ``[dft]``
extra.

    python benchmarks/dft_ladder.py [--change atomic|settled|swinging] [--clusters ...]
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLUSTERS = {"atomic": ["Mo4S3-", "Ta3S2C", "Fe3C2-", "Mo5S4-"], "settled": ["Mo3C4-", "Mo5S-", "Mo4C3-", "Ta3S3C"],
            "swinging": ["Ta3S2C", "Mo5S4-", "Mo4S3-"]}
#: the ladder each change is measured on (the exits of the smeared rung: without the atomic start) and how it is undone
BASE = {"atomic": {}, "settled": {"atomic_start": False}, "swinging": {"atomic_start": False}}
UNDONE = {"atomic": {"atomic_start": False}, "settled": {"settled_eh": 0.0}, "swinging": {"swinging_eh": 0.0}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--change", choices=sorted(CLUSTERS), default="atomic")
    parser.add_argument("--clusters", nargs="+")
    args = parser.parse_args(argv)

    import numpy as np

    from cluster_gnn.datasets import load_structure
    from cluster_gnn.dft import DFTConfig, run_dft

    default = DFTConfig(**BASE[args.change])
    without = replace(default, **UNDONE[args.change])
    out = ROOT / "benchmarks" / "results" / f"dft_ladder_{args.change}.txt"
    lines = [f"{'cluster':8s} {'atoms':>5s} {'without s':>9s} {'with s':>6s} {'ratio':>6s} "
             f"{'cycles':>11s} {'rungs':>17s} {'dE eV':>8s} {'|dq| e':>7s}"]
    print(lines[0], flush=True)
    for name in args.clusters or CLUSTERS[args.change]:
        atoms = load_structure(name)
        charge, multiplicity = int(atoms.info["charge"]), int(atoms.info["multiplicity"])
        seconds, results = {}, {}
        for label, config in (("without", without), ("with", default)):
            start = time.process_time()
            results[label] = run_dft(atoms, charge, multiplicity, config)
            seconds[label] = time.process_time() - start
        a, b = results["without"], results["with"]
        cycles = f"{a.cycles} / {b.cycles}"
        lines.append(f"{name:8s} {len(atoms):5d} {seconds['without']:9.0f} {seconds['with']:6.0f} "
                     f"{seconds['without'] / seconds['with']:6.2f} {cycles:>11s} {a.rung + ' / ' + b.rung:>17s} "
                     f"{b.energy - a.energy:+8.4f} {np.abs(a.charges - b.charges).max():7.3f}")
        print(lines[-1], flush=True)
    out.write_text(f"CPU seconds of one run_dft, one thread, without and with the {args.change} change (atomic: "
                   f"a Newton SCF from the atomic densities first; settled: "
                   f"{default.settled_eh:g} Eh over {default.settled_cycles} cycles; swinging: over "
                   f"{default.swinging_eh:g} Eh across 10 cycles from cycle {default.swinging_from}); "
                   f"dE: with minus without\n" + "\n".join(lines) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
