"""Transfer to new metal mixtures: the splits that choose the model, the baselines, the gate."""
import json

import numpy as np
import pandas as pd
import pytest

from cluster_gnn.cli import main
from cluster_gnn.datasets import load_clusters
from cluster_gnn.graphs import load_graphs
from cluster_gnn.splits import family_splits, mixture_split
from cluster_gnn.transfer import (MIXING_DISTANCES, CompositionRidge, MeanRate, MetalPrior, PriorBlend,
                                  calibrate_mixing_std, mixing_distance)


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


def test_mixing_distance_names_how_far_a_mixed_cluster_is_from_the_training_clusters():
    train = ["Fe3C2-", "V3C2-", "FeS2-", "V2S3-", "Fe2VS2-", "Co3H2-", "Ta3C2-"]
    assert mixing_distance("Fe3C2-", train) is None  # one metal: not a mixture
    assert mixing_distance("FeV2S3-", train) == "family_seen"
    assert mixing_distance("Fe2VC-", train) == "pair_seen"  # Fe-V mixed, but with S
    assert mixing_distance("FeTaC2-", train) == "pair_new"  # Fe-C and Ta-C seen, never mixed
    assert mixing_distance("CoTaC2-", train) == "metal_ligand_new"  # Co only seen with H
    assert mixing_distance("Fe2VN-", train) == "metal_ligand_new"  # no metal seen with N
    assert mixing_distance("RhCo2-", train) == "metal_ligand_new"  # Rh never seen


def test_mixing_std_is_calibrated_on_held_out_mixed_clusters_and_grows_with_distance():
    table = load_clusters()
    measured = table[table.lg_k1.notna()]
    out = calibrate_mixing_std(measured)
    assert list(out) == list(MIXING_DISTANCES)
    assert out["family_seen"]["n"] == 24  # each measured mixed cluster left out alone
    assert out["pair_seen"]["n"] == 18  # Fe-V-C and Fe-V-S held out as families: Fe-V seen in the other
    stds = [out[d]["std"] for d in MIXING_DISTANCES]
    assert stds == sorted(stds) and stds[0] > 0
    for d in MIXING_DISTANCES:
        assert out[d]["std"] >= out[d]["rmse"] or out[d]["n"] == 0
        assert 0.5 < out[d]["coverage90"] <= 1.0
    # the mixtures split (train on the homonuclear clusters) files all 24 under pair_new
    homonuclear = measured[measured.kind == "homonuclear"]
    assert {mixing_distance(n, homonuclear.name) for n in measured.name[measured.kind != "homonuclear"]} == {"pair_new"}


def test_a_new_metal_pair_gets_a_wider_interval_than_a_seen_family():
    from cluster_gnn.predict import predict_named

    seen, new_pair, far = (predict_named(n) for n in ("Fe2VC-", "Rh2Co2H3-", "CoTaC2-"))
    assert (seen.mixing_distance, new_pair.mixing_distance, far.mixing_distance) == (
        "family_seen", "pair_new", "metal_ligand_new")
    assert {p.model for p in (seen, new_pair, far)} == {"prior_blend"}
    assert seen.lg_k1_std < new_pair.lg_k1_std <= far.lg_k1_std
    assert new_pair.new_metal_pair and not seen.new_metal_pair


def test_a_bundled_mixed_cluster_is_predicted_at_the_authors_spin_state():
    """prior_blend is fitted with the multiplicities of data/clusters.csv (for the mixed clusters,
    from the authors' spin density); every bundled mixed structure was searched at that
    multiplicity, and the prediction uses it."""
    from cluster_gnn.datasets import load_structure
    from cluster_gnn.predict import predict_named

    table = load_clusters()
    for name, mult in zip(table.name[table.kind == "heteronuclear"], table.multiplicity[table.kind == "heteronuclear"]):
        assert load_structure(name).info["multiplicity"] == mult, name
    row = table.set_index("name").loc["Fe2VC-"]
    assert row.multiplicity_source == "spin density"
    measured = table[table.lg_k1.notna() & (table.name != "Fe2VC-")]
    expected = PriorBlend().fit(measured).predict(_table(("Fe2VC-", -1, int(row.multiplicity), np.nan)))[0]
    assert predict_named("Fe2VC-").lg_k1 == pytest.approx(expected)


def test_the_model_page_paragraph_states_the_uncertainty_by_distance(tmp_path):
    import shutil

    from cluster_gnn.config import MODELS_DIR
    from cluster_gnn.summary import model_summary

    for name in ("evaluation.json", "evaluation-mixtures.json", "transfer.json"):
        shutil.copy(MODELS_DIR / name, tmp_path)
    settings = json.loads((tmp_path / "transfer.json").read_text())
    settings["std_by_distance"]["family_seen"]["std"], settings["std_by_distance"]["pair_new"]["std"] = 0.55, 0.85
    (tmp_path / "transfer.json").write_text(json.dumps(settings))
    text = model_summary(tmp_path)
    assert "0.55 for a mixture like measured ones and 0.85 for a metal pair never measured mixed" in text
    del settings["std_by_distance"]
    (tmp_path / "transfer.json").write_text(json.dumps(settings))
    assert "never measured mixed" not in model_summary(tmp_path)  # an older file: no such sentence


@pytest.mark.slow
def test_the_graph_models_of_the_family_split_learn_from_one_metal_clusters_like_the_committed_gin(monkeypatch):
    """The family split scores the GIN that makes predictions: trained on one-metal clusters only
    (``training.learns_from``), also when a one-metal family is held out."""
    import cluster_gnn.mixtures as mixtures
    from cluster_gnn.models import ModelConfig
    from cluster_gnn.training import TrainConfig, train_ensemble

    made = []

    def small(graphs, splits, model_config, config, **kwargs):
        ensemble = train_ensemble(graphs, splits, ModelConfig(**{**model_config.to_dict(), "hidden": 8}),
                                  TrainConfig(epochs=1, n_seeds=1), **kwargs)
        made.append(ensemble)
        return ensemble

    monkeypatch.setattr(mixtures, "train_ensemble", small)
    monkeypatch.setattr(mixtures, "DESCRIPTOR_MODELS", [])
    results, preds = mixtures.evaluate_transfer("family", graph_models=("gin",), workers=1)
    kinds = load_clusters().set_index("name").loc[list(made[0].record.trained_on), "kind"]
    assert len(kinds) == 159 and set(kinds) == {"homonuclear"}
    assert len(preds["gin"]) == len(preds["gin_or_prior_blend"]) == 183  # mixed families still predicted
