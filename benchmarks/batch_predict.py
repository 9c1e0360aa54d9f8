"""Batch prediction of bundled clusters: per-cluster vs batched, default torch threads vs one.

Prints, side by side, the wall time of predicting the 57 heteronuclear clusters
(``../shared/datasets/heteronuclear-57-formulas.csv``) four ways: one cluster at a time
(each of the 100 members runs once per cluster, the old ``predict_names``) or batched (one
forward pass per member over all clusters, the current ``predict_names``), each with
torch's default intra-op threads or one; then the end-to-end CLI
``cluster-gnn predict --names ... --out`` next to ``python -c "import cluster_gnn.predict"``.
The per-cluster, default-threads case is timed on ``--per-cluster N`` clusters and scaled
to 57 (marked ``~``); every other figure is measured on all 57.

    python benchmarks/batch_predict.py [--repeats 3] [--per-cluster 6]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMES_CSV = ROOT.parent / "shared" / "datasets" / "heteronuclear-57-formulas.csv"
RESULT = ROOT / "benchmarks" / "results" / "batch_predict.txt"


def _median_s(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        function()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _subprocess_s(cmd: list[str], repeats: int) -> float:
    def run():
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    return _median_s(run, repeats)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-cluster", type=int, default=6, help="clusters timed one at a time with default threads")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from cluster_gnn import models
    from cluster_gnn.predict import load_ensemble, predict_named, predict_names, read_names

    names = read_names(NAMES_CSV)
    ensemble = load_ensemble()
    predict_names(names[:2], ensemble)  # warm: tables, graphs, caches
    default_threads = torch.get_num_threads()
    small = models.SMALL_BATCH_ATOMS

    def per_cluster(subset):
        return lambda: [predict_named(n, ensemble) for n in subset]

    rows = []
    for threads in ("default", "one"):
        models.SMALL_BATCH_ATOMS = small if threads == "one" else -1  # -1: never switch to one thread
        subset = names if threads == "one" else names[: args.per_cluster]
        t = _median_s(per_cluster(subset), 1 if threads == "default" else args.repeats) * len(names) / len(subset)
        rows.append((f"per cluster, {threads} threads", t, len(subset) < len(names)))
        rows.append((f"batched, {threads} threads", _median_s(lambda: predict_names(names, ensemble), args.repeats), False))
    models.SMALL_BATCH_ATOMS = small
    batched = predict_names(names, ensemble)
    singles = [predict_named(n, ensemble) for n in names]
    max_diff = max(abs(row.lg_k1_pred - round(p.lg_k1, 4)) for (_, row), p in zip(batched.iterrows(), singles))

    import_s = _subprocess_s([sys.executable, "-c", "import cluster_gnn.predict"], args.repeats)
    bare_import_s = _subprocess_s([sys.executable, "-c", "import cluster_gnn"], args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        cli_s = _subprocess_s([sys.executable, "-m", "cluster_gnn", "predict", "--names", str(NAMES_CSV),
                               "--out", str(Path(tmp) / "p.csv")], args.repeats)
    best = min(t for _, t, _ in rows)
    lines = [f"batch prediction of the {len(names)} heteronuclear clusters, {len(ensemble.members)} members; "
             f"torch default intra-op threads {default_threads}, {os.cpu_count()} CPUs; medians of {args.repeats}",
             f"{'way':32s} {'seconds':>9s} {'x fastest':>9s}"]
    for label, t, scaled in rows:
        lines.append(f"{label:32s} {('~' if scaled else '') + f'{t:.2f}':>9s} {t / best:9.1f}")
    lines += [f"batched vs per-cluster lg(k1): max |difference| {max_diff:.1e}",
              f"python -c 'import cluster_gnn.predict'  {import_s:7.2f} s  (torch, torch_geometric, the model code)",
              f"python -c 'import cluster_gnn'          {bare_import_s:7.2f} s  (lazy top level)",
              f"cluster-gnn predict --names (57)        {cli_s:7.2f} s  = {cli_s / import_s:.1f} x importing "
              f"cluster_gnn.predict",
              f"(per-cluster default-threads row timed on {args.per_cluster} clusters and scaled to {len(names)}: ~)"]
    text = "\n".join(lines)
    print(text)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(text + "\n", encoding="utf-8")
    assert np.isfinite(max_diff)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
