import numpy as np
import pytest
import torch

from cluster_gnn.descriptors import charge_polarization, cluster_descriptors, subgraph_composition
from cluster_gnn.electronic import compute_xtb_features
from cluster_gnn.explain import explain_graph, important_subgraph
from cluster_gnn.graphs import build_graph
from cluster_gnn.structures import read_cluster


class OneAtomModel(torch.nn.Module):
    """Stand-in model: lg(k1) depends only on the charge (feature 0) of atom ``k``."""

    def __init__(self, k):
        super().__init__()
        self.k = k
        self.w = torch.nn.Parameter(torch.tensor(3.0))

    def forward(self, x, edge_index, edge_attr=None, batch=None, u=None):
        if batch is None:
            batch = torch.zeros(x.shape[0], dtype=torch.long)
        num_graphs = int(batch.max()) + 1
        per_graph = x.shape[0] // num_graphs  # Captum batches copies of one graph
        picked = x.view(num_graphs, per_graph, -1)[:, self.k, 0]
        return self.w * picked - 12.0


@pytest.fixture(scope="module")
def mo5s4_graph():
    from pathlib import Path

    atoms = read_cluster(Path(__file__).parent / "data" / "Mo5S4-.xyz")
    features = compute_xtb_features(atoms, -1, 2)
    return atoms, features, build_graph(atoms, features)


@pytest.mark.parametrize("method", ["integrated_gradients", "gnnexplainer"])
def test_a_model_of_one_atom_puts_that_atom_on_top(mo5s4_graph, method):
    atoms, _, graph = mo5s4_graph
    for k in (1, 6):
        exp = explain_graph(graph, [OneAtomModel(k)], methods=(method,), epochs=150)
        assert int(np.argmax(exp.importance)) == k, exp.importance


@pytest.mark.slow
def test_explanation_covers_every_atom_with_the_trained_ensemble(mo5s4_graph):
    from cluster_gnn.predict import load_ensemble

    atoms, features, graph = mo5s4_graph
    exp = explain_graph(graph, load_ensemble(), max_members=3, epochs=40)
    assert exp.importance.shape == (len(atoms),)
    assert np.all(exp.importance >= 0) and exp.importance.sum() == pytest.approx(1.0)
    assert np.ptp(exp.importance) > 0  # not uniform
    assert set(exp.by_method) == {"gnnexplainer", "integrated_gradients"}
    assert -1.0 <= exp.member_stability <= 1.0
    assert all(0 <= i < len(atoms) for i in exp.subgraph)
    d = cluster_descriptors(atoms, features, exp)
    assert d["subgraph_composition"] in ("metal-only", "mixed", "ligand-only")
    assert d["subgraph_polarization"] >= 0
    assert d["importance_contrast"] == pytest.approx(exp.importance.max() * len(atoms))
    assert 1.0 < d["importance_contrast"] <= len(atoms)


def test_important_subgraph_is_connected_and_greedy():
    # a chain 0-1-2-3 with importance peaked on 2 and a detached high value on 0
    edges = np.array([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    sub = important_subgraph([0.3, 0.05, 0.4, 0.25], edges, share=0.6)
    assert sub == [2, 3]  # 0.65 of the importance, connected; atom 0 is not adjacent
    assert important_subgraph([0.1, 0.1, 0.7, 0.1], edges, share=0.5) == [1, 2]  # at least two atoms


def test_polarization_definition():
    assert charge_polarization([0.2, 0.2, 0.2]) == pytest.approx(0.0, abs=1e-12)
    assert charge_polarization([-0.5, 0.5]) == pytest.approx(0.5)
    assert charge_polarization([1, -1, 5], [0, 1]) == pytest.approx(1.0)
    assert subgraph_composition(["Mo", "Mo", "S"], [0, 1]) == "metal-only"
    assert subgraph_composition(["Mo", "Mo", "S"], [1, 2]) == "mixed"


def test_polarization_finding_text_reads_the_committed_analysis(tmp_path):
    import json

    from cluster_gnn.config import MODELS_DIR
    from cluster_gnn.descriptors import polarization_finding_text

    path = MODELS_DIR / "polarization.json"
    data = json.loads(path.read_text())
    text = polarization_finding_text(path)
    first = data["comparisons"][0]
    assert f"{first['n_active']} active, {first['n_inert']} inert" in text
    assert f"{data['importance_contrast']['median']:.2f} x the even share" in text
    # an analysis written before the contrast was recorded still reads
    del data["importance_contrast"]
    older = tmp_path / "older.json"
    older.write_text(json.dumps(data))
    assert "even share" not in polarization_finding_text(older)
    assert "Spearman correlation of subgraph polarisation" in polarization_finding_text(older)
