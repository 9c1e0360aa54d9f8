"""Transfer to new metal mixtures: the splits that choose the model, the baselines, the gate."""
import json

import numpy as np
import pandas as pd
import pytest

from cluster_gnn.cli import main
from cluster_gnn.datasets import load_clusters
from cluster_gnn.graphs import load_graphs
from cluster_gnn.splits import family_splits, mixture_split
from cluster_gnn.transfer import CompositionRidge, MeanRate, MetalPrior, PriorBlend


@pytest.fixture(scope="module")
def graphs():
    return load_graphs()


def test_mixtures_split_holds_out_the_24_measured_mixed_and_trains_on_homonuclear_only(graphs):
    split = mixture_split(graphs)
    assert list(split) == ["mixtures"]
    held = split["mixtures"]
    assert len(held) == 24 and all(graphs[i].kind == "heteronuclear" for i in held)
    # what a model of that split may train on: the measured clusters outside the test set
    train = [g for i, g in enumerate(graphs) if i not in set(held) and not np.isnan(float(g.y))]
    assert len(train) == 159 and all(g.kind == "homonuclear" for g in train)


@pytest.mark.slow
def test_no_mixed_cluster_reaches_the_graph_models_of_the_mixtures_split(graphs):
    from cluster_gnn.models import ModelConfig
    from cluster_gnn.training import TrainConfig, train_ensemble

    ensemble = train_ensemble(graphs, mixture_split(graphs), ModelConfig(hidden=8, num_layers=1),
                              TrainConfig(epochs=2, n_seeds=1), progress=False)
    kinds = load_clusters().set_index("name").loc[list(ensemble.record.trained_on), "kind"]
    assert len(kinds) == 159 and set(kinds) == {"homonuclear"}


def test_every_family_is_held_out_exactly_once(graphs):
    splits = family_splits(graphs)
    held = [i for idx in splits.values() for i in idx]
    measured = [i for i, g in enumerate(graphs) if not np.isnan(float(g.y))]
    assert sorted(held) == measured and len(held) == len(set(held)) == 183
    for family, idx in splits.items():
        assert {graphs[i].family for i in idx} == {family}
    assert {"Fe-V-C", "Fe-V-S", "Fe-Ta-C", "Mo-S", "Mo-S-C", "Ta-H"} <= set(splits)


def _table(*rows):
    return pd.DataFrame(rows, columns=["name", "charge", "multiplicity", "lg_k1"])


def test_metal_prior_weights_each_metal_by_its_atoms():
    train = _table(("Fe3C2-", -1, 10, -15.0), ("FeC-", -1, 4, -14.0), ("V3C2-", -1, 2, -12.0),
                   ("Fe2V2C-", -1, 8, -11.0))
    prior = MetalPrior().fit(train)
    # Fe: (-15 - 14 + 0.5 * -11) / 2.5; V: (-12 + 0.5 * -11) / 1.5
    fe, v = (-15 - 14 - 5.5) / 2.5, (-12 - 5.5) / 1.5
    assert prior.rates_ == pytest.approx({"Fe": fe, "V": v})
    test = _table(("FeV3C-", -1, 4, np.nan), ("Co3-", -1, 4, np.nan))
    assert prior.predict(test) == pytest.approx([0.25 * fe + 0.75 * v, train.lg_k1.mean()])
    assert MeanRate().fit(train).predict(test) == pytest.approx([train.lg_k1.mean()] * 2)


def test_composition_ridge_names_no_metal_and_blend_is_the_mean():
    table = load_clusters()
    train = table[table.kind == "homonuclear"]
    twins = _table(("Co2TaC2-", -1, 5, np.nan), ("Fe2VC2-", -1, 5, np.nan))  # same stoichiometry and spin
    ridge = CompositionRidge().fit(train)
    a, b = ridge.predict(twins)
    assert a == pytest.approx(b)
    blend = PriorBlend().fit(train).predict(twins)
    assert blend == pytest.approx((MetalPrior().fit(train).predict(twins) + ridge.predict(twins)) / 2)


def test_evaluate_mixtures_json_names_the_baselines_and_the_chosen_model(capsys):
    assert main(["evaluate", "--split", "mixtures", "--models", "consensus", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"mean", "metal_prior", "prior_blend", "authors_transfer", "et_dft15", "pairwise_dft15"} <= set(out)
    assert out["chosen"] in out
    for key in ("mean", "metal_prior", out["chosen"]):
        assert {"mae", "r2", "rmse"} <= set(out[key]) and out[key]["n"] == 24
    assert out["authors_transfer"]["mae"] == pytest.approx(0.391, abs=0.001)  # the published figure
