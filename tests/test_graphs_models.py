import numpy as np
import pytest
import torch

from cluster_gnn.electronic import compute_xtb_features
from cluster_gnn.errors import FeatureMismatchError, ModelFileError
from cluster_gnn.graphs import EDGE_FEATURES, GRAPH_FEATURES, NODE_FEATURES, build_graph
from cluster_gnn.models import ClusterGNN, Ensemble, ModelConfig
from cluster_gnn.structures import read_cluster


@pytest.fixture(scope="module")
def five_graphs():
    """Five real clusters with their xTB features and measured lg(k1)."""
    from pathlib import Path

    from cluster_gnn.datasets import find_cluster

    folder = Path(__file__).parent / "data"
    graphs = []
    for name in ("Mo2S2-", "Mo5S4-", "Rh3-", "Fe3C2-"):
        atoms = read_cluster(folder / f"{name}.xyz")
        f = compute_xtb_features(atoms, atoms.info["charge"], atoms.info["multiplicity"])
        graphs.append(build_graph(atoms, f, y=float(find_cluster(name)["lg_k1"]), name=name))
    atoms = read_cluster(folder / "Mo2S2-_crlf.xyz")
    atoms.positions *= 1.05  # a fifth, distinct geometry with a made-up target
    graphs.append(build_graph(atoms, compute_xtb_features(atoms, -1, 2), y=-10.0, name="stretched"))
    return graphs


def test_graph_shapes_match_atoms_and_features(five_graphs):
    for g in five_graphs:
        n = g.z.numel()
        assert g.x.shape == (n, len(NODE_FEATURES))
        assert g.edge_attr.shape == (g.edge_index.shape[1], len(EDGE_FEATURES))
        assert g.u.shape == (1, len(GRAPH_FEATURES))
        assert g.edge_index.max() < n
        pairs = set(map(tuple, g.edge_index.t().tolist()))
        assert all((j, i) in pairs for i, j in pairs)  # undirected
        assert torch.isfinite(g.x).all() and torch.isfinite(g.edge_attr).all()


def test_feature_mismatch_is_refused(five_graphs):
    from pathlib import Path

    folder = Path(__file__).parent / "data"
    a = read_cluster(folder / "Mo2S2-.xyz")
    f = compute_xtb_features(read_cluster(folder / "Rh3-.xyz"), -1, 5)
    with pytest.raises(FeatureMismatchError, match="features are for 3 atoms"):
        build_graph(a, f)
    model = ClusterGNN()
    with pytest.raises(FeatureMismatchError, match="model expects 13"):
        model(torch.zeros(3, 7), torch.zeros(2, 0, dtype=torch.long))


@pytest.mark.slow
def test_tiny_gin_overfits_five_real_clusters(five_graphs):
    from cluster_gnn.training import TrainConfig, train_member

    model, _ = train_member(five_graphs, [], ModelConfig(hidden=32, num_layers=2, dropout=0.0),
                            TrainConfig(epochs=600, weight_decay=0.0, lr=5e-3), seed=0)
    pred = model.predict_graphs(five_graphs)
    y = np.array([float(g.y) for g in five_graphs])
    assert np.abs(pred - y).max() < 0.15, (pred, y)


def test_ensemble_save_load_round_trip(tmp_path, five_graphs):
    members = [{"model": ClusterGNN(ModelConfig(hidden=8)), "fold": k, "seed": k, "sigma": 0.3} for k in (1, 2)]
    for m in members:
        m["model"].fit_scaling(five_graphs)
    ens = Ensemble("gin", ModelConfig(hidden=8), members, {"graph_config": {}})
    path = ens.save(tmp_path / "gin.pt")
    back = Ensemble.load(path)  # weights_only=True inside
    mean, std = ens.predict(five_graphs)
    mean2, std2 = back.predict(five_graphs)
    np.testing.assert_allclose(mean, mean2, rtol=1e-6)
    np.testing.assert_allclose(std, std2, rtol=1e-6)
    assert back.folds() == [1, 2]
    one, _ = back.predict(five_graphs, fold=1)
    assert not np.allclose(one, mean)


def test_broken_model_files(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        Ensemble.load(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ModelFileError, match="cannot read"):
        Ensemble.load(bad)
