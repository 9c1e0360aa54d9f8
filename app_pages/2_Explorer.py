"""Explorer page: out-of-fold and blind predictions, descriptors against lg k₁, their
correlation with lg k₁ per family, and the tables behind them (names, units and
definitions from :mod:`cluster_gnn.explore`)."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from cluster_gnn.config import DATA_DIR
from cluster_gnn.datasets import load_clusters
from cluster_gnn.errors import ClusterGNNError
from cluster_gnn.explore import (DEFAULT_X, DEFAULT_Y, MIN_FAMILY_CLUSTERS, QUANTITIES, axis_choices, explorer_table,
                                 family_correlations, formula_label, quantity, tidy_csv)

OOF = DATA_DIR / "predictions" / "oof.csv"
BLIND = DATA_DIR / "predictions" / "heteronuclear-33-withheld.csv"
DESCRIPTORS = DATA_DIR / "descriptors.csv"
PREDICTED = "predicted lg k₁"
MEASURED = "measured lg k₁"


@st.cache_data(show_spinner=False)
def clusters() -> pd.DataFrame:
    return load_clusters()


@st.cache_data(show_spinner=False)
def table(path: str, mtime: float) -> pd.DataFrame:
    """A CSV under data/, joined to the cluster table (name, family, metals, ligands, measured lg k₁)."""
    frame = explorer_table(pd.read_csv(path), clusters())
    for col in ("metals", "ligands", "family"):
        frame[col] = frame[col].fillna("")
    frame["label"] = frame["name"].map(formula_label)
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
        "family": st.sidebar.multiselect("Family", sorted(frame["family"].unique()), key="f_family",
                                         help="Metal set x ligand set, e.g. Mo-S or Fe-V-C."),
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
    if st.button(f"Open {formula_label(selected)} in Predict", key=key, icon=":material/science:"):
        st.session_state["picked_cluster"] = selected
        st.session_state["predict_cluster"] = selected
        st.session_state["source"] = "Published cluster"
        st.switch_page("app_pages/1_Predict.py")


def selected_name(event, selection: str) -> str | None:
    points = (event or {}).get("selection", {}).get(selection) or []
    return points[0].get("name") if points else None


def parity(oof: pd.DataFrame) -> None:
    st.subheader("Cross-validated predictions of the measured clusters")
    st.caption("Each homonuclear cluster is predicted by the ensemble members that never saw it (out of fold). "
               "Bars: ± one standard deviation; dashed line: prediction = measurement.")
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
        x=alt.X("lg_k1:Q", title=f"{MEASURED} (k₁ in cm³ molecule⁻¹ s⁻¹)", scale=axis),
        y=alt.Y("lg_k1_pred:Q", title=PREDICTED, scale=axis),
        color=alt.Color("metals:N", title="metals"),
        stroke=alt.condition(pick, alt.value("black"), alt.value(None)),
        strokeWidth=alt.condition(pick, alt.value(2), alt.value(0)),
        tooltip=[alt.Tooltip("label:N", title="cluster"), alt.Tooltip("family:N", title="family"),
                 alt.Tooltip("lg_k1:Q", format=".2f", title=MEASURED),
                 alt.Tooltip("lg_k1_pred:Q", format=".2f", title=PREDICTED),
                 alt.Tooltip("lg_k1_std:Q", format=".2f", title="±"), alt.Tooltip("fold:N", title="fold")],
    ).add_params(pick)
    event = st.altair_chart((diagonal + bars + points).properties(height=460), on_select="rerun",
                            key="parity", selection_mode="pick")
    open_in_predict(selected_name(event, "pick"), "open_parity")


def blind(frame: pd.DataFrame) -> None:
    st.subheader("Blind predictions: mixed-metal clusters whose rates are withheld")
    st.caption(f"Their rates were measured but are withheld on purpose: no rate of these {len(frame)} clusters is "
               "used or shown. Bars: ± one standard deviation.")
    if frame.empty:
        return
    pick = alt.selection_point(fields=["name"], on="click", name="pick_blind", empty=False)
    order = frame.sort_values("lg_k1_pred", ascending=False)["label"].tolist()
    # every cluster gets a row tall enough for its label (Vega drops labels that overlap)
    base = alt.Chart(frame).encode(y=alt.Y("label:N", sort=order, title=None,
                                           axis=alt.Axis(labelOverlap=False, labelLimit=200, labelFontSize=12)))
    bars = base.mark_rule(opacity=0.4).encode(
        x=alt.X("low:Q"), x2="high:Q").transform_calculate(
        low="datum.lg_k1_pred - datum.lg_k1_std", high="datum.lg_k1_pred + datum.lg_k1_std")
    points = base.mark_circle(size=60).encode(
        x=alt.X("lg_k1_pred:Q", title=PREDICTED, scale=alt.Scale(zero=False)),
        color=alt.Color("metals:N", title="metals"),
        stroke=alt.condition(pick, alt.value("black"), alt.value(None)),
        tooltip=[alt.Tooltip("label:N", title="cluster"), alt.Tooltip("lg_k1_pred:Q", format=".2f", title=PREDICTED),
                 alt.Tooltip("lg_k1_std:Q", format=".2f", title="±")],
    ).add_params(pick)
    event = st.altair_chart((bars + points).properties(height=max(200, 20 * len(frame))),
                            on_select="rerun", key="blind", selection_mode="pick_blind")
    open_in_predict(selected_name(event, "pick_blind"), "open_blind")


def descriptors(frame: pd.DataFrame) -> None:
    st.subheader("Descriptors against the rate")
    x_options, y_options = axis_choices(frame)
    if not x_options:
        st.caption(f"{DESCRIPTORS.name} has no descriptor columns.")
        return
    left, right = st.columns(2)
    x = left.selectbox("x axis", x_options, key="descriptor_x", format_func=lambda c: quantity(c).title,
                       index=x_options.index(DEFAULT_X) if DEFAULT_X in x_options else 0)
    y = right.selectbox("y axis", y_options, key="descriptor_y", format_func=lambda c: quantity(c).title,
                        index=y_options.index(DEFAULT_Y) if DEFAULT_Y in y_options else 0)
    qx, qy = quantity(x), quantity(y)
    shown = frame.dropna(subset=[x, y])
    r = shown[x].corr(shown[y]) if len(shown) >= 3 else float("nan")
    sources = shown["charge_source"].value_counts() if "charge_source" in shown else pd.Series(dtype=int)
    charges = ("Charges and populations: " + ", ".join(f"{source} for {n} clusters" for source, n in sources.items())
               + ". " if len(sources) else "")
    st.caption(f"**{qx.label}**: {qx.definition}. **{qy.label}**: {qy.definition}. " + charges
               + (f"Pearson r = {r:.2f} over the {len(shown)} clusters shown." if pd.notna(r) else ""))
    pick = alt.selection_point(fields=["name"], on="click", name="pick_desc", empty=False)
    chart = alt.Chart(shown).mark_circle(size=60).encode(
        x=alt.X(f"{x}:Q", title=qx.title, scale=alt.Scale(zero=False)),
        y=alt.Y(f"{y}:Q", title=qy.title, scale=alt.Scale(zero=False)),
        color=alt.Color("family:N", title="family", scale=alt.Scale(scheme="category20")),
        stroke=alt.condition(pick, alt.value("black"), alt.value(None)),
        tooltip=[alt.Tooltip("label:N", title="cluster"), alt.Tooltip("family:N", title="family"),
                 alt.Tooltip(f"{x}:Q", format=".3g", title=qx.title), alt.Tooltip(f"{y}:Q", format=".3g", title=qy.title)]
        + ([alt.Tooltip("charge_source:N", title="charges")] if "charge_source" in shown else []),
    ).add_params(pick)
    event = st.altair_chart(chart.properties(height=420), on_select="rerun", key="descriptors",
                            selection_mode="pick_desc")
    open_in_predict(selected_name(event, "pick_desc"), "open_desc")


def correlations(frame: pd.DataFrame) -> None:
    st.subheader("How each descriptor tracks the measured rate, family by family")
    table = family_correlations(frame, axis_choices(frame)[0])
    per_family = table[table["family"] != "all families"]
    columns = [c for c in dict.fromkeys(table["column"]) if per_family.loc[per_family["column"] == c, "r"].notna().any()]
    table = table[table["column"].isin(columns)]  # drop what is constant in every family (the charge)
    if table.empty or table["r"].isna().all():
        st.caption("Too few measured clusters in this selection for a correlation.")
        return
    st.caption(f"Pearson r of each descriptor with {MEASURED} within each family (metal set x ligand set) with at "
               f"least {MIN_FAMILY_CLUSTERS} measured clusters; the first column pools every family shown. "
               "Red: larger values go with faster uptake; blue: with slower. Blank: constant within the family.")
    families = list(dict.fromkeys(table["family"]))
    n = table.groupby("family")["n"].max()
    table["family (clusters)"] = table["family"].map(lambda f: f"{f} ({n[f]})")
    x_order = [f"{f} ({n[f]})" for f in families]
    y_order = [quantity(c).title for c in columns]
    base = alt.Chart(table).encode(
        x=alt.X("family (clusters):N", sort=x_order, title=None,
                axis=alt.Axis(labelAngle=-40, labelOverlap=False, labelLimit=200, orient="top")),
        y=alt.Y("descriptor:N", sort=y_order, title=None, axis=alt.Axis(labelOverlap=False, labelLimit=320)))
    cells = base.mark_rect().encode(
        color=alt.Color("r:Q", title="Pearson r", scale=alt.Scale(domain=[-1, 1], scheme="redblue", reverse=True)),
        tooltip=[alt.Tooltip("descriptor:N"), alt.Tooltip("family:N"), alt.Tooltip("n:Q", title="clusters"),
                 alt.Tooltip("r:Q", format=".2f", title="Pearson r")])
    text = base.mark_text(fontSize=11).encode(
        text=alt.Text("r:Q", format=".2f"),
        color=alt.condition("abs(datum.r) > 0.6", alt.value("white"), alt.value("black")),
    ).transform_filter("isValid(datum.r) && isFinite(datum.r)")
    st.altair_chart((cells + text).properties(height=28 * len(columns)), key="correlations")
    wide = table.pivot(index="descriptor", columns="family (clusters)", values="r").reindex(
        index=y_order, columns=x_order).round(2)
    st.markdown("**Pearson r with measured lg k₁, per family**")
    st.dataframe(wide, key="correlation_table")


def definitions() -> None:
    with st.expander("What each descriptor means"):
        rows = [{"quantity": q.label, "unit": q.unit or "–", "definition": q.definition,
                 "kind": {"rate": "measurement", "prediction": "model prediction", "descriptor": "GFN1-xTB descriptor",
                          "explanation": "from the model's per-atom importances"}[q.group]} for q in QUANTITIES]
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="definitions")


def shown_table(frame: pd.DataFrame, heading: str, columns: list[str], filename: str) -> None:
    """A table with a heading, columns under their chemists' names, and its tidy CSV."""
    frame = frame[[c for c in columns if c in frame.columns]]
    st.markdown(f"**{heading}** ({len(frame)} clusters)")
    view = frame.copy()
    if "name" in view.columns:
        view["name"] = view["name"].map(formula_label)
    for column in ("metals", "ligands"):
        if column in view.columns:
            view[column] = view[column].str.replace(";", ", ")
    st.dataframe(view.rename(columns={c: quantity(c).title for c in view.columns}), hide_index=True,
                 column_config={quantity(c).title: st.column_config.NumberColumn(format=f"%.{quantity(c).decimals}f")
                                for c in view.columns if pd.api.types.is_float_dtype(view[c])},
                 key=f"table_{filename}")
    st.download_button(f"Download {filename}", tidy_csv(frame), file_name=filename, mime="text/csv",
                       icon=":material/download:", key=f"dl_{filename}")


IDENTITY = ["name", "family", "metals", "ligands"]
PREDICTION_COLUMNS = IDENTITY + ["fold", "lg_k1", "lg_k1_pred", "lg_k1_std"]


def main() -> None:
    st.title("Explorer")
    st.markdown("The data set's 216 clusters: how well the model predicts the measured ones, what it predicts for "
                "the withheld ones, and how simple charge descriptors relate to the measured rate lg k₁ "
                "(k₁ in cm³ molecule⁻¹ s⁻¹). Filter in the sidebar; click a point to open its cluster in Predict.")
    try:
        everything = clusters()
        oof, hetero, desc = read(OOF), read(BLIND), read(DESCRIPTORS)
    except ClusterGNNError as err:
        st.error(str(err))
        return
    chosen = filters(everything)
    if oof is not None:
        parity(apply(oof, chosen))
    if hetero is not None:
        blind(apply(hetero, chosen))
    if desc is not None:
        descriptors(apply(desc, chosen))
        correlations(apply(desc, chosen))
        definitions()
    if oof is None and hetero is None and desc is None:
        st.info("No predictions or descriptors yet (data/predictions/oof.csv, heteronuclear-33-withheld.csv and "
                "data/descriptors.csv appear once the models are trained): showing the cluster table.")
    st.header("Tables")
    if oof is not None:
        shown_table(apply(oof, chosen), "Out-of-fold predictions of the measured homonuclear clusters",
                    PREDICTION_COLUMNS, "oof-predictions.csv")
    if hetero is not None:
        shown_table(apply(hetero, chosen), "Blind predictions of the withheld mixed-metal clusters",
                    IDENTITY + ["lg_k1_pred", "lg_k1_std"], "heteronuclear-33-withheld-predictions.csv")
    if desc is not None:
        columns = IDENTITY + ["lg_k1"] + axis_choices(desc)[0]
        shown_table(apply(desc, chosen), "GFN1-xTB descriptors (measured lg k₁ beside them; no predictions)",
                    columns, "descriptors.csv")
    if oof is None:
        shown_table(apply(everything, chosen), "Clusters", IDENTITY + ["charge", "multiplicity", "lg_k1", "rate"],
                    "clusters.csv")


main()
