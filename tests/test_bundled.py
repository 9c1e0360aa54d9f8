"""The precomputed table of the 216 bundled clusters (cluster_gnn.bundled), the result record
the app shows (cluster_gnn.results) and the card's plain words (cluster_gnn.card)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from cluster_gnn import bundled, card
from cluster_gnn.config import DATA_DIR
from cluster_gnn.datasets import load_clusters
from cluster_gnn.results import ClusterResult, known_cluster, load_isomers, xyz_text
from cluster_gnn.structures import read_cluster

#: A measured homonuclear cluster (GIN, out-of-fold), a measured mixed one (prior_blend,
#: held out) and a withheld one (blind): one of each kind of row.
SAMPLE = ("Mo2S2-", "FeV2C2-", "CoTaC2-")


@pytest.fixture(scope="module")
def table():
    loaded = bundled.load_bundled()
    if loaded is None:
        pytest.skip("no data/predictions/bundled.csv yet: run 'cluster-gnn precompute'")
    return loaded


def test_the_committed_table_covers_every_bundled_cluster(table):
    assert table.current, table.status
    assert bundled.check_table(table) == []
    clusters = load_clusters().set_index("name")
    assert len(table.clusters) == 216 and set(table.clusters.index) == set(clusters.index)
    rows = table.clusters
    assert (rows["model"] == "prior_blend").sum() == 57 and (rows["model"] == "gin").sum() == 159
    withheld = rows[rows["rate"] == "withheld"]
    assert len(withheld) == 33 and withheld["measured_lg_k1"].isna().all()
    measured = rows[rows["rate"] == "measured"]
    assert np.allclose(measured["measured_lg_k1"], clusters.loc[measured.index, "lg_k1"], atol=1e-5)
    assert measured["out_of_fold"].all()  # every shown prediction of a measured cluster is held-out
    lo, hi = rows["lg_k1"] - 1.6448536 * rows["lg_k1_std"], rows["lg_k1"] + 1.6448536 * rows["lg_k1_std"]
    assert np.allclose(rows["interval90_lo"], lo, atol=1e-5) and np.allclose(rows["interval90_hi"], hi, atol=1e-5)
    sizes = table.atoms.groupby("name").size()
    assert (sizes.loc[rows.index] == clusters.loc[rows.index, "n_atoms"]).all()


@pytest.mark.slow
def test_the_committed_table_matches_the_model(table):
    """Recompute three bundled clusters live: same prediction, same importances, same fingerprint."""
    fresh, atoms = bundled.precompute(SAMPLE)
    assert set(fresh["fingerprint"]) == {table.fingerprint} == {bundled.model_fingerprint()}
    for name in SAMPLE:
        new, old = fresh.set_index("name").loc[name], table.clusters.loc[name]
        for col in ("lg_k1", "lg_k1_std", "interval90_lo", "interval90_hi"):
            assert new[col] == pytest.approx(old[col], abs=1e-4), (name, col)
        assert (new["model"], bool(new["out_of_fold"])) == (old["model"], bool(old["out_of_fold"]))
        imp_new = atoms[atoms["name"] == name].sort_values("index")["importance"].to_numpy()
        imp_old = table.atoms[table.atoms["name"] == name].sort_values("index")["importance"].to_numpy()
        assert np.allclose(imp_new, imp_old, atol=1e-4), name
        assert imp_new.sum() == pytest.approx(1.0, abs=1e-5)


def test_bundled_result_reads_the_table(table):
    result = bundled.bundled_result("Mo5S4-", table)
    assert result.source == "precomputed" and result.fingerprint == table.fingerprint
    assert result.formula == "Mo5S4" and len(result.atoms) == 9 and result.charge == -1
    committed = read_cluster(DATA_DIR / "structures" / "Mo5S4-.xyz")
    assert np.allclose(result.atoms.get_positions(), committed.get_positions(), atol=1e-5)
    assert result.importance.sum() == pytest.approx(1.0, abs=1e-5)
    assert result.measured_lg_k1 == pytest.approx(-14.0555, abs=1e-3) and result.out_of_fold
    assert bundled.bundled_result("not-a-cluster", table) is None


def test_a_stale_table_is_not_used(tmp_path, table):
    """A table made with other models: no result, and a status that says it is computed live."""
    (tmp_path / "predictions").mkdir()
    clusters = table.clusters.reset_index(drop=True).assign(fingerprint="0" * 64)
    clusters.to_csv(tmp_path / "predictions" / "bundled.csv", index=False)
    shutil.copy(table.path.parent / "bundled-atoms.csv", tmp_path / "predictions" / "bundled-atoms.csv")
    stale = bundled.load_bundled(tmp_path)
    assert not stale.current and "computed live instead" in stale.status
    assert bundled.bundled_result("Mo5S4-", stale) is None
    assert bundled.load_bundled(tmp_path / "nowhere") is None


def test_the_fingerprint_follows_what_predictions_read_of_the_transfer_settings(tmp_path):
    """A re-run evaluation that only reports new figures keeps the table current; a changed
    standard deviation of mixed-cluster predictions makes it stale."""
    import json

    from cluster_gnn.config import MODELS_DIR

    shutil.copy(MODELS_DIR / "gin.pt", tmp_path / "gin.pt")
    settings = json.loads((MODELS_DIR / "transfer.json").read_text(encoding="utf-8"))
    path = tmp_path / "transfer.json"
    path.write_text(json.dumps(settings), encoding="utf-8")
    before = bundled.model_fingerprint(tmp_path)
    assert before == bundled.model_fingerprint()
    path.write_text(json.dumps({**settings, "family_mae": 0.1, "mixtures_mae": 0.2}, indent=3), encoding="utf-8")
    assert bundled.model_fingerprint(tmp_path) == before
    settings["std_by_distance"]["pair_new"]["std"] += 0.01
    other = tmp_path / "other"  # a fresh folder: the fingerprint is cached by size and mtime
    other.mkdir()
    shutil.copy(tmp_path / "gin.pt", other / "gin.pt")
    (other / "transfer.json").write_text(json.dumps(settings), encoding="utf-8")
    assert bundled.model_fingerprint(other) != before


def test_precompute_check_cli(table, capsys):
    from cluster_gnn.cli import main

    assert main(["precompute", "--check"]) == 0
    assert "216 clusters" in capsys.readouterr().out


def test_upload_of_a_published_composition_finds_its_measured_value(test_data):
    atoms = read_cluster(test_data / "Mo5S4-.xyz")
    row = known_cluster(atoms, -1)
    assert row["name"] == "Mo5S4-" and row["lg_k1"] == pytest.approx(-14.0555, abs=1e-3)
    assert known_cluster(atoms, 0) is None


def test_isomers_are_listed_by_energy():
    found = load_isomers("Co3H2-")
    assert found, "the search kept isomers of Co3H2-"
    energies = [a.info["relative_energy"] for a in found]
    assert energies == sorted(energies) and energies[0] > 0
    assert all(sorted(a.get_chemical_symbols()) == ["Co"] * 3 + ["H"] * 2 for a in found)
    assert load_isomers("Mo2S-", directory="/nonexistent") == []


def _result(**kw) -> ClusterResult:
    from ase import Atoms

    base = dict(name=None, formula="Mo2S2", charge=-1, multiplicity=2, lg_k1=-10.52, lg_k1_std=0.5, model="gin",
                out_of_fold=False, measured_lg_k1=None, rate="unknown", new_metal_pair=False,
                atoms=Atoms("Mo2S2", positions=[[0, 0, 0], [2.2, 0, 0], [1.1, 1.8, 0], [1.1, -1.8, 0]]),
                charges=np.zeros(4))
    return ClusterResult(**{**base, **kw})


def test_k1_in_words():
    assert card.k1_text(-10.52) == "3 × 10⁻¹¹"
    assert card.k1_text(-12.0) == "1 × 10⁻¹²"
    assert card.k1_text(-9.02) == "1 × 10⁻⁹"  # 9.5 rounds up to the next power
    text = card.prediction_text(_result())
    assert "−10.52" in text and "90 % interval −11.34 to −9.70" in text and "cm³ molecule⁻¹ s⁻¹" in text


def test_measured_status_in_plain_words():
    assert "out-of-fold" in card.measured_text(_result(measured_lg_k1=-10.0, out_of_fold=True, rate="measured"))
    assert "never saw this cluster" in card.measured_text(_result(measured_lg_k1=-10.0, out_of_fold=True,
                                                                  rate="measured"))
    assert "not a test" in card.measured_text(_result(measured_lg_k1=-10.0, rate="measured"))
    assert "withheld (blind test)" in card.measured_text(_result(rate="withheld"))


def test_seen_family_pair_and_caveats():
    assert "Mo-S: 25 clusters" in card.seen_text(_result())
    new_pair = card.seen_text(_result(formula="CoTa2C2", model="prior_blend", new_metal_pair=True))
    assert "prior_blend" in new_pair and "new metal pair" in new_pair
    assert "extrapolates" in card.seen_text(_result(formula="Mo2N2"))
    assert any("terminal" in c for c in card.caveats(_result()))
    assert not any("terminal" in c for c in card.caveats(_result(formula="Fe2C2")))
    strip = card.rate_strip_data(_result(measured_lg_k1=-11.0))
    assert (strip["what"] == "measured clusters").sum() == 183 and strip["lg_k1"].between(*card.MEASURED_RANGE).all()


def test_xyz_export_round_trips(tmp_path, table):
    result = bundled.bundled_result("Mo5S4-", table)
    path = tmp_path / "out.xyz"
    path.write_text(xyz_text(result))
    back = read_cluster(path)
    assert back.get_chemical_symbols() == result.atoms.get_chemical_symbols()
    assert np.allclose(back.get_positions(), result.atoms.get_positions(), atol=1e-6)
    assert (back.info["charge"], back.info["multiplicity"]) == (-1, 2)
