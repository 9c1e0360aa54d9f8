"""Command-line interface: ``cluster-gnn <command> ...`` (also ``python -m cluster_gnn``).

Each subcommand is a small class with ``add_arguments`` and ``run``; heavy imports
(torch, tblite, pandas) happen inside ``run`` so ``--help`` stays fast. ``main`` catches
only :class:`~cluster_gnn.errors.ClusterGNNError`, prints its one-line message and
returns a non-zero exit code.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .errors import ClusterGNNError
from .parallel import compute_threads
from .limits import (FlagError, FlagParser, check_charge, check_integer, check_members, check_multiplicity, check_timeout, check_workers,
                     flag)

__all__ = ["main"]


from .cli_build import BUILD_COMMANDS, Subcommand


class Evaluate(Subcommand):
    name = "evaluate"
    help = "score every model and descriptor baseline on the published folds and the proxy splits"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--json", action="store_true", help="print the full JSON object")
        parser.add_argument("--models", nargs="+", default=["gin", "gcn", "consensus"],
                            help="models: ensembles under models/ and consensus")
        parser.add_argument("--no-baselines", action="store_true", help="skip the descriptor baselines")
        parser.add_argument("--baseline-seeds", type=flag(check_integer, "baseline seeds", 2, 100), default=None,
                            help="random states the best descriptor baseline is refitted with for its spread "
                                 "(folds; default 10)")
        parser.add_argument("--split", choices=["folds", "mixtures", "family", "metal", "ligand", "all"],
                            default="folds",
                            help="the authors' folds (default); mixtures: train on the 159 homonuclear "
                                 "clusters, predict the 24 measured mixed ones; family: leave one family "
                                 "(metal set x ligand set) out over all 183; metal / ligand: the older "
                                 "homonuclear proxies; all: folds, mixtures and family (graph models are "
                                 "retrained per held-out set)")
        parser.add_argument("--write", action="store_true",
                            help="also write models/evaluation[-SPLIT].json (and data/predictions/oof.csv for folds)")

    @classmethod
    def run(cls, args):
        import torch

        from .evaluation import evaluate, write_evaluation
        from .mixtures import TRANSFER_SPLITS, evaluate_transfer, transfer_table, write_transfer
        from .predict import DEFAULT_MODEL

        torch.set_num_threads(compute_threads())
        splits = ("folds",) + TRANSFER_SPLITS if args.split == "all" else (args.split,)
        everything = {}
        for split in splits:
            if split in TRANSFER_SPLITS:
                graph_models = [m for m in args.models if m in ("gin", "gcn")]
                results, preds = evaluate_transfer(split, graph_models, progress=not args.json)
                if args.write:
                    write_transfer(split, results)
                if not args.json:
                    print(f"split: {split} ({next(iter(preds.values())).__len__()} measured clusters held out)")
                    print(transfer_table(results).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
                    print(f"chosen (the model behind predictions): {results['chosen']}\n")
            else:
                results, preds = evaluate(split, args.models, not args.no_baselines, with_predictions=True,
                                          progress=not args.json, baseline_seeds=args.baseline_seeds)
                if args.write:
                    write_evaluation(results, preds, split=split)
                if not args.json:
                    cls._print_split(split, results)
                results = {**results, "chosen": DEFAULT_MODEL}
            everything[split] = results
        if args.json:
            print(json.dumps(everything if args.split == "all" else everything[args.split], indent=2))
        return 0

    @staticmethod
    def _print_split(split, results):
        groups = sorted(next(iter(results.values()))["per_split"], key=lambda k: (len(k), k))
        head = f"{'model':24s} {'R2':>6s} {'MAE':>6s} {'RMSE':>6s} {'split MAE':>9s} {'cover90':>7s} {'std':>5s}"
        if split != "folds":
            head += "  " + " ".join(f"{g[:7]:>7s}" for g in groups)
        print(f"split: {split} (pooled over {next(iter(results.values()))['n']} measured clusters; "
              "per-group columns are MAE)")
        print(head)
        for name, r in results.items():
            if not isinstance(r, dict):
                continue
            cover = f"{r['coverage90']:.2f}" if "coverage90" in r else ""
            std = f"{r['mean_std']:.2f}" if "mean_std" in r else ""
            line = (f"{name:24s} {r['r2']:6.3f} {r['mae']:6.3f} {r['rmse']:6.3f} {r['fold_mean_mae']:9.3f} "
                    f"{cover:>7s} {std:>5s}")
            if split != "folds":
                line += "  " + " ".join(f"{r['per_split'][g]['mae']:7.2f}" for g in groups)
            print(line)
        for name, r in results.items():
            if "seed_spread" in r:
                s = r["seed_spread"]
                print(f"{name} refitted with {s['seeds']} random states: R2 {s['r2_mean']:.3f} +- {s['r2_sd']:.3f} "
                      f"({s['r2_min']:.3f}-{s['r2_max']:.3f}), MAE {s['mae_mean']:.3f} +- {s['mae_sd']:.3f}")
        for name, r in results.items():
            if "vs_best_baseline" in r:
                c = r["vs_best_baseline"]
                print(f"{name} - {c['baseline']}: dR2 {c['delta_r2']:+.3f} "
                      f"[{c['delta_r2_ci95'][0]:+.3f}, {c['delta_r2_ci95'][1]:+.3f}], P(better) {c['p_better_r2']:.2f}; "
                      f"{name} - {c.get('baseline_mae', c['baseline'])}: "
                      f"dMAE {c['delta_mae']:+.3f} [{c['delta_mae_ci95'][0]:+.3f}, {c['delta_mae_ci95'][1]:+.3f}], "
                      f"P(better) {c['p_better_mae']:.2f}  (95 % bootstrap intervals over clusters)")
        print()


class Predict(Subcommand):
    name = "predict"
    help = "predict lg(k1) for an XYZ file, or for bundled clusters named in a CSV"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("xyz", nargs="*", type=Path,
                            help="structure file(s) (XYZ / extended XYZ); several files, or --out, give a table")
        parser.add_argument("--charge", type=flag(check_charge), default=None,
                            help="total charge in e, -3 to 3 (default: from the file, else -1)")
        parser.add_argument("--multiplicity", type=flag(check_multiplicity), default=None,
                            help="spin multiplicity 2S+1 (default: from the file, else estimated from the formula)")
        parser.add_argument("--relax", action="store_true", help="relax the structure with xTB first")
        parser.add_argument("--names", type=Path, help="CSV with a 'cluster' column of bundled cluster names")
        parser.add_argument("--out", type=Path, help="output CSV for --names or several files (default: print)")
        parser.add_argument("--workers", type=flag(check_workers), default=1, help="processes for several files (default 1)")
        parser.add_argument("--scheduler", default=None,
                            help="Dask scheduler address (tcp://host:8786) to spread several files over")
        parser.add_argument("--model", default="gin",
                            help="gin (default: the GIN ensemble, with prior_blend for mixed-metal clusters), consensus "
                                 "(GIN + gradient boosting on the cluster descriptors) or gcn")
        parser.add_argument("--timeout-s", type=flag(check_timeout), default=120.0,
                            help="wall-clock limit for the xTB work in s, 0.1 to 86400 (0: none)")
        parser.add_argument("--json", action="store_true", help="print JSON")

    @staticmethod
    def _emit(table, args, what: str) -> None:
        """Write ``table`` to ``--out`` (CSV) or print it (text or ``--json``)."""
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(args.out, index=False, lineterminator="\n")
            print(f"wrote {len(table)} {what} to {args.out}")
        else:
            print(table.to_json(orient="records", indent=1) if args.json else table.to_string(index=False))

    @classmethod
    def run(cls, args):
        from .predict import load_ensemble, predict_files, predict_names, predict_structure, read_names
        from .spin import charge_and_multiplicity
        from .structures import read_cluster

        if bool(args.xyz) == (args.names is not None):
            raise FlagError("give either XYZ file(s) or --names FILE.csv")
        ensemble = load_ensemble(args.model)
        if len(args.xyz) > 1 or (args.xyz and args.out):
            table = predict_files(args.xyz, args.charge, args.multiplicity, args.relax, args.model,
                                  workers=args.workers, scheduler=args.scheduler,
                                  timeout_s=args.timeout_s, progress=not args.json)
            failed = int(table["error"].notna().sum())
            cls._emit(table, args, "rows")
            if failed:
                print(f"{failed} of {len(table)} files could not be predicted (see the 'error' column)",
                      file=sys.stderr)
            return 1 if failed == len(table) else 0
        if args.names is not None:
            table = predict_names(read_names(args.names), ensemble)
            cls._emit(table[["cluster", "lg_k1_pred", "lg_k1_std"]], args, "predictions")
            return 0
        atoms = read_cluster(args.xyz[0])
        charge, mult = charge_and_multiplicity(atoms, args.charge, args.multiplicity)
        p = predict_structure(atoms, charge, mult, relax=args.relax, ensemble=ensemble, timeout_s=args.timeout_s)
        if args.json:
            print(json.dumps(p.to_dict(), indent=1))
        else:
            lo, hi = p.interval90
            print(f"{p.atoms.get_chemical_formula()} (charge {p.charge}, multiplicity {p.multiplicity}): "
                  f"lg(k1) = {p.lg_k1:.2f} ± {p.lg_k1_std:.2f} (90 % interval {lo:.2f} to {hi:.2f}; "
                  f"k1 in cm^3 molecule^-1 s^-1; {p.features.method}, {p.model} ensemble)")
        return 0


class Explain(Subcommand):
    name = "explain"
    help = ("which atoms drive the predicted rate of a cluster (name as published, or an XYZ file); "
            "--fidelity: how faithful each explanation method is over the measured clusters")

    #: explain.METHODS and DEFAULT_METHOD, spelled out so --help does not import torch (a test compares them)
    methods = ("shapley", "occlusion", "integrated_gradients", "gnnexplainer")
    default_method = "occlusion"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("cluster", nargs="?", help="cluster name (Mo5S4¯ or Mo5S4-) or an XYZ file")
        parser.add_argument("--charge", type=flag(check_charge), default=None, help="total charge for an XYZ file (e)")
        parser.add_argument("--multiplicity", type=flag(check_multiplicity), default=None, help="2S+1 for an XYZ file")
        parser.add_argument("--methods", nargs="+", default=None, choices=cls.methods,
                            help=f"explanation methods, the first one reported (default {cls.default_method}; "
                                 "with --fidelity all)")
        parser.add_argument("--members", type=flag(check_members), default=None,
                            help="ensemble members explained (default 10; 5 with --fidelity)")
        parser.add_argument("--fidelity", action="store_true",
                            help="fidelity table of every method over the measured clusters (minutes: 6 on 2 busy cores)")
        parser.add_argument("--write", action="store_true", help="with --fidelity: keep it in models/explanation-fidelity.json")
        parser.add_argument("--json", action="store_true", help="print JSON")

    @classmethod
    def run(cls, args):
        import torch

        torch.set_num_threads(1)
        if args.fidelity:
            return cls._fidelity(args)
        if not args.cluster:
            raise FlagError("explain needs a cluster name or an XYZ file (or --fidelity)")
        from .descriptors import cluster_descriptors
        from .explain import DEFAULT_METHOD, importance_summary
        from .predict import formula_model, load_ensemble, predict_named, predict_structure
        from .spin import charge_and_multiplicity
        from .structures import read_cluster

        ensemble = load_ensemble()
        if Path(args.cluster).suffix.lower() in (".xyz", ".extxyz") or Path(args.cluster).is_file():
            atoms = read_cluster(Path(args.cluster))
            charge, mult = charge_and_multiplicity(atoms, args.charge, args.multiplicity)
            p = predict_structure(atoms, charge, mult, ensemble=ensemble)
        else:
            p = predict_named(args.cluster, ensemble)
        from .explain import explain_prediction

        methods = tuple(args.methods or (DEFAULT_METHOD,))
        exp = explain_prediction(p, ensemble, methods, max_members=args.members or 10,
                                 formula_model=formula_model(p), fidelity=True)
        symbols = p.atoms.get_chemical_symbols()
        sub = exp.subgraph
        described = cluster_descriptors(p.atoms, p.features, exp)
        contribution = exp.contribution if exp.contribution is not None else [float("nan")] * len(symbols)
        out = {
            "cluster": p.name or p.atoms.get_chemical_formula(), "lg_k1": round(p.lg_k1, 4),
            "lg_k1_std": round(p.lg_k1_std, 4), "measured_lg_k1": p.measured_lg_k1, "model": p.model,
            "method": exp.method, "fidelity": {m: {k: round(v, 4) for k, v in f.items()} for m, f in exp.fidelity.items()},
            "atoms": [{"index": i, "symbol": s, "charge": round(float(q), 4), "importance": round(float(v), 4),
                       "contribution": round(float(c), 4)}
                      for i, (s, q, v, c) in enumerate(zip(symbols, p.features.charges, exp.importance, contribution))],
            "subgraph": {"atoms": sub, "symbols": [symbols[i] for i in sub],
                         "polarization": round(described["subgraph_polarization"], 4),
                         "composition": described["subgraph_composition"],
                         "importance_share": round(described["subgraph_importance"], 4)},
            "bonds": [{"atoms": list(k), "importance": round(v, 4)} for k, v in exp.bond_importance.items()],
            "importance_contrast": round(described["importance_contrast"], 4),
            "atoms_effect": round(exp.atoms_effect, 4), "member_agreement": exp.member_stability,
            "method_agreement": exp.method_agreement, "methods": list(methods), "members": exp.n_members,
        }
        if args.json:
            print(json.dumps(out, indent=1))
            return 0
        print(f"{out['cluster']}: lg(k1) = {p.lg_k1:.2f} ± {p.lg_k1_std:.2f} ({p.model})"
              + (f", measured {p.measured_lg_k1:.2f}" if p.measured_lg_k1 is not None else ""))
        print(f"{exp.method}: contribution to lg(k1) against an average atom (lg units), share of importance")
        print(f"{'atom':>6s} {'charge/e':>9s} {'contrib':>8s} {'share':>6s}")
        for a in out["atoms"]:
            mark = " *" if a["index"] in sub else ""
            print(f"{a['symbol'] + str(a['index'] + 1):>6s} {a['charge']:9.3f} {a['contribution']:+8.3f} "
                  f"{a['importance']:6.3f}{mark}")
        sg = out["subgraph"]
        print(f"important subgraph (*): {' '.join(sg['symbols'])}, {sg['composition']}, "
              f"charge polarisation {sg['polarization']:.3f} e, {100 * sg['importance_share']:.0f} % of importance")
        print(importance_summary(p.atoms, exp.importance))
        f = exp.fidelity[exp.method]
        print(f"deletion fidelity {f['fidelity']:+.3f} lg (top-ranked first {f['ranked']:.3f} vs random "
              f"{f['random']:.3f}); member agreement (Spearman) {exp.member_stability:.2f}")
        return 0

    @classmethod
    def _fidelity(cls, args):
        from .config import MODELS_DIR
        from .explain import METHODS
        from .fidelity import fidelity_markdown, fidelity_rows, fidelity_summary

        t0 = time.time()
        rows = fidelity_rows(methods=tuple(args.methods or METHODS), max_members=args.members or 5)
        summary = {**fidelity_summary(rows), "members": args.members or 5, "seconds": round(time.time() - t0)}
        if args.json:
            print(json.dumps(summary, indent=1))
        else:
            print(fidelity_markdown(summary))
        if args.write:
            path = MODELS_DIR / "explanation-fidelity.json"
            path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
            rows.round(5).to_csv(MODELS_DIR / "explanation-fidelity.csv", index=False, lineterminator="\n")
            print(f"wrote {path}")
        return 0


class Descriptors(Subcommand):
    name = "descriptors"
    help = "charge-polarisation descriptors, predictions and explanations for every bundled cluster"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--out", type=Path, default=None, help="output CSV (default data/descriptors.csv)")
        parser.add_argument("--members", type=int, default=5, help="ensemble members explained per cluster")

    @classmethod
    def run(cls, args):
        import torch

        from .config import DATA_DIR
        from .descriptors import descriptor_table

        torch.set_num_threads(1)
        t0 = time.time()
        table = descriptor_table(max_members=args.members)
        out = args.out or DATA_DIR / "descriptors.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False, float_format="%.6g", lineterminator="\n")
        print(f"wrote {len(table)} clusters to {out} in {time.time() - t0:.0f} s")
        return 0


class Precompute(Subcommand):
    name = "precompute"
    help = ("predict and explain the 216 bundled clusters once -> data/predictions/bundled.csv and "
            "bundled-atoms.csv (the app reads them instead of computing)")

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("names", nargs="*", help="only these clusters (default: all 216)")
        parser.add_argument("--check", action="store_true",
                            help="only check the committed tables against the models now in models/")

    @classmethod
    def run(cls, args):
        from .bundled import check_table, load_bundled, model_fingerprint, write_bundled
        from .datasets import find_cluster

        if args.check:
            table = load_bundled()
            if table is None:
                print("error: no precomputed tables; run 'cluster-gnn precompute'", file=sys.stderr)
                return 1
            problems = ([] if table.current else [table.status]) + check_table(table)
            print("\n".join(problems) or f"{len(table.clusters)} clusters, fingerprint {table.fingerprint[:12]} "
                                          "matches the models")
            return 1 if problems else 0
        names = [find_cluster(n)["name"] for n in args.names] or None
        t0 = time.time()
        paths = write_bundled(names, progress=True)
        print(f"wrote {paths[0]} and {paths[1]} in {time.time() - t0:.0f} s (model fingerprint "
              f"{model_fingerprint()[:12]})")
        return 0


COMMANDS: list[type[Subcommand]] = BUILD_COMMANDS + [Evaluate, Predict, Explain, Descriptors, Precompute]


def build_parser() -> argparse.ArgumentParser:
    parser = FlagParser(
        prog="cluster-gnn",
        description="Predict how fast gas-phase metal clusters activate N2 (lg k1) from GFN-xTB "
        "structures and a graph isomorphism network.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(handler=command)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "handler", None):
            parser.print_help()
            return 2
        return int(args.handler.run(args) or 0)
    except FlagError as err:
        print(f"error: {err} (see --help)", file=sys.stderr)
        return 2
    except ClusterGNNError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (``cluster-gnn dft --status | head``): stop quietly
        try:
            sys.stdout = open(os.devnull, "w")  # nothing left to flush into the closed pipe at exit
        except OSError:
            pass
        return 141
