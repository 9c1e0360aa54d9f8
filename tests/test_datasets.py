import numpy as np
import pandas as pd
import pytest

from cluster_gnn.datasets import CLUSTER_COLUMNS, build_tables, find_cluster, load_clusters, parse_fold_label
from cluster_gnn.errors import DatasetError, UnknownClusterError


def test_committed_table_shape():
    table = load_clusters()
    assert list(table.columns) == CLUSTER_COLUMNS
    assert len(table) == 216
    homo = table[table.kind == "homonuclear"]
    hetero = table[table.kind == "heteronuclear"]
    assert len(homo) == 159 and len(hetero) == 57
    assert homo.lg_k1.notna().all() and homo.fold.notna().all() and homo.multiplicity.notna().all()
    assert hetero.fold.isna().all() and hetero.multiplicity.notna().all()
    assert set(homo.multiplicity_source) == {"fold label"} and set(hetero.multiplicity_source) == {"spin density"}
    assert hetero.lg_k1.notna().sum() == 24 and hetero.authors_transfer_pred.notna().sum() == 24
    assert (hetero.lg_k1.isna() == (hetero.rate == "withheld")).all() and (homo.rate == "measured").all()
    assert sorted(homo.fold.value_counts()) == [15] + [16] * 9
    assert table.name.is_unique


def test_the_mixed_rates_are_the_published_24_and_the_withheld_stay_unknown(shared_datasets):
    measured = pd.read_csv(shared_datasets / "heteronuclear-24-measured.csv")
    withheld = pd.read_csv(shared_datasets / "heteronuclear-33-withheld.csv")
    table = load_clusters().set_index("cluster")
    assert table.loc[measured.cluster, "lg_k1"].to_numpy() == pytest.approx(measured.lg_k1.to_numpy())
    assert table.loc[withheld.cluster, "lg_k1"].isna().all()
    assert set(table.loc[measured.cluster, "family"]) == {"Fe-V-C", "Fe-V-S", "Fe-Ta-C"}
    assert set(table.loc[withheld.cluster, "family"]) == {"Co-Ta-C", "Co-Rh", "Co-Rh-H"}


def test_multiplicities_fit_electron_counts():
    from ase.data import atomic_numbers

    from cluster_gnn.structures import formula_counts

    for _, row in load_clusters().dropna(subset=["multiplicity"]).iterrows():
        n_el = sum(atomic_numbers[s] * n for s, n in formula_counts(row["name"]).items()) - row["charge"]
        assert (n_el + row["multiplicity"] - 1) % 2 == 0, row["name"]


@pytest.mark.parametrize(
    "published, fold_label",
    [("Mo5S4¯", "Mo5S4-5-M2"), ("Fe3C41¯", "Fe3C4-11-M10"), ("Ta3S1C", "Ta3S1C-3-M2"), ("Rh3¯", "Rh3-M5"),
     ("V3C5¯", "V3C5-M1-13"), ("Fe6S3¯", "Fe6S3-4-M20")],
)
def test_rows_match_the_published_files(shared_datasets, published, fold_label):
    """Check rows against the original spreadsheets, not against the table itself."""
    feats = pd.read_excel(shared_datasets / "cluster_N2/homonuclear-159-24features.xlsx")
    lg_k1 = float(feats.loc[feats.Clusters == published, "lg(k1)"].iloc[0])
    fold = None
    for k in range(1, 11):
        test = pd.read_excel(shared_datasets / f"cluster_N2/folds/homonuclear-159-fold{k}-train-test.xlsx",
                             sheet_name="Test")
        if fold_label in set(test["Test Cluster"]):
            fold = k
            sheet_lg = float(test.loc[test["Test Cluster"] == fold_label, "Expt. lg(k1)"].iloc[0])
            assert sheet_lg == pytest.approx(lg_k1)
    row = find_cluster(published)
    assert row["cluster"] == published
    assert row["lg_k1"] == pytest.approx(lg_k1)
    assert row["fold"] == fold
    assert row["multiplicity"] == int(fold_label.split("-M")[1].split("-")[0])
    assert row["charge"] == (-1 if published.endswith("¯") else 0)


def test_heteronuclear_rows(shared_datasets):
    names = pd.read_csv(shared_datasets / "heteronuclear-57-formulas.csv")["cluster"].tolist()
    table = load_clusters()
    hetero = table[table.kind == "heteronuclear"]
    assert hetero.cluster.tolist() == names
    row = find_cluster("Rh1Co3H2¯")
    assert (row["name"], row["metals"], row["ligands"], row["n_atoms"]) == ("RhCo3H2-", "Rh;Co", "H", 6)


def test_build_is_deterministic_and_matches_committed(shared_datasets, tmp_path):
    first = build_tables(shared_datasets, tmp_path / "a")
    second = build_tables(shared_datasets, tmp_path / "b")
    for key in ("clusters", "nbo_descriptors"):
        assert first[key].read_bytes() == second[key].read_bytes()
    from cluster_gnn.config import DATA_DIR

    assert first["clusters"].read_bytes() == (DATA_DIR / "clusters.csv").read_bytes()


def test_build_tables_leaves_the_element_table_alone(shared_datasets, tmp_path):
    """The element table is a step of its own (build-data --elements), not part of build_tables."""
    paths = build_tables(shared_datasets, tmp_path)
    assert set(paths) == {"clusters", "nbo_descriptors"} and not (tmp_path / "elements.csv").exists()


@pytest.mark.elements
def test_element_table_build_matches_committed(tmp_path):
    """mendeleev -> data/elements.csv reproduces the committed table byte for byte."""
    from cluster_gnn.config import DATA_DIR
    from cluster_gnn.datasets import build_element_table

    assert build_element_table(tmp_path).read_bytes() == (DATA_DIR / "elements.csv").read_bytes()


def test_build_refuses_a_missing_source(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        build_tables(tmp_path, tmp_path / "out")


def test_fold_labels():
    assert parse_fold_label("Mo6S2-303-M2") == ("Mo6S2", 2)
    assert parse_fold_label("Mo4C3-M6-01") == ("Mo4C3", 6)
    with pytest.raises(DatasetError):
        parse_fold_label("Mo4C3-01")


def test_find_cluster_spellings():
    assert find_cluster("Mo5S4-")["cluster"] == "Mo5S4¯"
    with pytest.raises(UnknownClusterError, match="unknown cluster"):
        find_cluster("Mo99S4-")


def test_multiplicity_from_spin_density_gives_back_the_published_multiplicities():
    """The authors' mean metal spin density (2_σave) x metal atoms, rounded to the parity the
    electron count allows, is their published 2S+1 for 156 of the 159 homonuclear clusters; the
    mixed clusters get their multiplicity this way."""
    from cluster_gnn.datasets import load_nbo_descriptors
    from cluster_gnn.structures import multiplicity_from_spin_density

    table = load_clusters()
    homo = table[table.kind == "homonuclear"].merge(load_nbo_descriptors()[["name", "2_σave"]], on="name")
    same = [multiplicity_from_spin_density(n, s) == m for n, s, m in zip(homo.name, homo["2_σave"], homo.multiplicity)]
    assert len(same) == 159 and sum(same) >= 155
    assert multiplicity_from_spin_density("Fe2VC-", 1.28824) == 5  # 3.86 unpaired -> 4 (82 electrons: even)
    assert multiplicity_from_spin_density("Fe2V2C-", 0.165) == 2  # 0.66 -> 1 (105 electrons: odd)
    assert multiplicity_from_spin_density("Ta2H2-", 0.0) == 2  # an odd electron count cannot be a singlet


def test_the_dft_job_takes_the_measured_mixed_clusters_before_the_blind_ones():
    """Default order of ``cluster-gnn dft``: the 159 one-metal clusters, then the 24 measured
    mixed ones (the mixtures split needs them), then the 33 withheld; each at the table's
    multiplicity."""
    from cluster_gnn.dft_job import bundled_clusters

    table = load_clusters().set_index("name")
    order = [(name, mult) for name, _, _, mult in bundled_clusters()]
    assert len(order) == 216 and len({n for n, _ in order}) == 216
    kinds = [(table.loc[n, "kind"] != "homonuclear", bool(np.isnan(table.loc[n, "lg_k1"]))) for n, _ in order]
    assert kinds == sorted(kinds)
    assert kinds.count((True, False)) == 24 and kinds.count((True, True)) == 33
    assert all(m == table.loc[n, "multiplicity"] for n, m in order)
