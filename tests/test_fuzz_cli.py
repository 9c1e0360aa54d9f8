"""Short version of ``benchmarks/fuzz_cli.py``: generated file bytes x flags through the
CLI's intake (flag parser, read_cluster, charge_and_multiplicity); every input ends as a
clean one-line error or an accepted cluster, never a traceback."""
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "fuzz_cli.py"


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("fuzz_cli", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_inputs_give_no_traceback(fuzz):
    result = fuzz.run(600, seed_value=1)
    assert sum(result.counts.values()) == 600
    assert result.counts["traceback"] == 0, result.tracebacks[0]
    # the generator reaches every stage: refused flags, refused files and accepted clusters
    assert result.counts["clean error: flag"] and result.counts["clean error: file, charge or spin"]
    assert result.counts["accepted by the intake"] > 20


def test_the_classifier_sees_a_traceback(fuzz, monkeypatch):
    """The harness can fail: an intake that crashes is counted as a traceback."""
    from cluster_gnn import structures

    classify = fuzz.Classifier()
    monkeypatch.setattr(structures, "parse_xyz_text", lambda *a, **k: 1 / 0)
    assert classify(fuzz.REAL[0].encode(), []) == "traceback" and classify.tracebacks
