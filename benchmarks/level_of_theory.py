"""Which xTB setting gives charges we can trust? Validity checks on our structures.

For each setting (GFN1-xTB and GFN2-xTB, at 300 K and 5000 K electronic temperature) run
single points on the committed global minima of the homonuclear clusters and report:
SCF failures, the largest |charge| (sanity: NBO charges of these clusters stay within
about ±1 e), and Pearson r of our metal-site descriptors against the authors' DFT-NBO
ones (1_Qmax, 1_Qmin, 2_Qave, 2_nsave, 2_ndave). Writes a parity plot of the chosen
setting (the project's XTBConfig) to docs/nbo_parity.png.

The structures were searched at GFN1-xTB/5000 K, which favours that setting's geometry;
the charge checks are still informative because every setting sees the same geometries.

    python benchmarks/level_of_theory.py [--limit N]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"  # one current result file per script


from cluster_gnn.config import XTBConfig
from cluster_gnn.datasets import load_clusters, load_nbo_descriptors
from cluster_gnn.electronic import compute_xtb_features
from cluster_gnn.errors import XTBConvergenceError
from cluster_gnn.datasets import load_structure, structure_path
from cluster_gnn.structures import is_metal

OURS = {"1_Qmax": "q_max", "1_Qmin": "q_min", "2_Qave": "q_mean", "2_nsave": "s_mean", "2_ndave": "d_mean"}


def metal_descriptors(atoms, f) -> dict:
    metal = np.array([is_metal(s) for s in atoms.get_chemical_symbols()])
    q = f.charges[metal]
    return {"q_max": q.max(), "q_min": q.min(), "q_mean": q.mean(),
            "s_mean": f.s_population[metal].mean(), "d_mean": f.d_population[metal].mean(),
            "abs_q_max": np.abs(f.charges).max()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N clusters")
    parser.add_argument("--json", type=Path, default=RESULTS / "level_of_theory.json")
    args = parser.parse_args(argv)
    table = load_clusters()
    homo = table[table.kind == "homonuclear"]
    names = [n for n in homo.name if structure_path(n).is_file()][: args.limit]
    nbo = load_nbo_descriptors().set_index("name").loc[names]
    settings = [XTBConfig("GFN1-xTB", 5000.0), XTBConfig("GFN1-xTB", 300.0),
                XTBConfig("GFN2-xTB", 5000.0), XTBConfig("GFN2-xTB", 300.0)]
    report, chosen_rows = {}, None
    print(f"{len(names)} homonuclear clusters with structures")
    print(f"{'setting':18s} {'SCF fail':>8s} {'max|q|':>7s} {'|q|>1.5':>7s} " + " ".join(f"{k:>8s}" for k in OURS) + "  s/cluster")
    for cfg in settings:
        rows, fails = {}, 0
        t0 = time.time()
        for name in names:
            atoms = load_structure(name)
            try:
                f = compute_xtb_features(atoms, int(atoms.info["charge"]), int(atoms.info["multiplicity"]), cfg)
            except XTBConvergenceError:
                fails += 1
                continue
            rows[name] = metal_descriptors(atoms, f)
        seconds = (time.time() - t0) / len(names)
        ok = list(rows)
        r = {}
        for theirs, ours in OURS.items():
            x = np.array([rows[n][ours] for n in ok])
            y = nbo.loc[ok, theirs].to_numpy(float)
            r[theirs] = float(np.corrcoef(x, y)[0, 1])
        qmax = max(rows[n]["abs_q_max"] for n in ok)
        wild = sum(rows[n]["abs_q_max"] > 1.5 for n in ok)
        report[cfg.label] = {"scf_failures": fails, "n": len(names), "max_abs_charge": float(qmax),
                             "clusters_with_abs_charge_over_1.5": int(wild), "pearson_r_vs_nbo": r,
                             "seconds_per_cluster": seconds}
        print(f"{cfg.label:18s} {fails:8d} {qmax:7.2f} {wild:7d} " + " ".join(f"{r[k]:8.2f}" for k in OURS)
              + f"  {seconds:.3f}")
        if cfg == XTBConfig():
            chosen_rows = rows
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    if chosen_rows:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ok = list(chosen_rows)
        metals = table.set_index("name").loc[ok, "metals"].to_numpy()
        fig, axes = plt.subplots(1, 5, figsize=(17, 3.6))
        for ax, (theirs, ours) in zip(axes, OURS.items()):
            x = nbo.loc[ok, theirs].to_numpy(float)
            y = np.array([chosen_rows[n][ours] for n in ok])
            for metal in sorted(set(metals)):
                sel = metals == metal
                ax.scatter(x[sel], y[sel], s=12, label=metal)
            ax.set_xlabel(f"DFT-NBO {theirs}")
            ax.set_ylabel(f"GFN1-xTB Mulliken {ours}")
            ax.set_title(f"r = {np.corrcoef(x, y)[0, 1]:.2f}")
        axes[0].legend(fontsize=7)
        fig.suptitle(f"Our {XTBConfig().label} metal descriptors vs the authors' DFT-NBO ({len(ok)} clusters)")
        fig.tight_layout()
        fig.savefig(RESULTS / "level_of_theory.png", dpi=110)
        print("wrote", RESULTS / "level_of_theory.png", "and", args.json)


if __name__ == "__main__":
    main()
