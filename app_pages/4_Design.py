"""Design page: a formula and charge in, a structure search and a prediction out, in the
background (cluster_gnn.design); the job's id is kept in the session, so it survives reruns."""
from __future__ import annotations

import io
import time

import numpy as np
import streamlit as st

from cluster_gnn.design import get_design, start_design
from cluster_gnn.errors import ClusterGNNError
from cluster_gnn.explain import importance_summary
from cluster_gnn.explore import formula_label
from cluster_gnn.limits import DESIGN_TIME_LIMIT_S, MAX_DESIGN_ATOMS, MAX_DESIGN_TIME_LIMIT_S
from cluster_gnn import viewer

JOB = "design_job"


def form() -> None:
    with st.form("design_form", border=False):
        left, right = st.columns([3, 1])
        formula = left.text_input("Formula and charge", key="design_formula", placeholder="e.g. Co2Ta2C3- or Mo2S-",
                                  help="Element symbols with counts; a trailing '-' for an anion, '+' for a cation, "
                                       "nothing for a neutral cluster.")
        multiplicity = right.number_input("Spin multiplicity 2S+1", min_value=0, max_value=1 + 5 * MAX_DESIGN_ATOMS,
                                          value=0, step=1, key="design_multiplicity",
                                          help="0: estimated from the metals (the median unpaired electrons per "
                                               "metal atom of the measured clusters).")
        limit = st.slider("Time limit (s)", 30, int(MAX_DESIGN_TIME_LIMIT_S), int(DESIGN_TIME_LIMIT_S), step=30,
                          key="design_limit", help="No new relaxation starts after it; the lowest structure found "
                                                   "so far is then used.")
        submitted = st.form_submit_button("Search and predict", icon=":material/play_arrow:", type="primary")
    if submitted:
        try:
            job = start_design(formula, multiplicity=int(multiplicity) or None, time_limit_s=limit)
        except ClusterGNNError as err:
            st.error(str(err))
            return
        st.session_state[JOB] = job.id


def progress(job) -> None:
    """Progress of a running design; the page reruns every second until it ends. (A full
    rerun, not an ``st.fragment``: a fragment's rerun skips ``st.navigation`` in app.py, and
    the sidebar fell back to a list of files.)"""
    status = job.poll()
    stage = {"starting": "starting the worker", "searching": f"searching the structure: relaxation {status.done} "
             f"of {status.total}" if status.total else "searching the structure", "predicting": "predicting lg k₁ "
             "and the atoms' importance"}.get(status.state, status.state)
    st.progress(status.fraction, text=f"{formula_label(job.name)}, multiplicity {job.multiplicity}: {stage} "
                                       f"({status.seconds:.0f} s of at most {job.time_limit_s:.0f} s)")
    if st.button("Cancel", key="design_cancel", icon=":material/stop:"):
        job.cancel()
        st.rerun()
    time.sleep(1.0)
    st.rerun()


def result(job) -> None:
    status = job.poll()
    if status.state != "done":
        (st.warning if status.state == "cancelled" else st.error)(status.message)
        return
    try:
        prediction = job.prediction()
    except ClusterGNNError as err:
        st.error(str(err))
        return
    atoms, features, importance = prediction.atoms, prediction.features, prediction.importance
    st.subheader(f"{formula_label(job.name)}: predicted rate")
    low, high = prediction.interval90
    first, second, third = st.columns(3)
    first.metric("Predicted lg k₁", f"{prediction.lg_k1:.2f} ± {prediction.lg_k1_std:.2f}",
                 help="k₁ in cm³ molecule⁻¹ s⁻¹; ± one standard deviation.")
    second.metric("90 % range of lg k₁", f"{low:.1f} to {high:.1f}")
    third.metric("HOMO-LUMO gap (GFN1-xTB)", f"{features.homo_lumo_gap:.2f} eV")
    if prediction.model == "prior_blend":
        st.info("This cluster mixes metals: the graph network does not carry rates to metal mixtures, so the "
                "prediction comes from the metals' average rates adjusted for composition and spin. The atom "
                "colours still show how the network reads the structure.")
    elif prediction.extrapolating:
        st.warning("This cluster lies far from the measured training clusters: the prediction is an "
                   "extrapolation, and its uncertainty has been widened accordingly.")
    found = (prediction.relaxation or {}).get("found", "")
    st.caption(f"Structure: GFN1-xTB {found}, {len(atoms)} atoms, charge {prediction.charge:+d} e, multiplicity "
               f"{prediction.multiplicity}; the whole design took {status.seconds:.0f} s.")
    values, kind = (np.asarray(importance, float), "importance") if importance is not None else \
        (np.asarray(features.charges, float), "charge")
    scale = viewer.colour_scale(values, kind)
    view, table = st.columns([1, 1])
    with view:
        st.iframe(viewer.viewer_html(atoms, values, charges=features.charges, scale=scale, kind=kind, height=420),
                  height=430, alt=f"3D structure of {job.name}")
        st.html(viewer.legend_html(scale))
        if importance is not None:
            st.caption(importance_summary(atoms, importance))
    with table:
        st.markdown("**Atoms: charge, shell populations and importance**")
        st.dataframe(viewer.atom_table(atoms, features, importance), hide_index=True,
                     column_config={c: st.column_config.NumberColumn(format="%.3f")
                                    for c in ("charge (e)", "s", "p", "d", "importance")})
        buffer = io.StringIO()
        atoms.write(buffer, format="xyz", comment=f"{job.name} charge={prediction.charge} "
                    f"multiplicity={prediction.multiplicity} GFN1-xTB")
        st.download_button(f"Download {job.name}.xyz", buffer.getvalue(), file_name=f"{job.name}.xyz",
                           mime="chemical/x-xyz", icon=":material/download:", key="design_download")


def main() -> None:
    st.title("Design a cluster from its formula")
    st.markdown(f"Type a cluster's formula and charge. The app searches its lowest-energy structure at the "
                f"GFN1-xTB level (random starts and basin hopping, a budget sized to the cluster), then predicts "
                f"lg k₁ and shows which atoms matter. Up to {MAX_DESIGN_ATOMS} atoms; a cluster of a few atoms "
                "takes under a minute, larger ones several minutes. The search runs in the background: you can "
                "leave this page and come back.")
    form()
    job = get_design(st.session_state.get(JOB))
    if job is None:
        return
    if job.poll().finished:
        result(job)
    else:
        progress(job)


main()
