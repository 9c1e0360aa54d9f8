"""How closely our PBE natural charges follow the authors' DFT-NBO descriptors, and where not.

Compares ``data/features/dft_descriptors.csv`` (written by ``cluster-gnn dft --tables-only``:
one row per cluster with a finished DFT record at its current structure; the PBE-lowest isomer
where the isomer stage has ranked the cluster, else the committed xTB minimum) with the
authors' published values (``data/nbo_descriptors.csv``; for the mixed clusters they published
``1_Qmin``, ``2_Q``, ``2_nsave``, ``2_ndave`` and ``2_σave``, so ``2_Qave`` = ``2_Q`` / metal
atoms and ``1_Qmax`` is missing). GFN1-xTB Mulliken charges at the committed structures are
compared on the same clusters for reference.

Per descriptor: Pearson r, mean |ours - authors| and n, over all clusters with a record and by
subset (one-metal / mixed, structure the NPA was taken at, ligand, metal).

    python benchmarks/dft_agreement.py [--write]

``--write`` saves ``benchmarks/results/dft_agreement.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
DESCRIPTORS = ["2_Qave", "1_Qmax", "1_Qmin", "2_nsave", "2_ndave", "2_σave"]
XTB = ["2_Qave", "1_Qmax", "1_Qmin"]  # charge descriptors xTB gives at the same structures
MIN_N = 5  # smaller subsets get no r


def authors_values() -> pd.DataFrame:
    """The authors' descriptors indexed by cluster name, ``2_Qave`` filled for the mixed clusters."""
    from cluster_gnn.datasets import load_clusters, load_nbo_descriptors

    nbo = load_nbo_descriptors().set_index("name")
    clusters = load_clusters().set_index("name")
    metal_atoms = clusters.loc[nbo.index, "formula"].map(_metal_atoms)
    nbo["2_Qave"] = nbo["2_Qave"].fillna(nbo["2_Q"] / metal_atoms)
    return nbo[DESCRIPTORS]


def _metal_atoms(formula: str) -> int:
    from ase.formula import Formula

    from cluster_gnn.structures import is_metal

    return sum(k for e, k in Formula(formula).count().items() if is_metal(e))


def xtb_values(names) -> pd.DataFrame:
    """Metal charge descriptors from the committed GFN1-xTB Mulliken charges."""
    from cluster_gnn.electronic import load_feature_tables
    from cluster_gnn.structures import is_metal

    feats = load_feature_tables()
    rows = {}
    for n in names:
        atoms, f = feats[n]
        q = np.asarray(f.charges, float)[[is_metal(s) for s in atoms.get_chemical_symbols()]]
        rows[n] = {"2_Qave": q.mean(), "1_Qmax": q.max(), "1_Qmin": q.min()}
    return pd.DataFrame.from_dict(rows, orient="index")


def _stats(ours: pd.Series, theirs: pd.Series) -> dict:
    pair = pd.concat([ours, theirs], axis=1).dropna().to_numpy(float)
    n = len(pair)
    r = float(np.corrcoef(pair[:, 0], pair[:, 1])[0, 1]) if n >= MIN_N and pair.std(0).min() > 0 else None
    return {"n": n, "r": None if r is None else round(r, 3),
            "mae": round(float(np.abs(pair[:, 0] - pair[:, 1]).mean()), 3) if n else None}


def agreement() -> dict:
    from cluster_gnn.config import DATA_DIR
    from cluster_gnn.datasets import load_clusters

    ours = pd.read_csv(DATA_DIR / "features" / "dft_descriptors.csv").set_index("cluster")
    clusters = load_clusters().set_index("name")
    theirs = authors_values().loc[ours.index]
    xtb = xtb_values(ours.index)
    info = clusters.loc[ours.index]
    structure = np.where(ours["structure"].str.startswith("PBE"), "PBE-ranked isomer", "xTB minimum")
    ligand = info["ligands"].fillna("").replace("", "none").str.replace(";", "–")
    subsets = {"all": np.ones(len(ours), bool),
               "one-metal": (info["kind"] == "homonuclear").to_numpy(),
               "mixed": (info["kind"] != "homonuclear").to_numpy()}
    subsets |= {f"structure: {s}": structure == s for s in ("xTB minimum", "PBE-ranked isomer")}
    subsets |= {f"ligand: {g}": (ligand == g).to_numpy() for g in sorted(ligand.unique())}
    subsets |= {f"metal: {m}": (info["metals"].str.replace(";", "–") == m).to_numpy()
                for m in sorted(info["metals"].unique())}
    out = {"clusters_with_record": int(len(ours)), "clusters": int(len(clusters)), "subsets": {}}
    for label, mask in subsets.items():
        if not mask.any():
            continue
        idx = ours.index[mask]
        row = {"n_clusters": int(mask.sum())}
        row["ours"] = {k: _stats(ours.loc[idx, k], theirs.loc[idx, k]) for k in DESCRIPTORS}
        row["xTB"] = {k: _stats(xtb.loc[idx, k], theirs.loc[idx, k]) for k in XTB}
        out["subsets"][label] = row
    return out


def _fmt(s: dict) -> str:
    return "–" if s["r"] is None else f"{s['r']:.2f} ({s['n']})"


def print_table(result: dict) -> None:
    print(f"{result['clusters_with_record']} of {result['clusters']} clusters with a current DFT record")
    print("Pearson r with the authors (n); xTB Mulliken on the same clusters after the slash\n")
    print("| subset | clusters | " + " | ".join(DESCRIPTORS) + " | 2_Qave mean abs. diff. (e) |")
    print("|---" * (len(DESCRIPTORS) + 3) + "|")
    for label, row in result["subsets"].items():
        cells = []
        for k in DESCRIPTORS:
            cell = _fmt(row["ours"][k])
            if k in XTB and row["xTB"][k]["r"] is not None:
                cell += f" / {row['xTB'][k]['r']:.2f}"
            cells.append(cell)
        mae = row["ours"]["2_Qave"]["mae"]
        print(f"| {label} | {row['n_clusters']} | " + " | ".join(cells) + f" | {'–' if mae is None else mae} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="save benchmarks/results/dft_agreement.json")
    args = parser.parse_args(argv)
    result = agreement()
    print_table(result)
    if args.write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "dft_agreement.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
