"""How good the model is, in a chemist's words, read from the committed evaluation files.

:func:`model_summary` writes the paragraph the Model page opens with: what the model gets
right, where it fails and what the figures mean. Every figure in it is read from
``models/evaluation.json`` (the authors' folds), ``models/evaluation-mixtures.json``,
``models/evaluation-family.json`` and ``models/transfer.json``; nothing is typed.
:data:`COLUMN_NAMES` names the columns of the evaluation tables in plain words.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import config
from .evaluation import MODEL_DESCRIPTIONS
from .predict import DEFAULT_MODEL

__all__ = ["model_summary", "COLUMN_NAMES", "MIN_FAMILY_SIZE"]

#: Families with fewer measured clusters are not named as best or worst (one cluster says nothing).
MIN_FAMILY_SIZE = 5

#: Evaluation-table columns in plain words (the keys are the JSON's).
COLUMN_NAMES = {
    "model": "short name",
    "description": "model",
    "r2": "R² (share of the spread explained)",
    "mae": "mean error (lg units)",
    "rmse": "root-mean-square error (lg units)",
    "split_mean_mae": "mean error, averaged over folds",
    "coverage90": "measured value inside the stated 90 % range (share)",
    "mean_std": "mean stated uncertainty (lg units)",
    "n": "clusters",
}


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _number(entry, key):
    value = entry.get(key) if isinstance(entry, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _families(entry: dict) -> tuple[list, list]:
    """(worst two, best two) families of the family split by mean error, at least
    :data:`MIN_FAMILY_SIZE` clusters each."""
    per = [(k, v["mae"]) for k, v in (entry.get("per_split") or {}).items()
           if isinstance(v, dict) and v.get("n", 0) >= MIN_FAMILY_SIZE and isinstance(v.get("mae"), (int, float))]
    per.sort(key=lambda kv: kv[1])
    return per[::-1][:2], per[:2]


def _versus(entry: dict) -> str:
    versus = entry.get("vs_best_baseline") or {}
    if not all(k in versus for k in ("baseline", "delta_r2_ci95")):
        return ""
    lo, hi = versus["delta_r2_ci95"]
    simple = MODEL_DESCRIPTIONS.get(versus["baseline"], versus["baseline"]).replace(" (no xTB)", ", no xTB")
    if lo > 0:
        return f" That is clearly better than the best simpler model, {simple}."
    if hi < 0:
        return f" That is worse than the best simpler model, {simple}."
    return (f" A simpler model does about as well ({simple}); the difference could be chance.")


def model_summary(models_dir=None) -> str | None:
    """One plain paragraph (Markdown) on the model behind predictions, or None when the
    folds evaluation (``models/evaluation.json``) has not been written. The parts on mixed
    metals and on families appear when their files exist."""
    models_dir = Path(models_dir or config.MODELS_DIR)
    folds = _read(models_dir / "evaluation.json")
    gin = (folds or {}).get(DEFAULT_MODEL)
    r2, mae = _number(gin, "r2"), _number(gin, "mae")
    if r2 is None or mae is None:
        return None
    n = int(gin.get("n") or 0)
    text = (f"**For a cluster of one metal**, the model's lg k₁ misses the measured value by {mae:.2f} on average "
            f"when the model has never seen the cluster (tested on {n} measured clusters): a factor of about "
            f"{10 ** mae:.0f} in the rate constant k₁. It explains {100 * max(r2, 0):.0f} % of the spread of the measured "
            "rates (R²: 100 % would be perfect, 0 % no better than always guessing the average rate).")
    coverage = _number(gin, "coverage90")
    if coverage is not None:
        text += f" The measured value lies inside its stated 90 % range for {100 * coverage:.0f} % of these clusters."
    text += _versus(gin)
    transfer = _read(models_dir / "transfer.json") or {}
    mixtures = _read(models_dir / "evaluation-mixtures.json") or {}
    chosen = transfer.get("chosen") or mixtures.get("chosen")
    mix = _number(mixtures.get(chosen), "mae") if chosen else None
    if mix is not None:
        gin_mix = _number(mixtures.get("gin"), "mae")
        authors = _number(mixtures.get("authors_transfer"), "mae")
        text += (" **For a cluster that mixes metals** the network does not carry over"
                 + (f" (it misses by {gin_mix:.2f} on mixed clusters)" if gin_mix is not None else "")
                 + ", so the prediction comes from the metals' average rates adjusted for composition and spin, "
                 f"which misses by {mix:.2f} on the {int(mixtures[chosen].get('n') or 0)} measured mixed clusters"
                 + (f" (the authors' DFT-based model: {authors:.2f})" if authors is not None else "") + ".")
        by_distance = transfer.get("std_by_distance") or {}
        seen, new = (_number(by_distance.get(k), "std") for k in ("family_seen", "pair_new"))
        if seen is not None and new is not None:
            text += (f" Its stated uncertainty (one standard deviation) is {seen:.2f} for a mixture like measured "
                     f"ones and {new:.2f} for a metal pair never measured mixed.")
    family = _read(models_dir / "evaluation-family.json") or {}
    if chosen and isinstance(family.get(chosen), dict):
        worst, best = _families(family[chosen])
        if worst and best:
            text += (" **It fails most** for a family it has never seen of "
                     + " and ".join(f"{k} ({v:.2f})" for k, v in worst)
                     + ", and does best for " + " and ".join(f"{k} ({v:.2f})" for k, v in best)
                     + " (mean error with the whole family left out of training).")
    return text + (" All errors are in lg units: an error of 1 means the rate constant is off by a factor of 10. "
                   "Structures and charges are GFN1-xTB, not the paper's DFT, so these are not the paper's figures.")
