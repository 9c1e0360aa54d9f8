"""Charge and multiplicity: the one default rule for an upload, and the estimate behind it."""
import pytest

from cluster_gnn.errors import StructureError
from cluster_gnn.spin import DEFAULT_CHARGE, charge_and_multiplicity, default_charge_and_multiplicity, estimate_multiplicity
from cluster_gnn.structures import read_cluster


@pytest.fixture
def rh3(test_data):
    return read_cluster(test_data / "Rh3-.xyz")  # comment line: charge=-1 multiplicity=5


def test_file_values_win_over_the_defaults(rh3):
    rh3.info.update(charge=0, multiplicity=4)
    assert charge_and_multiplicity(rh3) == (0, 4)
    assert charge_and_multiplicity(rh3, charge=-1, multiplicity=3) == (-1, 3)  # given values win over both


def test_defaults_are_an_anion_with_the_estimated_multiplicity(rh3):
    rh3.info.clear()
    assert DEFAULT_CHARGE == -1
    assert charge_and_multiplicity(rh3) == (-1, estimate_multiplicity("Rh3", -1)) == (-1, 5)
    q, m = default_charge_and_multiplicity(rh3, 0)  # the multiplicity follows the chosen charge
    assert q == 0 and m == estimate_multiplicity("Rh3", 0) and m % 2 == 0  # 135 electrons: even 2S+1


def test_an_impossible_pair_is_refused(rh3):
    rh3.info.clear()
    with pytest.raises(StructureError) as err:
        charge_and_multiplicity(rh3, multiplicity=2)
    assert err.value.reason == "spin"
