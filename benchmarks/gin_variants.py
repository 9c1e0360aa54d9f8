"""What moves the GIN on the published folds: graph, schedule, architecture, inputs, isomers, seeds.

Each variant is the ``cluster-gnn train`` recipe (multi-task GIN, ``n_seeds`` members per
fold, the authors' 10 folds, 80 epochs with a cosine decay, edges out to 2.5 x the covalent
radii) with one thing changed, scored side by side: pooled out-of-fold R2 and MAE over the
159 measured clusters, the mean R2 of single members (one member per fold), and the
members' mean inner validation MAE (clusters of the training folds only, so a choice made
on it never sees a test fold). ``base_seed1000`` and ``base_seed2000`` are the unchanged recipe with other
random seeds: their spread is the noise any other difference has to beat. Results of the
current recipe (recipe 5, with the one-hot composition classes in ``u``) are in
``docs/gin_variants.*``; ``docs/gin_variants-recipe4.*`` holds the variants around the
recipe before it (no composition classes; the classes were first tried there as the
``count_onehot``, ``ratio_onehot`` and ``count+ratio_onehot`` extras).

Isomer variants use the runner-up isomers committed beside each global minimum
(``data/structures/<name>.isomers.xyz``, their GFN1-xTB features computed here, about
20 s): ``aug`` trains on the isomers within ``aug`` eV of the minimum with the cluster's
label, ``tta`` predicts the mean over the minimum and its isomers within ``tta`` eV.

    python benchmarks/gin_variants.py [--variants base drop0.3 ...] [--seeds 10] [--workers 2]
                                      [--out results.jsonl]

Results append to ``--out`` (JSON lines) and variants already there are skipped, so an
interrupted run resumes.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"  # one current result file per script

os.environ.setdefault("OMP_NUM_THREADS", "1")  # xTB of the isomers: one thread per process is fastest here

from cluster_gnn.graphs import COMPOSITION_CLASSES
from cluster_gnn.graphs import XTB_GRAPH_FEATURES as XTB_GRAPH, XTB_NODE_FEATURES as XTB_NODE

#: the composition classes by kind: S/C/H atom counts, S/C/H atoms per metal atom
COUNT_CLASSES = [c for c in COMPOSITION_CLASSES if c.startswith(("n_S", "n_C", "n_H"))]
RATIO_CLASSES = [c for c in COMPOSITION_CLASSES if "_per_metal" in c]

#: name -> what changes: ``model``/``train``/``graph`` (ModelConfig/TrainConfig/GraphConfig
#: fields), ``drop_node`` / ``drop_graph`` (node / graph features left out), ``aux``
#: ("nbo24": all 24 of the authors' descriptors as auxiliary targets), ``extra`` (graph
#: features added to ``u``), ``aug`` / ``tta`` (isomer windows in eV).
VARIANTS = {
    "base": {},
    "base_seed1000": {"train": {"seed": 1000}},
    "base_seed2000": {"train": {"seed": 2000}},
    # the recipe before this one: early stopping on the inner validation clusters, bonds only, no bond-order sums
    "previous": {"train": {"early_stopping": True, "epochs": 500, "min_lr_ratio": 1.0},
                 "graph": {"edge_scale": 1.3, "cutoff": 4.0}, "drop_node": ["bond_order_sum"]},
    # early stopping (constant learning rate, up to 500 epochs) instead of the fixed schedule
    "early_stopping": {"train": {"early_stopping": True, "epochs": 500, "min_lr_ratio": 1.0}},
    "epochs50": {"train": {"epochs": 50}},
    "epochs120": {"train": {"epochs": 120}},
    "edges1.3": {"graph": {"edge_scale": 1.3, "cutoff": 4.0}},
    "edges1.6": {"graph": {"edge_scale": 1.6, "cutoff": 5.0}},
    "edges2.0": {"graph": {"edge_scale": 2.0, "cutoff": 6.0}},
    "edges3.5": {"graph": {"edge_scale": 3.5, "cutoff": 9.0}},
    "rbf16": {"graph": {"num_rbf": 16}},
    "no_bond_order_sum": {"drop_node": ["bond_order_sum"]},
    "no_stoichiometry": {"drop_graph": ["S_per_metal", "C_per_metal", "H_per_metal", "N_per_metal"]},
    # no xTB in the nodes (element properties and geometry only), and none in u either
    "no_xtb_nodes": {"drop_node": XTB_NODE},
    "no_xtb_nodes_seed1000": {"drop_node": XTB_NODE, "train": {"seed": 1000}},
    "no_xtb_nodes_seed2000": {"drop_node": XTB_NODE, "train": {"seed": 2000}},
    "no_xtb": {"drop_node": XTB_NODE, "drop_graph": XTB_GRAPH},
    "no_xtb_seed1000": {"drop_node": XTB_NODE, "drop_graph": XTB_GRAPH, "train": {"seed": 1000}},
    "no_xtb_seed2000": {"drop_node": XTB_NODE, "drop_graph": XTB_GRAPH, "train": {"seed": 2000}},
    # a loss closer to the absolute error (Huber threshold 0.3 lg units instead of 1.0)
    "huber0.3": {"train": {"huber_delta": 0.3}},
    "huber0.3_seed1000": {"train": {"huber_delta": 0.3, "seed": 1000}},
    "huber0.3_seed2000": {"train": {"huber_delta": 0.3, "seed": 2000}},
    "hidden32": {"model": {"hidden": 32}},
    "hidden64": {"model": {"hidden": 64}},
    "layers2": {"model": {"num_layers": 2}},
    "layers4": {"model": {"num_layers": 4}},
    "drop0.3": {"model": {"dropout": 0.3}},
    "wd1e-2": {"train": {"weight_decay": 1e-2}},
    "lr1e-3": {"train": {"lr": 1e-3}},
    "aux4": {"train": {"aux_weight": 4.0}},
    "nbo24": {"aux": "nbo24"},
    "nbo24_w4": {"aux": "nbo24", "train": {"aux_weight": 4.0}},
    "nbo24_w1": {"aux": "nbo24", "train": {"aux_weight": 1.0}},
    "unpaired": {"extra": ["unpaired"]},
    "unpaired+electrons": {"extra": ["unpaired", "electrons_per_metal"]},
    "charge_stats": {"extra": ["charge_sd", "metal_charge_sd", "mean_abs_charge"]},
    # without the one-hot composition classes in u: the recipe before them (recipe 4)
    "no_composition_classes": {"drop_graph": COMPOSITION_CLASSES},
    "no_composition_classes_seed1000": {"drop_graph": COMPOSITION_CLASSES, "train": {"seed": 1000}},
    "no_composition_classes_seed2000": {"drop_graph": COMPOSITION_CLASSES, "train": {"seed": 2000}},
    # metal-atom classes with only the ligand counts, or only the ligand-per-metal bins
    "count_classes": {"drop_graph": RATIO_CLASSES},
    "ratio_classes": {"drop_graph": COUNT_CLASSES},
    "tta0.3": {"tta": 0.3},
    "aug0.3_tta0.3": {"aug": 0.3, "tta": 0.3},
}

_CLUSTERS: list = []
_GRAPH_KEYS = ("x", "edge_index", "edge_attr", "u", "y")


def _core(graph, aux):
    """The tensors a member trains on (graphs with other attributes cannot share a batch)."""
    from torch_geometric.data import Data

    return Data(**{k: graph[k] for k in _GRAPH_KEYS}, aux=aux)


def _extra_features(atoms, features) -> dict:
    """Cluster-level extras for the ``extra`` variants (electrons, e)."""
    from cluster_gnn.structures import is_metal

    metal = np.array([is_metal(s) for s in atoms.get_chemical_symbols()])
    q = np.asarray(features.charges)
    electrons = int(np.sum(features.valence_electrons)) - int(features.charge)
    return {"unpaired": features.multiplicity - 1, "electrons_per_metal": electrons / metal.sum(),
            "charge_sd": q.std(), "metal_charge_sd": q[metal].std() if metal.sum() > 1 else 0.0,
            "mean_abs_charge": np.abs(q).mean()}


def build_clusters(with_isomers: bool, graph: dict | None = None) -> list[dict]:
    """The measured one-metal clusters: graph, fold, targets and (optionally) isomer graphs;
    ``graph``: :class:`~cluster_gnn.graphs.GraphConfig` fields other than the default."""
    import torch
    from ase.io import read as ase_read

    from cluster_gnn.datasets import load_nbo_descriptors
    from cluster_gnn.electronic import compute_xtb_features, load_feature_tables
    from cluster_gnn.graphs import GraphConfig, build_graph
    from cluster_gnn.datasets import structure_path
    from cluster_gnn.graphs import load_graphs

    graph_config = GraphConfig(**(graph or {}))
    nbo = load_nbo_descriptors().set_index("name")
    nbo24 = [c for c in nbo.columns if c not in ("cluster", "lg_k1")]
    feats = load_feature_tables()
    clusters = []
    t0 = time.perf_counter()
    for g in load_graphs(graph_config=graph_config):
        if np.isnan(float(g.y)) or g.kind != "homonuclear":  # the GIN's training set: train_and_save
            continue
        atoms, f = feats[g.name]
        c = {"name": g.name, "fold": g.fold, "graph": _core(g, g.aux), "u": g.u, "aux_nbo8": g.aux,
             "aux_nbo24": torch.tensor(nbo.loc[g.name, nbo24].to_numpy(float)[None], dtype=torch.float32),
             "extra": _extra_features(atoms, f), "isomers": [], "x": g.x}
        isomer_file = structure_path(g.name).with_suffix(".isomers.xyz")
        if with_isomers and isomer_file.is_file():
            for k, iso in enumerate(ase_read(isomer_file, index=":")):
                fi = compute_xtb_features(iso, int(iso.info["charge"]), int(iso.info["multiplicity"]))
                h = build_graph(iso, fi, graph_config, y=float(g.y))
                c["isomers"].append((_core(h, g.aux), float(iso.info["relative_energy"])))
        clusters.append(c)
    if with_isomers:
        print(f"isomer features: {sum(len(c['isomers']) for c in clusters)} isomers in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    return clusters


def _init(clusters):
    global _CLUSTERS
    _CLUSTERS = clusters


def _set_inputs(variant: dict) -> None:
    import torch

    from cluster_gnn.graphs import GRAPH_FEATURES, NODE_FEATURES

    extra = variant.get("extra", [])
    keep = [k for k, name in enumerate(NODE_FEATURES) if name not in variant.get("drop_node", ())]
    keep_u = [k for k, name in enumerate(GRAPH_FEATURES) if name not in variant.get("drop_graph", ())]
    for c in _CLUSTERS:
        g = c["graph"]
        g.x = c["x"][:, keep]
        g.aux = c["aux_" + variant.get("aux", "nbo8")]
        u = c["u"][:, keep_u]
        g.u = torch.cat([u, torch.tensor([[float(c["extra"][k]) for k in extra]])], dim=1) if extra else u


def _versions(i: int, window) -> list:
    c = _CLUSTERS[i]
    return [c["graph"]] + ([g for g, de in c["isomers"] if de <= window] if window is not None else [])


def _predict(model, indices, window) -> np.ndarray:
    if window is None:  # one graph per cluster: one batch
        return model.predict_graphs([_CLUSTERS[i]["graph"] for i in indices])
    return np.array([model.predict_graphs(_versions(i, window)).mean() for i in indices])


def train_model(variant: dict, held_out: tuple, seed: int):
    """One member of ``variant`` trained on the clusters outside the folds ``held_out``
    (less a ``val_fraction`` inner validation share, as in ``training.train_ensemble``);
    returns ``(model, held-out indices, validation indices, training indices)``."""
    from cluster_gnn.models import ModelConfig
    from cluster_gnn.training import TrainConfig, train_member

    _set_inputs(variant)
    g0 = _CLUSTERS[0]["graph"]
    model_config = ModelConfig(num_aux=g0.aux.shape[1], num_graph_features=g0.u.shape[1],
                               num_node_features=g0.x.shape[1], num_edge_features=g0.edge_attr.shape[1],
                               **variant.get("model", {}))
    config = TrainConfig(**variant.get("train", {}))
    pool = np.array([i for i, c in enumerate(_CLUSTERS) if c["fold"] not in held_out])
    test = [i for i, c in enumerate(_CLUSTERS) if c["fold"] in held_out]
    perm = np.random.default_rng(seed).permutation(pool)
    n_val = max(1, int(round(config.val_fraction * len(perm))))
    val, train = perm[:n_val].tolist(), perm[n_val:].tolist()
    model, _ = train_member([g for i in train for g in _versions(i, variant.get("aug"))],
                            [_CLUSTERS[i]["graph"] for i in val], model_config, config, seed)
    return model, test, val, train


def train_without(variant: dict, held_out: tuple, seed: int):
    """:func:`train_model`'s member scored: ``(indices of the held-out clusters, their
    predictions, validation MAE, training MAE)``."""
    model, test, val, train = train_model(variant, held_out, seed)

    def mae(indices):
        y = np.array([float(_CLUSTERS[i]["graph"].y) for i in indices])
        return float(np.abs(_predict(model, indices, variant.get("tta")) - y).mean())

    return test, _predict(model, test, variant.get("tta")), mae(val), mae(train)


def base_seed(variant: dict) -> int:
    """The variant's ``TrainConfig.seed``."""
    from cluster_gnn.training import TrainConfig

    return TrainConfig(**variant.get("train", {})).seed


def _member(task):
    variant, fold, s = task
    # the member seeds of training.train_ensemble
    seed = base_seed(variant) + 100 * (fold - 1) + s
    test, pred, val_mae, _ = train_without(variant, (fold,), seed)
    return s, test, pred, val_mae


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, default=10, help="members per fold")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "gin_variants.jsonl")
    args = parser.parse_args(argv)

    from cluster_gnn.parallel import task_executor
    from cluster_gnn.splits import metrics

    done = {json.loads(line)["variant"]: json.loads(line) for line in args.out.open()} if args.out.is_file() else {}
    todo = [v for v in args.variants if v not in done]
    by_graph: dict = {}  # variants sharing a graph construction share the built clusters and workers
    for name in todo:
        by_graph.setdefault(json.dumps(VARIANTS[name].get("graph", {}), sort_keys=True), []).append(name)
    for graph_key, names in by_graph.items():
        clusters = build_clusters(any("aug" in VARIANTS[v] or "tta" in VARIANTS[v] for v in names), json.loads(graph_key))
        y = np.array([float(c["graph"].y) for c in clusters])
        with task_executor(args.workers, initializer=_init, initargs=(clusters,)) as pool:
            for name in names:
                t0 = time.perf_counter()
                pred = np.zeros((args.seeds, len(clusters)))
                val = []
                for s, test, p, v in pool.map(_member, [(VARIANTS[name], f, s) for f in range(1, 11)
                                                        for s in range(args.seeds)]):
                    pred[s, test] = p
                    val.append(v)
                m = metrics(y, pred.mean(0))
                single = float(np.mean([metrics(y, pred[s])["r2"] for s in range(args.seeds)]))
                done[name] = {"variant": name, "r2": round(m["r2"], 4), "mae": round(m["mae"], 4),
                              "single_r2": round(single, 4), "val_mae": round(float(np.mean(val)), 4),
                              "seconds": round(time.perf_counter() - t0, 1), "members_per_fold": args.seeds,
                              "oof": [round(float(v), 4) for v in pred.mean(0)]}
                with args.out.open("a") as fh:
                    fh.write(json.dumps(done[name]) + "\n")
                print(f"{name:20s} R2 {m['r2']:.3f}  MAE {m['mae']:.3f}  single R2 {single:.3f}  "
                      f"val MAE {done[name]['val_mae']:.3f}  ({done[name]['seconds']:.0f} s)", flush=True)
    print(f"\n{'variant':20s} {'R2':>6s} {'MAE':>6s} {'single R2':>9s} {'val MAE':>7s}")
    for name in args.variants:
        r = done[name]
        single = f"{r['single_r2']:9.3f}" if "single_r2" in r else f"{'':9s}"
        print(f"{name:20s} {r['r2']:6.3f} {r['mae']:6.3f} {single} {r['val_mae']:7.3f}")


if __name__ == "__main__":
    main()
