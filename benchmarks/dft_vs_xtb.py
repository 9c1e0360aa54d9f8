"""What DFT buys: models on xTB, our PBE-NPA and the authors' DFT-NBO electronic features, side by side.

Every model is scored on the same clusters: those with a finished DFT record at the committed
structure and at the table's multiplicity (``data/features/dft/``, written by ``cluster-gnn dft``),
so the sources differ only in their numbers (and the ranked one in its structure). Two kinds of model:

- **Descriptor models** on the five metal descriptors all the sources give, for the mixed
  clusters too: smallest and mean metal charge (``1_Qmin``, ``2_Qave``; e), mean metal valence
  s and d occupancy (``2_nsave``, ``2_ndave``; e) and mean metal spin density (``2_σave``;
  unpaired electrons per metal atom), each with the ``composition+metal`` descriptors
  (:mod:`cluster_gnn.baselines`) for context; ridge regression and extra trees. xTB's five
  come from GFN1-xTB Mulliken charges and shell populations at the same structure (xTB here is
  spin-restricted, so its spin density is (multiplicity - 1) / metal atoms); ours from the PBE
  natural population analysis of the record, or (``PBE-NPA, PBE-ranked isomer``, the table
  ``data/features/dft_descriptors.csv``) of the lowest isomer where the isomer stage has ranked
  the cluster; the authors' from their published NBO values
  (``2_Qave`` = ``2_Q`` / metal atoms for the mixed clusters). ``composition+metal`` alone is
  the floor.
- **prior_blend**, the model behind our mixed-cluster predictions (:mod:`cluster_gnn.transfer`:
  the mean of the metals' mean rates and a ridge on composition and spin), as shipped and with
  each source's five descriptors added to its ridge half: what DFT would buy the model we use.
- **GIN**: the ``cluster-gnn train`` recipe with the per-atom charges and s/p/d populations of
  the node features from xTB (as committed) or from PBE-NPA (bond orders, HOMO and dipole stay
  xTB's), trained on the DFT subset only.

Splits: the authors' 10 folds restricted to the subset (a cluster is tested in its published
fold, trained on the subset's other folds) and the mixtures split (trained on the subset's
one-metal clusters, tested on its measured mixed ones). The figures move as the DFT job
advances; the table records ``n`` for each, and the mixtures split waits for
:data:`MIN_MIXED` measured mixed clusters with a record. Each GIN is trained with two base
seeds: their difference is the noise a difference between the sources has to beat.

    python benchmarks/dft_vs_xtb.py [--seeds 5] [--gin-seeds 0 1000] [--no-gin] [--write]

``--write`` saves ``benchmarks/results/dft_vs_xtb.json`` (and prints the markdown table for
docs/experiments.md).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
FIVE = ["1_Qmin", "2_Qave", "2_nsave", "2_ndave", "2_σave"]
RANKED = "PBE-NPA, PBE-ranked isomer"
SOURCES = ("xTB", "PBE-NPA (ours)", RANKED, "NBO (authors)")
MIN_MIXED = 5  # fewer measured mixed clusters with a record: no mixtures split


def dft_subset():
    """``(table, records)``: the cluster table indexed by name and ``{name: DFTResult}`` for the
    records at the committed structure (positions within 1e-3 Å) and the table's multiplicity."""
    from cluster_gnn.config import DATA_DIR
    from cluster_gnn.datasets import load_clusters
    from cluster_gnn.dft import DFTResult
    from cluster_gnn.dft_job import current_structures, load_dft_results, record_is_current

    table = load_clusters().set_index("name")
    records = {n: r for n, r in load_dft_results(DATA_DIR / "features" / "dft").items()
               if r.get("status") == "ok" and n in table.index}
    current = current_structures(list(records))  # a record at another structure or spin state: the job redoes it
    out = {n: DFTResult.from_dict(r["result"]) for n, r in records.items() if record_is_current(r, current)}
    return table, out


def _xtb_five(atoms, features, multiplicity: int) -> dict:
    from cluster_gnn.structures import is_metal

    m = np.array([is_metal(x) for x in atoms.get_chemical_symbols()])
    q = np.asarray(features.charges, float)[m]
    return {"1_Qmin": q.min(), "2_Qave": q.mean(), "2_nsave": np.asarray(features.s_population)[m].mean(),
            "2_ndave": np.asarray(features.d_population)[m].mean(), "2_σave": (multiplicity - 1) / m.sum()}


def descriptor_rows(names, table, records) -> dict[str, pd.DataFrame]:
    """The five descriptors of every source, ``{source: DataFrame indexed by name}``."""
    from cluster_gnn.config import DATA_DIR
    from cluster_gnn.dft import dft_descriptors
    from cluster_gnn.dft_agreement import authors_values
    from cluster_gnn.electronic import load_feature_tables

    feats = load_feature_tables()
    authors = authors_values(names)
    ranked = pd.read_csv(DATA_DIR / "features" / "dft_descriptors.csv").set_index("cluster")
    rows = {s: [] for s in SOURCES}
    for n in names:
        atoms, f = feats[n]
        rows["xTB"].append(_xtb_five(atoms, f, int(table.loc[n, "multiplicity"])))
        own = {k: v for k, v in dft_descriptors(records[n]).items() if k in FIVE}
        rows["PBE-NPA (ours)"].append(own)
        # a record newer than the table is at the committed structure
        rows[RANKED].append({k: float(ranked.loc[n, k]) for k in FIVE} if n in ranked.index else own)
        rows["NBO (authors)"].append({k: float(authors.loc[n, k]) for k in FIVE})
    return {s: pd.DataFrame(v, index=list(names)).astype(float) for s, v in rows.items()}


def splits_of(names, table) -> dict[str, dict]:
    """``{"folds": {fold: [idx]}, "mixtures": {"mixtures": [idx]}}`` over ``names``."""
    kind = table.loc[names, "kind"].to_numpy()
    fold = table.loc[names, "fold"].to_numpy()
    folds: dict = {}
    for i, (k, f) in enumerate(zip(kind, fold)):
        if k == "homonuclear" and str(f) not in ("<NA>", "nan"):
            folds.setdefault(int(f), []).append(i)
    mixed = [i for i, k in enumerate(kind) if k == "heteronuclear"]
    return {"folds": dict(sorted(folds.items())), "mixtures": {"mixtures": mixed} if len(mixed) >= MIN_MIXED else {}}


def _fit_predict(X_train, y_train, X_test, regressor: str, seed: int = 0):
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if regressor == "ridge":
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 20)))
    else:
        model = ExtraTreesRegressor(n_estimators=300, min_samples_leaf=2, random_state=seed, n_jobs=1)
    return model.fit(X_train, y_train).predict(X_test)


def score_split(X: np.ndarray, y: np.ndarray, split: dict, train_pool: np.ndarray, regressor: str) -> np.ndarray:
    """Out-of-split predictions (NaN outside the test sets); a test set's model is trained on
    ``train_pool`` minus that test set."""
    pred = np.full(len(y), np.nan)
    for test in split.values():
        train = np.setdiff1d(train_pool, test)
        pred[test] = _fit_predict(X[train], y[train], X[test], regressor)
    return pred


def prior_blend_scores(names, table, split: dict, train_pool: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
    """Out-of-split predictions of :class:`~cluster_gnn.transfer.PriorBlend`: the mean of
    :class:`~cluster_gnn.transfer.MetalPrior` and a ridge on
    :func:`~cluster_gnn.transfer.composition_spin_features`, with the columns ``extra``
    (``[len(names), k]``) beside them when given (NaN outside the test sets)."""
    from cluster_gnn.transfer import MetalPrior, composition_spin_features

    rows = table.loc[names].reset_index()
    X = composition_spin_features(rows)
    X = X if extra is None else np.hstack([X, extra])
    y = rows["lg_k1"].to_numpy(float)
    pred = np.full(len(names), np.nan)
    for test in split.values():
        train = np.setdiff1d(train_pool, test)
        prior = MetalPrior().fit(rows.iloc[train]).predict(rows.iloc[test])
        pred[test] = 0.5 * (prior + _fit_predict(X[train], y[train], X[test], "ridge"))
    return pred


def npa_features(features, result):
    """``features`` (xTB :class:`~cluster_gnn.electronic.AtomFeatures`) with the per-atom charges
    and s/p/d populations of the PBE-NPA ``result`` in place of the Mulliken ones."""
    return replace(features, charges=np.asarray(result.charges, float),
                   s_population=np.asarray(result.s_valence, float),
                   p_population=np.asarray(result.p_valence, float),
                   d_population=np.asarray(result.d_valence, float))


def gin_scores(names, table, records, splits: dict, seeds: int, base_seed: int = 0) -> dict:
    """Out-of-split GIN predictions with xTB and with PBE-NPA node features:
    ``{"xTB"|"PBE-NPA (ours)": {split: np.ndarray}}``."""
    from cluster_gnn.electronic import load_feature_tables
    from cluster_gnn.graphs import build_graph, load_graphs
    from cluster_gnn.models import ModelConfig
    from cluster_gnn.training import TrainConfig, train_ensemble

    base = {g.name: g for g in load_graphs(names=names)}
    graphs = {"xTB": [base[n] for n in names]}
    feats = load_feature_tables()
    npa = []
    for n in names:
        atoms, f = feats[n]
        g = build_graph(atoms, npa_features(f, records[n]), y=float(base[n].y), name=n)
        for attr in ("fold", "kind", "family", "metals", "ligands", "aux"):
            setattr(g, attr, getattr(base[n], attr))
        npa.append(g)
    graphs["PBE-NPA (ours)"] = npa
    out = {}
    for source, gs in graphs.items():
        g0 = gs[0]
        mc = ModelConfig(num_aux=g0.aux.shape[1], num_graph_features=g0.u.shape[1],
                         num_node_features=g0.x.shape[1], num_edge_features=g0.edge_attr.shape[1])
        out[source] = {}
        for split_name, split in splits.items():
            if not split:
                continue
            if split_name == "mixtures":  # mixed clusters never train this one
                keep = [i for i, g in enumerate(gs) if g.kind == "homonuclear" or i in split["mixtures"]]
            else:
                keep = list(range(len(gs)))
            sub = [gs[i] for i in keep]
            local = {k: [keep.index(i) for i in v] for k, v in split.items()}
            if split_name == "folds":  # the mixed clusters stay out of the folds' training too
                sub_keep = [j for j, g in enumerate(sub) if g.kind == "homonuclear"]
                sub = [sub[j] for j in sub_keep]
                local = {k: [sub_keep.index(j) for j in v] for k, v in local.items()}
                keep = [keep[j] for j in sub_keep]
            ens = train_ensemble(sub, local, mc, TrainConfig(n_seeds=seeds, workers=1, seed=base_seed), progress=False)
            pred = np.full(len(gs), np.nan)
            for key, idx in local.items():
                mean, _ = ens.predict([sub[j] for j in idx], fold=key)
                pred[[keep[j] for j in idx]] = mean
            out[source][split_name] = pred
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="GIN members per test set")
    parser.add_argument("--gin-seeds", type=int, nargs="+", default=[0, 1000],
                        help="base seeds of the GIN ensembles (their spread is the noise)")
    parser.add_argument("--no-gin", action="store_true", help="descriptor models only")
    parser.add_argument("--write", action="store_true", help="save benchmarks/results/dft_vs_xtb.json")
    args = parser.parse_args(argv)

    from cluster_gnn.baselines import descriptor_table
    from cluster_gnn.splits import metrics

    t0 = time.perf_counter()
    table, records = dft_subset()
    measured = [n for n in records if not np.isnan(table.loc[n, "lg_k1"])]
    names = sorted(measured, key=lambda n: (table.loc[n, "kind"] != "homonuclear", n))
    y = table.loc[names, "lg_k1"].to_numpy(float)
    splits = splits_of(names, table)
    homo = np.array([i for i, n in enumerate(names) if table.loc[n, "kind"] == "homonuclear"])
    five = descriptor_rows(names, table, records)
    context = descriptor_table("composition+metal", names, table.reset_index()).to_numpy()
    n_mixed = len(names) - len(homo)
    print(f"{len(names)} measured clusters with a DFT record at the committed structure "
          f"({len(homo)} one-metal in the folds, {n_mixed} mixed"
          + (f"; under {MIN_MIXED}, so no mixtures split yet)" if n_mixed < MIN_MIXED else ")"))

    rows = []

    def add(model, source, split_name, pred):
        test = np.concatenate([np.asarray(v, int) for v in splits[split_name].values()])
        m = metrics(y[test], pred[test])
        rows.append({"model": model, "features": source, "split": split_name, "n": m["n"],
                     "mae": round(m["mae"], 3), "r2": round(m["r2"], 3)})

    for split_name, split in splits.items():
        if not split:
            continue
        for regressor in ("ridge", "extra trees"):
            reg = "ridge" if regressor == "ridge" else "et"
            add(regressor, "composition + metal only", split_name, score_split(context, y, split, homo, reg))
            for source in SOURCES:
                X = np.hstack([five[source].to_numpy(), context])
                add(regressor, source, split_name, score_split(X, y, split, homo, reg))
        add("prior_blend", "composition + metal only", split_name, prior_blend_scores(names, table, split, homo))
        for source in SOURCES:
            add("prior_blend", source, split_name,
                prior_blend_scores(names, table, split, homo, five[source].to_numpy()))
        mean = np.full(len(y), np.nan)
        for test in split.values():
            mean[test] = np.setdiff1d(homo, test).size and y[np.setdiff1d(homo, test)].mean()
        add("mean", "-", split_name, mean)
    if not args.no_gin:
        for base_seed in args.gin_seeds:
            for source, by_split in gin_scores(names, table, records, splits, args.seeds, base_seed).items():
                for split_name, pred in by_split.items():
                    add(f"GIN ({args.seeds} members per test set, seed {base_seed})", source, split_name, pred)

    agreement = {}
    for source in ("xTB", "PBE-NPA (ours)", RANKED):
        agreement[source] = {k: round(float(np.corrcoef(five[source][k], five["NBO (authors)"][k])[0, 1]), 3)
                             for k in FIVE}
    print("\nPearson r with the authors' NBO values on these clusters:")
    for source, r in agreement.items():
        print(f"  {source:16s} " + "  ".join(f"{k} {v:.2f}" for k, v in r.items()))

    print("\n| split | model | features | n | MAE | R² |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['split']} | {r['model']} | {r['features']} | {r['n']} | {r['mae']:.3f} | {r['r2']:.2f} |")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.write:
        RESULTS.mkdir(exist_ok=True)
        out = {"clusters": names, "n_one_metal": int(len(homo)), "agreement_r": agreement, "rows": rows,
               "gin_members_per_test_set": None if args.no_gin else args.seeds,
               "gin_seeds": None if args.no_gin else args.gin_seeds}
        (RESULTS / "dft_vs_xtb.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
