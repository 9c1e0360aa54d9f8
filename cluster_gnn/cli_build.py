"""The commands that build the bundled data and models: ``build-data``, ``structures``,
``features``, ``dft`` and ``train`` (the :class:`Subcommand` base they and :mod:`cluster_gnn.cli`
share). Heavy imports happen inside ``run`` so ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from .errors import ClusterGNNError
from .parallel import compute_threads
from .limits import DFT_TIME_LIMIT_S, FlagError, check_charge, check_integer, check_multiplicity, check_workers, flag

__all__ = ["Subcommand", "BuildData", "Structures", "Features", "DFT", "Train", "BUILD_COMMANDS"]

class Subcommand:
    name: str = ""
    help: str = ""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:  # pragma: no cover - overridden
        pass

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:  # pragma: no cover - overridden
        raise NotImplementedError


class BuildData(Subcommand):
    name = "build-data"
    help = ("read the published data set and write data/clusters.csv and data/nbo_descriptors.csv "
            "(--elements: data/elements.csv from mendeleev, about a minute)")

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--source", type=Path, default=None,
                            help="folder of the published data set (default ../shared/datasets)")
        parser.add_argument("--out", type=Path, default=None, help="output folder (default data/)")
        parser.add_argument("--elements", action="store_true",
                            help="write data/elements.csv (periodic properties from mendeleev) instead")

    @classmethod
    def run(cls, args):
        from .datasets import build_element_table, build_tables, load_clusters

        if args.elements:
            print(f"wrote {build_element_table(args.out)}")
            return 0
        paths = build_tables(args.source, args.out)
        table = load_clusters(paths["clusters"].parent)
        n_measured = int(table["lg_k1"].notna().sum())
        print(f"wrote {paths['clusters']} ({len(table)} clusters, {n_measured} with measured lg(k1))")
        print(f"wrote {paths['nbo_descriptors']}")
        return 0


class Structures(Subcommand):
    name = "structures"
    help = "global-minimum structure search with GFN-xTB (resumable; writes data/structures/)"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("names", nargs="*", help="cluster names as published or normalised (e.g. Mo5S4-)")
        parser.add_argument("--all", action="store_true", help="every cluster in data/clusters.csv")
        parser.add_argument("--budget-s", type=flag(check_integer, "--budget-s", 1, 10**7), default=None,
                            help="wall-clock budget in whole s; unfinished clusters resume next time")
        parser.add_argument("--workers", type=flag(check_workers), default=1, help="parallel worker processes")
        parser.add_argument("--scheduler", default=None,
                            help="address of a Dask distributed scheduler (default: local process pool)")
        for option, low, what in (("--n-starts", 1, "random starts per spin state"),
                                  ("--hop-steps", 0, "basin-hopping steps per refined minimum"),
                                  ("--n-refine", 0, "minima refined by basin hopping")):
            parser.add_argument(option, type=flag(check_integer, option, low, 1000), default=None, help=what)
        parser.add_argument("--out", type=Path, default=None, help="output folder (default data/structures)")
        parser.add_argument("--redo", action="store_true", help="search again clusters that already have a result")

    @classmethod
    def run(cls, args):
        from .config import SearchConfig
        from .datasets import load_clusters
        from .search import plan_search, search_many

        os.environ.setdefault("OMP_NUM_THREADS", "1")
        if not args.names and not args.all:
            raise FlagError("name one or more clusters, or pass --all")
        overrides = {k: v for k, v in (("n_starts", args.n_starts), ("hop_steps", args.hop_steps),
                                       ("n_refine", args.n_refine)) if v is not None}
        config = SearchConfig(**overrides)
        plan = plan_search(None if args.all else args.names, load_clusters())
        print(f"{len(plan)} clusters, level of theory {config.xtb.label}, "
              f"{config.n_starts} starts per spin state + {config.n_refine}x{config.hop_steps} hops", flush=True)
        t0 = time.time()
        finished = unfinished = failed = 0
        for item in search_many(plan, config, args.workers, args.budget_s, args.out, args.scheduler, args.redo):
            result, error = item if isinstance(item, tuple) else (item, None)
            if error:
                failed += 1
                print(f"  {result.name}: FAILED {error}", flush=True)
            elif result.finished:
                finished += 1
                print(f"  {result.name}: E = {result.energy:.4f} eV, M = {result.multiplicity}, "
                      f"{result.n_relaxations} relaxations, {result.seconds:.0f} s", flush=True)
            else:
                unfinished += 1
        print(f"done in {time.time() - t0:.0f} s: {finished} finished, {unfinished} left for a later run "
              f"(budget), {failed} failed", flush=True)
        return 1 if failed else 0


class Features(Subcommand):
    name = "features"
    help = "xTB single points on the bundled structures -> data/features/{atoms,bonds,clusters}.csv"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--out", type=Path, default=None, help="output folder (default data/features)")

    @classmethod
    def run(cls, args):
        from .config import DATA_DIR
        from .electronic import FEATURES_DIR_NAME, compute_bundled_features, write_feature_tables

        t0 = time.time()
        results, missing = compute_bundled_features()
        paths = write_feature_tables(results, args.out or DATA_DIR / FEATURES_DIR_NAME)
        print(f"features of {len(results)} clusters in {time.time() - t0:.1f} s -> {paths['atoms'].parent}")
        if missing:
            print(f"{len(missing)} clusters have no structure yet: {' '.join(missing[:10])}"
                  + (" ..." if len(missing) > 10 else ""))
        return 0


class Train(Subcommand):
    name = "train"
    help = "train the GIN (and GCN baseline) ensembles on the published folds -> models/"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--model", choices=["gin", "gcn"], nargs="+", default=["gin", "gcn"])
        parser.add_argument("--n-seeds", type=int, default=None, help="members per fold")
        parser.add_argument("--epochs", type=int, default=None, help="epochs per member (default 80)")
        parser.add_argument("--workers", type=int, default=None,
                            help="processes training members in parallel (default: number of CPU cores)")
        parser.add_argument("--out", type=Path, default=None, help="model folder (default models/)")

    @classmethod
    def run(cls, args):
        import torch

        from .config import MODELS_DIR
        from .training import TrainConfig, train_and_save

        torch.set_num_threads(compute_threads())
        workers = args.workers if args.workers is not None else max(1, os.cpu_count() or 1)
        overrides = {k: v for k, v in (("n_seeds", args.n_seeds), ("epochs", args.epochs)) if v is not None}
        overrides["workers"] = workers
        for name in args.model:
            path, summary = train_and_save(name, TrainConfig(**overrides), args.out or MODELS_DIR)
            print(f"{name}: {summary['n_members']} members in {summary['seconds']:.0f} s -> {path}; "
                  f"out-of-fold R2 {summary['r2']:.3f}, MAE {summary['mae']:.3f}")
        return 0


class DFT(Subcommand):
    name = "dft"
    help = ("PBE/def2-SVP natural charges, valence s/d occupancies and spin: of XYZ files (minutes each, "
            "with progress), or of the bundled clusters as a resumable job (one record per cluster under "
            "data/features/dft/, then the tables data/features/dft_descriptors.csv and dft_atoms.csv); "
            "needs pip install -e '.[dft]'")

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("names", nargs="*", help="XYZ files, or bundled clusters (default: all 216, "
                                                     "homonuclear first, smallest first)")
        parser.add_argument("--charge", type=flag(check_charge), default=None, help="total charge for an XYZ file (e)")
        parser.add_argument("--multiplicity", type=flag(check_multiplicity), default=None, help="2S+1 for an XYZ file")
        parser.add_argument("--json", action="store_true", help="print JSON (XYZ files)")
        parser.add_argument("--workers", type=int, default=1, help="worker processes, one thread each (default 1)")
        parser.add_argument("--scheduler", default=None,
                            help="address of a Dask distributed scheduler to run the bundled clusters on "
                                 "(default: local worker processes)")
        parser.add_argument("--time-limit", type=float, default=None,
                            help=f"wall-time limit per cluster in s (default {DFT_TIME_LIMIT_S:g} for an XYZ file, "
                                 "3600 for bundled clusters)")
        parser.add_argument("--retry-failed", action="store_true",
                            help="run clusters whose record is a failure again (a timeout under a shorter "
                                 "--time-limit is run again anyway, after the new ones)")
        parser.add_argument("--commit", action="store_true", help="git-commit each record as it is written")
        parser.add_argument("--tables-only", action="store_true", help="only rewrite the tables from the records")
        parser.add_argument("--status", action="store_true",
                            help="only say where the job (and the isomer ranking) stands: done, failed, stale, pending")
        parser.add_argument("--isomers", action="store_true",
                            help="rank isomers by PBE instead (default: every cluster with S, C or N, fewest atoms "
                                 "first, the mixed ones whose rate is withheld last): "
                                 "the xTB minimum and CHGNet-relaxed bridged/capping starts; records under "
                                 "data/features/dft_isomers/, table data/features/dft_isomers.csv")

    @classmethod
    def run(cls, args):
        import subprocess

        from .config import DATA_DIR, PROJECT_ROOT
        from .dft_job import DFT_DIR_NAME, bundled_clusters, run_dft_job, write_dft_tables
        from .electronic import FEATURES_DIR_NAME

        files = [n for n in args.names if Path(n).suffix.lower() in (".xyz", ".extxyz") or Path(n).is_file()]
        if files:
            if len(files) != len(args.names):
                raise ClusterGNNError("give either XYZ files or bundled cluster names to cluster-gnn dft, not both")
            if args.scheduler:
                raise ClusterGNNError("--scheduler runs the bundled clusters' job; XYZ files run here, one at a time")
            return cls.run_files(files, args)
        features_dir = DATA_DIR / FEATURES_DIR_NAME
        records = features_dir / DFT_DIR_NAME

        def commit(path):
            for cmd in (["git", "add", str(path)], ["git", "commit", "-q", "-m", f"DFT record: {path.stem}", "--", str(path)]):
                subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, check=False)

        if args.status:
            return cls.print_status(args, records, features_dir)
        if args.isomers:
            return cls.run_isomers(args, records, features_dir, commit)
        if not args.tables_only:
            from .isomer_ranking import ISOMERS_DIR_NAME, adopt_isomer_minima

            adopted = adopt_isomer_minima(features_dir / ISOMERS_DIR_NAME, records,
                                          on_record=commit if args.commit else None)
            if adopted:
                print(f"taken from the isomer ranking (its xTB-minimum records): {', '.join(adopted)}")
            counts = run_dft_job(bundled_clusters(args.names), records, workers=args.workers,
                                 time_limit_s=args.time_limit or 3600.0, retry_failed=args.retry_failed,
                                 on_record=commit if args.commit else None, scheduler=args.scheduler)
            print(f"done {counts['done']}, failed {counts['failed']}, already there {counts['skipped']}")
        from .isomer_ranking import ISOMERS_DIR_NAME, ranked_records

        ranked = ranked_records(features_dir / ISOMERS_DIR_NAME)
        for path in write_dft_tables(records, features_dir, ranked).values():
            print(f"wrote {path}")
        if ranked:
            print(f"{len(ranked)} clusters' descriptors at the PBE-ranked isomer: {', '.join(sorted(ranked))}")
        cls.print_agreement(features_dir)
        return 0

    @classmethod
    def print_status(cls, args, records, features_dir) -> int:
        """Per group of clusters (one-metal, mixed measured, mixed withheld): records done,
        failed (by reason), stale, pending; how many clusters have DFT features (a record at the
        xTB minimum or a PBE-ranked isomer); then the isomer rankings."""
        import pandas as pd

        from .datasets import load_clusters
        from .dft_isomers import isomer_clusters
        from .isomer_ranking import ISOMERS_DIR_NAME, TIE_EV, isomer_summary, rank_isomers
        from .dft_job import bundled_clusters, job_status

        clusters = list(bundled_clusters(args.names))
        status = job_status(clusters, records)
        info = load_clusters().set_index("name").loc[status["cluster"]]
        status["group"] = ["one-metal" if k == "homonuclear" else "mixed, withheld" if pd.isna(y) else "mixed, measured"
                           for k, y in zip(info["kind"], info["lg_k1"])]
        table = pd.crosstab(status["group"], status["state"], margins=True, margins_name="all")
        print(f"DFT records under {records}:")
        print(table.to_string())
        for state in ("failed", "stale"):
            rows = status[status["state"] == state]
            for reason, group in rows.groupby("reason", sort=False):  # e.g. "stale, smeared energy (37): Mo2S-, ..."
                print(f"{state}, {reason} ({len(group)}): " + ", ".join(group["cluster"]))
        running = status.loc[status["running"], "cluster"].tolist()
        print(f"running now: {', '.join(running) or 'none'}")
        ranking = rank_isomers(features_dir / ISOMERS_DIR_NAME)
        summary = isomer_summary(ranking) if not ranking.empty else pd.DataFrame(columns=["cluster", "changed"])
        ranked = set(summary.loc[summary["changed"].astype(bool), "cluster"])  # as ranked_records
        covered = status[(status["state"] == "ok") | status["cluster"].isin(ranked)]
        print(f"with DFT features: {len(covered)} of {len(status)} clusters "
              f"({len(ranked)} at their PBE-ranked isomer, "
              f"{int((covered['state'] != 'ok').sum())} of them only there: no record at the xTB minimum)")
        todo = isomer_clusters()
        if not ranking.empty:
            started = set(ranking["cluster"])
            complete = set(ranking.loc[ranking["complete"], "cluster"])
            ties = f" ({int(summary['tie'].sum())} ties within {TIE_EV:g} eV)" if not summary.empty else ""
            print(f"isomer rankings: {len(complete)} complete{ties}, {len(started - complete)} under way, "
                  f"{len([n for n in todo if n not in started])} not started, of {len(todo)}")
        cls.print_time_left(args, status, clusters, ranking, todo, records, features_dir / ISOMERS_DIR_NAME)
        return 0

    @staticmethod
    def print_time_left(args, status, clusters, ranking, todo, records, isomer_dir) -> None:
        """What is left in CPU-hours: every single point to come at the median wall time of the
        converged ones of its kind and size (:func:`~cluster_gnn.dft_job.expected_seconds`); a
        timeout under a shorter limit at the run's limit, since it runs again."""
        from .dft_job import atomic_start_record, expected_seconds, load_dft_results, typical_seconds

        made = [*load_dft_results(records).values(), *load_dft_results(isomer_dir).values()]
        typical = typical_seconds(made)
        newer = sum(atomic_start_record(r) and r.get("status") == "ok" for r in made)
        if not typical:
            print("left: no converged single point yet to time the rest by")
            return
        symbols = {name: atoms.get_chemical_symbols() for name, atoms, _, _ in clusters}
        limit = getattr(args, "time_limit", None) or 3600.0
        todo_main = status[status["state"].isin(["pending", "stale"])]["cluster"]
        retries = status[status["timed_out_at"] < limit]["cluster"]
        main = sum(expected_seconds(symbols[n], typical) for n in todo_main) + limit * len(retries)
        per_ranking = int(ranking.groupby("cluster").size().median()) if not ranking.empty else 5
        left = ranking[ranking["status"].isin(["pending", "stale"])]["cluster"] if not ranking.empty else []
        fresh = [n for n in todo if n in symbols and (ranking.empty or n not in set(ranking["cluster"]))]
        # a ranking not started: its candidates but the xTB minimum, which the main job computes
        points = list(left) + [n for n in fresh for _ in range(per_ranking - 1)]
        ranked = sum(expected_seconds(symbols[n], typical) for n in points if n in symbols)
        hours = lambda s: f"{s / 3600:.0f}" if s >= 36000 else f"{s / 3600:.1f}"  # noqa: E731
        print(f"left, at the median time of converged single points of the same size and kind: main job "
              f"~{hours(main)} CPU-h ({len(todo_main) + len(retries)} single points; timeouts to rerun: {len(retries)}, "
              f"at {limit:g} s each), rankings ~{hours(ranked)} CPU-h ({len(points)} single points, "
              f"{per_ranking - 1} per ranking not started; {newer} converged with the atomic start so far, which "
              f"alone time their size and kind from two on)")

    @staticmethod
    def print_agreement(features_dir) -> None:
        """One line per structure kind: Pearson r of the written descriptors with the authors'."""
        import math

        import pandas as pd

        from .dft_agreement import authors_agreement

        try:
            descriptors = pd.read_csv(features_dir / "dft_descriptors.csv")
        except (FileNotFoundError, pd.errors.EmptyDataError):  # no table, or one without a record yet
            return
        if descriptors.empty:
            return
        table = authors_agreement(descriptors).set_index("subset")
        for subset in ("all", "xTB minimum", "PBE-ranked isomer"):
            if subset in table.index:
                row = table.loc[subset]
                cells = [f"{d} {row[f'{d} r']:.2f} ({int(row[f'{d} n'])})" for d in ("2_Qave", "1_Qmax", "1_Qmin")
                         if not math.isnan(row[f"{d} r"])]
                print(f"r with the authors, {subset} ({int(row['clusters'])} clusters): {', '.join(cells) or '-'}")

    @classmethod
    def run_isomers(cls, args, records, features_dir, commit) -> int:
        """PBE ranking of isomers (:mod:`cluster_gnn.isomer_ranking`), then its table."""
        from .datasets import find_cluster
        from .dft_isomers import isomer_clusters
        from .isomer_ranking import (ISOMERS_DIR_NAME, isomer_summary, motif_totals, rank_isomers, ranked_records,
                                     run_isomer_job)
        from .dft_job import write_dft_tables

        out_dir = features_dir / ISOMERS_DIR_NAME
        if not args.tables_only:
            names = [find_cluster(n)["name"] for n in args.names] or isomer_clusters()
            counts = run_isomer_job(names, out_dir, main_dir=records, time_limit_s=args.time_limit or 3600.0,
                                    on_record=commit if args.commit else None, workers=args.workers,
                                    scheduler=args.scheduler)
            print(f"done {counts['done']}, failed {counts['failed']}, already there {counts['skipped']}")
        table = rank_isomers(out_dir)
        path = features_dir / "dft_isomers.csv"
        table.to_csv(path, index=False, lineterminator="\n")
        print(f"wrote {path}")
        write_dft_tables(records, features_dir, ranked_records(out_dir))
        cls.print_agreement(features_dir)
        summary = isomer_summary(table)
        if not summary.empty:
            print(summary.to_string(index=False))
            unconverged = int((~summary["xtb_converged"]).sum())
            print(f"PBE-lowest differs from the xTB minimum for {int(summary['changed'].sum())} of {len(summary)} "
                  f"clusters ranked{f' ({unconverged} where PBE did not converge on the xTB minimum)' if unconverged else ''}; "
                  "ligand motifs terminal/mu2/mu3 summed, xTB minima -> PBE-lowest:")
            print(motif_totals(summary).to_string(index=False))
        return 0

    @classmethod
    def run_files(cls, files, args) -> int:
        """The DFT of each XYZ file in turn: progress on stderr, a per-atom table (or JSON) on
        stdout; a file that fails gets its one-line reason and the others go on (exit 1)."""
        import json
        import sys

        from .dft import dft_descriptors
        from .dft_upload import start_dft
        from .structures import read_cluster

        failed, shown = 0, []
        for path in files:
            try:
                atoms = read_cluster(path)
                job = start_dft(atoms, args.charge, args.multiplicity,
                                time_limit_s=args.time_limit or DFT_TIME_LIMIT_S)
                last = 0.0
                while not (status := job.poll()).finished:
                    if status.seconds - last >= 10.0:
                        last = status.seconds
                        print(f"{path}: PBE/def2-SVP SCF {status.rung or 'starting'}, cycle {status.cycles}, "
                              f"{status.seconds:.0f} s of at most {job.time_limit_s:.0f} s", file=sys.stderr, flush=True)
                    time.sleep(0.5)
                result = job.result()
            except ClusterGNNError as err:
                failed += 1
                print(f"error: {path}: {err}", file=sys.stderr)
                continue
            atoms_out = [{"symbol": s, "charge": round(float(q), 4), "s": round(float(a), 4), "p": round(float(b), 4),
                          "d": round(float(c), 4), "spin": round(float(m), 4)}
                         for s, q, a, b, c, m in zip(result.symbols, result.charges, result.s_valence,
                                                     result.p_valence, result.d_valence, result.spin)]
            item = {"file": str(path), "formula": atoms.get_chemical_formula(), "charge": result.charge,
                    "multiplicity": result.multiplicity, "method": f"{result.method} NPA", "energy_eV": result.energy,
                    "s2": round(result.s2, 3), "s2_expected": result.s2_expected, "rung": result.rung,
                    "cycles": result.cycles, "seconds": round(result.seconds, 1),
                    "descriptors": {k: round(v, 4) for k, v in dft_descriptors(result).items()}, "atoms": atoms_out}
            shown.append(item)
            if not args.json:
                print(f"{path}: {item['formula']}, charge {item['charge']:+d} e, multiplicity {item['multiplicity']}, "
                      f"{item['method']} ({item['rung']} SCF, {item['cycles']} cycles, {item['seconds']:.0f} s, "
                      f"<S2> {item['s2']:.2f} for {item['s2_expected']:.2f})")
                print(f"  {'atom':<6}{'charge (e)':>11}{'s':>8}{'p':>8}{'d':>8}{'spin (e)':>10}")
                for i, a in enumerate(atoms_out):
                    print(f"  {a['symbol'] + str(i + 1):<6}{a['charge']:>11.3f}{a['s']:>8.3f}{a['p']:>8.3f}"
                          f"{a['d']:>8.3f}{a['spin']:>10.3f}")
                print("  " + ", ".join(f"{k} {v:.3f}" for k, v in item["descriptors"].items()))
        if args.json:
            print(json.dumps(shown, indent=1))
        return 1 if failed else 0




BUILD_COMMANDS: list[type[Subcommand]] = [BuildData, Structures, Features, DFT, Train]
