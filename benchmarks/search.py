"""How close does the default structure search get to the global minimum?

For a handful of clusters, run the search with the default settings and a 10x longer
reference run (10x the starts, more refined minima and hops) of the same search, and print
the energy each reached, the gap (eV), the number of xTB evaluations (FIRE steps; each is
one SCF with forces) and their ratio, plus the best-so-far energy after 10 %, 25 %, 50 %
and 100 % of the default run's evaluations.

    python benchmarks/search.py [--clusters Fe3C2- V3S2- Ta3S2C Mo3S2-] [--factor 10]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


from cluster_gnn.config import SearchConfig
from cluster_gnn.search import plan_search, search_cluster


def run(name, charge, mults, config, folder):
    t = time.perf_counter()
    result = search_cluster(name, charge, mults, config, folder)
    seconds = time.perf_counter() - t
    records = [json.loads(line) for line in (Path(folder) / "checkpoints" / f"{result.name}.jsonl").open()]
    evals = np.cumsum([r["steps"] + 1 for r in records])
    best = np.minimum.accumulate([r["energy"] if r.get("valid") and r["energy"] is not None else np.inf
                                  for r in records])
    return result.energy, int(evals[-1]), seconds, evals, best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", nargs="+", default=["Fe3C2-", "V3S2-", "Ta3S2C", "Mo3S2-"])
    parser.add_argument("--factor", type=int, default=10)
    args = parser.parse_args(argv)
    default = SearchConfig()
    reference = SearchConfig(n_starts=default.n_starts * args.factor, n_refine=default.n_refine * 2,
                             hop_steps=default.hop_steps * args.factor // 2)
    print(f"default: {default.n_starts} starts + {default.n_refine}x{default.hop_steps} hops; reference: "
          f"{reference.n_starts} starts + {reference.n_refine}x{reference.hop_steps} hops")
    print(f"{'cluster':10s} {'E default':>12s} {'E ref':>12s} {'gap eV':>7s} {'evals':>6s} {'ref evals':>9s} "
          f"{'ratio':>6s} {'best@10%':>8s} {'@25%':>6s} {'@50%':>6s}")
    gaps = []
    for name, charge, mults in plan_search(args.clusters):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            e_def, n_def, s_def, evals, best = run(name, charge, mults, default, a)
            e_ref, n_ref, s_ref, _, _ = run(name, charge, mults, reference, b)
        e_min = min(e_def, e_ref)
        at = [best[np.searchsorted(evals, f * evals[-1])] - e_min for f in (0.1, 0.25, 0.5)]
        gaps.append(e_def - e_min)
        print(f"{name:10s} {e_def:12.4f} {e_ref:12.4f} {e_def - e_min:7.3f} {n_def:6d} {n_ref:9d} "
              f"{n_ref / n_def:6.1f} {at[0]:8.3f} {at[1]:6.3f} {at[2]:6.3f}   ({s_def:.0f} s vs {s_ref:.0f} s)", flush=True)
    print(f"default run within 0.05 eV of the reference for {sum(g < 0.05 for g in gaps)} of {len(gaps)} clusters; "
          f"mean gap {np.mean(gaps):.3f} eV")


if __name__ == "__main__":
    main()
