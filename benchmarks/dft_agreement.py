"""How closely our PBE natural charges follow the authors' DFT-NBO descriptors, and where not.

Compares ``data/features/dft_descriptors.csv`` (written by ``cluster-gnn dft --tables-only``:
one row per cluster with a finished DFT record at its current structure; the PBE-lowest isomer
where the isomer stage has ranked the cluster, else the committed xTB minimum) with the
authors' published values (:func:`cluster_gnn.dft_agreement.authors_agreement`; for the mixed
clusters the authors give no ``1_Qmax`` and ``2_Qave`` is their ``2_Q`` over the metal atoms).
GFN1-xTB Mulliken metal charges at the committed structures are compared on the same clusters
for reference.

Per descriptor: Pearson r and n, and for ``2_Qave`` the mean |ours - authors|, over all
clusters with a record and by subset (one-metal / mixed, structure the NPA was taken at,
ligand, metal).

    python benchmarks/dft_agreement.py [--write]

``--write`` saves ``benchmarks/results/dft_agreement.csv``.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
XTB = ("2_Qave", "1_Qmax", "1_Qmin")  # the charge descriptors xTB gives at the same structures


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


def agreement() -> pd.DataFrame:
    """:func:`~cluster_gnn.dft_agreement.authors_agreement` with ``xTB <d> r`` columns beside."""
    from cluster_gnn.config import DATA_DIR
    from cluster_gnn.dft_agreement import agreement_subsets, authors_agreement, authors_values, pearson

    ours = pd.read_csv(DATA_DIR / "features" / "dft_descriptors.csv")
    table = authors_agreement(ours)
    # the same subsets again, xTB against the authors
    names = ours["cluster"].to_numpy()
    xtb, theirs = xtb_values(names), authors_values(names)
    masks = [mask for _, mask in agreement_subsets(ours)]
    for d in XTB:
        table[f"xTB {d} r"] = [pearson(xtb.loc[names[m], d], theirs.loc[names[m], d])[0] for m in masks]
    return table


def print_table(table: pd.DataFrame, total: int) -> None:
    from cluster_gnn.dft_agreement import AGREEMENT_DESCRIPTORS

    print(f"{table.loc[0, 'clusters']} of {total} clusters with a current DFT record")
    print("Pearson r with the authors (n); xTB Mulliken at the committed structures after the slash\n")
    print("| subset | clusters | " + " | ".join(AGREEMENT_DESCRIPTORS) + " | 2_Qave mean abs. diff. (e) |")
    print("|---" * (len(AGREEMENT_DESCRIPTORS) + 3) + "|")
    for _, row in table.iterrows():
        cells = []
        for d in AGREEMENT_DESCRIPTORS:
            cell = "–" if math.isnan(row[f"{d} r"]) else f"{row[f'{d} r']:.2f} ({row[f'{d} n']})"
            if d in XTB and not math.isnan(row[f"xTB {d} r"]):
                cell += f" / {row[f'xTB {d} r']:.2f}"
            cells.append(cell)
        print(f"| {row['subset']} | {row['clusters']} | " + " | ".join(cells) + f" | {row['2_Qave mad']:.3f} |")


def main(argv=None):
    from cluster_gnn.datasets import load_clusters

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="save benchmarks/results/dft_agreement.csv")
    args = parser.parse_args(argv)
    table = agreement()
    print_table(table, len(load_clusters()))
    if args.write:
        RESULTS.mkdir(exist_ok=True)
        table.round(3).to_csv(RESULTS / "dft_agreement.csv", index=False, lineterminator="\n")


if __name__ == "__main__":
    main()
