"""Charge-polarisation descriptors, per cluster and for its important subgraph.

Units: atomic charges in e (PBE/def2-SVP natural charges where the DFT job has done the
cluster, GFN1-xTB Mulliken charges otherwise; the column ``charge_source`` says which);
populations in e; energies in eV; lg(k1) is log10 of k1 in cm^3 molecule^-1 s^-1.

**Charge polarisation** of a set of atoms S is the population standard deviation of their
charges, ``sqrt(mean_{i in S} (q_i - mean_S q)^2)`` in e: 0 when every atom of the set
carries the same charge, large when charge is separated inside it. The paper's finding,
re-tested in ``benchmarks/polarization_analysis.py``: the important subgraphs of active
clusters are metal cores with low polarisation, those of inert clusters mixed
metal-ligand subgraphs with high polarisation.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .datasets import load_clusters, structure_path
from .explain import DEFAULT_METHOD, explain_prediction, importance_contrast
from .dft_job import DFT_CHARGE_LABEL, load_dft_atoms
from .predict import formula_model, load_ensemble, predict_named
from .structures import is_metal

__all__ = ["charge_polarization", "cluster_descriptors", "subgraph_composition"]


def charge_polarization(charges, atoms_idx=None) -> float:
    """Population standard deviation (e) of the charges of ``atoms_idx`` (default: all)."""
    q = np.asarray(charges, float)
    if atoms_idx is not None:
        q = q[list(atoms_idx)]
    return float(q.std()) if q.size else float("nan")


def subgraph_composition(symbols, atoms_idx) -> str:
    """``"metal-only"``, ``"ligand-only"`` or ``"mixed"`` for a set of atoms."""
    metal = [is_metal(symbols[i]) for i in atoms_idx]
    if all(metal):
        return "metal-only"
    if not any(metal):
        return "ligand-only"
    return "mixed"


def cluster_descriptors(atoms, features, explanation=None, dft=None) -> dict:
    """Descriptors of one cluster.

    Charges and metal s/d populations are the DFT ones when ``dft`` (the cluster's rows of
    :func:`~cluster_gnn.dft_job.load_dft_atoms`, same atoms in the same order) is given, else
    the xTB ``features``; ``charge_source`` names them. ``charge_spread_xtb``,
    ``metal_core_polarization_xtb`` and ``subgraph_polarization_xtb`` are the same from the
    xTB charges whatever the source (one level of theory for every cluster). Always: ``charge_spread``
    (polarisation of all atoms), ``metal_core_polarization``
    (of the metal atoms), ``metal_charge_mean`` / ``metal_charge_max`` / ``metal_charge_min``,
    ``ligand_charge_mean``, ``metal_d_population`` / ``metal_s_population`` (means),
    ``homo_lumo_gap``. With an :class:`~cluster_gnn.explain.Explanation` also
    ``subgraph_polarization``, ``subgraph_composition``, ``subgraph_size``,
    ``subgraph_atoms`` (e.g. ``Mo1 Mo2 S6``, 1-based), ``subgraph_importance`` (its share),
    ``top_atom``, ``importance_contrast`` (the largest per-atom share over the mean share
    1/N: 1 when every atom matters equally, N when one atom carries it all),
    ``importance_method``, ``atoms_effect`` (lg units the atoms' identities move the
    prediction), ``deletion_fidelity`` (lg units) and the explanation's ``method_agreement``
    and ``member_stability``.
    """

    symbols = atoms.get_chemical_symbols()
    metal = np.array([is_metal(s) for s in symbols])
    nan = float("nan")
    if dft is not None and list(dft["symbol"]) == symbols:
        q = np.asarray(dft["charge"], float)
        s_pop, d_pop = np.asarray(dft["s_valence"], float), np.asarray(dft["d_valence"], float)
        source = DFT_CHARGE_LABEL
    else:
        q = np.asarray(features.charges, float)
        s_pop, d_pop = np.asarray(features.s_population, float), np.asarray(features.d_population, float)
        source = f"{features.method} Mulliken"
    qm = q[metal]
    out = {
        "charge_source": source,
        "charge_spread": charge_polarization(q),
        "metal_core_polarization": charge_polarization(qm) if metal.any() else nan,
        "metal_charge_mean": float(qm.mean()) if metal.any() else nan,
        "metal_charge_max": float(qm.max()) if metal.any() else nan,
        "metal_charge_min": float(qm.min()) if metal.any() else nan,
        "ligand_charge_mean": float(q[~metal].mean()) if (~metal).any() else nan,
        "metal_d_population": float(d_pop[metal].mean()) if metal.any() else nan,
        "metal_s_population": float(s_pop[metal].mean()) if metal.any() else nan,
        "homo_lumo_gap": float(features.homo_lumo_gap),
    }
    q_xtb = np.asarray(features.charges, float)  # the same three at one level of theory for all 216
    out["charge_spread_xtb"] = charge_polarization(q_xtb)
    out["metal_core_polarization_xtb"] = charge_polarization(q_xtb[metal]) if metal.any() else nan
    if explanation is not None:
        sub = explanation.subgraph
        out.update({
            "subgraph_polarization": charge_polarization(q, sub),
            "subgraph_polarization_xtb": charge_polarization(q_xtb, sub),
            "subgraph_composition": subgraph_composition(symbols, sub),
            "subgraph_size": len(sub),
            "subgraph_atoms": " ".join(f"{symbols[i]}{i + 1}" for i in sub),
            "subgraph_importance": float(np.sum(explanation.importance[sub])),
            "top_atom": f"{symbols[int(np.argmax(explanation.importance))]}{int(np.argmax(explanation.importance)) + 1}",
            "importance_contrast": importance_contrast(explanation.importance),
            "importance_method": explanation.method,
            "atoms_effect": explanation.atoms_effect,
            "deletion_fidelity": explanation.fidelity.get(explanation.method, {}).get("fidelity", float("nan")),
            "method_agreement": explanation.method_agreement,
            "member_stability": explanation.member_stability,
        })
    return out


def descriptor_table(ensemble=None, names=None, methods=None, max_members: int = 10, epochs: int = 60,
                     progress: bool = True):
    """One row per bundled cluster: identity, measured and predicted lg(k1) with its
    standard deviation, and :func:`cluster_descriptors` with the explanation.

    Predictions of measured clusters are out-of-fold (see :func:`~cluster_gnn.predict.predict_named`).
    """


    ensemble = ensemble or load_ensemble()
    table = load_clusters()
    names = list(table["name"]) if names is None else list(names)
    dft = load_dft_atoms()
    rows = []
    for name in tqdm(names, disable=not progress, desc="descriptors", unit="cluster"):
        if not structure_path(name).is_file():
            continue
        p = predict_named(name, ensemble)
        exp = explain_prediction(p, ensemble, methods or (DEFAULT_METHOD,), max_members=max_members, epochs=epochs,
                                 formula_model=formula_model(p), fidelity=True)
        row = table.set_index("name").loc[name]
        rows.append({"name": name, "cluster": row["cluster"], "family": row["family"], "metals": row["metals"],
                     "ligands": row["ligands"], "charge": int(row["charge"]), "multiplicity": p.multiplicity,
                     "lg_k1": p.measured_lg_k1, "lg_k1_pred": p.lg_k1, "lg_k1_std": p.lg_k1_std, "model": p.model,
                     **cluster_descriptors(p.atoms, p.features, exp, dft.get(name))})
    return pd.DataFrame(rows)


def polarization_finding_text(path) -> str:
    """A short markdown summary of ``models/polarization.json`` (written by
    ``benchmarks/polarization_analysis.py``): medians, p-values, metal-only shares."""

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    lines = []
    for r in data["comparisons"]:
        sp, mc, mo = r["subgraph_polarization"], r["metal_core_polarization"], r["metal_only_subgraph"]
        lines.append(
            f"- **{r['split']}** ({r['n_active']} active, {r['n_inert']} inert): important-subgraph "
            f"polarisation median {sp['median_active']:.3f} e (active) vs {sp['median_inert']:.3f} e (inert), "
            f"Mann-Whitney p = {sp['p']:.2g}; metal-core polarisation {mc['median_active']:.3f} vs "
            f"{mc['median_inert']:.3f} e (p = {mc['p']:.2g}); metal-only important subgraphs: "
            f"{mo['active'][0]}/{sum(mo['active'])} active vs {mo['inert'][0]}/{sum(mo['inert'])} inert "
            f"(Fisher p = {mo['p']:.2g}).")
    rho, p = data["spearman_subgraph_polarization_vs_lg_k1"]
    agreement = data.get("mean_method_agreement")
    explainers = (f", agreement of GNNExplainer and Integrated Gradients {agreement:.2f}"
                  if isinstance(agreement, (int, float)) and np.isfinite(agreement) else "")
    method = f" ({data['method']}" + (f", {data['charge_source']} charges)" if data.get("charge_source") else ")") \
        if data.get("method") else ""
    lines.append(f"- Spearman correlation of subgraph polarisation with lg k₁: {rho:.2f} (p = {p:.2g}) over "
                 f"{data['n']} clusters. Explanations{method}: member stability {data['mean_member_stability']:.2f}"
                 f"{explainers} (mean Spearman).")
    contrast = data.get("importance_contrast")
    if contrast:
        lines.append(f"- How peaked the explanations are: the top atom's share is {contrast['median']:.2f} x the "
                     f"even share (median; 10-90 % {contrast['p10']:.2f}-{contrast['p90']:.2f}), and in "
                     f"{100 * contrast['share_even']:.0f} % of the clusters no atom stands out (under "
                     f"{contrast['even_threshold']:g} x); for those, an important subgraph grown to half "
                     "the importance is close to an arbitrary half of the cluster.")
    return "\n".join(lines)
