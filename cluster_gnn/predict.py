"""Predictions of lg(k1) with uncertainty, for an uploaded structure or a bundled cluster.

The chain is the library's: structure -> :func:`~cluster_gnn.electronic.compute_xtb_features`
-> :func:`~cluster_gnn.graphs.build_graph` -> :class:`~cluster_gnn.models.Ensemble`.
k1 is in cm^3 molecule^-1 s^-1; lg(k1) is its log10. ``lg_k1_std`` is the ensemble's
standard deviation (member spread and validation residuals, see
:meth:`Ensemble.predict`); ``lg_k1 ± 1.645 lg_k1_std`` is the 90 % interval.

For the 159 measured clusters :func:`predict_named` uses only the members that never saw
the cluster (its fold's out-of-fold prediction), so a shown prediction is never in-sample.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .config import MODELS_DIR

__all__ = ["Prediction", "DEFAULT_MODEL", "load_ensemble", "predict_structure", "predict_named", "predict_names", "predict_files",
           "Z90"]

#: Half-width of a central 90 % normal interval in standard deviations.
Z90 = 1.6448536269514722


@dataclass
class Prediction:
    """One prediction.

    Attributes
    ----------
    lg_k1, lg_k1_std: predicted lg(k1) and its standard deviation (lg units).
    measured_lg_k1: the measured value when the cluster is one of the 159, else None.
    out_of_fold: True when only members that never saw this cluster were used.
    atoms, features: the structure (Å) and its :class:`AtomFeatures`.
    charge, multiplicity: total charge (e) and 2S+1 used for xTB.
    name: cluster name when known.
    importance: per-atom importance, shape ``[num_atoms]`` (filled by :mod:`explain`).
    model: name of the ensemble used.
    domain_distance: distance from the clusters the members were trained on
        (:meth:`~cluster_gnn.domain.Domain.distance`; median 0.33 and 90th percentile 0.57
        for the measured clusters against the others, median 0.63 for the heteronuclear
        ones), already folded into ``lg_k1_std``.
    """

    lg_k1: float
    lg_k1_std: float
    atoms: object
    features: object
    charge: int
    multiplicity: int
    measured_lg_k1: float | None = None
    out_of_fold: bool = False
    name: str | None = None
    importance: np.ndarray | None = None
    model: str = "gin"
    domain_distance: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def interval90(self) -> tuple[float, float]:
        return self.lg_k1 - Z90 * self.lg_k1_std, self.lg_k1 + Z90 * self.lg_k1_std

    def to_dict(self) -> dict:
        out = {"name": self.name, "formula": self.atoms.get_chemical_formula(), "charge": self.charge,
               "multiplicity": self.multiplicity, "lg_k1": round(self.lg_k1, 4),
               "lg_k1_std": round(self.lg_k1_std, 4), "interval90": [round(v, 4) for v in self.interval90],
               "measured_lg_k1": self.measured_lg_k1, "out_of_fold": self.out_of_fold, "model": self.model,
               "domain_distance": None if self.domain_distance is None else round(self.domain_distance, 4),
               "level_of_theory": self.features.method}
        if self.importance is not None:
            out["importance"] = [round(float(v), 4) for v in self.importance]
        return out


#: The model behind predictions unless another is named: the GIN ensemble. Chosen on the
#: leave-one-metal-out proxy: with the composition classes in its graph features it ties
#: the consensus (:class:`~cluster_gnn.consensus.Consensus`, the default before them) on
#: held-out-metal MAE and beats it on every other figure of the three splits (README).
DEFAULT_MODEL = "gin"


@lru_cache(maxsize=4)
def _load(path: str):
    from .models import Ensemble

    return Ensemble.load(path)


@lru_cache(maxsize=2)
def _consensus(path: str):
    from .consensus import Consensus
    from .graphs import GraphConfig
    from .training import load_graphs

    ensemble = _load(path)
    return Consensus(ensemble, load_graphs(graph_config=GraphConfig(**ensemble.meta["graph_config"])))


def load_ensemble(name: str = DEFAULT_MODEL, models_dir: Path | str | None = None):
    """The committed model ``name`` (cached per process): an ensemble ``models/<name>.pt``
    (``gin``, ``gcn``) or ``consensus`` (the GIN ensemble with gradient boosting on the
    bundled graphs, :class:`~cluster_gnn.consensus.Consensus`)."""
    if name == "consensus":
        return _consensus(str(Path(models_dir or MODELS_DIR) / "gin.pt"))
    return _load(str(Path(models_dir or MODELS_DIR) / f"{name}.pt"))


def predict_structure(atoms, charge: int, multiplicity: int, relax: bool = False, ensemble=None,
                      name: str | None = None, explain: bool = False, timeout_s: float | None = None) -> Prediction:
    """Predict lg(k1) for any structure.

    Parameters
    ----------
    atoms:
        :class:`ase.Atoms` (positions in Å), e.g. from :func:`~cluster_gnn.structures.read_cluster`.
    charge, multiplicity:
        Total charge in e and spin multiplicity 2S+1.
    relax:
        Relax with FIRE at the xTB level first (for rough geometries).
    ensemble:
        An :class:`~cluster_gnn.models.Ensemble` or :class:`~cluster_gnn.consensus.Consensus`
        (default: :data:`DEFAULT_MODEL`).
    explain:
        Also compute per-atom importances (:func:`~cluster_gnn.explain.explain_prediction`).
    timeout_s:
        Wall-clock limit in s for the xTB work (relaxation and single point), run in a
        worker process (:func:`~cluster_gnn.electronic.run_time_limited`); None runs it here
        without a limit.

    Raises
    ------
    StructureError, XTBConvergenceError, ModelFileError
    """
    from .graphs import GraphConfig, build_graph
    from .structures import check_spin, validate_cluster

    ensemble = ensemble or load_ensemble()
    validate_cluster(atoms)
    check_spin(atoms.get_atomic_numbers(), charge, multiplicity)
    if timeout_s:
        from .electronic import run_time_limited

        atoms, features, relaxation = run_time_limited(_xtb_work, atoms, charge, multiplicity, relax,
                                                       timeout_s=timeout_s)
    else:
        atoms, features, relaxation = _xtb_work(atoms, charge, multiplicity, relax)
    graph = build_graph(atoms, features, GraphConfig(**ensemble.meta["graph_config"]))
    mean, std = ensemble.predict([graph])
    prediction = Prediction(float(mean[0]), float(std[0]), atoms, features, int(charge), int(multiplicity),
                            name=name, model=ensemble.name)
    _add_distance(prediction, ensemble, graph, None)
    if relaxation:
        prediction.extra["relaxation"] = relaxation
    return _explained(prediction, ensemble) if explain else prediction


def _add_distance(prediction: Prediction, ensemble, graph, fold) -> None:
    distance = ensemble.distance([graph], fold)
    if distance is not None:
        prediction.domain_distance = float(distance[0])


def _xtb_work(atoms, charge: int, multiplicity: int, relax: bool):
    """Optional relaxation, then the xTB single point: ``(atoms, AtomFeatures, relaxation)``,
    ``relaxation`` a dict (``energy`` in eV, ``converged``, ``steps``) or None."""
    from .electronic import compute_xtb_features
    from .structures import validate_cluster

    relaxation = None
    if relax:
        from .search import relax_cluster

        atoms, energy, converged, steps = relax_cluster(atoms, charge, multiplicity)
        validate_cluster(atoms)
        relaxation = {"energy": energy, "converged": converged, "steps": steps}
    return atoms, compute_xtb_features(atoms, charge, multiplicity), relaxation


def _explained(prediction: Prediction, ensemble) -> Prediction:
    from .explain import explain_prediction

    explain_prediction(prediction, ensemble)
    return prediction


def predict_named(name: str, ensemble=None, explain: bool = False) -> Prediction:
    """Predict a bundled cluster from its committed structure and features.

    Measured clusters get their out-of-fold prediction (members of their fold only).
    Raises :class:`UnknownClusterError` for names outside the 216 and
    :class:`StructureError` if the cluster has no structure yet.
    """
    from .datasets import find_cluster
    from .electronic import compute_xtb_features
    from .graphs import GraphConfig, build_graph
    from .search import load_structure

    ensemble = ensemble or load_ensemble()
    row = find_cluster(name)
    atoms = load_structure(row["name"])
    charge, mult = int(atoms.info["charge"]), int(atoms.info["multiplicity"])
    features = _bundled_features(row["name"]) or compute_xtb_features(atoms, charge, mult)
    graph = build_graph(atoms, features, GraphConfig(**ensemble.meta["graph_config"]), name=row["name"])
    measured = None if np.isnan(row["lg_k1"]) else float(row["lg_k1"])
    fold = int(row["fold"]) if measured is not None else None
    oof = fold is not None and fold in ensemble.folds()
    mean, std = ensemble.predict([graph], fold=fold if oof else None)
    prediction = Prediction(float(mean[0]), float(std[0]), atoms, features, charge, mult, measured_lg_k1=measured,
                            out_of_fold=oof, name=row["name"], model=ensemble.name)
    _add_distance(prediction, ensemble, graph, fold if oof else None)
    return _explained(prediction, ensemble) if explain else prediction


@lru_cache(maxsize=1)
def _feature_tables():
    from .electronic import load_feature_tables

    try:
        return load_feature_tables()
    except Exception:
        return {}


def _bundled_features(name: str):
    hit = _feature_tables().get(name)
    return hit[1] if hit else None


def predict_names(names, ensemble=None):
    """Predictions for many bundled clusters: a DataFrame with columns ``cluster`` (as
    given), ``name``, ``lg_k1_pred``, ``lg_k1_std``, ``domain_distance``, ``measured_lg_k1``,
    ``out_of_fold``."""
    import pandas as pd

    ensemble = ensemble or load_ensemble()
    rows = []
    for given in names:
        p = predict_named(given, ensemble)
        shown = p.to_dict()
        rows.append({"cluster": given, "name": p.name, "lg_k1_pred": shown["lg_k1"],
                     "lg_k1_std": shown["lg_k1_std"], "domain_distance": shown["domain_distance"],
                     "measured_lg_k1": p.measured_lg_k1,
                     "out_of_fold": p.out_of_fold})
    return pd.DataFrame(rows)


def _file_row(path, charge, multiplicity, relax, model, models_dir, timeout_s) -> dict:
    """One row of :func:`predict_files`; a project error becomes the row's ``error``."""
    from .errors import ClusterGNNError
    from .structures import charge_and_multiplicity, read_cluster

    row = {"file": str(path), "formula": None, "charge": charge, "multiplicity": multiplicity, "lg_k1": None,
           "lg_k1_std": None, "domain_distance": None, "error": None}
    try:
        atoms = read_cluster(Path(path))
        q, m = charge_and_multiplicity(atoms, charge, multiplicity)
        row.update(formula=atoms.get_chemical_formula(), charge=q, multiplicity=m)
        p = predict_structure(atoms, q, m, relax=relax, ensemble=load_ensemble(model, models_dir),
                              timeout_s=timeout_s)
        shown = p.to_dict()
        row.update({k: shown[k] for k in ("lg_k1", "lg_k1_std", "domain_distance")})
    except ClusterGNNError as e:
        row["error"] = str(e)
    return row


def predict_files(paths, charge: int | None = None, multiplicity: int | None = None, relax: bool = False,
                  model: str = DEFAULT_MODEL, models_dir=None, workers: int = 1, scheduler=None,
                  timeout_s: float | None = 120.0, progress: bool = False):
    """Predict many structure files: a DataFrame in the order of ``paths`` with columns
    ``file``, ``formula``, ``charge``, ``multiplicity``, ``lg_k1``, ``lg_k1_std``,
    ``domain_distance`` and ``error`` (the message for a file that could not be predicted;
    the other files are unaffected).

    ``charge``/``multiplicity`` apply to every file (default: from each file's comment
    line, see :func:`~cluster_gnn.structures.charge_and_multiplicity`). With ``workers >
    1`` or a Dask ``scheduler`` (address or ``Client``) the files are spread over
    processes (:func:`~cluster_gnn.parallel.task_executor`); there each file's xTB runs
    in its worker, bounded by the SCF iteration and relaxation step limits rather than
    ``timeout_s``, which applies when files run here one after another.
    """
    import pandas as pd
    from tqdm import tqdm

    paths = [str(p) for p in paths]
    bar = tqdm(total=len(paths), unit="file", disable=not progress, desc="predict")
    if workers <= 1 and scheduler is None:
        rows = []
        for path in paths:
            rows.append(_file_row(path, charge, multiplicity, relax, model, models_dir, timeout_s))
            bar.update(1)
    else:
        from .parallel import task_executor

        with task_executor(workers, scheduler) as executor:
            futures = [executor.submit(_file_row, path, charge, multiplicity, relax, model,
                                       None if models_dir is None else str(models_dir), None) for path in paths]
            rows = []
            for fut in futures:
                rows.append(fut.result())
                bar.update(1)
    bar.close()
    table = pd.DataFrame(rows, columns=["file", "formula", "charge", "multiplicity", "lg_k1", "lg_k1_std",
                                        "domain_distance", "error"])
    return table.astype({"charge": "Int64", "multiplicity": "Int64"})
