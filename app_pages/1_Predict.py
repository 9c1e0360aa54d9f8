"""Predict page: a published cluster or an uploaded XYZ -> 3D structure, xTB charges, lg(k1)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
from ase import Atoms

from cluster_gnn import viewer
from cluster_gnn.config import MODELS_DIR, XTBConfig
from cluster_gnn.datasets import load_clusters, structure_path
from cluster_gnn.errors import ClusterGNNError
from cluster_gnn.explain import importance_summary
from cluster_gnn.predict import load_ensemble, predict_named, predict_structure
from cluster_gnn.spin import default_charge_and_multiplicity
from cluster_gnn.structures import read_cluster

LEVEL = XTBConfig().label
DEFAULT_CLUSTER = "Mo5S4-"
XTB_TIME_LIMIT_S = 90.0  # uploads: xTB (and the optional relaxation) run in a worker, stopped after this


# ---- cached library calls (keyed on plain values: symbols, positions in Å, charge, 2S+1) ----

@st.cache_data(show_spinner=False)
def clusters() -> pd.DataFrame:
    return load_clusters()


def models_stamp() -> tuple:
    """Names and times of models/*.pt, so trained models are picked up without a restart."""
    return tuple(sorted((p.name, p.stat().st_mtime) for p in MODELS_DIR.glob("*.pt")))


@st.cache_resource(show_spinner="Loading the model ...")
def ensemble(stamp: tuple):
    """The model behind predictions (``cluster_gnn.predict.load_ensemble``: the GIN
    ensemble), or None before training."""
    return load_ensemble() if stamp else None


# Predictions come with per-atom importances (explain=True: Integrated Gradients, ~1 s).
@st.cache_data(show_spinner=f"Running {LEVEL}, the GIN and its explainer ...", max_entries=256)
def predicted_named(name: str, stamp: tuple):
    return predict_named(name, ensemble=ensemble(stamp), explain=True)


@st.cache_data(show_spinner=f"Running {LEVEL}, the GIN and its explainer ...", max_entries=64)
def predicted_structure(symbols: tuple, positions: tuple, charge: int, multiplicity: int, relax: bool, stamp: tuple):
    return predict_structure(Atoms(symbols, positions), charge, multiplicity, relax=relax,
                             ensemble=ensemble(stamp), explain=True, timeout_s=XTB_TIME_LIMIT_S)


def _key(atoms: Atoms) -> tuple[tuple, tuple]:
    positions = np.round(np.asarray(atoms.get_positions(), dtype=float), 6)
    return tuple(atoms.get_chemical_symbols()), tuple(map(tuple, positions.tolist()))


# ---- inputs ----

def pick_published() -> dict | None:
    table = clusters()
    names = table["name"].tolist()
    ready = {n for n in names if structure_path(n).is_file()}
    if "predict_cluster" not in st.session_state:
        remembered = st.session_state.get("picked_cluster")
        first_ready = next((n for n in names if n in ready), names[0])
        st.session_state["predict_cluster"] = remembered if remembered in names else (
            DEFAULT_CLUSTER if DEFAULT_CLUSTER in ready else first_ready)
    name = st.selectbox(
        "Cluster", names, key="predict_cluster",
        format_func=lambda n: n if n in ready else f"{n} (structure not computed yet)",
        help=f"{len(names)} clusters of the published data set; {len(ready)} have a {LEVEL} structure so far.",
    )
    st.session_state["picked_cluster"] = name
    row = table[table["name"] == name].iloc[0]
    measured = None if pd.isna(row["lg_k1"]) else float(row["lg_k1"])
    if name not in ready:
        st.warning(f"No {LEVEL} structure for {name} yet: the structure search has not reached it.")
        return None
    return {"name": name, "measured": measured, "title": name, "rate": row["rate"]}


def pick_upload() -> dict | None:
    upload = st.file_uploader("XYZ or extended-XYZ file (one cluster, at most 100 atoms, 1 MB)",
                              type=["xyz", "extxyz"], key="upload")
    if upload is None:
        st.info("Upload a structure: the first line is the number of atoms, the second a comment "
                "(may hold charge=... multiplicity=...), then one 'symbol x y z' line per atom in Å.")
        return None
    upload.seek(0)
    try:
        atoms = read_cluster(upload)
    except ClusterGNNError as err:
        st.error(str(err))
        return None
    col_charge, col_mult, col_relax = st.columns([1, 1, 2], vertical_alignment="bottom")
    # Defaults: the file's comment line, else the library's rule (the same as the CLI's).
    default_charge, _ = default_charge_and_multiplicity(atoms)
    charge = int(col_charge.number_input("Charge (e)", value=default_charge, step=1,
                                         min_value=-5, max_value=5, key=f"charge_{upload.file_id}"))
    _, default_mult = default_charge_and_multiplicity(atoms, charge)
    multiplicity = int(col_mult.number_input("Multiplicity 2S+1", value=default_mult, step=1, min_value=1,
                                             max_value=15, key=f"mult_{upload.file_id}_{charge}"))
    relax = col_relax.checkbox(f"Relax with {LEVEL} first", key="relax",
                               help="FIRE to 0.05 eV/Å, at most 400 steps; slow for more than ~10 atoms.")
    return {"name": None, "atoms": atoms, "charge": charge, "multiplicity": multiplicity,
            "measured": None, "relax": relax, "title": upload.name}


# ---- page ----

def main() -> None:
    st.title("Predict lg k₁")
    source = st.radio("Structure", ["Published cluster", "Upload XYZ"], horizontal=True, key="source",
                      label_visibility="collapsed")
    job = pick_published() if source == "Published cluster" else pick_upload()
    if job is None:
        return

    stamp = models_stamp()
    try:
        model = ensemble(stamp)
    except ClusterGNNError as err:  # ModelFileError, FeatureMismatchError: a file from another version
        st.error(str(err))
        return
    if model is None:
        st.info("The model is not trained yet: run 'cluster-gnn train' to predict.")
        return
    try:
        prediction = (predicted_named(job["name"], stamp) if job["name"] else
                      predicted_structure(*_key(job["atoms"]), job["charge"], job["multiplicity"], job["relax"], stamp))
    except ClusterGNNError as err:
        st.error(str(err))
        return
    atoms, features, importance = prediction.atoms, prediction.features, prediction.importance
    job = {**job, "charge": prediction.charge, "multiplicity": prediction.multiplicity}
    energy_note = ""
    if prediction.relaxation:
        r = prediction.relaxation
        energy_note = (f"Relaxed in {r['steps']} steps ({'converged' if r['converged'] else 'not converged'}), "
                       f"E = {r['energy']:.3f} eV. ")

    measured = job["measured"] if prediction.measured_lg_k1 is None else prediction.measured_lg_k1
    col_pred, col_meas, col_gap = st.columns(3)
    col_pred.metric("Predicted lg k₁", f"{prediction.lg_k1:.2f} ± {prediction.lg_k1_std:.2f}",
                    help="k₁ in cm³ molecule⁻¹ s⁻¹; mean of the GIN ensemble's members. ± is one "
                         "standard deviation: spread of the GIN "
                         "members, their validation residuals and the distance from the training clusters; "
                         "±1.645 of it is the 90 % interval.")
    if measured is not None:
        col_meas.metric("Measured lg k₁", f"{measured:.2f}",
                        help="The prediction beside it is out-of-fold: made without this cluster." if
                        prediction.out_of_fold else
                        "This cluster was among the training clusters of every member, so the prediction "
                        "beside it is not a test; the mixtures split scores it held out.")
    elif job.get("rate") == "withheld":
        col_meas.metric("Measured lg k₁", "withheld", help="Measured, but withheld on purpose: the project "
                        "predicts these 33 mixed clusters blind.")
    else:
        col_meas.metric("Measured lg k₁", "—", help="Not measured.")
    col_gap.metric(f"HOMO-LUMO gap ({LEVEL})", f"{features.homo_lumo_gap:.2f} eV")
    if prediction.model == "prior_blend":
        seen = ("No training cluster mixes these metals. " if prediction.new_metal_pair else "")
        st.info(seen + "The GIN does not carry rates to metal mixtures (held-out mixed clusters), so this "
                "prediction comes from the metals' own average rates moved by stoichiometry and spin "
                "(prior_blend), with the uncertainty measured on held-out mixed clusters. The atom colours "
                "still show how the GIN reads the structure.")
    elif prediction.extrapolating:
        st.warning(f"This cluster lies far from the 183 measured training clusters (distance "
                   f"{prediction.domain_distance:.2f}; nine in ten measured clusters lie within "
                   f"{prediction.domain_threshold:.2f} of the others): the prediction "
                   "is an extrapolation and its uncertainty has been widened accordingly.")

    col_colour, col_labels = st.columns([3, 1])
    colour_by = col_colour.radio(
        "Colour atoms by", ["Importance", "Charge"], horizontal=True, key=f"colour_by_{importance is not None}",
        index=0 if importance is not None else 1, disabled=importance is None,
        help="Importance: each atom's share of the model's attribution (sums to 1; needs the trained model). "
             f"Charge: {LEVEL} Mulliken partial charge in e.")
    show_labels = col_labels.checkbox("Atom labels", key="atom_labels")
    if colour_by == "Importance" and importance is not None:
        values, kind = np.asarray(importance, dtype=float), "importance"
    else:
        values, kind = np.asarray(features.charges, dtype=float), "charge"
    scale = viewer.colour_scale(values, kind)

    col_view, col_atoms = st.columns([3, 2])
    with col_view:
        html = viewer.viewer_html(atoms, values, charges=features.charges, scale=scale, kind=kind,
                                  show_labels=show_labels, height=440)
        st.iframe(html, height=450, alt=f"3D structure of {job['title']}")
        st.html(viewer.legend_html(scale))
        if importance is not None:
            st.caption(importance_summary(atoms, importance))
    with col_atoms:
        st.dataframe(viewer.atom_table(atoms, features, importance), hide_index=True,
                     column_config={c: st.column_config.NumberColumn(format="%.3f")
                                    for c in ("charge (e)", "s", "p", "d", "importance")})
    st.caption(f"{energy_note}{job['title']}: {len(atoms)} atoms, charge {job['charge']:+d} e, "
               f"multiplicity {job['multiplicity']}; {LEVEL} Mulliken charges and s/p/d shell populations (e). "
               "Hover over an atom for its values; drag to rotate, scroll to zoom.")

main()
