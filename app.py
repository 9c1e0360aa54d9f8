"""cluster-gnn web app: navigation and the landing page. Run with ``streamlit run app.py``.

``st.navigation`` lists the screens (Home, Predict, Design, Explorer, Model) with their
titles; every entry path (the root URL, ``/Predict``, ...) runs this file first, so the
page settings below are set once, for every page. The screens live in ``app_pages/``, not
Streamlit's ``pages/``: while a ``pages/`` folder exists, a server whose first visitor
opens ``/Explorer`` directly runs that file alone (Streamlit's old multipage mode, until
someone opens the root URL), with a sidebar reading "app" and another layout.
"""
from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from cluster_gnn.config import MODELS_DIR, XTBConfig
from cluster_gnn.evaluation import baseline_verdict
from cluster_gnn.predict import DEFAULT_MODEL

EVALUATION = MODELS_DIR / "evaluation.json"
PREDICT, EXPLORER, MODEL, DESIGN = ("app_pages/1_Predict.py", "app_pages/2_Explorer.py", "app_pages/3_Model.py",
                                    "app_pages/4_Design.py")


@st.cache_data(show_spinner=False)
def _model_scores(path: str, mtime: float) -> dict | None:
    """The entry of the model behind predictions (:data:`~cluster_gnn.predict.DEFAULT_MODEL`)
    in models/evaluation.json (``mtime`` keys the cache to the file's version)."""
    try:
        table = json.loads(Path(path).read_text(encoding="utf-8"))
        scores = table.get(DEFAULT_MODEL)
    except (OSError, ValueError, AttributeError):
        return None
    return scores if isinstance(scores, dict) else None


def home() -> None:
    st.title("cluster-gnn")
    level = XTBConfig()
    st.markdown(
        "This tool predicts **lg k₁**, the base-10 logarithm of the rate constant k₁ "
        "(cm³ molecule⁻¹ s⁻¹) of the first N₂ uptake by a gas-phase metal cluster such as "
        "Mo₅S₄⁻, from the cluster's 3D structure and its per-atom charges and s/p/d "
        "populations, through an ensemble of graph isomorphism networks (GIN) that also see the "
        "cluster's composition."
    )
    scores = _model_scores(str(EVALUATION), EVALUATION.stat().st_mtime) if EVALUATION.is_file() else None
    theory = (
        f"Structures and atom features come from {level.method} at {level.electronic_temperature:g} K "
        "electronic temperature (not the DFT/NBO level of the original paper)"
    )
    if scores and all(isinstance(scores.get(k), (int, float)) for k in ("r2", "mae", "rmse")):
        st.markdown(
            f"{theory}; in cross-validation on the 159 measured homonuclear clusters the model "
            f"reaches R² = {scores['r2']:.2f}, MAE = {scores['mae']:.2f} and RMSE = {scores['rmse']:.2f} "
            "lg units (details on the Model page)."
        )
        verdict = baseline_verdict(scores)
        if verdict:
            st.markdown(f"{verdict} The Model page also compares the models on held-out metals and "
                        "ligand families.")
    else:
        st.markdown(f"{theory}; the models are not trained yet, so no accuracy can be quoted.")
    st.page_link(PREDICT, label="Predict a cluster", icon=":material/science:")
    st.page_link(DESIGN, label="Design a cluster from its formula", icon=":material/build:")
    st.page_link(EXPLORER, label="Explore the data set", icon=":material/scatter_plot:")
    st.page_link(MODEL, label="Model, data and citations", icon=":material/description:")


# No page_icon and no page icons: Streamlit would fetch a Material or emoji favicon from a
# font CDN, and nothing may leave the machine (tests/test_browser.py checks).
st.set_page_config(page_title="cluster-gnn", layout="wide")
navigation = st.navigation([
    st.Page(home, title="Home", url_path="home", default=True),
    st.Page(PREDICT, title="Predict", url_path="Predict"),
    st.Page(DESIGN, title="Design", url_path="Design"),
    st.Page(EXPLORER, title="Explorer", url_path="Explorer"),
    st.Page(MODEL, title="Model", url_path="Model"),
])
navigation.run()
