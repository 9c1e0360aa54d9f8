import numpy as np
import pytest
import torch

from cluster_gnn.descriptors import charge_polarization, cluster_descriptors, subgraph_composition
from cluster_gnn.electronic import compute_xtb_features
from cluster_gnn.attribution import CoalitionTable, FormulaMasking, GraphMasking, occlusion, shapley_values
from cluster_gnn.explain import METHODS, explain_graph, important_subgraph
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


@pytest.mark.parametrize("method", METHODS)
def test_a_model_of_one_atom_puts_that_atom_on_top(mo5s4_graph, method):
    atoms, _, graph = mo5s4_graph
    for k in (1, 6):
        exp = explain_graph(graph, [OneAtomModel(k)], methods=(method,), epochs=150)
        assert int(np.argmax(exp.importance)) == k, exp.importance
        # hiding the top-ranked atoms first moves the prediction more than a random order
        f = exp.fidelity[method]
        assert f["ranked"] > f["random"] + 0.1, f


def test_shapley_values_are_exact_on_an_additive_model(mo5s4_graph):
    """For a model that adds up per-atom terms, each atom's Shapley value is its own term
    (feature 0 times 3 minus the reference's), they sum to f(all) - f(none), and the sampled
    values (above the exact size) agree."""
    atoms, _, graph = mo5s4_graph

    class Additive(torch.nn.Module):
        def forward(self, x, edge_index, edge_attr=None, batch=None, u=None):
            batch = torch.zeros(x.shape[0], dtype=torch.long) if batch is None else batch
            return torch.zeros(int(batch.max()) + 1).index_add(0, batch, 3.0 * x[:, 0])

    table = CoalitionTable(GraphMasking([Additive()], graph))
    phi = shapley_values(table)[0]
    assert phi == pytest.approx(3.0 * graph.x[:, 0].numpy(), abs=1e-5)
    assert phi.sum() == pytest.approx(float(table.get([table.full])[0, 0] - table.get([0])[0, 0]), abs=1e-5)
    sampled = shapley_values(CoalitionTable(GraphMasking([Additive()], graph), exact_max_atoms=4), n_permutations=8)[0]
    assert sampled == pytest.approx(phi, abs=1e-5)  # additive: every order gives the same marginal
    assert occlusion(table)[0] == pytest.approx(phi, abs=1e-5)


def test_removing_an_atom_evaluates_the_cluster_without_it(mo5s4_graph):
    """``GraphMasking(mode="remove")``: a coalition's value is the model on the graph of the
    shown atoms and the edges among them (additive model: the shown atoms' terms only; GIN:
    the same number as the subgraph evaluated on its own)."""
    from torch_geometric.utils import subgraph

    from cluster_gnn.models import ClusterGNN, ModelConfig

    atoms, _, graph = mo5s4_graph

    class Additive(torch.nn.Module):
        def forward(self, x, edge_index, edge_attr=None, batch=None, u=None):
            return torch.zeros(int(batch.max()) + 1).index_add(0, batch, 3.0 * x[:, 0])

    rng = np.random.default_rng(0)
    present = rng.random((6, len(atoms))) < 0.6
    present[0] = True
    values = GraphMasking([Additive()], graph, mode="remove")(present)[0]
    assert values == pytest.approx((3.0 * graph.x[:, 0].numpy() * present).sum(1), abs=1e-5)

    torch.manual_seed(0)
    gin = ClusterGNN(ModelConfig(num_node_features=graph.x.shape[1], num_edge_features=graph.edge_attr.shape[1],
                                 num_graph_features=graph.u.shape[1])).eval()
    values = GraphMasking([gin], graph, mode="remove")(present)[0]
    with torch.no_grad():
        for shown, value in zip(present[1:], values[1:]):
            keep = torch.as_tensor(shown)
            ei, ea = subgraph(keep, graph.edge_index, graph.edge_attr, relabel_nodes=True)
            alone = gin(graph.x[keep], ei, ea, torch.zeros(int(keep.sum()), dtype=torch.long), graph.u)
            assert value == pytest.approx(float(alone[0]), abs=1e-4)
    reference = GraphMasking([gin], graph)(present)[0]
    assert values[0] == pytest.approx(reference[0], abs=1e-5)  # nothing masked: the same cluster
    assert not np.allclose(values[1:], reference[1:], atol=1e-3)  # the two masks differ
    with pytest.raises(ValueError, match="masking mode"):
        GraphMasking([gin], graph, mode="zero")


def test_a_composition_model_gives_each_element_one_value():
    """Formula masking: atoms of one element share a value; taking out a metal the model
    rates fast lowers the prediction; no metal left gives the empty value."""
    rates = {"Rh": -11.0, "Co": -13.0}

    def predict(formulas):
        from cluster_gnn.structures import metal_shares
        return np.array([sum(share * rates[m] for m, share in metal_shares(f).items()) for f in formulas])

    masking = FormulaMasking(predict, ["Rh", "Rh", "Co", "H"], -12.0)
    table = CoalitionTable(masking)
    assert table.get([0])[0, 0] == -12.0 and table.get([0b1000])[0, 0] == -12.0  # H alone: no metal
    phi = shapley_values(table)[0]
    assert phi[0] == pytest.approx(phi[1]) and phi[0] > 0 > phi[2]
    assert phi.sum() == pytest.approx(predict(["Rh2Co"])[0] + 12.0)


@pytest.mark.slow
def test_explanation_covers_every_atom_with_the_trained_ensemble(mo5s4_graph):
    from cluster_gnn.predict import load_ensemble

    atoms, features, graph = mo5s4_graph
    exp = explain_graph(graph, load_ensemble(), max_members=3)
    assert exp.importance.shape == (len(atoms),)
    assert np.all(exp.importance >= 0) and exp.importance.sum() == pytest.approx(1.0)
    assert np.ptp(exp.importance) > 0  # not uniform
    assert set(exp.by_method) == {"occlusion"} and exp.method == "occlusion"
    assert exp.contribution.shape == (len(atoms),) and exp.fidelity["occlusion"]["random"] > 0
    shap = explain_graph(graph, load_ensemble(), methods=("shapley",), max_members=3)
    assert shap.contribution.sum() == pytest.approx(shap.atoms_effect, abs=1e-4)  # Shapley values add up
    assert -1.0 <= exp.member_stability <= 1.0
    assert all(0 <= i < len(atoms) for i in exp.subgraph)
    d = cluster_descriptors(atoms, features, exp)
    assert d["subgraph_composition"] in ("metal-only", "mixed", "ligand-only")
    assert d["subgraph_polarization"] >= 0
    assert d["importance_contrast"] == pytest.approx(exp.importance.max() * len(atoms))
    assert 1.0 < d["importance_contrast"] <= len(atoms)
    assert d["subgraph_polarization_xtb"] == pytest.approx(d["subgraph_polarization"])  # xTB charges both
    # with DFT charges the main columns follow them, the _xtb ones stay at one level of theory
    import pandas as pd

    symbols = atoms.get_chemical_symbols()
    dft = pd.DataFrame({"symbol": symbols, "charge": np.linspace(-1, 1, len(atoms)),
                        "s_valence": np.ones(len(atoms)), "d_valence": np.ones(len(atoms))})
    with_dft = cluster_descriptors(atoms, features, exp, dft)
    assert with_dft["charge_source"].endswith("NPA")
    assert with_dft["charge_spread"] == pytest.approx(np.linspace(-1, 1, len(atoms)).std())
    for key in ("charge_spread_xtb", "metal_core_polarization_xtb", "subgraph_polarization_xtb"):
        assert with_dft[key] == pytest.approx(d[key])


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


def test_the_cli_spells_the_methods_like_the_library():
    from cluster_gnn.cli import Explain
    from cluster_gnn.explain import DEFAULT_METHOD

    assert Explain.methods == METHODS and Explain.default_method == DEFAULT_METHOD


def test_descriptors_take_dft_charges_where_the_dft_job_has_them():
    """Rh3- has a committed PBE/NPA record: its descriptors use those charges and say so; a
    table whose atoms do not match the structure is not used."""
    from cluster_gnn.dft_job import DFT_CHARGE_LABEL, load_dft_atoms
    from cluster_gnn.electronic import load_feature_tables

    dft = load_dft_atoms()["Rh3-"]
    atoms, features = load_feature_tables()["Rh3-"]
    with_dft = cluster_descriptors(atoms, features, dft=dft)
    assert with_dft["charge_source"] == DFT_CHARGE_LABEL
    assert with_dft["metal_charge_mean"] == pytest.approx(dft["charge"].mean())
    assert with_dft["charge_spread"] == pytest.approx(charge_polarization(dft["charge"]))
    xtb = cluster_descriptors(atoms, features, dft=dft.iloc[:2])
    assert xtb["charge_source"].endswith("Mulliken")
    assert xtb["metal_charge_mean"] == pytest.approx(float(np.mean(features.charges)))


def test_contribution_summary_names_the_atoms_that_raise_and_lower_the_rate(mo5s4_graph):
    from cluster_gnn.explain import contribution_summary

    atoms = mo5s4_graph[0]
    c = np.zeros(len(atoms))
    c[2], c[7] = 0.4, -0.3
    text = contribution_summary(atoms, c)
    assert f"{atoms[2].symbol}3 +0.40" in text and f"{atoms[7].symbol}8 -0.30" in text
    assert "all atoms together +0.10" in text
    with pytest.raises(ValueError):
        contribution_summary(atoms, c[:3])
