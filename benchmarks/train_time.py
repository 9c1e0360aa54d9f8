"""Wall time of the full 10-fold ensemble training (the ``cluster-gnn train`` defaults).

Trains into a temporary folder (the committed models are not touched) and prints the
seconds per model type, per member, and the ratio of GCN to GIN.

    python benchmarks/train_time.py [--threads 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["gin", "gcn"])
    args = parser.parse_args(argv)
    import torch

    from cluster_gnn.training import TrainConfig, train_and_save

    torch.set_num_threads(args.threads)
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            t = time.perf_counter()
            _, summary = train_and_save(name, TrainConfig(), tmp)
            seconds[name] = time.perf_counter() - t
            print(f"{name}: {summary['n_members']} members, {seconds[name]:.1f} s "
                  f"({seconds[name] / summary['n_members']:.2f} s per member), "
                  f"out-of-fold R2 {summary['r2']:.3f}, MAE {summary['mae']:.3f}")
    if len(seconds) > 1:
        first = args.models[0]
        for name in args.models[1:]:
            print(f"{name} / {first} time: {seconds[name] / seconds[first]:.2f}")
    print(f"threads: {args.threads}; target: the full ensemble in about 120 s")


if __name__ == "__main__":
    main()
