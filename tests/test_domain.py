"""The applicability domain: distances grow for a metal the model has not seen, and the
distance scale is recovered from residuals."""
import numpy as np
import pytest

from cluster_gnn.domain import Domain, domain_vector, fit_distance_scale
from cluster_gnn.graphs import load_graphs


@pytest.fixture(scope="module")
def measured():
    return [g for g in load_graphs() if not np.isnan(float(g.y))]


def test_held_out_metal_lies_farther_than_held_out_clusters_of_known_metals(measured):
    rh = [g for g in measured if "Rh" in g.metals]
    others = [g for g in measured if "Rh" not in g.metals]
    domain = Domain.from_graphs(others)
    rng = np.random.default_rng(0)
    held = [others[i] for i in rng.choice(len(others), 15, replace=False)]
    held_names = {g.name for g in held}
    d_known = domain.distance(np.stack([domain_vector(g) for g in held]), exclude=held_names)
    d_rh = domain.distance(np.stack([domain_vector(g) for g in rh]))
    assert len(rh) >= 2
    assert np.median(d_rh) > 1.5 * np.median(d_known), (d_rh, d_known)


def test_exclusion_and_widening(measured):
    domain = Domain.from_graphs(measured[:40], scale=0.5, k=1)
    v = domain_vector(measured[0])[None]
    assert domain.distance(v)[0] == pytest.approx(0.0, abs=1e-9)  # its own reference
    assert domain.distance(v, exclude={measured[0].name})[0] > 0.01
    np.testing.assert_allclose(domain.widen([0.3], [2.0]), [np.sqrt(0.09 + 1.0)])
    back = Domain.from_dict(domain.to_dict())
    w = domain_vector(measured[50])[None]  # rounding to 6 digits on the way
    np.testing.assert_allclose(back.distance(w), domain.distance(w), rtol=1e-5)


def test_distance_scale_is_recovered_from_residuals():
    rng = np.random.default_rng(1)
    std = np.full(4000, 0.5)
    dist = rng.uniform(0.0, 3.0, 4000)
    resid = rng.normal(0.0, np.sqrt(std**2 + (0.8 * dist) ** 2))
    assert fit_distance_scale(resid, std, dist) == pytest.approx(0.8, rel=0.1)
    # residuals that do not grow with distance give (close to) no distance term
    flat = rng.normal(0.0, 0.5, 4000)
    assert fit_distance_scale(flat, std, dist) < 0.1
