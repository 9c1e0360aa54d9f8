"""The DFT stage's single points with the orbital values on the grid kept (cluster_gnn.dft_grid) or
evaluated at every cycle, side by side.

Runs the whole convergence ladder (:func:`cluster_gnn.dft.run_dft`, one thread) on bundled
clusters at their committed structures, once with the cache and once without (no room for
it), and prints CPU seconds, their ratio, the energy and largest charge difference and the
memory the cache took. Needs the ``[dft]`` extra.

    python benchmarks/dft_grid_cache.py [--clusters Rh3- Mo2S2- Mo4S3-]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "dft_grid_cache.txt"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", nargs="+", default=["Rh3-", "Mo2S2-", "Mo4S3-"])
    args = parser.parse_args(argv)

    import numpy as np

    import cluster_gnn.dft as dft
    import cluster_gnn.dft_grid as dft_grid
    from cluster_gnn.datasets import load_structure

    made = []

    def keep(make=dft.cached_numint):
        made.append(make())
        return made[-1]

    dft.cached_numint = keep  # to read how much the cache took
    room = dft_grid.MAX_CACHE_BYTES
    lines = [f"{'cluster':8s} {'atoms':>5s} {'rung':>8s} {'each cycle s':>12s} {'kept s':>7s} {'ratio':>6s} "
             f"{'GB kept':>7s} {'|dE| eV':>8s} {'|dq| e':>8s}"]
    print(lines[0], flush=True)
    for name in args.clusters:
        atoms = load_structure(name)
        charge, multiplicity = int(atoms.info["charge"]), int(atoms.info["multiplicity"])
        seconds, results = {}, {}
        for kept in (False, True):
            dft_grid.MAX_CACHE_BYTES = room if kept else 0
            start = time.process_time()
            results[kept] = dft.run_dft(atoms, charge, multiplicity)
            seconds[kept] = time.process_time() - start
        a, b = results[False], results[True]
        lines.append(f"{name:8s} {len(atoms):5d} {b.rung:>8s} {seconds[False]:12.1f} {seconds[True]:7.1f} "
                     f"{seconds[False] / seconds[True]:6.2f} {made[-1].cached_bytes / 1e9:7.2f} "
                     f"{abs(a.energy - b.energy):8.1e} {np.abs(a.charges - b.charges).max():8.1e}")
        print(lines[-1], flush=True)
    OUT.write_text("CPU seconds of one run_dft, one thread\n" + "\n".join(lines) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
