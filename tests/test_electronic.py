import numpy as np
import pytest

from cluster_gnn.config import XTBConfig
from cluster_gnn.electronic import compute_xtb_features
from cluster_gnn.errors import StructureError, XTBConvergenceError
from cluster_gnn.structures import read_cluster


@pytest.fixture(scope="module")
def mo5s4(request):
    from pathlib import Path

    atoms = read_cluster(Path(__file__).parent / "data" / "Mo5S4-.xyz")
    return atoms, compute_xtb_features(atoms, -1, 2)


def test_charges_and_populations_add_up(mo5s4):
    atoms, f = mo5s4
    assert f.charges.sum() == pytest.approx(-1.0, abs=1e-6)
    # valence-shell populations + charge = the neutral atom's valence electrons (Mo 6, S 6)
    total = f.s_population + f.p_population + f.d_population + f.charges
    np.testing.assert_allclose(total, [6] * 5 + [6] * 4, atol=1e-6)
    assert np.all(np.abs(f.d_population[atoms.numbers == 16]) < 0.2)  # S has only a polarisation d shell in GFN1
    assert np.all(f.d_population[atoms.numbers == 42] > 3.5)  # Mo 4d
    assert f.charges.shape == f.s_population.shape == (len(atoms),) and f.bond_orders.shape == (len(atoms),) * 2
    assert np.all(np.abs(f.charges) < 1.0)  # sane charges at this level of theory


def test_open_shell_bond_orders_are_symmetric(mo5s4):
    """tblite returns open-shell bond orders in a scrambled layout; ours must be a proper matrix."""
    _, f = mo5s4
    b = f.bond_orders
    np.testing.assert_allclose(b, b.T, atol=1e-10)
    assert np.abs(np.diag(b)).max() < 1e-10
    assert b.max() > 1.0  # the Mo-Mo and Mo-S bonds are there


def test_cluster_level_properties(mo5s4):
    _, f = mo5s4
    assert f.energy < 0 and np.isfinite(f.energy)
    assert 0.0 <= f.homo_lumo_gap < 5.0
    assert f.dipole.shape == (3,)
    assert f.method == "GFN1-xTB/5000K"


def test_bad_multiplicity_and_failed_scf(mo5s4):
    atoms, _ = mo5s4
    with pytest.raises(StructureError, match="does not fit"):
        compute_xtb_features(atoms, -1, 3)
    with pytest.raises(XTBConvergenceError, match="SCF not converged"):
        compute_xtb_features(atoms, -1, 2, XTBConfig(max_iterations=2))
