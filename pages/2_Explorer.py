"""Explorer page: parity plot, blind predictions, descriptor scatter and the cluster table."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from cluster_gnn.config import DATA_DIR
from cluster_gnn.datasets import load_clusters
from cluster_gnn.errors import ClusterGNNError
from cluster_gnn.structures import normalize_name

OOF = DATA_DIR / "predictions" / "oof.csv"
BLIND = DATA_DIR / "predictions" / "heteronuclear-33-withheld.csv"
DESCRIPTORS = DATA_DIR / "descriptors.csv"
LG_K1 = "lg k₁ (k₁ in cm³ molecule⁻¹ s⁻¹)"


@st.cache_data(show_spinner=False)
def clusters() -> pd.DataFrame:
    return load_clusters()


@st.cache_data(show_spinner=False)
def table(path: str, mtime: float) -> pd.DataFrame:
    """A CSV under data/, joined to the cluster table's name, family, metals and ligands."""
    frame = pd.read_csv(path)
    if "name" not in frame.columns:
        frame.insert(0, "name", frame["cluster"].map(normalize_name))
    info = clusters()[["name", "cluster", "family", "metals", "ligands"]]
    missing = [c for c in info.columns if c not in frame.columns]
    if missing:
        frame = frame.merge(info[["name"] + missing], on="name", how="left")
    for col in ("metals", "ligands", "family"):
        frame[col] = frame[col].fillna("")
    return frame


def read(path) -> pd.DataFrame | None:
    return table(str(path), path.stat().st_mtime) if path.is_file() else None


def filters(frame: pd.DataFrame) -> dict:
    """Metal / ligand / family pickers in the sidebar, offered from the cluster table."""
    def elements(column):
        return sorted({e for cell in frame[column] for e in str(cell).split(";") if e})

    st.sidebar.header("Filter")
    return {
        "metals": st.sidebar.multiselect("Metal", elements("metals"), key="f_metals",
                                         help="Clusters that contain any of these metals."),
        "ligands": st.sidebar.multiselect("Ligand", elements("ligands"), key="f_ligands",
                                          help="Clusters that contain any of these non-metals."),
        "family": st.sidebar.multiselect("Family", sorted(frame["family"].unique()), key="f_family"),
    }


def apply(frame: pd.DataFrame, chosen: dict) -> pd.DataFrame:
    keep = pd.Series(True, index=frame.index)
    for column in ("metals", "ligands"):
        if chosen[column]:
            keep &= frame[column].map(lambda cell: bool(set(str(cell).split(";")) & set(chosen[column])))
    if chosen["family"]:
        keep &= frame["family"].isin(chosen["family"])
    return frame[keep]


def open_in_predict(selected: str | None, key: str) -> None:
    if not selected:
        st.caption("Click a point to select its cluster.")
        return
    if st.button(f"Open {selected} in Predict", key=key, icon=":material/science:"):
        st.session_state["picked_cluster"] = selected
        st.session_state["predict_cluster"] = selected
        st.session_state["source"] = "Published cluster"
        st.switch_page("pages/1_Predict.py")


def selected_name(event, selection: str) -> str | None:
    points = (event or {}).get("selection", {}).get(selection) or []
    return points[0].get("name") if points else None


def parity(oof: pd.DataFrame) -> None:
    st.subheader("Cross-validated predictions (out of fold)")
    pick = alt.selection_point(fields=["name"], on="click", name="pick", empty=False)
    lo = float(min(oof["lg_k1"].min(), oof["lg_k1_pred"].min())) - 0.2
    hi = float(max(oof["lg_k1"].max(), oof["lg_k1_pred"].max())) + 0.2
    axis = alt.Scale(domain=[lo, hi])
    diagonal = alt.Chart(pd.DataFrame({"x": [lo, hi]})).mark_line(color="#888", strokeDash=[4, 4]).encode(
        x=alt.X("x:Q", scale=axis), y=alt.Y("x:Q", scale=axis))
    base = alt.Chart(oof)
    bars = base.mark_rule(opacity=0.35).encode(
        x=alt.X("lg_k1:Q", scale=axis),
        y=alt.Y("low:Q", scale=axis), y2="high:Q",
    ).transform_calculate(low="datum.lg_k1_pred - datum.lg_k1_std", high="datum.lg_k1_pred + datum.lg_k1_std")
    points = base.mark_circle(size=70, opacity=0.85).encode(
        x=alt.X("lg_k1:Q", title=f"measured {LG_K1}", scale=axis),
        y=alt.Y("lg_k1_pred:Q", title="predicted lg k₁", scale=axis),
        color=alt.Color("metals:N", title="metals"),
        stroke=alt.condition(pick, alt.value("black"), alt.value(None)),
        strokeWidth=alt.condition(pick, alt.value(2), alt.value(0)),
        tooltip=["cluster", "name", alt.Tooltip("lg_k1:Q", format=".2f", title="measured"),
                 alt.Tooltip("lg_k1_pred:Q", format=".2f", title="predicted"),
                 alt.Tooltip("lg_k1_std:Q", format=".2f", title="±"), "fold"],
    ).add_params(pick)
    event = st.altair_chart((diagonal + bars + points).properties(height=460), on_select="rerun",
                            key="parity", selection_mode="pick")
    open_in_predict(selected_name(event, "pick"), "open_parity")


def blind(frame: pd.DataFrame) -> None:
    st.subheader("Blind predictions: mixed-metal clusters whose rates are withheld")
    st.caption("Their rates were measured but are withheld on purpose: no rate of these 33 clusters is used or shown.")
    pick = alt.selection_point(fields=["name"], on="click", name="pick_blind", empty=False)
    order = frame.sort_values("lg_k1_pred", ascending=False)["name"].tolist()
    base = alt.Chart(frame).encode(y=alt.Y("name:N", sort=order, title=None))
    bars = base.mark_rule(opacity=0.4).encode(
        x=alt.X("low:Q"), x2="high:Q").transform_calculate(
        low="datum.lg_k1_pred - datum.lg_k1_std", high="datum.lg_k1_pred + datum.lg_k1_std")
    points = base.mark_circle(size=60).encode(
        x=alt.X("lg_k1_pred:Q", title="predicted lg k₁", scale=alt.Scale(zero=False)),
        color=alt.Color("metals:N", title="metals"),
        stroke=alt.condition(pick, alt.value("black"), alt.value(None)),
        tooltip=["cluster", alt.Tooltip("lg_k1_pred:Q", format=".2f", title="predicted"),
                 alt.Tooltip("lg_k1_std:Q", format=".2f", title="±")],
    ).add_params(pick)
    event = st.altair_chart((bars + points).properties(height=max(200, 14 * len(frame))),
                            on_select="rerun", key="blind", selection_mode="pick_blind")
    open_in_predict(selected_name(event, "pick_blind"), "open_blind")


def descriptors(frame: pd.DataFrame) -> None:
    st.subheader("Descriptors")
    numeric = [c for c in frame.select_dtypes("number").columns if c != "lg_k1"]
    if not numeric or "lg_k1" not in frame.columns:
        st.caption(f"{DESCRIPTORS.name} has no numeric descriptor columns.")
        return
    x = st.selectbox("x axis", numeric, key="descriptor_x")
    pick = alt.selection_point(fields=["name"], on="click", name="pick_desc", empty=False)
    chart = alt.Chart(frame.dropna(subset=[x, "lg_k1"])).mark_circle(size=60).encode(
        x=alt.X(f"{x}:Q", scale=alt.Scale(zero=False)),
        y=alt.Y("lg_k1:Q", title=f"measured {LG_K1}", scale=alt.Scale(zero=False)),
        color=alt.Color("metals:N", title="metals"),
        stroke=alt.condition(pick, alt.value("black"), alt.value(None)),
        tooltip=["name", alt.Tooltip(f"{x}:Q", format=".3g"), alt.Tooltip("lg_k1:Q", format=".2f")],
    ).add_params(pick)
    event = st.altair_chart(chart.properties(height=400), on_select="rerun", key="descriptors",
                            selection_mode="pick_desc")
    open_in_predict(selected_name(event, "pick_desc"), "open_desc")


def download(frame: pd.DataFrame, filename: str) -> None:
    st.dataframe(frame, hide_index=True)
    st.download_button(f"Download {filename} ({len(frame)} rows)", frame.to_csv(index=False).encode("utf-8"),
                       file_name=filename, mime="text/csv", icon=":material/download:", key=f"dl_{filename}")


def main() -> None:
    st.title("Explorer")
    try:
        everything = clusters()
        oof, hetero, desc = read(OOF), read(BLIND), read(DESCRIPTORS)
    except ClusterGNNError as err:
        st.error(str(err))
        return
    chosen = filters(everything)
    shown = False
    if oof is not None:
        parity(apply(oof, chosen))
        shown = True
    if hetero is not None:
        blind(apply(hetero, chosen))
        shown = True
    if desc is not None:
        descriptors(apply(desc, chosen))
        shown = True
    if not shown:
        st.info("No predictions or descriptors yet (data/predictions/oof.csv, heteronuclear-33-withheld.csv and "
                "data/descriptors.csv appear once the models are trained): showing the cluster table.")
    st.subheader("Clusters")
    if oof is not None:
        download(apply(oof, chosen), "oof-predictions.csv")
        if hetero is not None:
            download(apply(hetero, chosen), "heteronuclear-33-withheld-predictions.csv")
    else:
        download(apply(everything, chosen), "clusters.csv")


main()
