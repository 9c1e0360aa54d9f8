import numpy as np
import pytest

from cluster_gnn.graphs import load_graphs
from cluster_gnn.splits import group_splits, metrics, published_folds


@pytest.fixture(scope="module")
def graphs():
    return load_graphs()


def _check_partition(graphs, splits):
    # the folds and the metal / ligand proxies partition the measured homonuclear clusters;
    # the measured mixed ones stay in training (tests/test_mixtures.py has their splits)
    measured = {i for i, g in enumerate(graphs) if not np.isnan(float(g.y)) and g.kind == "homonuclear"}
    tested = [i for idx in splits.values() for i in idx]
    assert sorted(tested) == sorted(measured)  # every measured cluster tested exactly once
    for key, idx in splits.items():
        train = measured - set(idx)
        assert not train & set(idx)


def test_published_folds_are_the_authors(graphs):
    splits = published_folds(graphs)
    _check_partition(graphs, splits)
    for fold, idx in splits.items():
        assert all(graphs[i].fold == fold for i in idx)
    hetero = [i for i, g in enumerate(graphs) if g.kind == "heteronuclear"]
    assert not set(hetero) & {i for idx in splits.values() for i in idx}


@pytest.mark.parametrize("by", ["metal", "ligand"])
def test_group_splits_hold_a_group_out(graphs, by):
    splits = group_splits(graphs, by)
    _check_partition(graphs, splits)
    for key, idx in splits.items():
        for i in idx:
            if by == "metal":
                assert key in graphs[i].metals.split(";")
                assert graphs[i].metals == key
            else:
                assert "+".join(sorted(graphs[i].ligands.split(";"))) == key or (key == "bare" and not graphs[i].ligands)
    if by == "metal":
        assert set(splits) <= {"Mo", "Fe", "V", "Ta", "Co", "Rh"}


def test_member_training_never_sees_its_test_clusters(graphs, monkeypatch):
    import cluster_gnn.training as training
    from cluster_gnn.models import ModelConfig
    from cluster_gnn.training import TrainConfig, train_ensemble

    seen = []
    real = training.train_member

    def spy(train_graphs, val_graphs, *args, **kwargs):
        seen.append(({g.name for g in train_graphs}, {g.name for g in val_graphs}))
        return real(train_graphs, val_graphs, *args, **kwargs)

    monkeypatch.setattr(training, "train_member", spy)
    small = [g for g in graphs if g.metals in ("Rh", "Co")] + [g for g in graphs if g.metals == "V"][:10]
    splits = group_splits(small, "metal")
    ens = train_ensemble(small, splits, ModelConfig(hidden=8, num_layers=1), TrainConfig(epochs=5, n_seeds=2),
                         progress=False)
    assert len(seen) == len(ens.members) == 2 * len(splits)
    for (train_names, val_names), member in zip(seen, ens.members):
        held_out = {small[i].name for i in splits[member["fold"]]}
        assert not (train_names | val_names) & held_out
        assert not train_names & val_names
        measured = {g.name for g in small if not np.isnan(float(g.y))}
        assert train_names | val_names | held_out == measured


def test_metrics():
    m = metrics([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    assert m["mae"] == pytest.approx(1 / 3) and m["rmse"] == pytest.approx(np.sqrt(1 / 3))
    assert m["r2"] == pytest.approx(0.5)


def test_parallel_training_gives_the_same_members(graphs):
    """Members trained in worker processes equal those trained here (seeded per member)."""
    from cluster_gnn.models import ModelConfig
    from cluster_gnn.training import TrainConfig, train_ensemble

    small = [g for g in graphs if g.metals in ("Rh", "Co")]
    splits = group_splits(small, "metal")
    config = ModelConfig(hidden=8, num_layers=1, num_aux=8)
    one = train_ensemble(small, splits, config, TrainConfig(epochs=20, n_seeds=2), progress=False)
    two = train_ensemble(small, splits, config, TrainConfig(epochs=20, n_seeds=2, workers=2), progress=False)
    assert [(m["fold"], m["seed"]) for m in one.members] == [(m["fold"], m["seed"]) for m in two.members]
    np.testing.assert_allclose(one.member_predictions(small), two.member_predictions(small), atol=1e-4)


def test_paired_bootstrap_on_committed_out_of_fold_predictions():
    """The committed out-of-fold predictions (model behind predictions) against the training folds' mean
    rate: clearly better, with intervals that exclude zero; the comparison is antisymmetric
    and a model compared with itself differs by nothing."""
    import pandas as pd

    from cluster_gnn.evaluation import paired_bootstrap

    oof = pd.read_csv("data/predictions/oof.csv")
    y, model = oof.lg_k1.to_numpy(), oof.lg_k1_pred.to_numpy()
    fold_mean = np.array([oof.lg_k1[oof.fold != f].mean() for f in oof.fold])
    c = paired_bootstrap(y, model, fold_mean)
    assert c["delta_r2"] == pytest.approx(metrics(y, model)["r2"] - metrics(y, fold_mean)["r2"])
    assert 0 < c["delta_r2_ci95"][0] < c["delta_r2"] < c["delta_r2_ci95"][1]
    assert c["delta_mae_ci95"][0] < c["delta_mae"] < c["delta_mae_ci95"][1] < 0
    assert c["p_better_r2"] == 1.0 and c["p_better_mae"] == 1.0
    flipped = paired_bootstrap(y, fold_mean, model)
    assert flipped["delta_r2"] == pytest.approx(-c["delta_r2"])
    assert flipped["delta_r2_ci95"] == pytest.approx([-c["delta_r2_ci95"][1], -c["delta_r2_ci95"][0]])
    same = paired_bootstrap(y, model, model)
    assert same["delta_r2_ci95"] == [0.0, 0.0] and same["p_better_mae"] == 0.0


def test_proxy_split_members_are_trained_multi_task_like_the_committed_ones(monkeypatch):
    # the saved model config has its auxiliary head stripped; the proxy evaluation must
    # still train its leave-one-metal-out members with the NBO targets, as `train` does
    import cluster_gnn.evaluation as evaluation
    from cluster_gnn.datasets import NBO8
    from cluster_gnn.evaluation import evaluate

    class Stop(Exception):
        pass

    seen = {}

    def spy(graphs, splits, model_config, config, **kwargs):
        seen["num_aux"], seen["groups"] = model_config.num_aux, sorted(splits)
        seen["kinds"] = {g.kind for g in graphs if kwargs["train_on"](g) and not np.isnan(float(g.y))}
        raise Stop

    monkeypatch.setattr(evaluation, "train_ensemble", spy)
    with pytest.raises(Stop):
        evaluate("metal", models=("gin",), baselines=False)
    assert seen["num_aux"] == len(NBO8)
    assert seen["groups"] == ["Co", "Fe", "Mo", "Rh", "Ta", "V"]
    assert seen["kinds"] == {"homonuclear"}  # the proxies learn from what the committed GIN learns from


def test_baseline_verdict_follows_the_bootstrap_interval():
    from cluster_gnn.evaluation import baseline_verdict

    versus = {"baseline": "gbr_nbo8", "baseline_mae": "et_composition+metal", "delta_r2": 0.05,
              "delta_r2_ci95": [0.01, 0.09], "delta_mae": -0.04}
    better = baseline_verdict({"vs_best_baseline": versus})
    assert better.startswith("That is clearly better than the best simpler model of the same run (gradient boosting on the authors")
    assert better.endswith("R² 0.050 higher (95 % interval +0.010 to +0.090), and its mean error is 0.040 lg units "
                           "smaller than that of extra trees on composition + metal one-hot.")
    worse = baseline_verdict({"vs_best_baseline": {**versus, "delta_r2": -0.05, "delta_r2_ci95": [-0.09, -0.01],
                                                   "delta_mae": 0.03}})
    assert worse.startswith("That is clearly worse than") and "R² 0.050 lower" in worse and "0.030 lg units larger" in worse
    ahead = baseline_verdict({"vs_best_baseline": {**versus, "delta_r2_ci95": [-0.02, 0.09]}})
    assert ahead.startswith("That is about as good as the best simpler model") and "could be chance" in ahead
    behind = baseline_verdict({"vs_best_baseline": {**versus, "delta_r2": -0.01, "delta_r2_ci95": [-0.07, 0.05]}})
    assert behind.startswith("That is about as good as") and "R² 0.010 lower" in behind
    assert baseline_verdict({"r2": 0.6}) is None


def test_the_saved_gin_learns_from_one_metal_clusters_only(tmp_path):
    """``cluster-gnn train`` reproduces the committed model's training set: the 159 measured
    one-metal clusters (the mixed ones made its folds worse and are predicted by prior_blend)."""
    from cluster_gnn.datasets import load_clusters
    from cluster_gnn.models import Ensemble
    from cluster_gnn.training import TrainConfig, train_and_save

    path, summary = train_and_save("gin", TrainConfig(epochs=1, n_seeds=1), tmp_path)
    record = Ensemble.load(path).record
    table = load_clusters()
    one_metal = set(table.loc[(table["kind"] == "homonuclear") & table["lg_k1"].notna(), "name"])
    assert set(record.trained_on) == one_metal and len(one_metal) == 159
    assert set(record.domain.names) == one_metal
    assert summary["n"] == 159


def test_hiding_atoms_in_training_is_seeded_and_hides_them_as_explanations_do(graphs, monkeypatch):
    """``mask_atoms``: each epoch a random share of atoms enters as the member's reference atom
    (``x_mean``, what occlusion masks with); the same seed gives the same member, 0 turns it off."""
    import torch

    import cluster_gnn.models as models
    from cluster_gnn.models import ModelConfig
    from cluster_gnn.training import TrainConfig, train_member

    with pytest.raises(ValueError, match="mask_atoms"):
        TrainConfig(mask_atoms=1.0)
    small = [g for g in graphs if g.metals in ("Rh", "Co")]
    config = ModelConfig(hidden=8, num_layers=1, num_aux=8)
    seen = []
    real = models.ClusterGNN.forward_with_aux

    def spy(self, x, *args, **kwargs):
        if self.training:
            seen.append(((x == self.x_mean).all(dim=1).float().mean().item()))
        return real(self, x, *args, **kwargs)

    monkeypatch.setattr(models.ClusterGNN, "forward_with_aux", spy)
    a, _ = train_member(small, [], config, TrainConfig(epochs=30, mask_atoms=0.3), seed=1)
    assert 0.2 < np.mean(seen) < 0.4  # about 30 % of the atoms are the reference atom in an epoch
    seen.clear()
    b, _ = train_member(small, [], config, TrainConfig(epochs=30, mask_atoms=0.3), seed=1)
    off, _ = train_member(small, [], config, TrainConfig(epochs=30, mask_atoms=0.0), seed=1)
    assert len(seen) == 60 and np.mean(seen[:30]) > 0.2  # b hides atoms too ...
    assert max(seen[30:]) == 0.0  # ... and with mask_atoms=0 no atom is the reference atom
    same = all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    differ = any(not torch.equal(p, q) for p, q in zip(a.state_dict().values(), off.state_dict().values()))
    assert same and differ
