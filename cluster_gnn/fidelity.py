"""Which explainer earns its place: deletion fidelity, contrast and member agreement of every
method in :data:`~cluster_gnn.explain.METHODS` over the measured clusters.

Each measured cluster is explained with the model that predicts it in the app: the GIN members
of its fold (out-of-fold, like its prediction) for the 159 homonuclear clusters, the held-out
``prior_blend`` for the 24 mixed ones. ``cluster-gnn explain --fidelity`` prints the table
(docs/explanations.md) and ``--write`` keeps it in ``models/explanation-fidelity.json``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm import tqdm

from .datasets import load_clusters, structure_path
from .explain import METHODS, explain_prediction, importance_contrast
from .predict import formula_model, load_ensemble, predict_named

__all__ = ["fidelity_rows", "fidelity_summary", "fidelity_markdown", "NAMED_CLUSTERS"]

#: The clusters the explanations issue names (their median contrast is a target).
NAMED_CLUSTERS = ("Mo5S4-", "Fe3C2-", "Ta3H5-", "Rh2Co2H3-")


def fidelity_rows(names=None, methods=METHODS, max_members: int = 5, epochs: int = 60,
                  progress: bool = True, gnnexplainer_every: int = 4) -> pd.DataFrame:
    """One row per cluster and method: ``name``, ``model`` (gin / prior_blend), ``method``,
    ``atoms``, ``fidelity``, ``ranked``, ``random`` (lg units), ``contrast``, ``agreement``,
    ``atoms_effect``, ``cluster_effect`` (lg units). Default: every measured cluster with a
    structure, plus :data:`NAMED_CLUSTERS`. GNNExplainer, 30x slower than the others, runs
    on every ``gnnexplainer_every``-th cluster (in table order) and on the named ones."""
    ensemble = load_ensemble()
    if names is None:
        table = load_clusters()
        names = list(dict.fromkeys([n for n in table.loc[table["lg_k1"].notna(), "name"]] + list(NAMED_CLUSTERS)))
    rows = []
    for k, name in enumerate(tqdm(names, disable=not progress, desc="fidelity", unit="cluster")):
        if not structure_path(name).is_file():
            continue
        p = predict_named(name, ensemble)
        skip = k % gnnexplainer_every and name not in NAMED_CLUSTERS
        use = tuple(m for m in methods if not (m == "gnnexplainer" and skip))
        exp = explain_prediction(p, ensemble, use, max_members=max_members, epochs=epochs,
                                 formula_model=formula_model(p), fidelity=True)
        for method, shares in exp.by_method.items():
            f = exp.fidelity[method]
            rows.append({"name": name, "model": p.model, "method": method, "atoms": len(shares),
                         "measured": p.measured_lg_k1 is not None, **f,
                         "contrast": importance_contrast(shares), "agreement": exp.member_agreement[method],
                         "atoms_effect": exp.atoms_effect, "cluster_effect": exp.cluster_effect})
    return pd.DataFrame(rows)


def _bootstrap_ci(values, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(n, values.size)).mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def fidelity_summary(rows: pd.DataFrame) -> dict:
    """Per model and method, over the measured clusters: ``n``, mean ``fidelity`` with its
    bootstrap 95 % interval, mean ``ranked`` and ``random`` deletion changes, the share of
    clusters with fidelity > 0, median ``contrast``, mean member ``agreement``; and the
    contrast of each method on :data:`NAMED_CLUSTERS` with its median."""
    out: dict = {"methods": {}, "named": {}}
    measured = rows[rows["measured"]]
    for (model, method), g in measured.groupby(["model", "method"], sort=False):
        lo, hi = _bootstrap_ci(g["fidelity"])
        out["methods"].setdefault(model, {})[method] = {
            "n": int(len(g)), "fidelity": float(g["fidelity"].mean()), "ci95": [lo, hi],
            "ranked": float(g["ranked"].mean()), "random": float(g["random"].mean()),
            "signed": float(g["signed"].mean()) if g["signed"].notna().any() else None,
            "signed_ci95": list(_bootstrap_ci(g["signed"])),
            "share_positive": float((g["fidelity"] > 0).mean()), "contrast_median": float(g["contrast"].median()),
            "agreement": float(g["agreement"].mean()) if g["agreement"].notna().any() else None}
    gin = rows[rows["model"] == "gin"]
    out["effects"] = {"atoms_effect_median_abs": float(gin["atoms_effect"].abs().median()),
                      "cluster_effect_median_abs": float(gin["cluster_effect"].abs().median())}
    named = rows[rows["name"].isin(NAMED_CLUSTERS)]
    for method, g in named.groupby("method", sort=False):
        out["named"][method] = {**{n: float(c) for n, c in zip(g["name"], g["contrast"])},
                                "median": float(g["contrast"].median())}
    return out


def _fmt(x, digits=2):
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def fidelity_markdown(summary: dict) -> str:
    """The fidelity table as markdown (one row per model and method)."""
    lines = ["| model | method | clusters | deletion fidelity (lg) [95 % CI] | fidelity > 0 | signed fidelity (lg) "
             "[95 % CI] | contrast (median) | member agreement |", "|---|---|---|---|---|---|---|---|"]
    for model, methods in summary["methods"].items():
        for method, s in methods.items():
            lo, hi = s["ci95"]
            slo, shi = s["signed_ci95"]
            signed = f"{_fmt(s['signed'], 3)} [{_fmt(slo, 3)}, {_fmt(shi, 3)}]" if s["signed"] is not None else "–"
            lines.append(f"| {model} | {method} | {s['n']} | {_fmt(s['fidelity'], 3)} [{_fmt(lo, 3)}, {_fmt(hi, 3)}] | "
                         f"{100 * s['share_positive']:.0f} % | {signed} | {_fmt(s['contrast_median'])} | "
                         f"{_fmt(s['agreement'])} |")
    named = summary.get("named", {})
    if named:
        lines += ["", "| method | " + " | ".join(n for n in NAMED_CLUSTERS) + " | median |",
                  "|---|" + "---|" * (len(NAMED_CLUSTERS) + 1)]
        for method, c in named.items():
            lines.append(f"| {method} | " + " | ".join(_fmt(c.get(n)) for n in NAMED_CLUSTERS)
                         + f" | {_fmt(c['median'])} |")
    e = summary.get("effects")
    if e:
        lines += ["", f"Median |f(cluster) - f(every atom average)| {e['atoms_effect_median_abs']:.2f} lg; "
                      f"median |f(cluster) - f(cluster-level inputs average)| {e['cluster_effect_median_abs']:.2f} lg (GIN)."]
    return "\n".join(lines)
