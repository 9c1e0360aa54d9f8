"""The consensus model: out-of-fold predictions never use a boosting model that saw the
cluster, and it is the mean of its two parts."""
import numpy as np
import pytest

from cluster_gnn.predict import load_ensemble, predict_named
from cluster_gnn.graphs import load_graphs
from cluster_gnn.splits import published_folds


@pytest.fixture(scope="module")
def setup():
    graphs = load_graphs()
    return load_ensemble("consensus"), graphs, published_folds(graphs)


def test_out_of_fold_boosting_never_saw_the_cluster(setup):
    model, graphs, splits = setup
    y = np.array([float(g.y) for g in graphs])
    in_sample, out_of_fold = [], []
    for fold, idx in list(splits.items())[:4]:
        sub = [graphs[i] for i in idx]
        _, boost_oof, _ = model.predict_parts(sub, fold)
        _, boost_all, _ = model.predict_parts(sub, None)
        out_of_fold += list(np.abs(boost_oof - y[idx]))
        in_sample += list(np.abs(boost_all - y[idx]))
    # boosting that saw the clusters nearly memorises them; the out-of-fold one cannot
    assert np.mean(in_sample) < 0.5 * np.mean(out_of_fold), (np.mean(in_sample), np.mean(out_of_fold))


def test_consensus_is_the_mean_of_gin_and_boosting(setup):
    model, graphs, splits = setup
    fold, idx = next(iter(splits.items()))
    sub = [graphs[i] for i in idx[:3]]
    gin, boost, std = model.predict_parts(sub, fold)
    mean, std2 = model.predict(sub, fold)
    np.testing.assert_allclose(mean, 0.5 * (gin + boost))
    np.testing.assert_allclose(std, std2)
    gin_only, _ = load_ensemble("gin").predict(sub, fold)
    np.testing.assert_allclose(gin, gin_only)
    p = predict_named(graphs[idx[0]].name, ensemble=model)
    assert p.model == "consensus" and p.out_of_fold
    assert p.lg_k1 == pytest.approx(float(model.predict([graphs[idx[0]]], fold)[0][0]), abs=1e-6)
