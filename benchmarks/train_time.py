"""Wall time of the full 10-fold ensemble training (the ``cluster-gnn train`` defaults:
10 members per fold, plus the leave-one-metal-out members that calibrate the uncertainty).

Trains into a temporary folder (the committed models are not touched) with 1 and with N
worker processes, and prints the seconds, seconds per member and the speed-up.

    python benchmarks/train_time.py [--workers 1 2] [--models gin]
"""
from __future__ import annotations

import argparse
import tempfile
import time



def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=["gin"])
    args = parser.parse_args(argv)
    import torch

    from cluster_gnn.training import TrainConfig, train_and_save

    torch.set_num_threads(1)
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            for workers in args.workers:
                t = time.perf_counter()
                _, summary = train_and_save(name, TrainConfig(workers=workers), tmp)
                seconds[name, workers] = s = time.perf_counter() - t
                print(f"{name}, {workers} worker(s): {summary['n_members']} members (+ calibration) in {s:.1f} s "
                      f"({s / summary['n_members']:.2f} s per member), out-of-fold R2 {summary['r2']:.3f}, "
                      f"MAE {summary['mae']:.3f}", flush=True)
            base = seconds[name, args.workers[0]]
            for workers in args.workers[1:]:
                print(f"{name}: {args.workers[0]} -> {workers} workers: {base / seconds[name, workers]:.2f}x faster")
    print("target: the full ensemble in about 120 s")


if __name__ == "__main__":
    main()
