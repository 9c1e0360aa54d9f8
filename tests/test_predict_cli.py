"""The prediction path from the committed models, through the library and the CLI."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from cluster_gnn.cli import main
from cluster_gnn.errors import ModelFileError, XTBTimeoutError
from cluster_gnn.predict import load_ensemble, predict_named, predict_structure
from cluster_gnn.structures import read_cluster


def _cli(*args, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "cluster_gnn", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.slow
def test_evaluate_json_from_committed_models():
    out = _cli("evaluate", "--json", "--baseline-seeds", "3", timeout=900)  # a hang guard, not a speed test
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert results.pop("chosen") == "gin"  # the model behind predictions of one-metal clusters
    assert {"gin", "gcn", "gbr_nbo8", "gbr_composition+metal", "mean", "metal_prior"} <= set(results)
    for name, r in results.items():
        assert r["n"] == 159, name
        assert {"r2", "mae", "rmse", "per_split"} <= set(r)
        assert len(r["per_split"]) == 10
    committed = json.loads(open("models/evaluation.json").read())
    assert results["gin"]["mae"] == pytest.approx(committed["gin"]["mae"], abs=1e-6)
    # every graph model is compared with the best baseline on each figure (R2 and MAE), whose
    # own spread over random states is reported
    baselines = [k for k in results if k not in ("gin", "gcn", "consensus", "mean", "metal_prior")]
    best_r2 = max(baselines, key=lambda k: results[k]["r2"])
    best_mae = min(baselines, key=lambda k: results[k]["mae"])
    for best in (best_r2, best_mae):
        spread = results[best]["seed_spread"]
        assert spread["seeds"] == 3
        assert spread["r2_min"] <= results[best]["r2"] <= spread["r2_max"] and spread["r2_sd"] > 0
    for name in ("gin", "gcn", "consensus"):
        c = results[name]["vs_best_baseline"]
        assert (c["baseline"], c["baseline_mae"]) == (best_r2, best_mae)
        assert c["delta_r2"] == pytest.approx(results[name]["r2"] - results[best_r2]["r2"])
        assert c["delta_mae"] == pytest.approx(results[name]["mae"] - results[best_mae]["mae"])
        assert c["delta_mae_ci95"][0] < c["delta_mae"] < c["delta_mae_ci95"][1]


def test_predict_xyz_json_matches_the_library(test_data):
    out = _cli("predict", str(test_data / "Mo5S4-.xyz"), "--charge", "-1", "--multiplicity", "2", "--json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    atoms = read_cluster(test_data / "Mo5S4-.xyz")
    p = predict_structure(atoms, -1, 2)
    assert shown["lg_k1"] == pytest.approx(p.lg_k1, abs=1e-3)
    assert shown["lg_k1_std"] == pytest.approx(p.lg_k1_std, abs=1e-3)
    assert shown["lg_k1_std"] > 0
    assert -16 < shown["lg_k1"] < -8


def test_predict_names_csv(tmp_path):
    names = tmp_path / "names.csv"
    names.write_text("cluster\nMo5S4¯\nFe3C41¯\nTa3S1C\n")
    out = tmp_path / "out.csv"
    assert main(["predict", "--names", str(names), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["cluster", "lg_k1_pred", "lg_k1_std"]
    assert table.cluster.tolist() == ["Mo5S4¯", "Fe3C41¯", "Ta3S1C"]
    assert table.lg_k1_std.gt(0).all()
    # measured clusters get their out-of-fold prediction
    from cluster_gnn.datasets import find_cluster

    p = predict_named("Mo5S4¯")
    assert p.out_of_fold and p.measured_lg_k1 == pytest.approx(float(find_cluster("Mo5S4¯")["lg_k1"]))


def test_predict_refusals_are_one_line(test_data, tmp_path):
    out = _cli("predict", str(test_data / "bad" / "overlap.xyz"))
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    out = _cli("predict", str(test_data / "Mo5S4-.xyz"), "--charge", "-1", "--multiplicity", "3")
    assert out.returncode == 1 and "does not fit" in out.stderr and "Traceback" not in out.stderr
    names = tmp_path / "n.csv"
    names.write_text("cluster\nMo99S4-\n")
    out = _cli("predict", "--names", str(names))
    assert out.returncode == 1 and "unknown cluster" in out.stderr


@pytest.mark.slow
def test_explain_json_covers_every_atom():
    out = _cli("explain", "Mo5S4-", "--json", "--members", "2")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert sorted(a["symbol"] for a in data["atoms"]) == ["Mo"] * 5 + ["S"] * 4
    assert sum(a["importance"] for a in data["atoms"]) == pytest.approx(1.0, abs=1e-3)
    assert data["subgraph"]["composition"] in ("metal-only", "mixed", "ligand-only")
    top = max(a["importance"] for a in data["atoms"])
    assert data["importance_contrast"] == pytest.approx(9 * top, abs=2e-3)


@pytest.mark.slow
def test_xtb_time_limit_stops_a_long_relaxation(test_data):
    atoms = read_cluster(test_data / "Mo5S4-.xyz")
    atoms.rattle(0.3, seed=1)
    with pytest.raises(XTBTimeoutError, match="did not finish within"):
        predict_structure(atoms, -1, 2, relax=True, timeout_s=0.5)
    # the next call gets a fresh worker and works
    p = predict_structure(read_cluster(test_data / "Mo5S4-.xyz"), -1, 2, timeout_s=60)
    assert p.lg_k1 == pytest.approx(predict_structure(read_cluster(test_data / "Mo5S4-.xyz"), -1, 2).lg_k1)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelFileError, match="cluster-gnn train"):
        load_ensemble("gin", tmp_path)


@pytest.mark.slow
def test_cli_leaves_no_temporary_files(test_data, tmp_path):
    """Successful, refused, timed-out and parallel runs leave the temp folder as they found it."""
    import os

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "TEMP": str(tmp), "TMP": str(tmp)}
    runs = [
        ("predict", str(test_data / "Rh3-.xyz"), "--json"),
        ("predict", str(test_data / "bad" / "overlap.xyz")),
        ("predict", str(test_data / "bad" / "binary.xyz")),
        ("predict", str(test_data / "Mo5S4-.xyz"), "--relax", "--timeout-s", "0.3"),
        ("predict", str(test_data / "Rh3-.xyz"), str(test_data / "bad" / "nan.xyz"), "--workers", "2",
         "--out", str(tmp_path / "batch.csv")),
    ]
    codes = [_cli(*args, env=env).returncode for args in runs]
    assert codes == [0, 1, 1, 1, 0]
    assert "did not finish" in _cli(*runs[3], env=env).stderr
    # torch creates its per-user compile cache folder (same name every run, empty here);
    # anything else, or any file at all, is a leak
    left = [p for p in tmp.rglob("*") if p.is_file() or not p.name.startswith("torchinductor_")]
    assert left == []
    batch = pd.read_csv(tmp_path / "batch.csv")
    assert batch["error"].isna().tolist() == [True, False]


def test_a_corrupt_feature_table_is_reported_not_recomputed(tmp_path, monkeypatch):
    """A damaged data/features table raises DatasetError; only a missing one means 'compute'."""
    import cluster_gnn.predict as predict
    from cluster_gnn.errors import DatasetError

    features = tmp_path / "features"
    features.mkdir()
    monkeypatch.setattr(predict, "DATA_DIR", tmp_path)
    predict._feature_tables.cache_clear()
    try:
        assert predict._bundled_features("Mo5S4-") is None  # no tables yet: xTB will run
        predict._feature_tables.cache_clear()
        (features / "atoms.csv").write_text("name,atom\nMo5S4-,0\n")  # no bonds.csv, no columns
        with pytest.raises(DatasetError, match="cannot be read"):
            predict._bundled_features("Mo5S4-")
    finally:
        predict._feature_tables.cache_clear()
