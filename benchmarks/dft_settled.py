"""The DFT ladder's smeared rung handing over to the polish once its energy has settled
(``DFTConfig.settled_eh``, the default) or only once converged, side by side.

Runs :func:`cluster_gnn.dft.run_dft` (one thread) on bundled clusters at their committed
structures both ways and prints CPU seconds, their ratio, the smeared DIIS cycles and the
rung of each, and the energy and largest charge difference between the two results. The
default clusters are two whose smeared DIIS never converges (its energy settles to a few
mEh and then wanders until the 60-cycle limit hands them to the Newton rung) and two where
it converges. Needs the ``[dft]`` extra.

    python benchmarks/dft_settled.py [--clusters Mo3C4- Mo5S- Mo4C3- Ta3S3C]
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "dft_settled.txt"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", nargs="+", default=["Mo3C4-", "Mo5S-", "Mo4C3-", "Ta3S3C"])
    args = parser.parse_args(argv)

    import numpy as np

    from cluster_gnn.datasets import load_structure
    from cluster_gnn.dft import DFTConfig, run_dft

    settled = DFTConfig()
    converged = replace(settled, settled_eh=0.0)
    lines = [f"{'cluster':8s} {'atoms':>5s} {'converged s':>11s} {'settled s':>9s} {'ratio':>6s} "
             f"{'DIIS cycles':>11s} {'rungs':>17s} {'dE eV':>8s} {'|dq| e':>7s}"]
    print(lines[0], flush=True)
    for name in args.clusters:
        atoms = load_structure(name)
        charge, multiplicity = int(atoms.info["charge"]), int(atoms.info["multiplicity"])
        seconds, results = {}, {}
        for label, config in (("converged", converged), ("settled", settled)):
            start = time.process_time()
            results[label] = run_dft(atoms, charge, multiplicity, config)
            seconds[label] = time.process_time() - start
        a, b = results["converged"], results["settled"]
        diis = f"{len(a.energy_trace.get('smeared', []))} / {len(b.energy_trace.get('smeared', []))}"
        lines.append(f"{name:8s} {len(atoms):5d} {seconds['converged']:11.0f} {seconds['settled']:9.0f} "
                     f"{seconds['converged'] / seconds['settled']:6.2f} {diis:>11s} {a.rung + ' / ' + b.rung:>17s} "
                     f"{b.energy - a.energy:+8.4f} {np.abs(a.charges - b.charges).max():7.3f}")
        print(lines[-1], flush=True)
    OUT.write_text(f"CPU seconds of one run_dft, one thread; settled: {settled.settled_eh:g} Eh over "
                   f"{settled.settled_cycles} cycles; dE: settled minus converged\n" + "\n".join(lines) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
