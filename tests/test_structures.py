import numpy as np
import pytest

from cluster_gnn.errors import StructureError
from cluster_gnn.structures import (
    MAX_FILE_BYTES,
    check_spin,
    normalize_name,
    parse_name,
    read_cluster,
    write_cluster,
)


@pytest.mark.parametrize(
    "name, expected",
    [("Mo5S4¯", "Mo5S4-"), ("Mo2S1ˉ", "Mo2S-"), ("Fe3C41¯", "Fe3C4-"), ("Ta3S1C", "Ta3SC"),
     ("Rh1Co3H2¯", "RhCo3H2-"), ("Rh3¯", "Rh3-"), ("Mo5S4-", "Mo5S4-"), ("Ta3S2C1", "Ta3S2C")],
)
def test_normalize_name(name, expected):
    assert normalize_name(name) == expected


def test_parse_name_charge_and_counts():
    assert parse_name("Rh1Co3H2¯") == ([("Rh", 1), ("Co", 3), ("H", 2)], -1)
    assert parse_name("Ta3S1C") == ([("Ta", 3), ("S", 1), ("C", 1)], 0)


@pytest.mark.parametrize("bad", ["", "mo5s4", "Mo5Q4", "Mo0S2", "5Mo"])
def test_parse_name_refuses_nonsense(bad):
    with pytest.raises(StructureError):
        parse_name(bad)


def test_reads_a_real_cluster(test_data):
    atoms = read_cluster(test_data / "Mo2S2-.xyz")
    assert atoms.get_chemical_formula() == "Mo2S2"
    assert atoms.info["charge"] == -1 and atoms.info["multiplicity"] == 2


def test_crlf_free_text_comment_and_trailing_blank_lines(test_data):
    a = read_cluster(test_data / "Mo2S2-_crlf.xyz")
    b = read_cluster(test_data / "Mo2S2-.xyz")
    np.testing.assert_allclose(a.positions, b.positions)
    assert a.info["charge"] == -1 and a.info["multiplicity"] == 2


def test_write_read_round_trip(tmp_path, test_data):
    atoms = read_cluster(test_data / "Mo2S2-.xyz")
    path = write_cluster(tmp_path / "out.xyz", atoms, energy=-1.5, charge=-1, multiplicity=2)
    again = read_cluster(path)
    np.testing.assert_allclose(again.positions, atoms.positions, atol=1e-6)
    assert again.get_chemical_symbols() == atoms.get_chemical_symbols()
    assert again.info["energy"] == pytest.approx(-1.5)
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write leaves no temp file


def test_reads_bytes_and_file_objects(test_data):
    data = (test_data / "Mo2S2-.xyz").read_bytes()
    assert len(read_cluster(data)) == 4
    with open(test_data / "Mo2S2-.xyz", "rb") as fh:
        assert len(read_cluster(fh)) == 4


@pytest.mark.parametrize(
    "filename, reason, words",
    [
        ("empty.xyz", "empty", "empty"),
        ("binary.xyz", "binary", "binary"),
        ("truncated.xyz", "truncated", "truncated"),
        ("no_count.xyz", "truncated", "number of atoms"),
        ("non_numeric.xyz", "coordinates", "non-numeric"),
        ("nan.xyz", "coordinates", "NaN"),
        ("unknown_element.xyz", "element", "unknown element"),
        ("uranium.xyz", "unsupported-element", "not covered"),
        ("overlap.xyz", "overlap", "0.30 Å apart"),
        ("fragments.xyz", "fragments", "2 fragments"),
        ("too_many_atoms.xyz", "too-many-atoms", "limit of 100"),
    ],
)
def test_refusals_name_the_problem(test_data, filename, reason, words):
    with pytest.raises(StructureError) as err:
        read_cluster(test_data / "bad" / filename)
    assert err.value.reason == reason
    message = str(err.value)
    assert words in message and "\n" not in message


def test_refuses_files_over_the_size_cap(tmp_path):
    path = tmp_path / "huge.xyz"
    path.write_text("2\n" + "x" * MAX_FILE_BYTES + "\nMo 0 0 0\nMo 2.2 0 0\n")
    with pytest.raises(StructureError) as err:
        read_cluster(path)
    assert err.value.reason == "file-too-large"
    with pytest.raises(StructureError):
        read_cluster(path.read_bytes())


def test_missing_file(tmp_path):
    with pytest.raises(StructureError, match="no such file"):
        read_cluster(tmp_path / "nope.xyz")


def test_spin_parity():
    # Mo2S2-: 2*42 + 2*16 + 1 = 117 electrons: even multiplicities only
    check_spin([42, 42, 16, 16], -1, 2)
    with pytest.raises(StructureError, match="does not fit 117 electrons"):
        check_spin([42, 42, 16, 16], -1, 3)
    with pytest.raises(StructureError):
        check_spin([1], 0, 4)
