"""Model page: a plain paragraph on how good the model is (cluster_gnn.summary), then the
evaluation tables, the paper's finding, the level of theory and the sources, folded."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from cluster_gnn.config import DATA_DIR, MODELS_DIR, SearchConfig, XTBConfig
from cluster_gnn.datasets import CITATION, load_clusters
from cluster_gnn.descriptors import polarization_finding_text as finding_text
from cluster_gnn.evaluation import MODEL_DESCRIPTIONS, comparison_lines, evaluation_table
from cluster_gnn.mixtures import TRANSFER_DESCRIPTIONS, transfer_table
from cluster_gnn.summary import COLUMN_NAMES, model_summary
from cluster_gnn.viewer import THREEDMOL_VERSION

SPLITS = {
    "folds": ("How well it predicts clusters it never saw (the authors' 10 folds)",
              "Each of the 159 measured homonuclear clusters is predicted by models trained without it, on the "
              "authors' published folds. The authors' DFT descriptor models score R² about 0.59 and a mean error "
              "about 0.75 on these folds."),
    "mixtures": ("How well it predicts new metal mixtures",
                 "Trained on the 159 homonuclear clusters only, every model predicts the 24 measured mixed clusters "
                 "(Fe-V-C, Fe-V-S, Fe-Ta-C): how a model combines two metals it has never seen together. The model "
                 "behind predictions for mixed clusters is chosen here."),
    "family": ("How well it predicts a whole family left out",
               "One family (metal set x ligand set, e.g. Ta-C or Fe-V-C) at a time is left out of training over "
               "all 183 measured clusters, and predicted."),
}


@st.cache_data(show_spinner=False)
def evaluation(split: str, mtime: float) -> pd.DataFrame | None:
    """The committed evaluation of one split (``mtime`` keys the cache to the file's version)."""
    return transfer_table(split) if split in ("mixtures", "family") else evaluation_table(split)


@st.cache_data(show_spinner=False)
def summary(mtime: float) -> str | None:
    return model_summary()


def _mtime(split: str) -> float:
    path = MODELS_DIR / ("evaluation.json" if split == "folds" else f"evaluation-{split}.json")
    return path.stat().st_mtime if path.is_file() else 0.0


def plain(line: str, split: str) -> str:
    """A comparison line with each model's short name followed by what it is."""
    names = {**MODEL_DESCRIPTIONS, **TRANSFER_DESCRIPTIONS} if split in ("mixtures", "family") else \
        {**TRANSFER_DESCRIPTIONS, **MODEL_DESCRIPTIONS}
    for key in sorted(names, key=len, reverse=True):
        line = line.replace(f"**{key}**", f"**{key}** ({names[key]})")
    return line


@st.cache_data(show_spinner=False)
def dft_agreement(mtime: float) -> pd.DataFrame | None:
    """Agreement of the committed DFT descriptors with the authors' (``mtime`` keys the cache)."""
    from cluster_gnn.dft_agreement import authors_agreement

    path = DATA_DIR / "features" / "dft_descriptors.csv"
    return authors_agreement(pd.read_csv(path)) if path.is_file() else None


@st.cache_data(show_spinner=False)
def clusters_with_dft_atoms(mtime: float) -> int:
    """How many clusters have per-atom DFT values at the drawn structure (``mtime`` keys the cache)."""
    from cluster_gnn.dft_job import load_dft_atoms

    return len(load_dft_atoms())


@st.cache_data(show_spinner=False)
def dft_pairs(mtime: float) -> pd.DataFrame:
    """Our mean metal charge against the authors', per cluster (``mtime`` keys the cache)."""
    from cluster_gnn.dft_agreement import authors_pairs

    return authors_pairs(pd.read_csv(DATA_DIR / "features" / "dft_descriptors.csv"))


def parity_chart(pairs: pd.DataFrame) -> alt.Chart:
    """Ours against the authors' mean metal charge, coloured by the structure the NPA was taken at."""
    lo = float(min(pairs["ours"].min(), pairs["authors"].min())) - 0.05
    hi = float(max(pairs["ours"].max(), pairs["authors"].max())) + 0.05
    scale = alt.Scale(domain=[lo, hi])
    diagonal = alt.Chart(pd.DataFrame({"x": [lo, hi], "y": [lo, hi]})).mark_line(
        color="grey", strokeDash=[4, 4]).encode(x=alt.X("x:Q", scale=scale), y=alt.Y("y:Q", scale=scale))
    points = alt.Chart(pairs).mark_point(filled=True, size=60).encode(
        x=alt.X("authors:Q", scale=scale, title="authors' mean metal NBO charge (e)"),
        y=alt.Y("ours:Q", scale=scale, title="our mean metal NPA charge (e)"),
        color=alt.Color("structure:N", title="structure"), shape=alt.Shape("ligand:N", title="ligands"),
        tooltip=["cluster", alt.Tooltip("ours:Q", format=".2f"), alt.Tooltip("authors:Q", format=".2f"),
                 "structure", "ligand"])
    return (diagonal + points).properties(height=360)


def _structure_sentence(table: pd.DataFrame) -> str:
    """The mean metal charge's r at PBE-ranked isomers against at xTB minima, when both are known."""
    by = table.set_index("subset")
    if not {"PBE-ranked isomer", "xTB minimum"} <= set(by.index):
        return ""
    pbe, xtb = by.loc["PBE-ranked isomer"], by.loc["xTB minimum"]
    if pd.isna(pbe["2_Qave r"]) or pd.isna(xtb["2_Qave r"]):
        return ""
    return (f" Mean metal charge: r = {pbe['2_Qave r']:.2f} over the {int(pbe['clusters'])} clusters taken at "
            f"their PBE-ranked isomer, {xtb['2_Qave r']:.2f} over the {int(xtb['clusters'])} at our xTB minimum, "
            "where carbide chains and terminal ligands set ours apart.")


def dft_section() -> None:
    """Where the charges come from, and how well ours follow the authors' NBO charges."""
    path = DATA_DIR / "features" / "dft_descriptors.csv"
    table = dft_agreement(path.stat().st_mtime if path.is_file() else 0.0)
    if table is None or table.empty:
        return
    n, total = int(table.loc[0, "clusters"]), len(load_clusters())
    atoms_path = DATA_DIR / "features" / "dft_atoms.csv"
    drawn = clusters_with_dft_atoms(atoms_path.stat().st_mtime if atoms_path.is_file() else 0.0)
    done = f"all {total}" if n == total else f"{n} of {total}"
    with st.expander(f"DFT charges: {done} clusters{'' if n == total else ' so far'}, "
                     "and how they compare with the authors'"):
        st.markdown(
            f"A background job computes PBE/def2-SVP single points with natural population analysis (NPA, "
            f"PySCF) for the bundled clusters; {done} have one, {drawn} of them at the structure the app "
            "draws. Where a cluster has one there, the Explorer's "
            "metal charges and the charge-polarisation descriptors use it (the column *charge source* says "
            "which); elsewhere they are GFN1-xTB Mulliken charges. For sulfides, carbides and nitrides the job "
            "also ranks ligand arrangements by PBE energy; this table takes the NPA at the lowest one where it "
            "differs from ours (*PBE-ranked isomer*), while the Explorer and the 3D views keep the committed "
            "structure. The table compares our NPA descriptors with the authors' NBO ones "
            "(Pearson r over the clusters of each row; the authors give no most positive metal charge for "
            "mixed clusters)." + _structure_sentence(table))
        cols = {"2_Qave r": "mean metal charge r", "1_Qmax r": "most positive metal charge r",
                "1_Qmin r": "most negative metal charge r", "2_Qave mad": "mean metal charge, mean |diff.| (e)"}
        view = table[["subset", "clusters", *cols]].rename(columns=cols)
        st.dataframe(view, hide_index=True, key="dft_agreement",
                     column_config={c: st.column_config.NumberColumn(format="%.2f") for c in cols.values()})
        st.altair_chart(parity_chart(dft_pairs(path.stat().st_mtime)), width="stretch")


def accuracy() -> bool:
    shown = False
    for split, (title, caption) in SPLITS.items():
        table = evaluation(split, _mtime(split))
        if table is None:
            continue
        shown = True
        with st.expander(title, expanded=False):
            st.caption(caption + " Errors are in lg units (k₁ in cm³ molecule⁻¹ s⁻¹): 1 means a factor of 10 in "
                       "k₁. The short names are explained in the model column.")
            columns = ["description"] + [c for c in table.columns if c != "description"]
            view = table[columns].rename(columns=COLUMN_NAMES)
            st.dataframe(view, hide_index=True, key=f"eval_{split}",
                         column_config={COLUMN_NAMES[c]: st.column_config.NumberColumn(format="%.2f")
                                        for c in ("r2", "mae", "rmse", "split_mean_mae", "coverage90", "mean_std")})
            lines = comparison_lines(split)
            if lines:
                st.markdown("Is a difference real? With 159 clusters the test set itself is noisy, and so is the "
                            "simpler models' randomness:\n" + "\n".join(f"- {plain(line, split)}" for line in lines))
    return shown


def main() -> None:
    st.title("Model")
    xtb, search = XTBConfig(), SearchConfig()
    evaluation_file = MODELS_DIR / "evaluation.json"
    text = summary(evaluation_file.stat().st_mtime if evaluation_file.is_file() else 0.0)
    if text:
        st.markdown(text)
    st.header("Details")
    if not accuracy():
        st.info("The models are not trained yet: models/evaluation.json does not exist.")
    findings = {"GFN1-xTB charges": MODELS_DIR / "polarization.json",
                "PBE/def2-SVP NPA charges": MODELS_DIR / "polarization-dft.json"}
    findings = {label: path for label, path in findings.items() if path.is_file()}
    if findings:
        with st.expander("The paper's finding (active clusters have evenly charged metal cores), re-tested"):
            for tab, (label, finding) in zip(st.tabs(list(findings)), findings.items()):
                with tab:
                    st.markdown(finding_text(finding))
                    figure = finding.with_suffix(".png")
                    if figure.is_file():
                        st.image(str(figure))

    dft_section()

    with st.expander("Level of theory and how the model is built"):
        st.markdown(
            f"- Structures: our own global-minimum search with **{xtb.method}** "
            f"({search.n_starts} random starts per spin state, FIRE to {search.fmax} eV/Å, basin hopping), "
            "in the authors' spin multiplicity (published for the homonuclear clusters, implied by their "
            "mean metal spin density for the mixed ones).\n"
            f"- Atom features: one **{xtb.method}** single point (tblite), Fermi smearing at "
            f"**{xtb.electronic_temperature:g} K** electronic temperature, spin-restricted with 2S unpaired "
            "electrons: Mulliken partial charges and s/p/d shell populations per atom.\n"
            "- This is **not** the DFT/NBO level of the original paper; the authors' NBO descriptors are "
            "used only as baselines and as a check of our charges.\n"
            "- Model: a graph isomorphism network (GIN) whose nodes are the cluster's atoms, carrying "
            "these features, trained also to reproduce the authors' NBO descriptors (multi-task); its "
            "readout also sees the cluster's composition (atom counts and ligands per metal) and "
            "cluster-level xTB descriptors. It makes our predictions, except for a cluster that mixes metals: "
            "there the GIN does not transfer, and the metals' average rates adjusted for stoichiometry and spin "
            "(short name prior_blend) do better; see 'How well it predicts new metal mixtures'."
        )

    with st.expander("Data and citations"):
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
        with st.expander("What each data table holds (data/README.md)"):
            st.markdown(readme.read_text(encoding="utf-8"))


main()
