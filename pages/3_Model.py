"""Model page: evaluation table, level of theory, data sources and citations."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from cluster_gnn.config import DATA_DIR, MODELS_DIR, SearchConfig, XTBConfig
from cluster_gnn.datasets import CITATION
from cluster_gnn.descriptors import polarization_finding_text as finding_text
from cluster_gnn.evaluation import comparison_lines, evaluation_table
from cluster_gnn.mixtures import transfer_table
from cluster_gnn.viewer import THREEDMOL_VERSION

@st.cache_data(show_spinner=False)
def evaluation(split: str, mtime: float) -> pd.DataFrame | None:
    """The committed evaluation of one split (``mtime`` keys the cache to the file's version)."""
    return transfer_table(split) if split in ("mixtures", "family") else evaluation_table(split)


def _mtime(split: str) -> float:
    path = MODELS_DIR / ("evaluation.json" if split == "folds" else f"evaluation-{split}.json")
    return path.stat().st_mtime if path.is_file() else 0.0


def main() -> None:
    st.title("Model, data and level of theory")
    xtb, search = XTBConfig(), SearchConfig()

    st.header("Accuracy")
    captions = {
        "folds": "The authors' 10 published folds: pooled out-of-fold figures over the 159 measured "
                 "homonuclear clusters; split_mean_mae is the fold-mean MAE. The authors' descriptor "
                 "models score pooled R² about 0.59 and fold-mean MAE about 0.75 on these folds.",
        "mixtures": "Train on the 159 homonuclear clusters, predict the 24 measured mixed ones (Fe-V-C, "
                    "Fe-V-S, Fe-Ta-C): how a model combines two metals it has never seen together. The "
                    "model behind predictions for new metal mixtures is chosen here.",
        "family": "Leave one family (metal set x ligand set, e.g. Ta-C, Fe-V-C) out over all 183 measured "
                  "clusters: every model is trained without the held-out family.",
    }
    shown = False
    for split, caption in captions.items():
        table = evaluation(split, _mtime(split))
        if table is None:
            continue
        shown = True
        st.subheader({"folds": "Published folds", "mixtures": "New metal mixtures",
                      "family": "Leave one family out"}[split])
        st.caption(caption + " Errors in lg k₁ units (k₁ in cm³ molecule⁻¹ s⁻¹); coverage90: share of "
                   "measured values inside the ensemble's 90 % interval.")
        st.dataframe(table, hide_index=True,
                     column_config={c: st.column_config.NumberColumn(format="%.3f")
                                    for c in ("r2", "mae", "rmse", "split_mean_mae", "coverage90", "mean_std")})
        lines = comparison_lines(split)
        if lines:
            st.markdown("Is a difference real? With 159 clusters the test set itself is noisy, and so is "
                        "the boosting's randomness:\n" + "\n".join(f"- {line}" for line in lines))
    if not shown:
        st.info("The models are not trained yet: models/evaluation.json does not exist.")
    finding = MODELS_DIR / "polarization.json"
    if finding.is_file():
        st.header("The paper's finding, re-tested")
        st.markdown(finding_text(finding))
        figure = finding.with_suffix(".png")
        if figure.is_file():
            st.image(str(figure))

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
        "these features, trained also to reproduce the authors' NBO descriptors (multi-task); its "
        "readout also sees the cluster's composition (atom counts and ligands per metal, as numbers "
        "and as one-hot classes) and cluster-level xTB descriptors. It makes our predictions, except for a "
        "cluster that mixes two metals no training cluster mixes: there the GIN does not transfer (held-out "
        "mixed clusters), and the metals' average rates moved by stoichiometry and spin (prior_blend) do "
        "better; see 'New metal mixtures' above."
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
