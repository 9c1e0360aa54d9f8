"""Cold vs warm start of the app: the landing page and a first prediction on the Predict page.

Each cold run is a fresh Python process (imports, model loading, first xTB and
attributions, empty Streamlit caches); the warm runs repeat the same page in that process,
as a second visitor of a running server would see it (cached model, cached prediction for
the same cluster, and a new cluster for the uncached prediction path). Prints medians and
the cold / warm ratios.

    python benchmarks/app_start.py [--repeats 3] [--cluster Mo5S4-] [--other Fe3C2-]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_process(cluster: str, other: str, warm_repeats: int) -> dict:
    """Run in a fresh interpreter: time the pages, print a JSON line."""
    t0 = time.perf_counter()
    from streamlit.testing.v1 import AppTest
    imports = time.perf_counter() - t0

    def page(name=None):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        t = time.perf_counter()
        at.run()
        if name is not None:
            at.switch_page("app_pages/1_Predict.py").run()
            at.selectbox(key="predict_cluster").select(name).run()
            assert not at.exception, at.exception
            assert any(m.label.startswith("Predicted") and m.value != "—" for m in at.metric), "no prediction"
        return time.perf_counter() - t

    out = {"imports": imports, "home_cold": page(), "predict_cold": page(cluster)}
    out["home_warm"] = statistics.median(page() for _ in range(warm_repeats))
    out["predict_warm_same"] = statistics.median(page(cluster) for _ in range(warm_repeats))
    out["predict_warm_new"] = page(other)
    print(json.dumps(out))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="cold processes (and warm repeats in each)")
    parser.add_argument("--cluster", default="Mo5S4-")
    parser.add_argument("--other", default="Fe3C2-", help="a second cluster for the warm, uncached prediction")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        one_process(args.cluster, args.other, args.repeats)
        return
    runs = []
    for _ in range(args.repeats):
        out = subprocess.run([sys.executable, __file__, "--child", "--repeats", str(args.repeats), "--cluster",
                              args.cluster, "--other", args.other], capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            sys.exit(out.stderr[-2000:])
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"{args.repeats} fresh processes; medians in s (Predict page: select {args.cluster}, "
          f"prediction with Integrated-Gradients attributions)")
    print(f"  imports (streamlit):                {med['imports']:.2f}")
    print(f"  landing page   cold {med['home_cold']:.2f}   warm {med['home_warm']:.3f}   "
          f"cold/warm {med['home_cold'] / med['home_warm']:.1f}x")
    print(f"  predict page   cold {med['predict_cold']:.2f}   warm, same cluster {med['predict_warm_same']:.2f} "
          f"(cold/warm {med['predict_cold'] / med['predict_warm_same']:.1f}x)   warm, new cluster "
          f"{med['predict_warm_new']:.2f} (cold/warm {med['predict_cold'] / med['predict_warm_new']:.1f}x)")


if __name__ == "__main__":
    main()
