"""Model page: evaluation table, level of theory, data sources and citations."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from cluster_gnn.config import DATA_DIR, MODELS_DIR, SearchConfig, XTBConfig
from cluster_gnn.datasets import CITATION
from cluster_gnn.viewer import THREEDMOL_VERSION

EVALUATION = MODELS_DIR / "evaluation.json"


@st.cache_data(show_spinner=False)
def evaluation(path: str, mtime: float) -> pd.DataFrame | None:
    """models/evaluation.json as a table, one row per model (``mtime`` keys the cache)."""
    try:
        scores = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    rows = {name: values for name, values in scores.items() if isinstance(values, dict)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model").reset_index() if rows else None


def main() -> None:
    st.title("Model, data and level of theory")
    xtb, search = XTBConfig(), SearchConfig()

    st.header("Accuracy")
    scores = evaluation(str(EVALUATION), EVALUATION.stat().st_mtime) if EVALUATION.is_file() else None
    if scores is None:
        st.info("The models are not trained yet: models/evaluation.json does not exist.")
    else:
        st.caption("Cross-validation on the 159 measured homonuclear clusters (the authors' 10 folds); "
                   "errors in lg k₁ units (k₁ in cm³ molecule⁻¹ s⁻¹).")
        st.dataframe(scores, hide_index=True,
                     column_config={c: st.column_config.NumberColumn(format="%.3f")
                                    for c in scores.select_dtypes("number").columns})

    st.header("Level of theory")
    st.markdown(
        f"- Structures: our own global-minimum search with **{xtb.method}** "
        f"({search.n_starts} random starts per spin state, FIRE to {search.fmax} eV/Å, basin hopping), "
        "in the authors' spin multiplicity for the homonuclear clusters.\n"
        f"- Atom features: one **{xtb.method}** single point (tblite), Fermi smearing at "
        f"**{xtb.electronic_temperature:g} K** electronic temperature, spin-restricted with 2S unpaired "
        "electrons: Mulliken partial charges and s/p/d shell populations per atom.\n"
        "- This is **not** the DFT/NBO level of the original paper; the authors' NBO descriptors are "
        "used only as baselines and as a check of our charges.\n"
        "- Model: a graph isomorphism network (GIN) whose nodes are the cluster's atoms, carrying "
        "these features."
    )

    st.header("Data and citations")
    st.markdown(
        f"- Measured rates, folds and spin multiplicities: {CITATION}.\n"
        "- GFN1-xTB: S. Grimme, C. Bannwarth, P. Shushkov, J. Chem. Theory Comput. 2017, 13, 1989-2009, "
        "doi:10.1021/acs.jctc.7b00118; computed with tblite.\n"
        "- GIN: K. Xu, W. Hu, J. Leskovec, S. Jegelka, How Powerful are Graph Neural Networks?, ICLR 2019.\n"
        f"- 3D viewer: 3Dmol.js {THREEDMOL_VERSION} (BSD-3-Clause), N. Rego, D. Koes, Bioinformatics "
        "2015, 31, 1322-1324, doi:10.1093/bioinformatics/btu829; served from this app, no external requests."
    )
    readme = DATA_DIR / "README.md"
    if readme.is_file():
        with st.expander("data/README.md: what each table holds"):
            st.markdown(readme.read_text(encoding="utf-8"))


main()
