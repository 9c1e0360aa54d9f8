"""Splits, the training loop, the fold ensemble and metrics.

Training follows the authors' published 10 folds exactly: for test fold ``k`` the
members are trained on the other nine folds only. Inside those, a random
``val_fraction`` of clusters is held out for each member's residual ``sigma`` (and for
early stopping, when asked for); input scaling is fitted on the member's training
clusters only. Each
fold gets ``n_seeds`` members (different initialisation and inner split); the
out-of-fold prediction of a cluster is the mean of its fold's members, and a prediction
for a new cluster is the mean of all members.

The GIN is trained multi-task (``aux_weight``): besides lg(k1) it predicts the authors'
8 DFT-NBO descriptors of the training clusters from the same pooled representation
(:class:`~cluster_gnn.models.ModelConfig` ``num_aux``). The descriptors are training
targets only, never inputs, so a prediction needs nothing but the xTB graph. On the
published folds this added supervision, ten members per fold, a fixed short training
schedule instead of early stopping, edges that reach second neighbours
(:class:`~cluster_gnn.graphs.GraphConfig`) and the stoichiometry among the graph features
were what moved the GIN (see the README's results and ``benchmarks/gin_variants.py``).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from .errors import DatasetError

__all__ = ["train_and_save", "TrainConfig", "load_graphs", "published_folds", "group_splits", "train_member",
           "train_ensemble", "attach_domain", "domain_residuals", "metrics", "out_of_fold"]


@dataclass(frozen=True)
class TrainConfig:
    """Training settings.

    Parameters
    ----------
    epochs: full-batch epochs per member (all of them with the default fixed schedule;
        the maximum with ``early_stopping``).
    lr: AdamW peak learning rate; it decays to ``lr * min_lr_ratio`` along a cosine.
    min_lr_ratio: final over peak learning rate (1: constant).
    weight_decay: AdamW weight decay.
    n_seeds: members per fold.
    val_fraction: share of the training clusters each member leaves out; its residuals
        give the member's ``sigma`` (and, with ``early_stopping``, the stopping epoch).
    early_stopping: keep the weights of the epoch with the lowest validation MAE and stop
        ``patience`` epochs after it, instead of training the fixed ``epochs``.
    patience: epochs without validation improvement before stopping (``early_stopping`` only).
    seed: base random seed (member ``s`` of fold ``k`` uses ``seed + 100 k + s``).
    huber_delta: Huber loss threshold in lg units.
    aux_weight: weight of the auxiliary-target loss (mean squared error of the
        standardised NBO descriptors, clusters without them skipped); used when the
        model has ``num_aux > 0``.
    workers: processes that train members in parallel (1: in this process).

    The default is a fixed, short schedule: 80 epochs with a cosine decay. Early stopping
    on about 20 validation clusters picked a noisy epoch (median 45, 10-90 % range 21-117
    on the folds) and gave worse members: mean single-member out-of-fold R2 0.569 against
    0.591 for the fixed schedule, same seeds and graphs (``benchmarks/gin_variants.py``,
    variants ``early_stopping`` and ``base``).
    """

    epochs: int = 80
    lr: float = 3e-3
    min_lr_ratio: float = 0.02
    weight_decay: float = 1e-3
    n_seeds: int = 10
    val_fraction: float = 0.15
    early_stopping: bool = False
    patience: int = 60
    seed: int = 0
    huber_delta: float = 1.0
    aux_weight: float = 2.0
    workers: int = 1

    def __post_init__(self):
        if self.epochs < 1 or self.patience < 1 or self.n_seeds < 1 or self.workers < 1:
            raise ValueError("epochs, patience, n_seeds and workers must be positive")
        if self.aux_weight < 0:
            raise ValueError("aux_weight must be >= 0")
        if not 0.0 < self.min_lr_ratio <= 1.0:
            raise ValueError("min_lr_ratio must be in (0, 1]")
        if not 0.0 < self.val_fraction < 0.5:
            raise ValueError("val_fraction must be in (0, 0.5)")

    def to_dict(self) -> dict:
        return asdict(self)


def load_graphs(names=None, graph_config=None, features_dir=None, table=None) -> list:
    """Graphs of the bundled clusters (from ``data/features``), with ``y`` = measured
    lg(k1) (NaN if unknown), ``aux`` = the authors' 8 NBO descriptors ``[1, 8]`` (NaN for
    the heteronuclear clusters; auxiliary training targets) and ``fold``, ``family``,
    ``metals``, ``ligands`` attributes.

    Clusters without computed features are left out.
    """
    import torch

    from .baselines import NBO8
    from .datasets import load_clusters, load_nbo_descriptors
    from .electronic import load_feature_tables
    from .graphs import build_graph

    table = load_clusters() if table is None else table
    feats = load_feature_tables(features_dir)
    nbo = load_nbo_descriptors().set_index("name")
    rows = table if names is None else table[table["name"].isin(list(names))]
    graphs = []
    for _, row in rows.iterrows():
        if row["name"] not in feats:
            continue
        atoms, f = feats[row["name"]]
        lg = None if np.isnan(row["lg_k1"]) else float(row["lg_k1"])
        g = build_graph(atoms, f, graph_config, y=lg, name=row["name"])
        g.fold = int(row["fold"]) if str(row["fold"]) not in ("<NA>", "nan") else 0
        g.family, g.metals, g.ligands = row["family"], row["metals"], row["ligands"]
        aux = nbo.loc[row["name"], NBO8].to_numpy(float) if row["name"] in nbo.index else np.full(len(NBO8), np.nan)
        g.aux = torch.tensor(aux[None], dtype=torch.float32)
        graphs.append(g)
    if not graphs:
        raise DatasetError("no cluster has features yet: run 'cluster-gnn structures' and 'cluster-gnn features'")
    return graphs


def published_folds(graphs) -> dict[int, list[int]]:
    """``{fold: [test indices]}`` for the authors' folds 1..10 (measured clusters only)."""
    out: dict[int, list[int]] = {}
    for i, g in enumerate(graphs):
        if g.fold and not np.isnan(float(g.y)):
            out.setdefault(g.fold, []).append(i)
    return dict(sorted(out.items()))


def group_splits(graphs, by: str) -> dict[str, list[int]]:
    """Leave-one-group-out test sets over the measured clusters.

    ``by="metal"``: one group per metal element (a cluster is in the group of each of its
    metals); ``by="ligand"``: one group per ligand set (``S``, ``S;C``, ``C``, ``H``, ``N``,
    ``N;H``, none). For a group the model is trained on clusters that do not belong to it.
    """
    if by not in ("metal", "ligand"):
        raise ValueError("by must be 'metal' or 'ligand'")
    out: dict[str, list[int]] = {}
    for i, g in enumerate(graphs):
        if np.isnan(float(g.y)):
            continue
        keys = g.metals.split(";") if by == "metal" else [_ligand_family(g.ligands)]
        for key in keys:
            out.setdefault(key, []).append(i)
    return dict(sorted(out.items()))


def _ligand_family(ligands: str) -> str:
    return "+".join(sorted(ligands.split(";"))) if ligands else "bare"


def metrics(y_true, y_pred) -> dict:
    """``r2``, ``mae``, ``rmse`` (lg units) of two arrays."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    resid = y_true - y_pred
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    return {
        "r2": float(1.0 - np.sum(resid**2) / ss_tot) if ss_tot > 0 else float("nan"),
        "mae": float(np.mean(np.abs(resid))),
        "rmse": float(np.sqrt(np.mean(resid**2))),
        "n": int(len(y_true)),
    }


def train_member(train_graphs, val_graphs, model_config=None, config: TrainConfig | None = None, seed: int = 0):
    """Train one :class:`~cluster_gnn.models.ClusterGNN`; returns ``(model, sigma)``.

    Full-batch AdamW with a cosine learning-rate decay on the Huber loss of lg(k1) plus,
    for a model with ``num_aux``, the auxiliary loss. With ``config.early_stopping`` the
    weights of the epoch with the lowest validation MAE are kept; otherwise those of the
    last epoch. ``sigma`` is the RMS validation residual in lg units (0 without
    validation clusters).
    """
    import torch
    from torch_geometric.data import Batch

    from .models import ClusterGNN

    config = config or TrainConfig()
    torch.manual_seed(seed)
    model = ClusterGNN(model_config)
    model.fit_scaling(train_graphs)
    tb = Batch.from_data_list(list(train_graphs))
    vb = Batch.from_data_list(list(val_graphs)) if val_graphs else None
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.epochs, eta_min=config.lr * config.min_lr_ratio)
    loss_fn = torch.nn.HuberLoss(delta=config.huber_delta / float(model.y_std))
    best, best_state, since = float("inf"), None, 0
    for epoch in range(config.epochs):
        model.train()
        opt.zero_grad()
        pred, aux = model.forward_with_aux(tb.x, tb.edge_index, tb.edge_attr, tb.batch, tb.u)
        loss = loss_fn(pred / model.y_std, tb.y / model.y_std)
        if aux is not None and config.aux_weight > 0:
            target = (tb.aux - model.aux_mean) / model.aux_std
            known = ~torch.isnan(target)
            if known.any():
                loss = loss + config.aux_weight * (aux[known] - target[known]).pow(2).mean()
        loss.backward()
        opt.step()
        schedule.step()
        if vb is None or not config.early_stopping:
            continue
        model.eval()
        with torch.no_grad():
            val = float((model(vb.x, vb.edge_index, vb.edge_attr, vb.batch, vb.u) - vb.y).abs().mean())
        if val < best - 1e-4:
            best, since = val, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since += 1
            if since >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if vb is not None:
        with torch.no_grad():
            resid = model(vb.x, vb.edge_index, vb.edge_attr, vb.batch, vb.u) - vb.y
        sigma = float(resid.pow(2).mean().sqrt())
    else:
        sigma = 0.0
    return model, sigma


_WORKER_GRAPHS: list = []


def _init_worker(graphs) -> None:
    import torch

    global _WORKER_GRAPHS
    torch.set_num_threads(1)
    _WORKER_GRAPHS = graphs


def _train_task(task):
    train, val, model_config, config, seed = task
    model, sigma = train_member([_WORKER_GRAPHS[i] for i in train], [_WORKER_GRAPHS[i] for i in val],
                                model_config, config, seed)
    return model.state_dict(), sigma


def train_ensemble(graphs, splits: dict, model_config=None, config: TrainConfig | None = None,
                   name: str = "gin", meta: dict | None = None, progress: bool = True):
    """Train ``n_seeds`` members for every test set in ``splits`` (``{key: [indices]}``).

    Members of split ``key`` never see that split's clusters (neither in training nor in
    scaling). Member ``s`` of the ``k``-th split uses seed ``config.seed + 100 k + s`` for
    its initialisation and its inner validation split, so the result does not depend on
    ``config.workers`` (members are trained in that many processes). Returns an
    :class:`~cluster_gnn.models.Ensemble` whose members carry ``fold = key``.
    """
    from tqdm import tqdm

    from .parallel import task_executor

    from .models import ClusterGNN, Ensemble, ModelConfig

    config = config or TrainConfig()
    model_config = model_config or ModelConfig()
    measured = [i for i, g in enumerate(graphs) if not np.isnan(float(g.y))]
    tasks, labels = [], []
    for k_index, (key, test_idx) in enumerate(splits.items()):
        held_out = set(test_idx)
        pool = np.array([i for i in measured if i not in held_out])
        if len(pool) < 2:
            raise DatasetError(f"split {key!r} leaves {len(pool)} measured clusters to train on")
        for s in range(config.n_seeds):
            seed = config.seed + 100 * k_index + s
            perm = np.random.default_rng(seed).permutation(pool)
            n_val = max(1, int(round(config.val_fraction * len(perm))))
            tasks.append((perm[n_val:].tolist(), perm[:n_val].tolist(), model_config, config, seed))
            labels.append((key, seed))
    bar = tqdm(total=len(tasks), disable=not progress, desc=f"training {name}", unit="model")
    t0 = time.time()
    results = []
    if config.workers == 1:
        for train, val, mc, tc, seed in tasks:
            model, sigma = train_member([graphs[i] for i in train], [graphs[i] for i in val], mc, tc, seed)
            results.append((model, sigma))
            bar.update(1)
    else:
        with task_executor(config.workers, initializer=_init_worker, initargs=(list(graphs),)) as pool:
            for state, sigma in pool.map(_train_task, tasks):
                model = ClusterGNN(model_config)
                model.load_state_dict(state)
                model.eval()
                results.append((model, sigma))
                bar.update(1)
    bar.close()
    members = [{"model": m, "fold": key, "seed": seed, "sigma": sigma}
               for (m, sigma), (key, seed) in zip(results, labels)]
    meta = dict(meta or {})
    meta.update(train_config=config.to_dict(), train_seconds=round(time.time() - t0, 1),
                splits={str(k): [graphs[i].name for i in v] for k, v in splits.items()})
    return Ensemble(name, model_config, members, meta)


def out_of_fold(ensemble, graphs, splits: dict) -> dict:
    """Out-of-fold predictions: ``{name: (measured, mean, std, key)}`` for every test cluster."""
    out = {}
    for key, idx in splits.items():
        mean, std = ensemble.predict([graphs[i] for i in idx], fold=key)
        for i, m, s in zip(idx, mean, std):
            out[graphs[i].name] = (float(graphs[i].y), float(m), float(s), key)
    return out


def domain_residuals(ensemble, graphs, splits: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Out-of-split ``(residuals, model_std, distance, keys)`` of ``ensemble`` over the
    measured test clusters of ``splits`` (the inputs of
    :func:`~cluster_gnn.domain.fit_distance_scale`)."""
    resid, std, dist, keys = [], [], [], []
    for key, idx in splits.items():
        sub = [graphs[i] for i in idx]
        mean, s = ensemble.predict_model_only(sub, fold=key)
        resid += list(np.array([float(g.y) for g in sub]) - mean)
        std += list(s)
        dist += list(ensemble.distance(sub, fold=key))
        keys += [key] * len(sub)
    return np.array(resid), np.array(std), np.array(dist), keys


def attach_domain(ensemble, graphs, splits: dict, scale: float | None = None, calibration=None) -> float:
    """Give ``ensemble`` its applicability domain (:mod:`cluster_gnn.domain`): the measured
    clusters as references and the distance ``scale``. Unless given, the scale is fitted
    by maximum likelihood on out-of-split residuals: those of ``calibration`` (an
    ``(ensemble, splits)`` pair, e.g. leave-one-metal-out members, where the distances
    are large) or else of ``ensemble`` on ``splits``. Returns the scale."""
    from .domain import Domain, fit_distance_scale

    measured = [g for g in graphs if not np.isnan(float(g.y))]
    ensemble.meta["domain"] = Domain.from_graphs(measured).to_dict()
    if scale is None:
        cal_ensemble, cal_splits = calibration or (ensemble, splits)
        if cal_ensemble is not ensemble:
            cal_ensemble.meta["domain"] = ensemble.meta["domain"]
        resid, std, dist, _ = domain_residuals(cal_ensemble, graphs, cal_splits)
        scale = fit_distance_scale(resid, std, dist)
    ensemble.meta["domain"]["scale"] = float(scale)
    return float(scale)


def train_and_save(name: str = "gin", config: TrainConfig | None = None, out_dir=None, graph_config=None):
    """Train ``name`` (``gin`` or ``gcn``) on the published folds and save ``models/<name>.pt``
    with its applicability domain (:func:`attach_domain`).

    The domain's distance scale is calibrated on leave-one-metal-out members trained here
    (``min(3, n_seeds)`` per held-out metal, about a fifth of the folds' cost): on the
    published folds every test cluster has close neighbours and the fitted scale is zero,
    while a new metal is exactly where the spread of the members is too small.

    Returns ``(path, summary)`` with the out-of-fold ``r2``, ``mae``, member count and seconds.
    """
    from dataclasses import replace
    from pathlib import Path

    from .baselines import NBO8
    from .config import MODELS_DIR, XTBConfig
    from .graphs import GRAPH_FEATURES, NODE_FEATURES, GraphConfig
    from .models import ModelConfig

    config = config or TrainConfig()
    model_config = ModelConfig(conv=name, num_aux=len(NBO8))
    graph_config = graph_config or GraphConfig()
    graphs = load_graphs(graph_config=graph_config)
    splits = published_folds(graphs)
    meta = {"level_of_theory": XTBConfig().to_dict(), "graph_config": graph_config.to_dict(),
            "node_features": list(NODE_FEATURES), "edge_features": list(graph_config.edge_features),
            "graph_features": list(GRAPH_FEATURES), "split": "published-folds", "aux_targets": list(NBO8)}
    t0 = time.time()
    ensemble = train_ensemble(graphs, splits, model_config, config, name=name, meta=meta)
    metal_splits = group_splits(graphs, "metal")
    calibration = train_ensemble(graphs, metal_splits, model_config, replace(config, n_seeds=min(3, config.n_seeds)),
                                 name=f"{name} calibration")
    scale = attach_domain(ensemble, graphs, splits, calibration=(calibration, metal_splits))
    ensemble.meta["domain"]["calibration"] = {"split": "metal", "members": len(calibration.members)}
    seconds = time.time() - t0
    oof = out_of_fold(ensemble, graphs, splits)
    y = np.array([v[0] for v in oof.values()])
    p = np.array([v[1] for v in oof.values()])
    summary = {**metrics(y, p), "n_members": len(ensemble.members), "seconds": seconds, "domain_scale": scale}
    path = ensemble.save(Path(out_dir or MODELS_DIR) / f"{name}.pt")
    return path, summary
