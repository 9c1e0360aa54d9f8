"""Predict page: a published cluster (read from the precomputed table) or uploaded XYZ files
-> a result card in plain words, the 3D structure with per-atom importance, charge or spin."""
from __future__ import annotations

import hashlib
import time

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from ase import Atoms

from cluster_gnn import card, viewer
from cluster_gnn.bundled import bundled_result, load_bundled
from cluster_gnn.config import MODELS_DIR, STRUCTURES_DIR, XTBConfig
from cluster_gnn.datasets import load_clusters, structure_path
from cluster_gnn.dft import pyscf_available
from cluster_gnn.dft_upload import get_dft_job, start_dft
from cluster_gnn.errors import ClusterGNNError
from cluster_gnn.explain import contribution_summary, importance_summary
from cluster_gnn.isomer_ranking import TIE_EV
from cluster_gnn.limits import DFT_TIME_LIMIT_S, MAX_DFT_ATOMS
from cluster_gnn.predict import load_ensemble, predict_named, predict_structure
from cluster_gnn.results import (atom_table, check_live_allowed, dft_atom_values, explain_live, known_cluster,
                                 load_isomers, pbe_ranked_isomer, predict_uploads, result_from_prediction, xyz_text)
from cluster_gnn.spin import default_charge_and_multiplicity
from cluster_gnn.structures import read_cluster

LEVEL = XTBConfig().label
DEFAULT_CLUSTER = "Mo5S4-"
XTB_TIME_LIMIT_S = 90.0  # uploads: xTB (and the optional relaxation) run in a worker, stopped after this
EXAMPLES = ("Mo5S4-", "Fe2V2C-", "Co3H2-")  # bundled structures offered as example uploads
SOURCES = ["Published cluster", "Upload XYZ", "Several files"]


# ---- cached library calls (keyed on plain values: symbols, positions in Å, charge, 2S+1) ----

@st.cache_data(show_spinner=False)
def clusters() -> pd.DataFrame:
    return load_clusters()


def models_stamp() -> tuple:
    """Names and times of models/*.pt, so trained models are picked up without a restart."""
    return tuple(sorted((p.name, p.stat().st_mtime) for p in MODELS_DIR.glob("*.pt")))


@st.cache_resource(show_spinner="Loading the model ...")
def ensemble(stamp: tuple):
    """The model behind live predictions (the GIN ensemble), or None before training."""
    check_live_allowed("loading the ensemble")
    return load_ensemble() if stamp else None


def _model(stamp: tuple):
    model = ensemble(stamp)
    if model is None:
        raise ClusterGNNError("the model is not trained yet: run 'cluster-gnn train' to predict")
    return model


@st.cache_data(show_spinner=f"Running {LEVEL}, the GIN and its explainer ...", max_entries=64)
def live_named(name: str, stamp: tuple):
    check_live_allowed()
    model = _model(stamp)
    prediction = predict_named(name, ensemble=model)
    return result_from_prediction(prediction, explain_live(prediction, model))


@st.cache_data(show_spinner=False, max_entries=64)
def live_structure(symbols: tuple, positions: tuple, charge: int, multiplicity: int, relax: bool, stamp: tuple):
    check_live_allowed()
    return predict_structure(Atoms(symbols, positions), charge, multiplicity, relax=relax,
                             ensemble=_model(stamp), timeout_s=XTB_TIME_LIMIT_S)


@st.cache_data(show_spinner=False, max_entries=64)
def live_explained(symbols: tuple, positions: tuple, charge: int, multiplicity: int, relax: bool, stamp: tuple):
    prediction = live_structure(symbols, positions, charge, multiplicity, relax, stamp)
    return result_from_prediction(prediction, explain_live(prediction, _model(stamp)))


def _tie(info: dict) -> str:
    """Label tail for a PBE-lowest isomer whose runner-up candidate is within the tie margin."""
    gap = info.get("next_above", float("nan"))
    return f"; the next candidate only +{gap:.2f} eV: a tie" if gap < TIE_EV else ""


def _below(info: dict, than: str = "the xTB global minimum") -> str:
    """How far a PBE-lowest isomer lies below the xTB minimum, or that PBE found no energy there."""
    gap = info["below_xtb_minimum"]
    return f"{gap:.2f} eV below {than} at PBE" if np.isfinite(gap) else \
        f"where PBE did not converge at {than}"


@st.cache_data(show_spinner=False)
def isomers(name: str) -> list:
    return load_isomers(name)


def _key(atoms: Atoms) -> tuple[tuple, tuple]:
    positions = np.round(np.asarray(atoms.get_positions(), dtype=float), 6)
    return tuple(atoms.get_chemical_symbols()), tuple(map(tuple, positions.tolist()))


def run_live(atoms: Atoms, charge: int, multiplicity: int, relax: bool = False):
    """Predict and explain a structure, one st.status step per stage."""
    stamp, key = models_stamp(), _key(atoms)
    with st.status(f"Predicting {atoms.get_chemical_formula()} ...", expanded=False) as status:
        status.write(f"{LEVEL} single point{' after a relaxation' if relax else ''} and the GIN ensemble ...")
        live_structure(*key, charge, multiplicity, relax, stamp)
        status.write("Per-atom attributions (explainer) ...")
        result = live_explained(*key, charge, multiplicity, relax, stamp)
        status.update(label=f"Predicted {atoms.get_chemical_formula()} live ({LEVEL}, GIN, explainer)",
                      state="complete")
    return result


# ---- inputs ----

def pick_published(key: str = "predict_cluster", label: str = "Cluster"):
    """A bundled cluster: the precomputed result, or a live one (stale table, isomer)."""
    table = clusters()
    names = table["name"].tolist()
    if key not in st.session_state:
        remembered = st.session_state.get("picked_cluster") if key == "predict_cluster" else None
        st.session_state[key] = remembered if remembered in names else DEFAULT_CLUSTER
    col_name, col_structure = st.columns(2)
    name = col_name.selectbox(label, names, key=key, help=f"{len(names)} clusters of the published data set, "
                        f"each with a {LEVEL} global-minimum structure.")
    if key == "predict_cluster":
        st.session_state["picked_cluster"] = name
    if not structure_path(name).is_file():
        st.warning(f"No {LEVEL} structure for {name} yet: the structure search has not reached it.")
        return None
    found = isomers(name)
    pbe = pbe_ranked_isomer(name)
    if pbe is not None:
        found = found + [pbe]
    choice = 0
    if found:
        labels = ["xTB global minimum"] + [
            f"PBE-lowest isomer: {a.info['ligand']} terminal/μ2/μ3 {a.info['motifs']}, "
            f"{_below(a.info)}{_tie(a.info)} (computed live)"
            if "below_xtb_minimum" in a.info else
            f"isomer {a.info.get('rank', k + 2)} (+{a.info['relative_energy']:.3f} eV, computed live)"
            for k, a in enumerate(found)]
        choice = col_structure.selectbox("Structure", range(len(labels)), format_func=labels.__getitem__, key=f"{key}_isomer",
                              help=f"The {LEVEL} structure search kept these runner-up minima; for sulfides, "
                                   "carbides and nitrides, PBE/def2-SVP single points may put another isomer "
                                   "(bridging or capping S, C or N) lowest. The table holds the xTB global minimum; "
                                   "an isomer is predicted live (with every member, so a measured cluster's "
                                   "prediction is then not out-of-fold).")
    if pbe is not None and not choice:
        col_structure.caption(f"PBE/def2-SVP puts another isomer ({pbe.info['ligand']} terminal/μ2/μ3 "
                              f"{pbe.info['motifs']}) {_below(pbe.info, 'this one')}: "
                              "pick it under *Structure*.")
    if choice:
        atoms = found[choice - 1]
        result = run_live(atoms, int(atoms.info["charge"]), int(atoms.info["multiplicity"]))
        result.name, result.measured_lg_k1, result.rate = name, *_measured(name)
        return result
    bundled = load_bundled()
    result = bundled_result(name, bundled)
    if result is not None:
        st.caption(bundled.status)
        return result
    st.caption(bundled.status if bundled is not None else
               "No precomputed table (run 'cluster-gnn precompute'): computed live.")
    return live_named(name, models_stamp())


def _measured(name: str) -> tuple:
    row = clusters().set_index("name").loc[name]
    return (None if pd.isna(row["lg_k1"]) else float(row["lg_k1"])), str(row["rate"])


def pick_upload():
    upload = st.file_uploader("XYZ or extended-XYZ file (one cluster, at most 100 atoms, 1 MB)",
                              type=["xyz", "extxyz"], key="upload")
    col_example, col_download = st.columns([3, 1], vertical_alignment="bottom")
    example = col_example.selectbox("... or load an example", ["none"] + list(EXAMPLES), key="example")
    if example != "none":
        data = (STRUCTURES_DIR / f"{example}.xyz").read_bytes()
        col_download.download_button("Download example", data, file_name=f"{example}.xyz", mime="chemical/x-xyz")
    if upload is None and example == "none":
        st.info("Upload a structure: the first line is the number of atoms, the second a comment "
                "(may hold charge=... multiplicity=...), then one 'symbol x y z' line per atom in Å.")
        return None
    source, file_id, title = (upload, upload.file_id, upload.name) if upload is not None else (
        data, f"example_{example}", f"{example}.xyz")
    if upload is not None:
        upload.seek(0)
    try:
        atoms = read_cluster(source)
    except ClusterGNNError as err:
        st.error(str(err))
        return None
    col_charge, col_mult, col_relax = st.columns([1, 1, 2], vertical_alignment="bottom")
    # Defaults: the file's comment line, else the library's rule (the same as the CLI's).
    default_charge, _ = default_charge_and_multiplicity(atoms)
    charge = int(col_charge.number_input("Charge (e)", value=default_charge, step=1,
                                         min_value=-5, max_value=5, key=f"charge_{file_id}"))
    _, default_mult = default_charge_and_multiplicity(atoms, charge)
    multiplicity = int(col_mult.number_input("Multiplicity 2S+1", value=default_mult, step=1, min_value=1,
                                             max_value=15, key=f"mult_{file_id}_{charge}"))
    relax = col_relax.checkbox(f"Relax with {LEVEL} first", key="relax",
                               help="FIRE to 0.05 eV/Å, at most 400 steps; slow for more than ~10 atoms.")
    result = run_live(atoms, charge, multiplicity, relax)
    known = known_cluster(atoms, charge)
    if known is not None:
        result.measured_lg_k1, result.rate = _measured(known["name"])
        st.info(f"{title} has the composition and charge of the published cluster **{known['name']}**: its "
                "measured value is shown. Your structure was predicted with every member, so the comparison is "
                "not out-of-fold (pick it under 'Published cluster' for the held-out prediction).")
    return result


def several_files() -> None:
    uploads = st.file_uploader("Several XYZ files", type=["xyz", "extxyz"], accept_multiple_files=True,
                               key="uploads")
    if not uploads:
        st.info("Upload several structures at once: each is predicted with the charge and multiplicity of "
                "its comment line (else charge −1 and the estimated multiplicity), without attributions.")
        return
    files = [(u.name, u.getvalue()) for u in uploads]
    with st.status(f"Predicting {len(files)} files ...", expanded=False) as status:
        table = predict_uploads(files, ensemble=ensemble(models_stamp()), timeout_s=XTB_TIME_LIMIT_S,
                                progress=lambda i, n, name: status.write(f"{i + 1}/{n}: {name}"))
        failed = int(table["error"].notna().sum())
        status.update(label=f"Predicted {len(files) - failed} of {len(files)} files", state="complete")
    st.dataframe(table, hide_index=True)
    st.download_button("Download CSV", table.to_csv(index=False), file_name="predictions.csv", mime="text/csv",
                       key="uploads_csv")


# ---- output ----

def rate_strip(result) -> alt.Chart:
    data = card.rate_strip_data(result)
    x = alt.X("lg_k1:Q", scale=alt.Scale(domain=list(card.MEASURED_RANGE), clamp=True), title=None)
    base = alt.Chart(data)
    measured = base.transform_filter(alt.datum.what == "measured clusters").mark_tick(
        color="#bbbbbb", thickness=1, size=18).encode(x=x, tooltip=["label", "lg_k1"])
    interval = base.transform_filter(alt.datum.what == "predicted (90 % interval)").mark_rule(
        color="#1f77b4", strokeWidth=4, opacity=0.5).encode(x=alt.X("lo:Q", scale=alt.Scale(
            domain=list(card.MEASURED_RANGE), clamp=True)), x2="hi:Q")
    points = base.transform_filter(alt.datum.what != "measured clusters").mark_point(
        size=120, filled=True, opacity=1).encode(
        x=x, shape=alt.Shape("what:N", legend=None),
        color=alt.Color("what:N", scale=alt.Scale(domain=["predicted (90 % interval)", "measured (this cluster)"],
                                                   range=["#1f77b4", "#d62728"]), legend=None),
        tooltip=["label"])
    return (measured + interval + points).properties(height=60)


def result_metrics(result) -> None:
    lo, hi = result.interval90
    cols = st.columns(4)
    cols[0].metric("Predicted lg k₁", card.lg_text(result.lg_k1),
                   help=f"± {result.lg_k1_std:.2f} (one standard deviation); model {result.model}.")
    cols[1].metric("90 % interval", f"{lo:.1f} … {hi:.1f}".replace("-", "−"),
                   help="lg k₁ ± 1.645 standard deviations.")
    cols[2].metric("k₁ (cm³ molecule⁻¹ s⁻¹)", f"≈ {card.k1_text(result.lg_k1)}")
    if result.measured_lg_k1 is not None:
        cols[3].metric("Measured lg k₁", card.lg_text(result.measured_lg_k1),
                       help="out-of-fold: the model never saw this cluster" if result.out_of_fold else
                       "the model saw this cluster in training")
    else:
        cols[3].metric("Measured lg k₁", "withheld" if result.rate == "withheld" else "—",
                       help="withheld on purpose: a blind test" if result.rate == "withheld" else "not measured")


def result_card(result, compact: bool = False) -> None:
    st.markdown(card.prediction_text(result) + " " + card.measured_text(result))
    st.altair_chart(rate_strip(result), width="stretch")
    st.caption("lg k₁ of the 183 measured clusters (grey ticks), this prediction with its 90 % interval "
               "(blue) and this cluster's measured value (red).")
    st.markdown(card.seen_text(result))
    if not compact:
        st.markdown("\n".join(f"- {line}" for line in [card.theory_text(result)] + card.caveats(result)))


def dft_panel(result) -> dict | None:
    """The DFT of an uploaded structure, on request: a button, then progress (``main`` reruns
    the page every 2 s while it runs), then the NPA charges and spin for the 3D view."""
    st.markdown("**DFT charges and spin**: PBE/def2-SVP natural population analysis, the paper's level of theory.")
    if not pyscf_available():
        st.caption("Not available here: the DFT stage needs the optional extra (pip install -e '.[dft]'); the "
                   "hosted app runs GFN1-xTB only.")
        return None
    if len(result.atoms) > MAX_DFT_ATOMS:
        st.caption(f"Available for clusters of at most {MAX_DFT_ATOMS} atoms.")
        return None
    key = "dft_" + hashlib.sha1(xyz_text(result).encode()).hexdigest()[:16]
    job = get_dft_job(st.session_state.get(key))
    if job is None:
        if st.button(f"Compute (minutes; stopped after {DFT_TIME_LIMIT_S / 60:.0f} min)", key=f"{key}_start",
                     icon=":material/science:"):
            try:
                st.session_state[key] = start_dft(result.atoms, result.charge, result.multiplicity).id
            except ClusterGNNError as err:
                st.error(str(err))
                return None
            st.rerun()
        return None
    status = job.poll()
    if not status.finished:
        st.progress(min(status.seconds / job.time_limit_s, 1.0),
                    text=f"SCF {status.rung or 'starting'}, cycle {status.cycles}: {status.seconds:.0f} s of at most "
                         f"{job.time_limit_s:.0f} s")
        if st.button("Cancel", key=f"{key}_cancel", icon=":material/stop:"):
            job.cancel()
            st.rerun()
        st.session_state["dft_running"] = True
        return None
    if status.state != "done":
        (st.warning if status.state == "cancelled" else st.error)(status.message)
        if st.button("Try again", key=f"{key}_retry"):
            del st.session_state[key]
            st.rerun()
        return None
    r = job.result()
    st.caption(f"Done in {status.seconds:.0f} s ({r.rung} SCF, {r.cycles} cycles, ⟨S²⟩ {r.s2:.2f} for "
               f"{r.s2_expected:.2f}): pick 'Charge (DFT NPA)' or 'Spin (DFT NPA)' above the structure.")
    return {"charge": np.asarray(r.charges, float), "spin": np.asarray(r.spin, float)}


def structure_panel(result, key: str, height: int = 440, table: bool = True, dft: dict | None = None) -> None:
    """The 3D view with a choice of per-atom values; ``dft``: NPA ``charge`` and ``spin`` of
    this structure (default: the DFT job's values for a bundled cluster, when it has them)."""
    atoms, importance = result.atoms, result.importance
    if dft is None and (result.source == "precomputed" or result.name):
        dft = dft_atom_values(result.name, atoms=atoms)
    modes = {}
    if importance is not None:
        modes["Importance"] = (np.asarray(importance, float), "importance", "importance (share of the total)")
    contribution = getattr(result, "contribution", None)
    if contribution is not None and np.all(np.isfinite(contribution)):
        modes["Contribution"] = (np.asarray(contribution, float), "charge",
                                 "contribution to lg k₁ (lg units; + raises the rate)")
    if dft is not None:
        modes["Charge (DFT NPA)"] = (dft["charge"], "charge", "natural charge (e, PBE/def2-SVP)")
        modes["Spin (DFT NPA)"] = (dft["spin"], "charge", "spin density (e, PBE/def2-SVP)")
    modes["Charge (xTB Mulliken)"] = (result.charges, "charge", f"Mulliken charge (e, {LEVEL})")
    col_mode, col_labels = st.columns([4, 1])
    mode = col_mode.radio("Show on the atoms", list(modes), horizontal=True, key=f"{key}_mode",
                          help="Atoms keep their element colours; the halo around each atom grows with the "
                               "value shown. Importance: the atom's share of the model's attribution (sums to 1). "
                               "Contribution: how much the atom raises (+) or lowers (-) the predicted lg k₁: the "
                               "change when it alone is replaced by an average atom (occlusion).")
    show_labels = col_labels.checkbox("Atom labels", key=f"{key}_labels")
    values, kind, label = modes[mode]
    if mode == "Contribution":
        st.markdown(f"**{contribution_summary(atoms, contribution)}**")
    if mode == "Importance":
        st.markdown(f"**{importance_summary(atoms, importance)}** "
                    f"(explainer: {result.method.replace('_', ' ')}, {'precomputed' if result.source == 'precomputed' else 'computed live'}).")
    scale = viewer.colour_scale(values, kind, label=f"Halo: {label}")
    html = viewer.viewer_html(atoms, values, charges=result.charges, scale=scale, kind=kind,
                              value_name=mode.split(" ")[0].lower(), show_labels=show_labels, height=height,
                              png_name=f"{result.name or result.formula}-{mode.split(' ')[0].lower()}.png")
    st.iframe(html, height=height + 10, alt=f"3D structure of {result.title}")
    col_legend, col_halo = st.columns(2)
    col_legend.html(viewer.element_legend_html(atoms))
    col_halo.html(viewer.legend_html(scale))
    st.download_button("Download structure (XYZ)", xyz_text(result), file_name=f"{result.name or result.formula}.xyz",
                       mime="chemical/x-xyz", key=f"{key}_xyz")
    if table:
        st.dataframe(atom_table(result), hide_index=True,
            column_config={c: st.column_config.NumberColumn(format="%.3f")
                           for c in ("charge (e)", "s", "p", "d", "importance")})


def main() -> None:
    st.set_page_config(page_title="cluster-gnn: predict", layout="wide")
    st.title("Predict lg k₁")
    source = st.radio("Structure", SOURCES, horizontal=True, key="source", label_visibility="collapsed")
    if source == "Several files":
        several_files()
        return
    try:
        result = pick_published() if source == SOURCES[0] else pick_upload()
    except ClusterGNNError as err:
        st.error(str(err))
        return
    if result is None:
        return
    compare = source == SOURCES[0] and st.toggle("Compare with another cluster", key="compare")
    if compare:
        try:
            other = pick_published("compare_cluster", "Compare with")
        except ClusterGNNError as err:
            st.error(str(err))
            return
        for column, shown, key in zip(st.columns(2), (result, other), ("left", "right")):
            if shown is not None:
                with column:
                    st.subheader(shown.title)
                    result_metrics(shown)
                    result_card(shown, compact=True)
                    structure_panel(shown, key, height=360, table=False)
        return
    st.markdown(f"#### {result.title}: {len(result.atoms)} atoms, charge {result.charge:+d} e, "
                f"multiplicity {result.multiplicity}")
    if result.relaxation:
        r = result.relaxation
        st.caption(f"Relaxed in {r['steps']} steps ({'converged' if r['converged'] else 'not converged'}), "
                   f"E = {r['energy']:.3f} eV.")
    result_metrics(result)
    col_card, col_view = st.columns([2, 3], gap="large")
    dft = None
    with col_card:
        result_card(result)
        if source == SOURCES[1]:
            dft = dft_panel(result)
    with col_view:
        structure_panel(result, "main", dft=dft)
    if st.session_state.pop("dft_running", False):
        time.sleep(2.0)
        st.rerun()


main()
