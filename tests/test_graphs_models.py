import numpy as np
import pytest
import torch

from cluster_gnn.electronic import compute_xtb_features
from cluster_gnn.errors import FeatureMismatchError, ModelFileError
from cluster_gnn.graphs import EDGE_FEATURES, GRAPH_FEATURES, NODE_FEATURES, build_graph
from cluster_gnn.models import ClusterGNN, Ensemble, ModelConfig, ModelRecord
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


def test_graph_features_carry_the_stoichiometry(five_graphs):
    """u holds the ligand atoms per metal atom, and the descriptor baselines the same ratios."""
    from cluster_gnn.baselines import descriptor_table

    u = {g.name: dict(zip(GRAPH_FEATURES, g.u[0].tolist())) for g in five_graphs}
    assert u["Mo5S4-"]["S_per_metal"] == pytest.approx(4 / 5)
    assert u["Fe3C2-"]["C_per_metal"] == pytest.approx(2 / 3) and u["Fe3C2-"]["S_per_metal"] == 0
    assert u["Rh3-"]["n_metal"] == 3 and all(u["Rh3-"][f"{e}_per_metal"] == 0 for e in "SCHN")
    table = descriptor_table("composition+metal", ["Mo5S4-", "Fe3C2-", "Ta3S2C"])
    assert table.loc["Ta3S2C", ["S_per_metal", "C_per_metal"]].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert table.loc["Fe3C2-", "frac_Fe"] == 1.0


def test_composition_classes_are_one_hot_per_group(five_graphs):
    """u ends with the composition classes: one class per group (metal atoms; S, C, H
    atoms; S, C, H atoms per metal atom) is 1, the rest 0; the domain vector leaves them out."""
    from cluster_gnn.domain import domain_vector
    from cluster_gnn.graphs import CLUSTER_FEATURES, COMPOSITION_CLASSES

    assert GRAPH_FEATURES == CLUSTER_FEATURES + COMPOSITION_CLASSES
    u = {g.name: dict(zip(GRAPH_FEATURES, g.u[0].tolist())) for g in five_graphs}
    hot = {name: sorted(k for k in COMPOSITION_CLASSES if u[name][k] == 1.0) for name in u}
    assert all(u[name][k] in (0.0, 1.0) for name in u for k in COMPOSITION_CLASSES)
    assert hot["Mo5S4-"] == sorted(["n_metal=5", "n_S=4", "n_C=0", "n_H=0", "S_per_metal=[0.75,1)",
                                    "C_per_metal=[0,0.25)", "H_per_metal=[0,0.25)"])
    assert {"n_metal=3", "n_C=2", "C_per_metal=[0.5,0.75)"} <= set(hot["Fe3C2-"])
    assert all(len(h) == 7 for h in hot.values())
    g = five_graphs[1]
    assert domain_vector(g).shape == (len(CLUSTER_FEATURES) + 8,)
    assert np.allclose(domain_vector(g)[:len(CLUSTER_FEATURES)], g.u[0, :len(CLUSTER_FEATURES)].numpy())


def test_composition_classes_cap_the_counts():
    from cluster_gnn.graphs import composition_classes

    hot = {k for k, v in composition_classes({"V": 10, "C": 9, "H": 1}).items() if v}
    assert hot == {"n_metal>=9", "n_S=0", "n_C>=7", "n_H=1", "S_per_metal=[0,0.25)", "C_per_metal=[0.75,1)",
                   "H_per_metal=[0,0.25)"}
    hot = {k for k, v in composition_classes({"Ta": 1, "C": 5}).items() if v}
    assert "C_per_metal>=2" in hot and "n_metal=1" in hot


def test_xtb_feature_lists_name_exactly_what_the_xtb_results_change():
    """The columns of x and u that move when the xTB results change are the ones named in
    XTB_NODE_FEATURES / XTB_GRAPH_FEATURES (the rest: element and composition)."""
    import dataclasses
    from pathlib import Path

    from cluster_gnn.graphs import XTB_GRAPH_FEATURES, XTB_NODE_FEATURES

    atoms = read_cluster(Path(__file__).parent / "data" / "Mo5S4-.xyz")
    f = compute_xtb_features(atoms, -1, 2)
    rng = np.random.default_rng(0)
    jitter = {k: getattr(f, k) + rng.uniform(0.05, 0.1, len(atoms))
              for k in ("charges", "s_population", "p_population", "d_population")}
    g = dataclasses.replace(f, **jitter, bond_orders=f.bond_orders * 1.1, homo_energy=f.homo_energy - 0.3,
                            lumo_energy=f.lumo_energy + 0.2, homo_lumo_gap=f.homo_lumo_gap + 0.5,
                            dipole=f.dipole + 0.2)
    a, b = build_graph(atoms, f), build_graph(atoms, g)
    moved_x = {n for k, n in enumerate(NODE_FEATURES) if not torch.equal(a.x[:, k], b.x[:, k])}
    moved_u = {n for k, n in enumerate(GRAPH_FEATURES) if not torch.equal(a.u[:, k], b.u[:, k])}
    assert moved_x == set(XTB_NODE_FEATURES)
    assert moved_u == set(XTB_GRAPH_FEATURES)


def test_edges_reach_past_the_bonds_and_bond_edges_recover_the_bonds(five_graphs):
    from ase import Atoms
    from ase.data import covalent_radii

    from cluster_gnn.graphs import GraphConfig, bond_edges
    from cluster_gnn.structures import BOND_SCALE

    mo5s4 = next(g for g in five_graphs if g.name == "Mo5S4-")
    z, pos = mo5s4.z.numpy(), mo5s4.pos.numpy().astype(float)
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    radii = covalent_radii[z][:, None] + covalent_radii[z][None, :]
    off = ~np.eye(len(z), dtype=bool)
    expected_bonds = {(i, j) for i, j in zip(*np.nonzero((dist < BOND_SCALE * radii) & off))}
    expected_edges = {(i, j) for i, j in zip(*np.nonzero((dist < GraphConfig().edge_scale * radii) & off))}
    edges = set(map(tuple, mo5s4.edge_index.t().tolist()))
    assert edges == expected_edges and len(edges) > len(expected_bonds)  # second neighbours joined
    assert set(map(tuple, bond_edges(mo5s4).T.tolist())) == expected_bonds
    # the bond-order sum node feature is each atom's row sum of the bond orders
    k = NODE_FEATURES.index("bond_order_sum")
    atoms = Atoms(numbers=z, positions=pos)
    f = compute_xtb_features(atoms, -1, 2)
    assert np.allclose(mo5s4.x[:, k].numpy(), f.bond_orders.sum(axis=1), atol=1e-4)


def test_feature_mismatch_is_refused(five_graphs):
    from pathlib import Path

    folder = Path(__file__).parent / "data"
    a = read_cluster(folder / "Mo2S2-.xyz")
    f = compute_xtb_features(read_cluster(folder / "Rh3-.xyz"), -1, 5)
    with pytest.raises(FeatureMismatchError, match="features are for 3 atoms"):
        build_graph(a, f)
    model = ClusterGNN()
    with pytest.raises(FeatureMismatchError, match="model expects 14"):
        model(torch.zeros(3, 7), torch.zeros(2, 0, dtype=torch.long))


@pytest.mark.slow
def test_tiny_gin_overfits_five_real_clusters(five_graphs):
    from cluster_gnn.training import TrainConfig, train_member

    model, _ = train_member(five_graphs, [], ModelConfig(hidden=32, num_layers=2, dropout=0.0),
                            TrainConfig(epochs=600, weight_decay=0.0, lr=5e-3), seed=0)
    pred = model.predict_graphs(five_graphs)
    y = np.array([float(g.y) for g in five_graphs])
    assert np.abs(pred - y).max() < 0.15, (pred, y)


def test_a_class_unseen_in_training_does_not_move_the_prediction(five_graphs, tmp_path):
    """A composition class that no training cluster is in (constant in training) enters the
    network as 0, also after a save/load round trip; a class seen in training does move it."""
    from cluster_gnn.graphs import COMPOSITION_CLASSES

    model = ClusterGNN(ModelConfig(hidden=16, num_layers=2))
    model.fit_scaling(five_graphs)
    unseen = GRAPH_FEATURES.index("n_metal>=9")  # no metal count of 9 or more among the five
    seen = GRAPH_FEATURES.index("n_metal=5")  # Mo5S4-
    assert all(float(g.u[0, unseen]) == 0.0 for g in five_graphs) and "n_metal>=9" in COMPOSITION_CLASSES
    g = five_graphs[0].clone()
    base = model.predict_graphs([g])
    g.u = g.u.clone()
    g.u[0, unseen] = 1.0
    assert model.predict_graphs([g]) == pytest.approx(base, abs=1e-6)
    path = Ensemble("gin", model.config, [{"model": model, "fold": 1, "seed": 0, "sigma": 0.3}],
                    ModelRecord.for_code()).save(tmp_path / "m.pt")
    loaded = Ensemble.load(path).members[0]["model"]
    assert loaded.predict_graphs([g]) == pytest.approx(loaded.predict_graphs([five_graphs[0]]), abs=1e-6)
    g.u[0, seen] = 1.0 - float(g.u[0, seen])
    assert abs(float(model.predict_graphs([g])[0] - base[0])) > 1e-4


def test_ensemble_save_load_round_trip(tmp_path, five_graphs):
    members = [{"model": ClusterGNN(ModelConfig(hidden=8)), "fold": k, "seed": k, "sigma": 0.3} for k in (1, 2)]
    for m in members:
        m["model"].fit_scaling(five_graphs)
    ens = Ensemble("gin", ModelConfig(hidden=8), members, ModelRecord.for_code())
    path = ens.save(tmp_path / "gin.pt")
    back = Ensemble.load(path)  # weights_only=True inside
    mean, std = ens.predict(five_graphs)
    mean2, std2 = back.predict(five_graphs)
    # float16 storage: predictions move by well under 0.01 lg units
    np.testing.assert_allclose(mean, mean2, atol=0.01)
    np.testing.assert_allclose(std, std2, atol=0.01)
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


def test_auxiliary_targets_are_learned_and_left_out_of_the_saved_model(tmp_path, five_graphs):
    """Multi-task training: the auxiliary head learns the NBO descriptors of the training
    clusters; the saved model keeps only what prediction needs."""
    from cluster_gnn.datasets import NBO8
    from cluster_gnn.datasets import load_nbo_descriptors
    from cluster_gnn.training import TrainConfig, train_member

    nbo = load_nbo_descriptors().set_index("name")
    graphs = []
    for g in five_graphs:
        g = g.clone()
        known = g.name in nbo.index  # the made-up fifth cluster has none: masked out of the loss
        values = nbo.loc[g.name, NBO8].to_numpy(float) if known else np.full(len(NBO8), np.nan)
        g.aux = torch.tensor(values[None], dtype=torch.float32)
        graphs.append(g)
    config = ModelConfig(hidden=16, num_layers=2, dropout=0.0, num_aux=len(NBO8))

    def aux_error(model):
        from torch_geometric.data import Batch

        b = Batch.from_data_list(graphs)
        with torch.no_grad():
            _, aux = model.forward_with_aux(b.x, b.edge_index, b.edge_attr, b.batch, b.u)
        target = (b.aux - model.aux_mean) / model.aux_std
        known = ~torch.isnan(target)
        return float(((aux[known] - target[known]) ** 2).mean())

    torch.manual_seed(0)
    untrained = ClusterGNN(config)
    untrained.fit_scaling(graphs)
    model, _ = train_member(graphs, [], config, TrainConfig(epochs=300, weight_decay=0.0, lr=5e-3), seed=0)
    assert aux_error(model) < 0.1 * aux_error(untrained)
    ens = Ensemble("gin", config, [{"model": model, "fold": 1, "seed": 0, "sigma": 0.2}], ModelRecord.for_code())
    back = Ensemble.load(ens.save(tmp_path / "gin.pt"))
    assert back.config.num_aux == 0 and not hasattr(back.members[0]["model"], "aux_head")
    np.testing.assert_allclose(back.predict(graphs)[0], ens.predict(graphs)[0], atol=0.01)


def test_sites_readout_is_a_rate_sum_over_the_metal_atoms(five_graphs):
    """readout="sites": lg k1 = log10 of the sum of 10^t over the metal atoms; the ligand
    atoms' terms carry no share, and the prediction never falls below the largest site term."""
    torch.manual_seed(0)
    model = ClusterGNN(ModelConfig(hidden=16, num_layers=2, readout="sites"))
    model.fit_scaling(five_graphs)
    model.eval()
    metal = NODE_FEATURES.index("is_metal")
    ligands = 0
    with torch.no_grad():
        for g in five_graphs:
            pred = float(model(g.x, g.edge_index, g.edge_attr, None, g.u)[0])
            h = model.embed((g.x - model.x_mean) / model.x_std)
            states, e = [h], (g.edge_attr - model.edge_mean) / model.edge_std
            for conv, norm in zip(model.convs, model.norms):
                h = h + torch.nn.functional.silu(norm(conv(h, g.edge_index, e)))
                states.append(h)
            batch = torch.zeros(len(g.x), dtype=torch.long)
            t = model.site_terms(g.x, states, (g.u - model.u_mean) / model.u_std, batch).numpy()
            is_metal = g.x[:, metal].numpy() > 0.5
            assert is_metal.any()
            assert np.all(t[~is_metal] == -1e4)
            ligands += int((~is_metal).sum())
            assert pred == pytest.approx(np.log10(np.sum(10.0 ** t[is_metal])), abs=1e-4)
            assert pred >= t[is_metal].max() - 1e-6
    assert ligands > 0
    with pytest.raises(ValueError, match="readout"):
        ModelConfig(readout="attention")
