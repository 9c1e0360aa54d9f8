"""A prediction in plain words: the sentences of the app's result card.

Each function takes a :class:`~cluster_gnn.results.ClusterResult` and returns text (or a
small table for the rate strip), so the page only lays them out. k1 is in
cm^3 molecule^-1 s^-1 and lg(k1) its log10; measured values span about -15 to -9.
"""
from __future__ import annotations

import math

import pandas as pd

from .datasets import load_clusters
from .structures import cluster_family, is_metal, formula_counts

__all__ = ["k1_text", "lg_text", "prediction_text", "measured_text", "seen_text", "theory_text", "caveats",
           "rate_strip_data", "MEASURED_RANGE", "K1_UNIT"]

#: The axis of the rate strip: lg(k1) of the measured clusters (-15.09 to -9.22) lies inside it.
MEASURED_RANGE = (-15.5, -9.0)
K1_UNIT = "cm³ molecule⁻¹ s⁻¹"
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def lg_text(value: float) -> str:
    """``-11.95`` as ``−11.95`` (a true minus sign)."""
    return f"{value:.2f}".replace("-", "−")


def k1_text(lg_k1: float) -> str:
    """k1 from lg(k1), one significant figure: ``-10.52`` -> ``3 × 10⁻¹¹``."""
    exponent = math.floor(lg_k1)
    mantissa = round(10 ** (lg_k1 - exponent))
    if mantissa >= 10:
        mantissa, exponent = 1, exponent + 1
    return f"{mantissa} × 10{str(exponent).translate(_SUPERSCRIPT)}"


def prediction_text(result) -> str:
    """Predicted lg(k1), its 90 % interval and k1 in words."""
    lo, hi = result.interval90
    return (f"Predicted lg k₁ = **{lg_text(result.lg_k1)}** (90 % interval {lg_text(lo)} to {lg_text(hi)}), "
            f"so k₁ ≈ {k1_text(result.lg_k1)} {K1_UNIT} (between {k1_text(lo)} and {k1_text(hi)}).")


def measured_text(result) -> str:
    """The measured value, and how the prediction relates to it (out-of-fold, withheld, none)."""
    if result.rate == "withheld":
        return ("Measured rate **withheld (blind test)**: it is held back on purpose, and this prediction "
                "was made without it, to be scored when it is released.")
    if result.measured_lg_k1 is None:
        return "No measured rate for this cluster."
    measured = result.measured_lg_k1
    lo, hi = result.interval90
    inside = "inside" if lo <= measured <= hi else "outside"
    if result.out_of_fold:
        how = ("The prediction is **out-of-fold**: the model never saw this cluster when predicting it, "
               "so the comparison is a fair test.")
    else:
        how = ("The model saw this cluster's rate in training, so the comparison is not a test.")
    return (f"Measured lg k₁ = **{lg_text(measured)}** (k₁ ≈ {k1_text(measured)}), "
            f"{abs(result.lg_k1 - measured):.2f} from the prediction, {inside} its 90 % interval. {how}")


def _measured_family_counts() -> dict:
    table = load_clusters()
    return table[table["lg_k1"].notna()]["family"].value_counts().to_dict()


def seen_text(result) -> str:
    """Has the model seen clusters like this one (family, metal pair), or does it extrapolate?"""
    family = cluster_family(result.formula)
    counts = _measured_family_counts()
    metals = sorted(s for s in formula_counts(result.formula) if is_metal(s))
    n_family = counts.get(family, 0)
    if result.model == "prior_blend":
        pair = " and ".join(metals)
        text = ("Mixed metals: predicted by **prior_blend** (the metals' own average rates, moved by "
                "stoichiometry and spin), not by the GIN, which does not carry rates over to metal mixtures. ")
        if result.mixing_distance == "metal_ligand_new":
            mixed = (f"No measured cluster mixes {pair} (a **new metal pair**)" if result.new_metal_pair
                     else f"Measured clusters mix {pair}")
            return text + (f"{mixed}, and a metal here was never measured with one of this cluster's "
                           "ligand elements: the **farthest extrapolation** the model makes.")
        if result.new_metal_pair:
            return text + f"No measured cluster mixes {pair}: this is an **extrapolation to a new metal pair**."
        if n_family == 0:
            return text + (f"Measured clusters mix {pair}, but with other ligands: no measured cluster of the "
                           f"{family} family.")
        return text + (f"Measured clusters mixing {pair} exist ({n_family} of the {family} family), "
                       "so the metal pair has been seen.")
    if n_family == 0:
        text = f"No measured cluster of the {family} family: the GIN **extrapolates** to a new family."
    else:
        text = f"The GIN was trained on measured clusters of this family ({family}: {n_family} clusters)."
    if result.extrapolating:
        text += (f" This structure lies far from the training clusters (distance {result.domain_distance:.2f} "
                 f"against the threshold {result.domain_threshold:.2f}): the prediction **extrapolates** and "
                 "its uncertainty was widened.")
    return text


def theory_text(result) -> str:
    """The level of theory behind the structure and the per-atom features."""
    method, _, temperature = result.level_of_theory.partition("/")
    temperature = temperature.rstrip("K") or "5000"
    where = ("the committed global-minimum search" if result.source == "precomputed" or result.name
             else "the uploaded structure")
    return (f"Structure from {where}; charges and shell populations from **{method} at {temperature} K** "
            "electronic temperature (tblite), not the DFT/NBO level of the original paper.")


def caveats(result) -> list[str]:
    """Known limits of this kind of prediction, as sentences (possibly none)."""
    out = []
    counts = formula_counts(result.formula)
    if "Mo" in counts and "S" in counts:
        out.append("Mo–S clusters: GFN1-xTB structures put S atoms terminal where DFT prefers bridging or "
                   "capping S, so the structure, and the importance of S sites, may differ from a DFT picture.")
    out.append("The HOMO–LUMO gap is not shown: at 5000 K smearing the orbital occupations are fractional and "
               "the gap is not meaningful.")
    return out


def rate_strip_data(result) -> pd.DataFrame:
    """Points of the rate strip: every measured cluster (``what == "measured clusters"``), this
    prediction with its 90 % interval (``lo``/``hi``) and this cluster's measured value.
    Columns ``what``, ``lg_k1``, ``lo``, ``hi``, ``label``."""
    table = load_clusters()
    measured = table[table["lg_k1"].notna()]
    rows = [{"what": "measured clusters", "lg_k1": float(v), "lo": None, "hi": None, "label": n}
            for n, v in zip(measured["name"], measured["lg_k1"])]
    lo, hi = result.interval90
    rows.append({"what": "predicted (90 % interval)", "lg_k1": result.lg_k1, "lo": lo, "hi": hi,
                 "label": f"predicted {lg_text(result.lg_k1)}"})
    if result.measured_lg_k1 is not None:
        rows.append({"what": "measured (this cluster)", "lg_k1": result.measured_lg_k1, "lo": None, "hi": None,
                     "label": f"measured {lg_text(result.measured_lg_k1)}"})
    return pd.DataFrame(rows)
