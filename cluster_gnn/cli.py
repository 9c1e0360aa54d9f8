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

__all__ = ["main"]


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
    help = "read the published data set and write data/clusters.csv and data/nbo_descriptors.csv"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--source", type=Path, default=None,
                            help="folder of the published data set (default ../shared/datasets)")
        parser.add_argument("--out", type=Path, default=None, help="output folder (default data/)")

    @classmethod
    def run(cls, args):
        from .datasets import build_tables, load_clusters

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
        parser.add_argument("--budget-s", type=float, default=None,
                            help="wall-clock budget in s; unfinished clusters resume next time")
        parser.add_argument("--workers", type=int, default=1, help="parallel worker processes")
        parser.add_argument("--scheduler", default=None,
                            help="address of a Dask distributed scheduler (default: local process pool)")
        parser.add_argument("--n-starts", type=int, default=None, help="random starts per spin state")
        parser.add_argument("--hop-steps", type=int, default=None, help="basin-hopping steps per refined minimum")
        parser.add_argument("--n-refine", type=int, default=None, help="minima refined by basin hopping")
        parser.add_argument("--out", type=Path, default=None, help="output folder (default data/structures)")
        parser.add_argument("--redo", action="store_true", help="search again clusters that already have a result")

    @classmethod
    def run(cls, args):
        from .config import SearchConfig
        from .datasets import load_clusters
        from .search import plan_search, search_many

        os.environ.setdefault("OMP_NUM_THREADS", "1")
        if not args.names and not args.all:
            print("error: name one or more clusters, or pass --all", file=sys.stderr)
            return 2
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


COMMANDS: list[type[Subcommand]] = [BuildData, Structures]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler.run(args) or 0)
    except ClusterGNNError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
