"""Property-based fuzzing of what a user controls in ``cluster-gnn predict``: the file's
bytes (XYZ lines, atom count, comment-line keys) and the flags (``--charge``,
``--multiplicity``, ``--timeout-s``, ``--workers``, unknown ones).

Each generated input goes through the CLI's intake exactly as ``predict`` does it: the
flag parser, :func:`~cluster_gnn.structures.read_cluster`,
:func:`~cluster_gnn.spin.charge_and_multiplicity`; every ``--predict-every``-th accepted
input (up to ``--max-predictions``) also runs the full prediction (xTB in a time-limited
worker, the warm GIN ensemble). Outcomes: a clean error (one line, a project error or a
refused flag), accepted by the intake, a finite prediction, a traceback (anything else;
must be 0). Prints the table, the throughput and the slowest input.

    python benchmarks/fuzz_cli.py [--inputs 10000] [--seed 0]

``tests/test_fuzz_cli.py`` runs a short version of the same generator and classifier.
"""
from __future__ import annotations

import argparse
import math
import time
import traceback
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "fuzz_cli.txt"
REAL = [(ROOT / "tests" / "data" / n).read_text(encoding="utf-8") for n in ("Mo5S4-.xyz", "Rh3-.xyz", "Fe3C2-.xyz")]

SYMBOLS = ["Mo", "S", "Fe", "C", "H", "V", "Ta", "Rh", "Co", "N", "U", "Xx", "mo", "42", "0", "", "Og"]
ODD = ["nan", "inf", "-inf", "1e400", "-1e400", "1e300", "1e30", "-50", "99", "0", "-0", "1.5", "2.0", "", "x", "True",
       "0x10", "--1", "1,5", "１", "²", "9" * 30, "-1", "2", "1e-9", "1e9", "'1'", '"-1"']
NUMBER = st.one_of(st.sampled_from(ODD), st.integers(-10**6, 10**6).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr),
                   st.floats(-8, 8).map(lambda v: f"{v:.3f}"))
KEYS = ["charge", "multiplicity", "mult", "energy", "pbc", "Properties", "cell", "note"]
COMMENT = st.one_of(
    st.lists(st.tuples(st.sampled_from(KEYS), NUMBER), max_size=4).map(lambda kv: " ".join(f"{k}={v}" for k, v in kv)),
    st.builds(lambda v: f"charge {v}", NUMBER), st.text(max_size=30),
    st.sampled_from(["", "charge=-1 multiplicity=2", 'a="unclosed', "Properties=species:S:1:pos:R:3"]))


@st.composite
def xyz_bytes(draw) -> bytes:
    """A mutated real cluster (most inputs) or structured garbage."""
    if draw(st.integers(0, 3)):
        lines = draw(st.sampled_from(REAL)).splitlines()
        n = int(lines[0])
        atoms = lines[2:2 + n]
        for _ in range(draw(st.integers(0, 3))):
            k = draw(st.integers(0, len(atoms) - 1))
            fields = atoms[k].split()
            j = draw(st.integers(0, len(fields)))
            if j < len(fields):
                fields[j] = draw(NUMBER) if j else draw(st.sampled_from(SYMBOLS))
            else:
                fields.append(draw(NUMBER))
            atoms[k] = " ".join(fields)
        count = draw(st.sampled_from([n, n, n - 1, n + 1, 0, 101]))
        comment = draw(st.one_of(st.just(lines[1]), COMMENT))
        text = "\n".join([str(count), comment] + atoms + draw(st.sampled_from([[], [""], ["Mo 0 0 9"], ["3"]])))
    else:
        atoms = draw(st.lists(st.builds(lambda s, xs: " ".join([s] + xs), st.sampled_from(SYMBOLS),
                                        st.lists(NUMBER, max_size=4)), max_size=8))
        count = draw(st.one_of(st.just(str(len(atoms))), st.sampled_from(["", "x", "3.0", "-1", "1e3"])))
        text = "\n".join([count, draw(COMMENT)] + atoms)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return text.replace("\n", newline).encode("utf-8", errors="surrogatepass")


FLAG_NAMES = ["--charge", "--multiplicity", "--timeout-s", "--workers", "--relax", "--json", "--bogus", "-x"]


@st.composite
def flag_lists(draw) -> list[str]:
    flags = []
    if draw(st.integers(0, 2)) == 0:  # a third of the inputs: the file alone, as most users run it
        return flags
    for name in draw(st.lists(st.sampled_from(FLAG_NAMES), max_size=2)):
        flags.append(name)
        if name in ("--charge", "--multiplicity", "--timeout-s", "--workers") and draw(st.integers(0, 9)):
            flags.append(draw(st.one_of(NUMBER, st.sampled_from(["-1", "0", "1", "2", "3", "30", "120"]))))
    return flags


class Classifier:
    """Runs one input through the CLI's intake (and sometimes the full prediction) and
    names its outcome."""

    def __init__(self, predict_every: int = 0, max_predictions: int = 0):
        from cluster_gnn.cli import build_parser

        self.parser = build_parser()
        self.predict_every, self.max_predictions = predict_every, max_predictions
        self.counts: Counter = Counter()
        self.tracebacks: list[str] = []
        self.slowest = (0.0, None)
        self.accepted = 0
        self._ensemble = None

    def __call__(self, data: bytes, flags: list[str]) -> str:
        t0 = time.perf_counter()
        try:
            outcome = self._outcome(data, flags)
        except Exception:  # anything that is not a clean, one-line project error
            outcome = "traceback"
            self.tracebacks.append(f"{flags!r} {data[:200]!r}\n{traceback.format_exc()}")
        seconds = time.perf_counter() - t0
        if seconds > self.slowest[0]:
            self.slowest = (seconds, outcome)
        self.counts[outcome] += 1
        return outcome

    def _outcome(self, data: bytes, flags: list[str]) -> str:
        from cluster_gnn.errors import ClusterGNNError
        from cluster_gnn.limits import FlagError
        from cluster_gnn.spin import charge_and_multiplicity
        from cluster_gnn.structures import read_cluster

        try:
            args = self.parser.parse_args(["predict", "in.xyz", *flags])
        except FlagError as e:
            assert "\n" not in str(e)
            return "clean error: flag"
        try:
            atoms = read_cluster(data)
            charge, multiplicity = charge_and_multiplicity(atoms, args.charge, args.multiplicity)
        except ClusterGNNError as e:
            assert str(e) and "\n" not in str(e)
            return "clean error: file, charge or spin"
        self.accepted += 1
        if not self.predict_every or self.accepted % self.predict_every or self.counts["prediction"] + \
                self.counts["clean error: xTB or prediction"] >= self.max_predictions:
            return "accepted by the intake"
        from cluster_gnn.predict import load_ensemble, predict_structure

        self._ensemble = self._ensemble or load_ensemble()
        try:
            p = predict_structure(atoms, charge, multiplicity, relax=args.relax, ensemble=self._ensemble,
                                  timeout_s=min(args.timeout_s or 60.0, 60.0))
        except ClusterGNNError as e:
            assert str(e) and "\n" not in str(e)
            return "clean error: xTB or prediction"
        assert math.isfinite(p.lg_k1) and math.isfinite(p.lg_k1_std)
        return "prediction"


def run(inputs: int, seed_value: int = 0, predict_every: int = 0, max_predictions: int = 0) -> Classifier:
    """Run ``inputs`` generated inputs through a :class:`Classifier`; return it."""
    classify = Classifier(predict_every, max_predictions)

    @seed(seed_value)
    @settings(max_examples=inputs, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(xyz_bytes(), flag_lists())
    def one(data, flags):
        classify(data, flags)

    one()
    return classify


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--predict-every", type=int, default=40, help="full prediction for every N-th accepted input")
    parser.add_argument("--max-predictions", type=int, default=20)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    result = run(args.inputs, args.seed, args.predict_every, args.max_predictions)
    seconds = time.perf_counter() - t0
    total = sum(result.counts.values())
    lines = [f"fuzzing 'cluster-gnn predict' intake: {total} generated inputs (file bytes x flags), seed {args.seed}, "
             f"full prediction for every {args.predict_every}-th accepted input (at most {args.max_predictions})",
             f"{'outcome':34s} {'inputs':>7s} {'share':>6s}"]
    for outcome in ("clean error: flag", "clean error: file, charge or spin", "accepted by the intake",
                    "clean error: xTB or prediction", "prediction", "traceback"):
        n = result.counts.get(outcome, 0)
        lines.append(f"{outcome:34s} {n:7d} {100 * n / max(total, 1):5.1f}%")
    lines += [f"total {seconds:.1f} s, {1000 * seconds / max(total, 1):.1f} ms per input; "
              f"slowest input {result.slowest[0]:.2f} s ({result.slowest[1]})"]
    text = "\n".join(lines)
    print(text)
    for tb in result.tracebacks[:5]:
        print(tb)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(text + "\n", encoding="utf-8")
    return 1 if result.counts.get("traceback") else 0


if __name__ == "__main__":
    raise SystemExit(main())
