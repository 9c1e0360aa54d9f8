"""cluster-gnn: how fast does a gas-phase metal cluster grab N2?

The data flow one way, each step a function (see the README's library tour)::

    atoms      = read_cluster("my_cluster.xyz")                  # structures
    q, m       = charge_and_multiplicity(atoms)                  # spin: the file's, else -1 and estimated
    model      = load_ensemble("gin")                            # models: weights + ModelRecord, checked
    graph      = model.featurize(atoms, q, m)                    # electronic (GFN1-xTB) -> graphs
    prediction = predict_structure(atoms, q, m, explain=True)    # predict (+ explain)

Names are imported lazily, so ``import cluster_gnn`` and ``cluster-gnn --help`` stay fast.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "read_cluster": "structures", "write_cluster": "structures", "validate_cluster": "structures",
    "normalize_name": "structures", "parse_name": "structures",
    "load_clusters": "datasets", "find_cluster": "datasets", "build_tables": "datasets",
    "load_structure": "datasets", "charge_and_multiplicity": "spin",
    "search_cluster": "search", "relax_cluster": "electronic",
    "compute_xtb_features": "electronic", "AtomFeatures": "electronic", "load_graphs": "graphs",
    "build_graph": "graphs", "GraphConfig": "graphs",
    "ClusterGNN": "models", "Ensemble": "models", "ModelConfig": "models", "ModelRecord": "models",
    "TrainConfig": "training", "train_ensemble": "training", "train_and_save": "training",
    "evaluate": "evaluation",
    "predict_structure": "predict", "predict_named": "predict", "load_ensemble": "predict", "Prediction": "predict",
    "predict_files": "predict", "Consensus": "consensus", "Domain": "domain",
    "explain_graph": "explain", "explain_prediction": "explain",
    "cluster_descriptors": "descriptors", "charge_polarization": "descriptors",
    "XTBConfig": "config", "SearchConfig": "config",
    "ClusterGNNError": "errors", "StructureError": "errors", "UnknownClusterError": "errors",
    "XTBConvergenceError": "errors", "XTBTimeoutError": "errors", "FeatureMismatchError": "errors", "ModelFileError": "errors",
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
