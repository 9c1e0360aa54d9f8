"""What the Explorer shows: descriptors with chemists' names, units and definitions;
correlations with lg(k1) per family; tidy CSV for download.

Every column the app shows is a :class:`Quantity` with a label, a unit and a one-line
definition, in one of four groups kept apart: ``rate`` (measured lg(k1)),
``prediction`` (the model's out-of-fold or blind lg(k1) and its spread), ``descriptor``
(computed from the GFN1-xTB structure and charges; see :mod:`cluster_gnn.descriptors`) and
``explanation`` (from the per-atom importances). Units: charges and populations in e,
energies in eV, lg(k1) is log10 of k1 in cm^3 molecule^-1 s^-1.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .datasets import load_clusters
from .structures import normalize_name

__all__ = ["Quantity", "QUANTITIES", "DEFAULT_X", "DEFAULT_Y", "quantity", "axis_choices", "explorer_table",
           "family_correlations", "formula_label", "tidy_csv", "MIN_FAMILY_CLUSTERS"]

#: Families with fewer measured clusters get no correlation (r of 3 points says nothing).
MIN_FAMILY_CLUSTERS = 5


@dataclass(frozen=True)
class Quantity:
    """One column as the app names it.

    Attributes
    ----------
    column: the column in the data files (``metal_charge_mean``).
    label: a chemist's name (``mean metal charge``), Unicode allowed.
    unit: the unit (``e``), "" when none.
    definition: one line saying how it is computed.
    group: ``rate``, ``prediction``, ``descriptor``, ``explanation`` or ``identity``.
    decimals: decimals kept in downloads.
    header: the ASCII column header of downloads.
    """

    column: str
    label: str
    unit: str
    definition: str
    group: str
    decimals: int
    header: str

    @property
    def title(self) -> str:
        """``label (unit)``, for axes and table headers."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


_K1 = "cm³ molecule⁻¹ s⁻¹"
QUANTITIES = [
    Quantity("lg_k1", "measured lg k₁", "", f"log10 of the measured rate constant k₁ of the first N₂ uptake, k₁ in {_K1}",
             "rate", 2, "lg k1 measured"),
    Quantity("lg_k1_pred", "predicted lg k₁", "",
             "the model's lg k₁: out of fold for the 159 homonuclear clusters (never trained on the cluster), blind "
             "for the mixed-metal ones", "prediction", 2, "lg k1 predicted"),
    Quantity("lg_k1_std", "prediction uncertainty", "lg units",
             "standard deviation of the predicted lg k₁; the 90 % interval is ±1.645 of it", "prediction", 2,
             "lg k1 predicted std"),
    Quantity("metal_charge_mean", "mean metal charge", "e", "mean charge of the metal atoms (PBE/def2-SVP natural charge where the DFT job has done the cluster, else GFN1-xTB Mulliken; see charge source)",
             "descriptor", 3, "mean metal charge (e)"),
    Quantity("metal_charge_max", "most positive metal charge", "e", "largest charge of a metal atom (DFT NPA or xTB Mulliken, see charge source)",
             "descriptor", 3, "max metal charge (e)"),
    Quantity("metal_charge_min", "most negative metal charge", "e", "smallest charge of a metal atom (DFT NPA or xTB Mulliken, see charge source)",
             "descriptor", 3, "min metal charge (e)"),
    Quantity("ligand_charge_mean", "mean ligand charge", "e",
             "mean charge of the non-metal atoms (S, C, N, H); empty for bare metal clusters",
             "descriptor", 3, "mean ligand charge (e)"),
    Quantity("charge_spread", "charge polarisation (whole cluster)", "e",
             "standard deviation of the charges of all atoms: 0 when every atom carries the same charge",
             "descriptor", 3, "charge polarisation all atoms (e)"),
    Quantity("metal_core_polarization", "charge polarisation (metal core)", "e",
             "standard deviation of the charges of the metal atoms", "descriptor", 3,
             "charge polarisation metal core (e)"),
    Quantity("metal_d_population", "metal d population", "e", "mean d-shell population of the metal atoms",
             "descriptor", 2, "metal d population (e)"),
    Quantity("metal_s_population", "metal s population", "e", "mean s-shell population of the metal atoms",
             "descriptor", 2, "metal s population (e)"),
    Quantity("homo_lumo_gap", "HOMO-LUMO gap", "eV", "GFN1-xTB frontier orbital gap at 5000 K electronic temperature",
             "descriptor", 3, "HOMO-LUMO gap (eV)"),
    Quantity("multiplicity", "spin multiplicity 2S+1", "", "spin multiplicity used for xTB (the authors' where published)",
             "descriptor", 0, "multiplicity"),
    Quantity("charge", "total charge", "e", "net charge of the cluster ion", "descriptor", 0, "charge (e)"),
    Quantity("subgraph_polarization", "charge polarisation (important atoms)", "e",
             "standard deviation of the charges of the atoms that carry half the model's attention",
             "explanation", 3, "charge polarisation important atoms (e)"),
    Quantity("subgraph_size", "important atoms", "atoms", "number of atoms that carry half the model's attention",
             "explanation", 0, "important atoms"),
    Quantity("subgraph_importance", "share of attention on important atoms", "",
             "summed importance of the important atoms (1 = all of it)", "explanation", 3, "important atoms share"),
    Quantity("importance_contrast", "attention peak", "× even share",
             "largest per-atom importance over the even share 1/N: 1 when every atom matters equally",
             "explanation", 3, "attention peak (x even share)"),
    Quantity("atoms_effect", "what the atoms move", "lg units",
             "prediction minus the prediction with every atom replaced by an average atom (the cluster's own atoms "
             "against a generic cluster of the same shape)", "explanation", 2, "atoms effect (lg)"),
    Quantity("deletion_fidelity", "explanation fidelity", "lg units",
             "how much faster the prediction moves when atoms are hidden most important first than in a random order "
             "(> 0: the explanation finds what the model depends on)", "explanation", 3, "deletion fidelity (lg)"),
    Quantity("method_agreement", "agreement of the two explainers", "Spearman ρ",
             "rank correlation of GNNExplainer and Integrated Gradients importances", "explanation", 2,
             "explainer agreement (Spearman)"),
    Quantity("member_stability", "explanation stability", "Spearman ρ",
             "mean rank correlation of the importances of different ensemble members", "explanation", 2,
             "explanation stability (Spearman)"),
]


def _xtb_twin(q: Quantity) -> Quantity:
    """The same polarisation from GFN1-xTB charges for every cluster (column ``<column>_xtb``,
    written by :func:`~cluster_gnn.descriptors.cluster_descriptors`)."""
    return replace(q, column=f"{q.column}_xtb", label=q.label.replace(")", ", xTB)"),
                   definition="the same from GFN1-xTB Mulliken charges for every cluster (one level of theory)",
                   header=q.header.replace(" (e)", " xTB (e)"))


_XTB_TWINS = ("charge_spread", "metal_core_polarization", "subgraph_polarization")
QUANTITIES = [x for q in QUANTITIES for x in ((q, _xtb_twin(q)) if q.column in _XTB_TWINS else (q,))]
_IDENTITY = {"name": "cluster", "cluster": "cluster (authors' label)", "family": "family", "metals": "metals",
             "ligands": "ligands", "fold": "fold", "subgraph_atoms": "important atoms (list)",
             "subgraph_composition": "important atoms are", "top_atom": "most important atom", "model": "model",
             "rate": "rate", "n_atoms": "atoms",
             "charge_source": "charge source", "importance_method": "explanation method"}
_BY_COLUMN = {q.column: q for q in QUANTITIES}
DEFAULT_X, DEFAULT_Y = "metal_charge_mean", "lg_k1"


def quantity(column: str) -> Quantity:
    """The :class:`Quantity` of a column; a plain one for a column not listed."""
    if column in _BY_COLUMN:
        return _BY_COLUMN[column]
    label = _IDENTITY.get(column, column.replace("_", " "))
    return Quantity(column, label, "", "", "identity", 3, label)


def axis_choices(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Columns offered on the x and y axes, in order: x the descriptors then the
    explanation diagnostics; y the measured rate, then the prediction, then the same
    descriptors. Only numeric columns of ``frame`` with some values are offered."""
    present = [q for q in QUANTITIES if q.column in frame.columns and pd.api.types.is_numeric_dtype(frame[q.column])
               and frame[q.column].notna().any()]
    descriptors = [q.column for q in present if q.group == "descriptor"]
    explanation = [q.column for q in present if q.group == "explanation"]
    rates = [q.column for q in present if q.group == "rate"]
    predicted = [q.column for q in present if q.column == "lg_k1_pred"]
    return descriptors + explanation, rates + predicted + descriptors + explanation


def explorer_table(descriptors: pd.DataFrame, clusters: pd.DataFrame | None = None) -> pd.DataFrame:
    """``descriptors`` (a ``data/descriptors.csv`` table, one row per cluster) with identity,
    family and measured lg k₁ taken from the cluster table (``data/clusters.csv``), which
    is authoritative: its family is metal set x ligand set (``Mo-S``) and it holds every
    published rate (withheld ones stay empty)."""
    clusters = load_clusters() if clusters is None else clusters
    frame = descriptors.copy()
    if "name" not in frame.columns:
        frame.insert(0, "name", frame["cluster"].map(normalize_name))
    info = clusters[[c for c in ("name", "cluster", "family", "metals", "ligands", "lg_k1", "rate")
                     if c in clusters.columns]]
    frame = frame.drop(columns=[c for c in info.columns if c != "name" and c in frame.columns])
    return frame.merge(info, on="name", how="left")


def family_correlations(frame: pd.DataFrame, columns=None, target: str = DEFAULT_Y,
                        min_clusters: int = MIN_FAMILY_CLUSTERS) -> pd.DataFrame:
    """Pearson r of each column with ``target`` within each family, and over all clusters.

    Returns one row per (column, family) with ``descriptor`` (the label), ``column``,
    ``family`` (``"all families"`` for the pooled row), ``n`` (clusters with both values)
    and ``r`` (NaN when a column is constant within the family). Families with fewer than
    ``min_clusters`` measured clusters are left out.
    """
    columns = list(columns) if columns is not None else axis_choices(frame)[0]
    measured = frame[frame[target].notna()]
    groups = [("all families", measured)] + [(f, g) for f, g in sorted(measured.groupby("family"))
                                             if len(g) >= min_clusters]
    rows = []
    for column in columns:
        for family, group in groups:
            pair = group[[column, target]].dropna()
            x, y = pair[column].to_numpy(float), pair[target].to_numpy(float)
            r = float(np.corrcoef(x, y)[0, 1]) if len(pair) >= 3 and x.std() > 0 and y.std() > 0 else math.nan
            rows.append({"descriptor": quantity(column).title, "column": column, "family": family,
                         "n": len(pair), "r": r})
    return pd.DataFrame(rows)


_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def formula_label(name: str) -> str:
    """A cluster name as a chemist writes it: ``Mo5S4-`` -> ``Mo₅S₄⁻``, ``FeV2C+`` -> ``FeV₂C⁺``."""
    try:
        name = normalize_name(name)
    except Exception:  # noqa: BLE001 - a label is never worth an error; show what came in
        return str(name)
    body, sign = (name[:-1], {"-": "⁻", "+": "⁺"}[name[-1]]) if name[-1:] in "-+" else (name, "")
    return body.translate(_SUB) + sign


def tidy_csv(frame: pd.DataFrame) -> bytes:
    """``frame`` as a CSV a spreadsheet reads cleanly: ASCII headers with units, each
    number rounded to its :class:`Quantity`'s decimals (no 15-digit floats), ASCII minus
    signs and names (``Mo2S1-``, never the macron of ``Mo2S1¯``), UTF-8 without BOM."""
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        q, values = quantity(column), frame[column]
        if pd.api.types.is_float_dtype(values):
            values = values.round(q.decimals)
            if q.decimals == 0 and values.dropna().eq(values.dropna().round()).all():
                values = values.astype("Int64")
        elif values.dtype == object or pd.api.types.is_string_dtype(values):
            values = values.map(lambda v: v if not isinstance(v, str) else
                                v.replace("¯", "-").replace("−", "-").replace("⁻", "-").replace("⁺", "+"))
        out[q.header] = values
    buffer = io.StringIO()
    out.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode("ascii", errors="replace")
