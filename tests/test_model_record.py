"""The model file carries its recipe: a typed record, checked against this code on load."""
from dataclasses import replace

import pytest
import torch

from cluster_gnn.config import MODELS_DIR, XTBConfig
from cluster_gnn.electronic import load_feature_tables
from cluster_gnn.errors import FeatureMismatchError, ModelFileError
from cluster_gnn.graphs import GRAPH_FEATURES, NODE_FEATURES, GraphConfig
from cluster_gnn.models import FORMAT_VERSION, Ensemble, ModelConfig, ModelRecord


@pytest.fixture(scope="module")
def blob():
    return torch.load(MODELS_DIR / "gin.pt", map_location="cpu", weights_only=True)


def _rewrite(blob, tmp_path, **changes):
    record = {**blob["record"], **changes}
    path = tmp_path / "gin.pt"
    torch.save({**blob, "record": record}, path)
    return path


def test_committed_record_is_what_the_code_computes(blob):
    assert blob["format_version"] == FORMAT_VERSION
    record = ModelRecord.from_dict(blob["record"])
    assert record.differences() == []
    assert record.level_of_theory == XTBConfig() and record.graph_config == GraphConfig()
    assert record.node_features == NODE_FEATURES and record.graph_features == GRAPH_FEATURES
    assert len(record.held_out) == 10 and sum(map(len, record.held_out.values())) == 159
    assert record.domain is not None and 0 < record.domain.threshold < 2
    config = ModelConfig(**blob["config"])
    assert (config.num_node_features, config.num_edge_features, config.num_graph_features) == (
        len(record.node_features), len(record.edge_features), len(record.graph_features))
    assert ModelRecord.from_dict(record.to_dict()).to_dict() == record.to_dict()


def test_another_level_of_theory_is_refused(blob, tmp_path):
    gfn2 = XTBConfig(method="GFN2-xTB").to_dict()
    path = _rewrite(blob, tmp_path, level_of_theory=gfn2)
    with pytest.raises(FeatureMismatchError) as err:
        Ensemble.load(path)
    message = str(err.value)
    assert "level of theory" in message and "GFN2-xTB" in message and "GFN1-xTB" in message
    assert "retrain" in message.lower()


def test_another_feature_list_is_refused(blob, tmp_path):
    nodes = [n for n in blob["record"]["node_features"] if n != "bond_order_sum"] + ["spin_density"]
    path = _rewrite(blob, tmp_path, node_features=nodes)
    with pytest.raises(FeatureMismatchError) as err:
        Ensemble.load(path)
    message = str(err.value)
    assert "node features" in message and "bond_order_sum" in message and "spin_density" in message
    reordered = list(reversed(blob["record"]["graph_features"]))
    with pytest.raises(FeatureMismatchError, match="graph features: .*another order"):
        Ensemble.load(_rewrite(blob, tmp_path, graph_features=reordered))


def test_an_older_file_format_is_refused(blob, tmp_path):
    path = tmp_path / "old.pt"
    torch.save({**blob, "format_version": 5}, path)
    with pytest.raises(ModelFileError, match="format version 5"):
        Ensemble.load(path)


def test_featurize_refuses_features_at_another_level(blob):
    """Precomputed features go in only at the record's level, charge and multiplicity."""
    ensemble = Ensemble("gin", ModelConfig(**blob["config"]), [], ModelRecord.from_dict(blob["record"]))
    atoms, features = load_feature_tables()["Mo5S4-"]
    graph = ensemble.featurize(atoms, features.charge, features.multiplicity, features=features)
    assert graph.x.shape == (len(atoms), len(NODE_FEATURES)) and graph.u.shape == (1, len(GRAPH_FEATURES))
    with pytest.raises(FeatureMismatchError, match="GFN2-xTB"):
        ensemble.featurize(atoms, features.charge, features.multiplicity,
                           features=replace(features, method="GFN2-xTB/5000K"))
    with pytest.raises(FeatureMismatchError, match="charge 0"):
        ensemble.featurize(atoms, 0, features.multiplicity, features=features)
