"""cluster-gnn: how fast does a gas-phase metal cluster grab N2?

The data flow one way, each step a function (see the README's library tour)::

    atoms      = read_cluster("my_cluster.xyz")                  # structures
    features   = compute_xtb_features(atoms, -1, 2)              # electronic (GFN1-xTB)
    graph      = build_graph(atoms, features)                    # graphs
    prediction = predict_structure(atoms, -1, 2, explain=True)   # predict (+ explain)

Names are imported lazily, so ``import cluster_gnn`` and ``cluster-gnn --help`` stay fast.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "read_cluster": "structures", "write_cluster": "structures", "validate_cluster": "structures",
    "normalize_name": "structures", "parse_name": "structures",
    "load_clusters": "datasets", "find_cluster": "datasets", "build_tables": "datasets",
    "search_cluster": "search", "load_structure": "search", "relax_cluster": "search",
    "compute_xtb_features": "electronic", "AtomFeatures": "electronic",
    "build_graph": "graphs", "GraphConfig": "graphs",
    "ClusterGNN": "models", "Ensemble": "models", "ModelConfig": "models",
    "TrainConfig": "training", "train_ensemble": "training", "train_and_save": "training",
    "evaluate": "evaluation",
    "predict_structure": "predict", "predict_named": "predict", "load_ensemble": "predict", "Prediction": "predict",
    "predict_files": "predict", "Consensus": "consensus", "Domain": "domain",
    "explain_graph": "explain", "explain_prediction": "explain",
    "cluster_descriptors": "descriptors", "charge_polarization": "descriptors",
    "XTBConfig": "config", "SearchConfig": "config",
    "ClusterGNNError": "errors", "StructureError": "errors", "UnknownClusterError": "errors",
    "XTBConvergenceError": "errors", "FeatureMismatchError": "errors", "ModelFileError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cluster_gnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
