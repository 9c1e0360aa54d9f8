"""Does the paper's finding hold on our structures?

The paper (Mou et al., JACS Au 2025): the important subgraphs of active clusters are metal
cores with little charge polarisation; those of inert clusters are mixed metal-ligand
subgraphs with more. This script re-tests it on ``data/descriptors.csv`` (our GFN1-xTB
charges, our GIN's explanations; ``cluster-gnn descriptors`` writes it) for the 159 measured
clusters:

- active: lg(k1) >= -12.0; inert: lg(k1) <= -13.0 (k1 in cm^3 molecule^-1 s^-1; the
  clusters in between are left out), and, as a second look, a median split;
- Mann-Whitney U test (two-sided) of the important-subgraph polarisation and of the
  metal-core polarisation between the groups; Fisher's exact test of how often the
  important subgraph is metal-only;
- how peaked the explanations are: ``importance_contrast``, the top atom's share over the
  mean share (1 = every atom equally important); a subgraph grown to half the importance
  means little when no atom stands out (contrast under ``cluster_gnn.explain.EVEN_IMPORTANCE``,
  the threshold the Predict page and ``cluster-gnn explain`` use);
- a plot, docs/polarization.png.

    python benchmarks/polarization_analysis.py [--table data/descriptors.csv] [--charges xtb|dft]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from scipy.stats import fisher_exact, mannwhitneyu, spearmanr

from cluster_gnn.explain import EVEN_IMPORTANCE

ACTIVE, INERT = -12.0, -13.0


def compare(df, active, inert, label):
    out = {"split": label, "n_active": int(active.sum()), "n_inert": int(inert.sum())}
    for col in ("subgraph_polarization", "metal_core_polarization", "charge_spread"):
        a, b = df.loc[active, col].dropna(), df.loc[inert, col].dropna()
        test = mannwhitneyu(a, b, alternative="two-sided")
        out[col] = {"median_active": float(a.median()), "median_inert": float(b.median()), "p": float(test.pvalue)}
    metal_only = df["subgraph_composition"] == "metal-only"
    table = [[int((metal_only & active).sum()), int((~metal_only & active).sum())],
             [int((metal_only & inert).sum()), int((~metal_only & inert).sum())]]
    odds, p = fisher_exact(table)
    out["metal_only_subgraph"] = {"active": table[0], "inert": table[1], "odds_ratio": float(odds), "p": float(p)}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=Path("data/descriptors.csv"))
    parser.add_argument("--json", type=Path, default=None,
                        help="output (default models/polarization.json; -dft.json with --charges dft)")
    parser.add_argument("--charges", choices=("xtb", "dft"), default="xtb",
                        help="xtb: GFN1-xTB charges for every cluster (default); dft: PBE NPA charges, only "
                             "the clusters the DFT job has done")
    args = parser.parse_args(argv)
    args.json = args.json or Path("models/polarization.json" if args.charges == "xtb" else "models/polarization-dft.json")
    df = pd.read_csv(args.table)
    df = df[df["lg_k1"].notna()].copy()
    if "model" in df:  # the finding is about the graph model's explanations of one-metal clusters
        df = df[df["model"] == "gin"].copy()
    source = None
    columns = ("subgraph_polarization", "metal_core_polarization", "charge_spread")
    if args.charges == "xtb" and all(f"{c}_xtb" in df for c in columns):  # one level of theory for all
        for c in columns:
            df[c] = df[f"{c}_xtb"]
        source = "GFN1-xTB/5000K Mulliken"
        print(f"charges: {source} ({len(df)} clusters)")
    elif "charge_source" in df:  # one level of theory for every charge compared
        source = (df["charge_source"].mode()[0] if args.charges == "xtb"
                  else next((s for s in df["charge_source"].unique() if "NPA" in s), "none"))
        left_out = int((df["charge_source"] != source).sum())
        df = df[df["charge_source"] == source].copy()
        print(f"charges: {source} ({len(df)} clusters; {left_out} with other charges left out)")
    results = [compare(df, df.lg_k1 >= ACTIVE, df.lg_k1 <= INERT, f"lg k1 >= {ACTIVE} vs <= {INERT}")]
    median = df.lg_k1.median()
    results.append(compare(df, df.lg_k1 > median, df.lg_k1 <= median, f"median split at {median:.2f}"))
    rho = spearmanr(df.subgraph_polarization, df.lg_k1, nan_policy="omit")
    summary = {"n": len(df), "spearman_subgraph_polarization_vs_lg_k1": [float(rho.statistic), float(rho.pvalue)],
               "comparisons": results,
               "mean_member_stability": float(df.member_stability.mean()),
               "mean_method_agreement": float(df.method_agreement.mean())}
    if "importance_method" in df:
        summary["method"] = str(df.importance_method.iloc[0])
    if source:
        summary["charge_source"] = source
    if "importance_contrast" in df:
        contrast = df.importance_contrast
        summary["importance_contrast"] = {"median": float(contrast.median()),
                                          "p10": float(contrast.quantile(0.1)), "p90": float(contrast.quantile(0.9)),
                                          "even_threshold": EVEN_IMPORTANCE,
                                          "share_even": float((contrast < EVEN_IMPORTANCE).mean())}
    for r in results:
        print(f"{r['split']}: {r['n_active']} active, {r['n_inert']} inert")
        for col in ("subgraph_polarization", "metal_core_polarization", "charge_spread"):
            c = r[col]
            print(f"  {col:24s} median active {c['median_active']:.3f} e, inert {c['median_inert']:.3f} e, "
                  f"Mann-Whitney p = {c['p']:.3g}")
        m = r["metal_only_subgraph"]
        print(f"  metal-only important subgraph: active {m['active'][0]}/{sum(m['active'])}, inert "
              f"{m['inert'][0]}/{sum(m['inert'])}, Fisher p = {m['p']:.3g}")
    print(f"Spearman(subgraph polarisation, lg k1) = {rho.statistic:.2f} (p = {rho.pvalue:.2g}); "
          f"explanations: member stability {summary['mean_member_stability']:.2f}, "
          f"method agreement {summary['mean_method_agreement']:.2f} (mean Spearman)")
    if "importance_contrast" in summary:
        c = summary["importance_contrast"]
        print(f"importance contrast (top share / mean share): median {c['median']:.2f}, 10-90 % "
              f"{c['p10']:.2f}-{c['p90']:.2f}; {100 * c['share_even']:.0f} % of clusters below {c['even_threshold']:g} "
              "(no atom stands out)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=1) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for comp, marker in (("metal-only", "o"), ("mixed", "s"), ("ligand-only", "^")):
        sel = df.subgraph_composition == comp
        axes[0].scatter(df.subgraph_polarization[sel], df.lg_k1[sel], marker=marker, s=18, label=comp)
    axes[0].axhline(ACTIVE, ls="--", c="grey", lw=0.8)
    axes[0].axhline(INERT, ls="--", c="grey", lw=0.8)
    axes[0].set_xlabel("charge polarisation of the important subgraph / e")
    axes[0].set_ylabel("measured lg k1")
    axes[0].legend(fontsize=8)
    groups = [df.loc[df.lg_k1 >= ACTIVE, "subgraph_polarization"], df.loc[df.lg_k1 <= INERT, "subgraph_polarization"]]
    axes[1].boxplot(groups)
    axes[1].set_xticks([1, 2], [f"active (n={len(groups[0])})", f"inert (n={len(groups[1])})"])
    axes[1].set_ylabel("subgraph polarisation / e")
    axes[1].set_title(f"Mann-Whitney p = {results[0]['subgraph_polarization']['p']:.2g}")
    fig.tight_layout()
    fig.savefig(args.json.with_suffix(".png"), dpi=110)
    print("wrote", args.json.with_suffix(".png"), "and", args.json)


if __name__ == "__main__":
    main()
