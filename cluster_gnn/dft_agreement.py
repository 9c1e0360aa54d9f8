"""How closely our NPA descriptors follow the authors' DFT-NBO ones.

:func:`authors_agreement` gives Pearson r and the mean difference over the clusters of a
descriptor table (:func:`~cluster_gnn.dft_job.dft_tables`' first, with its ``structure``
column) and by subset: the structure the NPA was taken at (xTB minimum or PBE-ranked
isomer), one-metal or mixed, ligand, metal. :func:`authors_pairs` gives the pairs for a
parity plot (the Model page), :func:`authors_values` the authors' side.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .datasets import load_clusters

__all__ = ["AGREEMENT_DESCRIPTORS", "authors_values", "authors_pairs", "agreement_subsets", "authors_agreement",
           "pearson"]


#: The descriptors :func:`authors_agreement` compares, as the authors name them.
AGREEMENT_DESCRIPTORS = ("2_Qave", "1_Qmax", "1_Qmin", "2_nsave", "2_ndave", "2_σave")


def authors_values(names=None) -> pd.DataFrame:
    """The authors' DFT-NBO values of :data:`AGREEMENT_DESCRIPTORS`, indexed by cluster name.
    For the mixed clusters they published the total metal charge ``2_Q`` and no ``1_Qmax``:
    ``2_Qave`` is ``2_Q`` over the metal atoms, ``1_Qmax`` NaN."""
    from ase.formula import Formula

    from .datasets import load_nbo_descriptors
    from .structures import is_metal

    nbo = load_nbo_descriptors().set_index("name")
    formula = load_clusters().set_index("name")["formula"]
    metal_atoms = formula.loc[nbo.index].map(
        lambda f: sum(k for e, k in Formula(f).count().items() if is_metal(e)))
    nbo["2_Qave"] = nbo["2_Qave"].fillna(nbo["2_Q"] / metal_atoms)
    out = nbo[list(AGREEMENT_DESCRIPTORS)]
    return out if names is None else out.loc[list(names)]


def authors_pairs(descriptors: pd.DataFrame, descriptor: str = "2_Qave") -> pd.DataFrame:
    """Ours against the authors' for one descriptor, one row per cluster of ``descriptors``
    (:func:`~cluster_gnn.dft_job.dft_tables`' first table) where both are known: ``cluster``, ``ours``,
    ``authors``, ``structure`` (``xTB minimum`` or ``PBE-ranked isomer``) and ``ligand``."""
    ours = descriptors.set_index("cluster")
    labels = _labels(descriptors)
    out = pd.DataFrame({"cluster": ours.index, "ours": ours[descriptor].to_numpy(float),
                        "authors": authors_values(ours.index)[descriptor].to_numpy(float),
                        "structure": labels["structure"], "ligand": labels["ligand"]})
    return out.dropna(subset=["ours", "authors"]).reset_index(drop=True)


def _labels(descriptors: pd.DataFrame) -> dict:
    """Per row of ``descriptors``: ``structure`` (``xTB minimum`` / ``PBE-ranked isomer``),
    ``ligand`` and ``metal`` (``S–C``, ``Fe–V``; ``none``), ``one_metal`` (bool)."""
    info = load_clusters().set_index("name").loc[descriptors["cluster"]]
    return {"structure": np.where(descriptors["structure"].str.startswith("PBE"), "PBE-ranked isomer", "xTB minimum"),
            "ligand": info["ligands"].fillna("").replace("", "none").str.replace(";", "–").to_numpy(),
            "metal": info["metals"].str.replace(";", "–").to_numpy(),
            "one_metal": (info["kind"] == "homonuclear").to_numpy()}


def pearson(x, y, min_n: int = 5) -> tuple:
    """``(r, n)`` over the pairs where both are known; r is NaN below ``min_n`` pairs or for a
    constant side."""
    pair = pd.concat([pd.Series(np.asarray(x, float)), pd.Series(np.asarray(y, float))], axis=1).dropna()
    a, b = pair.to_numpy().T
    ok = len(pair) >= min_n and a.std() > 0 and b.std() > 0
    return (float(np.corrcoef(a, b)[0, 1]) if ok else float("nan")), len(pair)


def agreement_subsets(descriptors: pd.DataFrame) -> list:
    """``[(label, mask)]`` over the rows of ``descriptors``: ``all``, ``one-metal``, ``mixed``,
    ``xTB minimum``, ``PBE-ranked isomer``, ``ligand: …``, ``metal: …``; empty ones left out."""
    labels = _labels(descriptors)
    subsets = [("all", np.ones(len(descriptors), bool)), ("one-metal", labels["one_metal"]),
               ("mixed", ~labels["one_metal"])]
    subsets += [(s, labels["structure"] == s) for s in ("xTB minimum", "PBE-ranked isomer")]
    subsets += [(f"ligand: {g}", labels["ligand"] == g) for g in sorted(set(labels["ligand"]))]
    subsets += [(f"metal: {m}", labels["metal"] == m) for m in sorted(set(labels["metal"]))]
    return [(label, mask) for label, mask in subsets if mask.any()]


def authors_agreement(descriptors: pd.DataFrame, min_n: int = 5) -> pd.DataFrame:
    """How closely our NPA descriptors follow the authors' NBO ones, over every cluster of
    ``descriptors`` (:func:`~cluster_gnn.dft_job.dft_tables`' first table) and by subset.

    One row per subset (``subset``: ``all``, ``one-metal``, ``mixed``, ``xTB minimum`` and
    ``PBE-ranked isomer`` for the structure the NPA was taken at, ``ligand: S`` …, ``metal: Mo`` …)
    with ``clusters`` and, per descriptor ``d``, ``d r`` (Pearson; NaN below ``min_n`` pairs),
    ``d n`` and ``d mad`` (mean |ours − authors|, e or electrons)."""
    ours = descriptors.set_index("cluster")
    theirs = authors_values(ours.index)
    subsets = agreement_subsets(descriptors)
    rows = []
    for label, mask in subsets:
        row = {"subset": label, "clusters": int(mask.sum())}
        for d in AGREEMENT_DESCRIPTORS:
            a, b = ours.loc[mask, d].to_numpy(float), theirs.loc[mask, d].to_numpy(float)
            row[f"{d} r"], row[f"{d} n"] = pearson(a, b, min_n)
            diff = np.abs(a - b)
            row[f"{d} mad"] = float(np.nanmean(diff)) if np.isfinite(diff).any() else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)
