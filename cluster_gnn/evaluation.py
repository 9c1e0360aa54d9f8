"""Scores of every model on the same splits, from the committed models.

:func:`evaluate` gives, for the GIN and GCN ensembles (``models/*.pt``, out-of-fold
members only), the consensus model (:mod:`cluster_gnn.consensus`) and the descriptor
baselines (refitted here in seconds,
deterministic seeds), the pooled out-of-fold ``r2``, ``mae``, ``rmse`` over the measured
clusters, the fold-mean MAE and per-fold figures; for ensembles also the share of measured
values inside the 90 % interval (``coverage90``), on the published folds or on the
leave-one-metal-out / leave-one-ligand-family-out proxies for the blind set.

Each graph model is also compared with the best descriptor baselines of the same run
(``vs_best_baseline``, :func:`paired_bootstrap`): on R2 with the baseline of the highest
R2 (``baseline``), on MAE with the baseline of the lowest MAE (``baseline_mae``), each
difference with a 95 % interval from resampling the clusters. Those baselines are
refitted with :data:`BASELINE_SEEDS` random states (``seed_spread``), so a difference can
be read against the noise of both the test set and the baseline's own randomness.
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
from .consensus import Consensus
from .datasets import load_clusters
from .domain import fit_distance_scale
from .electronic import load_feature_tables
from .graphs import load_graphs
from .models import ModelConfig
from .predict import DEFAULT_MODEL, Z90, load_ensemble
from .splits import group_splits, metrics, out_of_fold, published_folds
from .training import TrainConfig, attach_domain, domain_residuals, learns_from, train_ensemble
from .transfer import TRANSFER_MODELS, out_of_split

__all__ = ["evaluate", "summarise", "write_evaluation", "evaluation_table",
           "paired_bootstrap", "comparison_lines", "baseline_verdict", "BASELINES", "SPLITS", "MODEL_DESCRIPTIONS", "BASELINE_SEEDS"]

#: Random states the best descriptor baseline is refitted with for its ``seed_spread``.
BASELINE_SEEDS = 10

#: Split kinds: the authors' folds, leave-one-metal-out, leave-one-ligand-family-out.
SPLITS = ("folds", "metal", "ligand")

#: Descriptor baselines in every evaluation: (key, descriptor set, regressor).
BASELINES = [
    ("gbr_nbo8", "nbo8", "gbr"),
    ("rf_nbo8", "nbo8", "rf"),
    ("gbr_composition", "composition", "gbr"),
    ("et_nbo8", "nbo8", "et"),
    ("gbr_composition+metal", "composition+metal", "gbr"),
    ("et_composition+metal", "composition+metal", "et"),
    ("et_composition+elements", "composition+elements", "et"),
    ("gbr_xtb", "xtb", "gbr"),
    ("gbr_xtb+elements", "xtb+elements", "gbr"),
    ("et_xtb+elements", "xtb+elements", "et"),
    ("pairwise_composition+elements", "composition+elements", "pairwise"),
    ("pairwise_xtb+elements", "xtb+elements", "pairwise"),
]


def summarise(predictions: dict) -> dict:
    """``{name: (measured, predicted, key[, std])}`` -> pooled and per-split metrics."""

    names = list(predictions)
    y = np.array([predictions[n][0] for n in names])
    p = np.array([predictions[n][1] for n in names])
    keys = [predictions[n][2] for n in names]
    out = metrics(y, p)
    per = {}
    for key in sorted(set(keys), key=str):
        idx = [i for i, k in enumerate(keys) if k == key]
        per[str(key)] = metrics(y[idx], p[idx])
    out["fold_mean_mae"] = float(np.mean([v["mae"] for v in per.values()]))
    out["per_split"] = per
    if len(predictions[names[0]]) > 3:
        s = np.array([predictions[n][3] for n in names])
        out["coverage90"] = float(np.mean(np.abs(y - p) <= Z90 * s))
        out["mean_std"] = float(np.mean(s))
    return out


def evaluate(split: str = "folds", models=("gin", "gcn", "consensus"), baselines=True, models_dir=None,
             with_predictions=False, train_config=None, progress=False, baseline_seeds: int | None = None):
    """Evaluate graph ensembles and descriptor baselines on one kind of split.

    ``split="folds"``: the authors' 10 folds, graph models from the committed files.
    ``split="metal"`` / ``"ligand"``: leave one metal / ligand family out
    (:func:`~cluster_gnn.training.group_splits`); graph ensembles are trained here for
    every held-out group (``train_config``, default 3 seeds per group, as many worker
    processes as CPU cores), so members never see the held-out group; their uncertainty
    uses the distance scale of the committed model (fitted on leave-one-metal-out
    residuals during training), and ``coverage90_cross_calibrated`` gives the coverage
    with the scale refitted without each held-out group.

    ``baseline_seeds``: random states for the best baselines' ``seed_spread`` (default
    :data:`BASELINE_SEEDS`).

    Returns ``{model: summary}`` (see :func:`summarise`); with ``with_predictions`` also
    ``{model: {name: (measured, predicted, key[, std])}}``.
    """


    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    graphs = load_graphs()
    splits = published_folds(graphs) if split == "folds" else group_splits(graphs, split)
    results, preds = {}, {}
    trained = {}
    for name in models:
        base_name = "gin" if name == "consensus" else name
        if split == "folds":
            ensemble = load_ensemble(name, models_dir)
        else:
            if base_name not in trained:
                base = load_ensemble(base_name, models_dir)
                config = train_config or replace(TrainConfig(**base.record.train_config), n_seeds=3,
                                                 workers=max(1, os.cpu_count() or 1))
                # the saved config has no auxiliary head (it is stripped on save); train the
                # proxy members the way the committed ones were, multi-task
                model_config = ModelConfig(**{**base.config.to_dict(),
                                              "num_aux": len(base.record.aux_targets)})
                trained[base_name] = train_ensemble(graphs, splits, model_config, config, name=base_name,
                                                    record=replace(base.record, held_out={}, domain=None),
                                                    progress=progress,
                                                    train_on=learns_from)
                # the committed model's distance scale (fitted when it was trained)
                attach_domain(trained[base_name], graphs, splits, scale=base.domain.scale if base.domain else 0.0)
            ensemble = trained[base_name]
            if name == "consensus":

                ensemble = Consensus(ensemble, graphs)
        oof = out_of_fold(ensemble, graphs, splits)
        preds[name] = {n: (v[0], v[1], v[3], v[2]) for n, v in oof.items()}
        results[name] = summarise(preds[name])
        if split != "folds" and ensemble.domain is not None:
            results[name]["coverage90_cross_calibrated"] = _cross_calibrated_coverage(ensemble, graphs, splits)
    if baselines:
        measured = [i for idx in splits.values() for i in idx]
        names = [graphs[i].name for i in measured]
        y = np.array([float(graphs[i].y) for i in measured])
        pos = {i: j for j, i in enumerate(measured)}
        local = {k: [pos[i] for i in v] for k, v in splits.items()}
        features = load_feature_tables()
        for key, kind, reg in BASELINES:
            preds[key] = evaluate_descriptors(kind, names, y, local, reg, features)
            results[key] = summarise(preds[key])
        table = load_clusters()
        table = table[table["lg_k1"].notna() & (table["kind"] == "homonuclear")]  # what the graph models learn from
        tests = {key: [graphs[i].name for i in idx] for key, idx in splits.items()}
        for key in ("mean", "metal_prior"):
            preds[key] = out_of_split(TRANSFER_MODELS[key], table, tests)
            results[key] = summarise(preds[key])
        # the strongest baseline on each figure: a graph model has to beat both
        best_r2 = max((key for key, _, _ in BASELINES), key=lambda k: results[k]["r2"])
        best_mae = min((key for key, _, _ in BASELINES), key=lambda k: results[k]["mae"])
        for best in dict.fromkeys((best_r2, best_mae)):
            kind, reg = next((kind, reg) for key, kind, reg in BASELINES if key == best)
            seeds = baseline_seeds or BASELINE_SEEDS
            runs = [summarise(evaluate_descriptors(kind, names, y, local, reg, features, seed=seed))
                    for seed in range(seeds)]
            results[best]["seed_spread"] = {
                "seeds": seeds,
                **{f"{m}_{stat}": float(fn([r[m] for r in runs])) for m in ("r2", "mae")
                   for stat, fn in (("mean", np.mean), ("sd", np.std), ("min", np.min), ("max", np.max))}}
        for name in models:
            results[name]["vs_best_baseline"] = _versus(preds, name, best_r2, best_mae)
    return (results, preds) if with_predictions else results


def _versus(preds: dict, name: str, best_r2: str, best_mae: str) -> dict:
    """Model ``name`` against the best-R2 baseline on R2 and the best-MAE baseline on MAE
    (:func:`paired_bootstrap` on the clusters both predicted)."""
    compared = {}
    for best in dict.fromkeys((best_r2, best_mae)):
        common = [n for n in preds[best] if n in preds[name]]
        compared[best] = paired_bootstrap(np.array([preds[name][n][0] for n in common]),
                                          np.array([preds[name][n][1] for n in common]),
                                          np.array([preds[best][n][1] for n in common]))
    out = {"baseline": best_r2, "baseline_mae": best_mae}
    for metric, best in (("r2", best_r2), ("mae", best_mae)):
        out.update({k: v for k, v in compared[best].items() if metric in k or k == "n_boot"})
    return out


def paired_bootstrap(y, pred_a, pred_b, n_boot: int = 2000, seed: int = 0) -> dict:
    """How model ``a`` compares with model ``b`` on the same clusters (arrays of shape
    ``[n]``, lg units): ``delta_r2`` = R2(a) - R2(b) and ``delta_mae`` = MAE(a) - MAE(b)
    (negative: a is better), their 95 % intervals over ``n_boot`` resamplings of the
    clusters with replacement (both models on the same resample), and the share of
    resamplings in which ``a`` is better (``p_better_r2``, ``p_better_mae``)."""
    y, a, b = (np.asarray(v, float) for v in (y, pred_a, pred_b))
    idx = np.random.default_rng(seed).integers(0, len(y), size=(n_boot, len(y)))
    yb = y[idx]
    ss = ((yb - yb.mean(1, keepdims=True)) ** 2).sum(1)
    ok = ss > 0
    d_r2 = (((yb - b[idx]) ** 2).sum(1) - ((yb - a[idx]) ** 2).sum(1))[ok] / ss[ok]
    d_mae = np.abs(yb - a[idx]).mean(1) - np.abs(yb - b[idx]).mean(1)
    full_a, full_b = metrics(y, a), metrics(y, b)
    return {
        "delta_r2": full_a["r2"] - full_b["r2"],
        "delta_r2_ci95": [float(v) for v in np.percentile(d_r2, [2.5, 97.5])],
        "p_better_r2": float(np.mean(d_r2 > 0)),
        "delta_mae": full_a["mae"] - full_b["mae"],
        "delta_mae_ci95": [float(v) for v in np.percentile(d_mae, [2.5, 97.5])],
        "p_better_mae": float(np.mean(d_mae < 0)),
        "n_boot": int(n_boot),
    }


def _cross_calibrated_coverage(ensemble, graphs, splits: dict) -> float:
    """90 % coverage when each held-out group's distance scale is fitted on the other
    groups' residuals only (the committed scale was fitted on all leave-one-metal-out
    residuals, so on that split its coverage is in-sample for one parameter)."""

    resid, std, dist, keys = domain_residuals(ensemble, graphs, splits)
    keys = np.array([str(k) for k in keys])
    inside = []
    for key in np.unique(keys):
        own = keys == key
        scale = fit_distance_scale(resid[~own], std[~own], dist[~own])
        width = np.sqrt(std[own] ** 2 + (scale * dist[own]) ** 2)
        inside += list(np.abs(resid[own]) <= Z90 * width)
    return float(np.mean(inside))


def write_evaluation(results: dict, predictions: dict, models_dir=None, data_dir=None, split: str = "folds") -> dict:
    """Write ``models/evaluation.json`` (what the app shows; ``evaluation-metal.json`` etc.
    for the proxy splits) and, for the folds, ``data/predictions/oof.csv`` (out-of-fold
    predictions of the model behind predictions, :data:`~cluster_gnn.predict.DEFAULT_MODEL`,
    for the measured clusters)."""


    models_dir, data_dir = Path(models_dir or config.MODELS_DIR), Path(data_dir or config.DATA_DIR)
    eval_path = models_dir / ("evaluation.json" if split == "folds" else f"evaluation-{split}.json")
    eval_path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    if split != "folds":
        return {"evaluation": eval_path}
    table = load_clusters().set_index("name")
    rows = []

    model = DEFAULT_MODEL if DEFAULT_MODEL in predictions else "gin"
    for name, v in (predictions.get(model) or {}).items():
        r = table.loc[name]
        rows.append({"cluster": r["cluster"], "name": name, "lg_k1": v[0], "lg_k1_pred": round(v[1], 4),
                     "lg_k1_std": round(v[3], 4), "fold": v[2], "metals": r["metals"], "ligands": r["ligands"],
                     "model": model})
    oof_path = data_dir / "predictions" / "oof.csv"
    oof_path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(oof_path, index=False, lineterminator="\n")
    return {"evaluation": eval_path, "oof": oof_path}


#: What each evaluated model is, in a chemist's words (shown next to the figures).
MODEL_DESCRIPTIONS = {
    "mean": "mean lg(k1) of the training clusters",
    "metal_prior": "each metal's mean lg(k1) over its training clusters, averaged over the cluster's metal atoms",
    "gin": "GIN ensemble on GFN1-xTB graphs (this project; makes our predictions)",
    "gcn": "GCN ensemble on the same graphs (baseline)",
    "consensus": "mean of the GIN ensemble and gradient boosting on its cluster descriptors",
    "gbr_nbo8": "gradient boosting on the authors' 8 DFT-NBO descriptors (published protocol, refit here)",
    "rf_nbo8": "random forest on the authors' 8 DFT-NBO descriptors",
    "et_nbo8": "extra trees on the authors' 8 DFT-NBO descriptors",
    "gbr_composition": "gradient boosting on composition only (atom counts, ligands per metal, charge)",
    "gbr_composition+metal": "gradient boosting on composition + metal one-hot",
    "et_composition+metal": "extra trees on composition + metal one-hot",
    "et_composition+elements": "extra trees on composition + metal periodic properties (no xTB)",
    "et_xtb+elements": "extra trees on xTB descriptors + metal periodic properties",
    "gbr_xtb": "gradient boosting on our xTB descriptors + composition",
    "gbr_xtb+elements": "gradient boosting on xTB descriptors + metal periodic properties",
    "pairwise_composition+elements": "pairwise-difference regression on composition + metal periodic properties",
    "pairwise_xtb+elements": "pairwise-difference regression on xTB descriptors + metal periodic properties",
}


def evaluation_table(split: str = "folds", models_dir=None):
    """The committed evaluation of one split as a DataFrame (one row per model: ``model``,
    ``description``, ``r2``, ``mae``, ``rmse``, ``split_mean_mae``, ``coverage90``,
    ``mean_std``, ``n``), or None if it has not been written."""

    path = Path(models_dir or config.MODELS_DIR) / ("evaluation.json" if split == "folds" else f"evaluation-{split}.json")
    if not path.is_file():
        return None
    results = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for name, r in results.items():
        rows.append({"model": name, "description": MODEL_DESCRIPTIONS.get(name, ""), "r2": r["r2"], "mae": r["mae"],
                     "rmse": r["rmse"], "split_mean_mae": r["fold_mean_mae"], "coverage90": r.get("coverage90"),
                     "mean_std": r.get("mean_std"), "n": r["n"]})
    return pd.DataFrame(rows)


def comparison_lines(split: str = "folds", models_dir=None) -> list[str]:
    """The committed comparisons of one split in words (Markdown, one line each): every
    graph model against the best descriptor baselines of the same run (on R2 and on MAE),
    and their spread over random states; empty if the split has not been written."""

    path = Path(models_dir or config.MODELS_DIR) / ("evaluation.json" if split == "folds" else f"evaluation-{split}.json")
    if not path.is_file():
        return []
    results = json.loads(path.read_text(encoding="utf-8"))
    lines = []
    for name, r in results.items():
        c = r.get("vs_best_baseline") if isinstance(r, dict) else None
        if c:
            lo, hi = c["delta_r2_ci95"]
            mlo, mhi = c["delta_mae_ci95"]
            r2_part = (f"R² {c['delta_r2']:+.3f} (95 % interval {lo:+.3f} to {hi:+.3f})")
            mae_part = f"MAE {c['delta_mae']:+.3f} ({mlo:+.3f} to {mhi:+.3f})"
            odds = (f"better in {c['p_better_r2']:.0%} (R²) and {c['p_better_mae']:.0%} (MAE) of "
                    f"{c['n_boot']} resamplings of the clusters.")
            if c.get("baseline_mae", c["baseline"]) == c["baseline"]:
                lines.append(f"**{name}** minus **{c['baseline']}**: {r2_part}, {mae_part}; {odds}")
            else:
                lines.append(f"**{name}** minus **{c['baseline']}** (best R²): {r2_part}; minus "
                             f"**{c['baseline_mae']}** (best MAE): {mae_part}; {odds}")
    for name, r in results.items():
        s = r.get("seed_spread") if isinstance(r, dict) else None
        if s:
            lines.append(f"**{name}** refitted with {s['seeds']} random states: R² {s['r2_mean']:.3f} ± "
                         f"{s['r2_sd']:.3f} (range {s['r2_min']:.3f} to {s['r2_max']:.3f}), MAE "
                         f"{s['mae_mean']:.3f} ± {s['mae_sd']:.3f}.")
    return lines


def baseline_verdict(scores: dict) -> str | None:
    """One plain sentence on a model against the best descriptor baseline of its run, from
    its entry in ``models/evaluation.json`` (``vs_best_baseline``): "clearly better" or
    "clearly worse" where the 95 % bootstrap interval of the R² difference excludes 0,
    otherwise "about as good as" (the difference could be chance); with the MAE difference
    in words; None if the entry has no comparison."""
    versus = (scores or {}).get("vs_best_baseline") or {}
    if not all(k in versus for k in ("baseline", "delta_r2", "delta_r2_ci95", "delta_mae")):
        return None
    lo, hi = versus["delta_r2_ci95"]
    best_r2 = versus["baseline"]
    best_mae = versus.get("baseline_mae", best_r2)
    d_r2, d_mae = versus["delta_r2"], versus["delta_mae"]
    mae_part = f"its mean error is {abs(d_mae):.3f} lg units {'larger' if d_mae > 0 else 'smaller'}" + (
        "" if best_mae == best_r2 else f" than that of {MODEL_DESCRIPTIONS.get(best_mae, best_mae)}")
    r2_part = f"R² {abs(d_r2):.3f} {'higher' if d_r2 >= 0 else 'lower'}"
    simple = f"the best simpler model of the same run ({MODEL_DESCRIPTIONS.get(best_r2, best_r2)})"
    if lo > 0 or hi < 0:
        return (f"That is clearly {'better' if lo > 0 else 'worse'} than {simple}: {r2_part} "
                f"(95 % interval {lo:+.3f} to {hi:+.3f}), and {mae_part}.")
    return (f"That is about as good as {simple}: {r2_part} and {mae_part}, a difference that could "
            f"be chance (the 95 % interval of the R² difference, {lo:+.3f} to {hi:+.3f}, includes 0).")
