"""Test sets and scores: the authors' published folds, leave-one-group-out splits, metrics.

A split is ``{key: [indices into a list of graphs]}``, the test clusters of each key; a
model for key ``k`` is trained on the measured clusters outside ``split[k]``. Graphs are
:func:`~cluster_gnn.graphs.load_graphs` results (``y``, ``fold``, ``metals``, ``ligands``).
"""
from __future__ import annotations

import numpy as np

__all__ = ["published_folds", "group_splits", "mixture_split", "family_splits", "metrics", "out_of_fold"]


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
    Only the homonuclear clusters are held out (and :func:`~cluster_gnn.evaluation.evaluate`
    trains on the homonuclear ones only, as the committed models are).
    """
    if by not in ("metal", "ligand"):
        raise ValueError("by must be 'metal' or 'ligand'")
    out: dict[str, list[int]] = {}
    for i, g in enumerate(graphs):
        if np.isnan(float(g.y)) or g.kind != "homonuclear":
            continue
        keys = g.metals.split(";") if by == "metal" else [_ligand_family(g.ligands)]
        for key in keys:
            out.setdefault(key, []).append(i)
    return dict(sorted(out.items()))


def mixture_split(graphs) -> dict[str, list[int]]:
    """``{"mixtures": [indices]}``: the measured mixed-metal clusters, the strict transfer
    test of the authors. A model for it is trained on the measured homonuclear clusters only
    (the other mixed clusters have no rate), so no mixed cluster reaches training or scaling."""
    return {"mixtures": [i for i, g in enumerate(graphs) if g.kind == "heteronuclear" and not np.isnan(float(g.y))]}


def family_splits(graphs) -> dict[str, list[int]]:
    """Leave one family out over all measured clusters: ``{family: [indices]}`` with family
    the metal set x ligand set (``Ta-C``, ``Fe-V-C``; :func:`~cluster_gnn.structures.cluster_family`).
    Every measured cluster is in exactly one test set."""
    out: dict[str, list[int]] = {}
    for i, g in enumerate(graphs):
        if not np.isnan(float(g.y)):
            out.setdefault(g.family, []).append(i)
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


def out_of_fold(ensemble, graphs, splits: dict) -> dict:
    """Out-of-fold predictions: ``{name: (measured, mean, std, key)}`` for every test cluster."""
    out = {}
    for key, idx in splits.items():
        mean, std = ensemble.predict([graphs[i] for i in idx], fold=key)
        for i, m, s in zip(idx, mean, std):
            out[graphs[i].name] = (float(graphs[i].y), float(m), float(s), key)
    return out
