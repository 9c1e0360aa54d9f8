"""What masking an atom means, measured: the reference atom vs removing the atom from the graph.

For every ``--every``-th measured one-metal cluster, the GIN members of its fold (out-of-fold,
``--members`` of them) are explained by occlusion and by exact Shapley values under both
masks of :class:`cluster_gnn.attribution.GraphMasking`:

- ``reference`` (the app's): the atom's node features become the member's mean training atom;
- ``remove``: the atom and its edges leave the graph (it passes no message and is not pooled).

Per mask and method: mean deletion fidelity under the same mask (lg) with the share of
clusters above 0, the same ranking's deletion fidelity under the *other* mask (does the
ranking find atoms the model depends on, whichever way they are hidden?), signed fidelity,
median contrast (top share over 1/N) overall and where fidelity > 0.

    python benchmarks/masking_modes.py [--every 3] [--members 5]

Writes ``benchmarks/results/masking_modes.csv`` (one row per cluster, mask and method) and
prints the summary table.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("occlusion", "shapley")


def rows_for(names, members_per_cluster: int) -> pd.DataFrame:
    from cluster_gnn.attribution import CoalitionTable, GraphMasking, deletion_fidelity
    from cluster_gnn.explain import explain_graph, explaining_members, importance_contrast
    from cluster_gnn.predict import load_ensemble, predict_named

    ensemble = load_ensemble()
    rows = []
    for k, name in enumerate(names):
        p = predict_named(name, ensemble)
        members = explaining_members(ensemble, p)[:members_per_cluster]
        graph = ensemble.featurize(p.atoms, p.charge, p.multiplicity, features=p.features)
        masks = {m: GraphMasking(members, graph, m) for m in GraphMasking.MODES}
        tables = {m: CoalitionTable(v) for m, v in masks.items()}
        for mode, masking in masks.items():
            exp = explain_graph(graph, [], METHODS, value_function=masking, fidelity=True)
            other = next(m for m in GraphMasking.MODES if m != mode)
            for method in METHODS:
                f = exp.fidelity[method]
                rows.append({"name": name, "atoms": len(exp.importance), "mask": mode, "method": method,
                             "fidelity": f["fidelity"], "signed": f["signed"],
                             "fidelity_other_mask": deletion_fidelity(tables[other], exp.by_method[method])["fidelity"],
                             "contrast": importance_contrast(exp.by_method[method]), "atoms_effect": exp.atoms_effect})
        print(f"[{k + 1}/{len(names)}] {name}", flush=True)
    return pd.DataFrame(rows)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (mask, method), g in rows.groupby(["mask", "method"], sort=False):
        backed = g[g["fidelity"] > 0]
        out.append({"mask": mask, "method": method, "clusters": len(g), "fidelity": g["fidelity"].mean(),
                    "fidelity > 0": (g["fidelity"] > 0).mean(), "fidelity, other mask": g["fidelity_other_mask"].mean(),
                    "signed": g["signed"].mean(), "contrast": g["contrast"].median(),
                    "contrast where fidelity > 0": backed["contrast"].median(), "n backed": len(backed),
                    "|f(all) - f(none)|": g["atoms_effect"].abs().median()})
    return pd.DataFrame(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=3, help="every N-th measured one-metal cluster (table order)")
    parser.add_argument("--members", type=int, default=5, help="fold members per cluster")
    args = parser.parse_args(argv)

    from cluster_gnn.datasets import load_clusters

    t0 = time.perf_counter()
    table = load_clusters()
    names = list(table.loc[(table["kind"] == "homonuclear") & table["lg_k1"].notna(), "name"])[::args.every]
    rows = rows_for(names, args.members)
    RESULTS.mkdir(exist_ok=True)
    rows.round(5).to_csv(RESULTS / "masking_modes.csv", index=False, lineterminator="\n")
    print(summary(rows).round(3).to_markdown(index=False))
    print(f"({time.perf_counter() - t0:.0f} s; rows in {RESULTS / 'masking_modes.csv'})")


if __name__ == "__main__":
    main()
