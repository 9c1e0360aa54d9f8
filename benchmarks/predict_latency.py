"""End-to-end latency of one prediction for an uploaded ~10-atom cluster.

Splits the work into parse / xTB / graph / ensemble / attributions and prints the median
of N warm runs of each step with its share of the total, plus the cold first call (model
loading, first imports of torch_geometric and tblite) next to the warm one.

    python benchmarks/predict_latency.py [--repeats 10] [--xyz tests/data/Mo5S4-.xyz]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--xyz", type=Path, default=ROOT / "tests/data/Mo5S4-.xyz")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    import torch  # noqa: F401
    import torch_geometric  # noqa: F401
    from tblite.interface import Calculator  # noqa: F401

    from cluster_gnn.electronic import compute_xtb_features
    from cluster_gnn.explain import explain_prediction
    from cluster_gnn.predict import Prediction, load_ensemble
    from cluster_gnn.structures import read_cluster
    imports = time.perf_counter() - t0
    torch.set_num_threads(1)

    data = args.xyz.read_bytes()
    timings = {k: [] for k in ("parse", "xtb", "graph", "ensemble", "attributions")}
    cold = None
    for run in range(args.repeats + 1):
        t = time.perf_counter()
        atoms = read_cluster(data)
        t_parse = time.perf_counter()
        charge, mult = int(atoms.info.get("charge", -1)), int(atoms.info.get("multiplicity", 2))
        features = compute_xtb_features(atoms, charge, mult)
        t_xtb = time.perf_counter()
        ensemble = load_ensemble()
        graph = ensemble.featurize(atoms, charge, mult, features=features)
        t_graph = time.perf_counter()
        mean, std = ensemble.predict([graph])
        t_ens = time.perf_counter()
        p = Prediction(float(mean[0]), float(std[0]), atoms, features, charge, mult)
        explain_prediction(p, ensemble)
        t_attr = time.perf_counter()
        steps = {"parse": t_parse - t, "xtb": t_xtb - t_parse, "graph": t_graph - t_xtb,
                 "ensemble": t_ens - t_graph, "attributions": t_attr - t_ens}
        if run == 0:
            cold = steps
            continue
        for k, v in steps.items():
            timings[k].append(v)
    med = {k: statistics.median(v) for k, v in timings.items()}
    total = sum(med.values())
    print(f"{args.xyz.name}: {len(atoms)} atoms, {len(ensemble.members)} ensemble members, "
          f"{args.repeats} warm runs, 1 thread")
    print(f"imports (torch, torch_geometric, tblite, cluster_gnn): {imports:.2f} s")
    print(f"{'step':14s} {'cold s':>8s} {'warm median s':>14s} {'share of warm':>14s}")
    for k in med:
        print(f"{k:14s} {cold[k]:8.3f} {med[k]:14.3f} {med[k] / total:14.1%}")
    print(f"{'total':14s} {sum(cold.values()):8.3f} {total:14.3f} {1:14.1%}")
    print(f"cold / warm total: {sum(cold.values()) / total:.1f}x; prediction without attributions: "
          f"{total - med['attributions']:.3f} s")


if __name__ == "__main__":
    main()
