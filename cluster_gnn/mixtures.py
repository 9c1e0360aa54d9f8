"""How well models carry lg(k1) to new metal mixtures: the splits that choose the model.

Homonuclear splits cannot tell how a model combines two metals, so the model behind
predictions for new mixtures is chosen on two splits over measured mixed clusters:

- ``mixtures``: the authors' strict transfer test. Train on the 159 homonuclear clusters,
  predict the 24 measured mixed ones (Fe-V-C, Fe-V-S, Fe-Ta-C); the authors' own transfer
  predictions of the same 24 are scored beside (``authors_transfer``).
- ``family``: leave one family (metal set x ligand set) out over all 183 measured clusters
  (the graph ensembles learn from the one-metal ones, as the committed GIN does).

Every model is scored on the same test clusters: the table baselines of
:mod:`cluster_gnn.transfer` (``mean``, ``metal_prior``, ``composition_ridge``,
``prior_blend``), descriptor models of :mod:`cluster_gnn.baselines` (composition trees; the
authors' 15 DFT descriptors with extra trees and with the reference-anchored pairwise
difference model, a baseline that needs DFT), and graph ensembles trained here for each
held-out set. ``chosen`` (:data:`CHOSEN`) names the model behind predictions.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from .baselines import evaluate_descriptors
from . import config
from .datasets import load_clusters
from .electronic import load_feature_tables
from .graphs import load_graphs
from .models import ModelConfig
from .predict import Z90, load_ensemble
from .splits import family_splits, metrics, mixture_split, out_of_fold
from .structures import metal_pairs, metal_shares
from .training import TrainConfig, learns_from, train_ensemble
from .transfer import TRANSFER_MODELS, calibrate_mixing_std, out_of_split

__all__ = ["TRANSFER_SPLITS", "CHOSEN", "DESCRIPTOR_MODELS", "evaluate_transfer", "write_transfer",
           "interval_coverage", "transfer_table", "TRANSFER_DESCRIPTIONS"]

TRANSFER_SPLITS = ("mixtures", "family")
#: the model behind predictions: the GIN for a cluster of one metal, prior_blend for a
#: cluster that mixes metals (the GIN does not carry rates to mixtures: both splits)
CHOSEN = "gin_or_prior_blend"
#: descriptor models scored on the transfer splits: (key, descriptor set, regressor)
DESCRIPTOR_MODELS = [
    ("et_composition+metal", "composition+metal", "et"),
    ("et_composition+elements", "composition+elements", "et"),
    ("et_dft15", "dft15", "et"),
    ("pairwise_dft15", "dft15", "pairwise"),
]
TRANSFER_DESCRIPTIONS = {
    "mean": "mean lg(k1) of the training clusters",
    "metal_prior": "mean lg(k1) of each metal's training clusters, averaged over the cluster's metal atoms",
    "composition_ridge": "ridge regression on ligands per metal, metal atoms, charge and unpaired electrons per metal",
    "prior_blend": "mean of metal_prior and composition_ridge",
    "gin_or_prior_blend": "the GIN for a cluster of one metal, prior_blend for a mixed-metal cluster "
                          "(makes our predictions)",
    "et_composition+metal": "extra trees on composition + metal shares",
    "et_composition+elements": "extra trees on composition + metal-averaged periodic properties",
    "et_dft15": "extra trees on the authors' 15 DFT-NBO descriptors (needs DFT)",
    "pairwise_dft15": "pairwise-difference model on the authors' 15 DFT-NBO descriptors, anchored on every "
                      "training cluster (like the authors' transfer; needs DFT)",
    "gin": "GIN ensemble on GFN1-xTB graphs, trained here on the one-metal clusters outside the held-out set",
    "gcn": "GCN ensemble on the same graphs and clusters (a simpler graph baseline)",
    "authors_transfer": "the authors' published transfer predictions (DFT descriptors)",
}


def _splits(graphs, split: str) -> dict:
    if split == "mixtures":
        return mixture_split(graphs)
    if split == "family":
        return family_splits(graphs)
    raise ValueError(f"split must be one of {TRANSFER_SPLITS}, got {split!r}")


def evaluate_transfer(split: str = "mixtures", graph_models=("gin",), models_dir=None, n_seeds: int | None = None,
                      workers: int | None = None, progress: bool = False):
    """Score every model on a transfer split.

    Returns ``(results, predictions)``: ``results`` is ``{model: {"mae", "r2", "rmse", "n",
    "per_split": {key: metrics}}}`` plus ``"chosen": CHOSEN``; ``predictions`` is
    ``{model: {name: (measured, predicted, key)}}``. Graph ensembles get ``n_seeds``
    members per held-out set, trained in ``workers`` processes (default: all cores).
    """
    graphs = load_graphs()
    splits = _splits(graphs, split)
    table = load_clusters().set_index("name")
    measured = [i for i, g in enumerate(graphs) if not np.isnan(float(g.y))]
    names = [graphs[i].name for i in measured]
    y = np.array([float(graphs[i].y) for i in measured])
    pos = {i: j for j, i in enumerate(measured)}
    local = {k: [pos[i] for i in v] for k, v in splits.items()}
    rows = table.loc[names].reset_index()
    tests = {k: [names[j] for j in v] for k, v in local.items()}
    preds: dict[str, dict] = {key: out_of_split(model_cls, rows, tests) for key, model_cls in TRANSFER_MODELS.items()}
    features = load_feature_tables()
    for key, kind, reg in DESCRIPTOR_MODELS:
        preds[key] = evaluate_descriptors(kind, names, y, local, reg, features)
    for name in graph_models:
        base = load_ensemble(name, models_dir)
        config = replace(TrainConfig(**base.record.train_config), n_seeds=n_seeds or (10 if split == "mixtures" else 3),
                         workers=workers or max(1, os.cpu_count() or 1))
        model_config = ModelConfig(**{**base.config.to_dict(), "num_aux": len(base.record.aux_targets)})
        ensemble = train_ensemble(graphs, splits, model_config, config, name=name,
                                  record=replace(base.record, held_out={}, domain=None), progress=progress,
                                  train_on=learns_from)
        preds[name] = {n: (v[0], v[1], v[3]) for n, v in out_of_fold(ensemble, graphs, splits).items()}
    if "gin" in preds:
        preds[CHOSEN] = {n: (preds["prior_blend"] if metal_pairs(n) else preds["gin"])[n] for n in preds["gin"]}
    if split == "mixtures":
        preds["authors_transfer"] = {n: (preds["mean"][n][0], float(table.loc[n, "authors_transfer_pred"]), "mixtures")
                                     for n in preds["mean"]}
    results = {model: _summary(p) for model, p in preds.items()}
    results["prior_blend"]["coverage90"] = interval_coverage(preds, "prior_blend")
    results["chosen"] = CHOSEN if CHOSEN in preds else "prior_blend"
    return results, preds


def _summary(predictions: dict) -> dict:
    names = list(predictions)
    y = np.array([predictions[n][0] for n in names])
    p = np.array([predictions[n][1] for n in names])
    keys = [str(predictions[n][2]) for n in names]
    out = metrics(y, p)
    out["per_split"] = {k: metrics(y[[i for i, kk in enumerate(keys) if kk == k]],
                                   p[[i for i, kk in enumerate(keys) if kk == k]]) for k in sorted(set(keys))}
    pairs: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        pairs.setdefault(_metal_set(n), []).append(i)
    out["per_metals"] = {k: metrics(y[v], p[v]) for k, v in sorted(pairs.items())}
    return out


def _metal_set(name: str) -> str:
    return "-".join(sorted(metal_shares(name)))


def write_transfer(split: str, results: dict, models_dir=None) -> dict:
    """Write ``models/evaluation-<split>.json`` and, once the mixtures split is written,
    ``models/transfer.json``: the chosen model, its MAE on the splits written, and
    ``std_by_distance``, the standard deviation (lg units) of a mixed-cluster prediction at each
    distance from the training clusters (:func:`~cluster_gnn.transfer.calibrate_mixing_std`);
    ``new_pair_std`` is the one for a metal pair never seen mixed."""
    models_dir = Path(models_dir or config.MODELS_DIR)
    paths = {"evaluation": models_dir / f"evaluation-{split}.json"}
    paths["evaluation"].write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    done = {s: models_dir / f"evaluation-{s}.json" for s in TRANSFER_SPLITS}
    scores = {s: json.loads(p.read_text(encoding="utf-8")) for s, p in done.items() if p.is_file()}
    if "mixtures" in scores:
        chosen = scores["mixtures"]["chosen"]
        table = load_clusters()
        by_distance = calibrate_mixing_std(table[table["lg_k1"].notna()])
        settings = {"chosen": chosen, "new_pair_model": "prior_blend",
                    "new_pair_std": by_distance["pair_new"]["std"], "std_by_distance": by_distance,
                    "mixtures_mae": scores["mixtures"][chosen]["mae"]}
        if "family" in scores and chosen in scores["family"]:
            settings["family_mae"] = scores["family"][chosen]["mae"]
        paths["transfer"] = models_dir / "transfer.json"
        paths["transfer"].write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")
    return paths


def interval_coverage(predictions: dict, model: str = CHOSEN) -> dict:
    """Share of the measured values inside the 90 % interval when the chosen model's
    standard deviation is the RMS error of the split: ``in_sample`` (RMS over all test
    clusters) and ``leave_one_out`` (each cluster's interval from the others' RMS)."""
    e = np.array([v[1] - v[0] for v in predictions[model].values()])
    rms = np.sqrt(np.mean(e**2))
    loo = np.sqrt((np.sum(e**2) - e**2) / max(len(e) - 1, 1))
    return {"in_sample": float(np.mean(np.abs(e) <= Z90 * rms)),
            "leave_one_out": float(np.mean(np.abs(e) <= Z90 * loo)), "std": float(rms)}


def transfer_table(results: dict | str) -> pd.DataFrame | None:
    """One row per model (``model``, ``mae``, ``r2``, ``rmse``, ``n``, ``description``), best
    MAE first; ``results`` is :func:`evaluate_transfer`'s dict or a split name, whose
    committed ``models/evaluation-<split>.json`` is read (None when it is not there)."""
    if isinstance(results, str):
        path = config.MODELS_DIR / f"evaluation-{results}.json"
        if not path.is_file():
            return None
        results = json.loads(path.read_text(encoding="utf-8"))
    rows = [{"model": k, "mae": v["mae"], "r2": v["r2"], "rmse": v["rmse"], "n": v["n"],
             "description": TRANSFER_DESCRIPTIONS.get(k, "")}
            for k, v in results.items() if isinstance(v, dict)]
    return pd.DataFrame(rows).sort_values("mae").reset_index(drop=True)
