"""Predictions of lg(k1) with uncertainty, for an uploaded structure or a bundled cluster.

The chain is the library's: structure -> :func:`~cluster_gnn.electronic.compute_xtb_features`
-> :func:`~cluster_gnn.graphs.build_graph` -> :class:`~cluster_gnn.models.Ensemble`.
k1 is in cm^3 molecule^-1 s^-1; lg(k1) is its log10. ``lg_k1_std`` is the ensemble's
standard deviation (member spread and validation residuals, see
:meth:`Ensemble.predict`); ``lg_k1 ± 1.645 lg_k1_std`` is the 90 % interval.

For the 159 measured clusters :func:`predict_named` uses only the members that never saw
the cluster (its fold's out-of-fold prediction), so a shown prediction is never in-sample.

A cluster that mixes metals is beyond what the GIN carries over (``cluster-gnn evaluate
--split mixtures`` and ``--split family``): its prediction comes from
:class:`~cluster_gnn.transfer.PriorBlend` fitted on the measured clusters the GIN was trained
on, with the standard deviation measured on held-out mixed clusters at the same distance from the
training clusters (``models/transfer.json``, ``std_by_distance``); ``Prediction.model`` says ``prior_blend`` and ``new_metal_pair`` whether any
training cluster mixes the same metals.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .config import DATA_DIR, MODELS_DIR, XTBConfig
from .consensus import Consensus
from .datasets import find_cluster, load_clusters, load_structure
from .electronic import FEATURES_DIR_NAME, compute_xtb_features, load_feature_tables, relax_cluster, run_time_limited
from .errors import ClusterGNNError, DatasetError, StructureError
from .explain import explain_prediction
from .limits import check_finite_result, check_timeout
from .graphs import load_graphs
from .models import Ensemble
from .parallel import task_executor
from .spin import charge_and_multiplicity
from .structures import MAX_FILE_BYTES, check_spin, metal_pairs, read_cluster, validate_cluster
from .transfer import PriorBlend, mixing_distance

__all__ = ["Prediction", "DEFAULT_MODEL", "load_ensemble", "predict_structure", "predict_named", "predict_names", "predict_files", "formula_model",
           "read_names", "Z90"]

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
    fold: the published fold whose members made an out-of-fold prediction, else None.
    atoms, features: the structure (Å) and its :class:`AtomFeatures`.
    charge, multiplicity: total charge (e) and 2S+1 used for xTB.
    name: cluster name when known.
    importance: per-atom importance, shape ``[num_atoms]`` (filled by :mod:`explain`).
    model: name of the ensemble used.
    domain_distance: distance from the clusters the members were trained on
        (:meth:`~cluster_gnn.domain.Domain.distance`), already folded into ``lg_k1_std``.
    domain_threshold: the model's extrapolation threshold on that distance
        (:attr:`~cluster_gnn.domain.Domain.threshold`, 0.62 for the committed GIN).
    relaxation: ``{"energy": eV, "converged": bool, "steps": int}`` when the structure
        was relaxed first, else None.
    new_metal_pair: True when the cluster mixes two metals that no training cluster mixes
        (every mixed cluster is predicted by ``prior_blend``, see ``model``).
    mixing_distance: for a mixed cluster, how far it lies from the training clusters
        (:func:`~cluster_gnn.transfer.mixing_distance`: ``family_seen`` ... ``metal_ligand_new``),
        which sets ``lg_k1_std``; None for a cluster of one metal.
    explanation: the :class:`~cluster_gnn.explain.Explanation` when explained, else None.
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
    fold: int | None = None
    domain_threshold: float | None = None
    relaxation: dict | None = None
    explanation: object | None = None
    new_metal_pair: bool = False
    mixing_distance: str | None = None

    @property
    def interval90(self) -> tuple[float, float]:
        """The central 90 % interval of lg(k1), ``lg_k1 ± 1.645 lg_k1_std``."""
        return self.lg_k1 - Z90 * self.lg_k1_std, self.lg_k1 + Z90 * self.lg_k1_std

    @property
    def extrapolating(self) -> bool:
        """True when the cluster lies beyond the model's domain threshold."""
        return (self.domain_distance is not None and self.domain_threshold is not None
                and self.domain_distance > self.domain_threshold)

    def to_dict(self) -> dict:
        out = {"name": self.name, "formula": self.atoms.get_chemical_formula(), "charge": self.charge,
               "multiplicity": self.multiplicity, "lg_k1": round(self.lg_k1, 4),
               "lg_k1_std": round(self.lg_k1_std, 4), "interval90": [round(v, 4) for v in self.interval90],
               "measured_lg_k1": self.measured_lg_k1, "out_of_fold": self.out_of_fold, "model": self.model,
               "domain_distance": None if self.domain_distance is None else round(self.domain_distance, 4),
               "extrapolating": self.extrapolating, "new_metal_pair": self.new_metal_pair,
               "mixing_distance": self.mixing_distance,
               "level_of_theory": self.features.method}
        if self.importance is not None:
            out["importance"] = [round(float(v), 4) for v in self.importance]
        return out


#: The model behind predictions unless another is named: the GIN ensemble, whose mixed-metal
#: clusters go to ``prior_blend`` (chosen on the mixtures and family splits, docs/experiments.md).
DEFAULT_MODEL = "gin"


#: Held while a model is loaded: concurrent first calls (threads of the app) wait for one
#: load instead of each loading the ensemble (one load per process).
_LOAD_LOCK = threading.RLock()


@lru_cache(maxsize=4)
def _load_uncached(path: str):
    return Ensemble.load(path)


def _load(path: str):
    with _LOAD_LOCK:
        return _load_uncached(path)


@lru_cache(maxsize=2)
def _consensus_uncached(path: str):
    ensemble = _load(path)
    return Consensus(ensemble, load_graphs(graph_config=ensemble.record.graph_config))


def _consensus(path: str):
    with _LOAD_LOCK:
        return _consensus_uncached(path)


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
        worker process of this call's own (:func:`~cluster_gnn.electronic.run_time_limited`);
        None or 0 runs it here without a limit; else 0.1 s to a day.

    Raises
    ------
    StructureError, XTBConvergenceError, XTBTimeoutError, ModelFileError, PredictionError
    (a result that is not finite), ClusterGNNError (a bad ``timeout_s``)
    """
    timeout_s = check_timeout(timeout_s, "timeout_s")
    ensemble = ensemble or load_ensemble()
    validate_cluster(atoms)
    check_spin(atoms.get_atomic_numbers(), charge, multiplicity)
    level = ensemble.record.level_of_theory
    if timeout_s:
        atoms, features, relaxation = run_time_limited(_xtb_work, atoms, charge, multiplicity, relax, level,
                                                       timeout_s=timeout_s)
    else:
        atoms, features, relaxation = _xtb_work(atoms, charge, multiplicity, relax, level)
    graph = ensemble.featurize(atoms, charge, multiplicity, features=features)
    mean, std = ensemble.predict([graph])
    prediction = Prediction(float(mean[0]), float(std[0]), atoms, features, int(charge), int(multiplicity),
                            name=name, model=ensemble.name, relaxation=relaxation)
    _add_distance(prediction, ensemble.distance([graph], None), ensemble)
    _mixture_gate(prediction, ensemble)
    _check_finite(prediction)
    return _explained(prediction, ensemble) if explain else prediction


def _check_finite(prediction: Prediction) -> None:
    """A prediction that is not finite is an error (:class:`PredictionError`), never an output."""
    check_finite_result([prediction.lg_k1, prediction.lg_k1_std],
                        f"the prediction for {prediction.name or prediction.atoms.get_chemical_formula()}")


def _add_distance(prediction: Prediction, distance, ensemble, index: int = 0) -> None:
    if distance is not None:
        prediction.domain_distance = float(distance[index])
        prediction.domain_threshold = ensemble.domain.threshold


def transfer_inputs(settings: dict) -> dict:
    """What predictions read of ``models/transfer.json``: the standard deviations of a
    mixed-cluster prediction (``new_pair_std``, ``std_by_distance[...]["std"]``, lg units); the
    rest (chosen model, MAE on the splits) reports how they were chosen."""
    return {"new_pair_std": settings.get("new_pair_std"),
            "std_by_distance": {k: v.get("std") for k, v in settings.get("std_by_distance", {}).items()}}


@lru_cache(maxsize=1)
def _transfer_settings() -> dict:
    """``models/transfer.json`` (written by ``cluster-gnn evaluate --split mixtures/family --write``)."""
    import json

    path = MODELS_DIR / "transfer.json"
    if not path.is_file():
        raise DatasetError(f"{path} not found: run 'cluster-gnn evaluate --split all --write'")
    return json.loads(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=64)
def _prior_blend(without: str | None = None) -> PriorBlend:
    """``prior_blend`` fitted on the measured clusters of ``data/clusters.csv`` (all 183),
    leaving out ``without`` (a measured cluster predicted held-out)."""
    table = load_clusters()
    return PriorBlend().fit(table[table["lg_k1"].notna() & (table["name"] != without)])


@lru_cache(maxsize=64)
def _training_names(without: str | None = None) -> tuple:
    """Names of the measured clusters ``prior_blend`` is fitted on (leaving out ``without``)."""
    table = load_clusters()
    return tuple(n for n in table.loc[table["lg_k1"].notna(), "name"] if n != without)


@lru_cache(maxsize=1)
def _mixed_pairs() -> frozenset:
    """The metal pairs of the measured mixed clusters."""
    return frozenset().union(*map(metal_pairs, _training_names()))


def _mixture_gate(prediction: Prediction, ensemble) -> None:
    """Hand a mixed-metal cluster to ``prior_blend`` (held-out when it is a measured one)."""
    formula = prediction.atoms.get_chemical_formula(mode="metal")
    pairs = metal_pairs(formula)
    if not pairs or getattr(ensemble, "name", "gin") != "gin":
        return
    measured = prediction.name is not None and prediction.measured_lg_k1 is not None
    row = pd.DataFrame([{"name": formula, "charge": prediction.charge, "multiplicity": prediction.multiplicity}])
    prediction.lg_k1 = float(_prior_blend(prediction.name if measured else None).predict(row)[0])
    prediction.mixing_distance = mixing_distance(formula, _training_names(prediction.name if measured else None))
    settings = transfer_inputs(_transfer_settings())
    by_distance = settings["std_by_distance"]
    prediction.lg_k1_std = float(by_distance[prediction.mixing_distance] if prediction.mixing_distance
                                 in by_distance else settings["new_pair_std"])
    prediction.model = "prior_blend"
    prediction.out_of_fold = measured
    prediction.new_metal_pair = not pairs <= _mixed_pairs()


def _xtb_work(atoms, charge: int, multiplicity: int, relax: bool, level: XTBConfig):
    """Optional relaxation, then the xTB single point at ``level``: ``(atoms, AtomFeatures,
    relaxation)``, ``relaxation`` a dict (``energy`` in eV, ``converged``, ``steps``) or None."""
    relaxation = None
    if relax:
        atoms, energy, converged, steps = relax_cluster(atoms, charge, multiplicity, level)
        validate_cluster(atoms)
        relaxation = {"energy": energy, "converged": converged, "steps": steps}
    return atoms, compute_xtb_features(atoms, charge, multiplicity, level), relaxation


def formula_model(prediction: Prediction):
    """For a ``prior_blend`` prediction, the composition model behind it as
    ``(predict, empty_value)`` for :func:`~cluster_gnn.explain.explain_prediction`:
    ``predict(formulas)`` gives lg k1 at the prediction's charge and multiplicity (held-out for
    a measured cluster, like the prediction), ``empty_value`` the mean measured lg k1. None for
    a GIN prediction."""
    if prediction.model != "prior_blend":
        return None
    measured = prediction.out_of_fold
    model = _prior_blend(prediction.name if measured else None)
    table = load_clusters()
    empty = float(table.loc[table["lg_k1"].notna() & (table["name"] != (prediction.name if measured else None)),
                            "lg_k1"].mean())

    def predict(formulas):
        rows = pd.DataFrame({"name": list(formulas), "charge": prediction.charge,
                             "multiplicity": prediction.multiplicity})
        return model.predict(rows)

    return predict, empty


def _explained(prediction: Prediction, ensemble) -> Prediction:
    explain_prediction(prediction, ensemble, formula_model=formula_model(prediction))
    return prediction


def predict_named(name: str, ensemble=None, explain: bool = False) -> Prediction:
    """Predict a bundled cluster from its committed structure and features.

    Measured clusters get their out-of-fold prediction (members of their fold only; the
    fold is ``prediction.fold``). Raises :class:`UnknownClusterError` for names outside the
    216 and :class:`StructureError` if the cluster has no structure yet.
    """
    ensemble = ensemble or load_ensemble()
    prediction = _predict_bundled([name], ensemble)[0]
    return _explained(prediction, ensemble) if explain else prediction


def _predict_bundled(names, ensemble) -> list[Prediction]:
    """Predictions of bundled clusters, batched: the graphs of all clusters that use the
    same members (one fold's, or all) go through each member in one forward pass. The
    out-of-fold rule and the mixture gate apply per cluster, as for one."""
    items = []
    for given in names:
        row = find_cluster(given)
        atoms = load_structure(row["name"])
        charge, mult = int(atoms.info["charge"]), int(atoms.info["multiplicity"])
        features = _bundled_features(row["name"]) or compute_xtb_features(atoms, charge, mult,
                                                                          ensemble.record.level_of_theory)
        graph = ensemble.featurize(atoms, charge, mult, features=features, name=row["name"])
        measured = None if np.isnan(row["lg_k1"]) else float(row["lg_k1"])
        fold = int(row["fold"]) if measured is not None and pd.notna(row["fold"]) else None  # mixed: no fold
        oof = fold is not None and fold in ensemble.folds()
        items.append((row["name"], atoms, features, charge, mult, graph, measured, fold if oof else None))
    predictions: list[Prediction | None] = [None] * len(items)
    for fold in sorted({it[7] for it in items}, key=lambda f: -1 if f is None else f):
        index = [i for i, it in enumerate(items) if it[7] == fold]
        graphs = [items[i][5] for i in index]
        mean, std = ensemble.predict(graphs, fold=fold)
        distance = ensemble.distance(graphs, fold)
        for k, i in enumerate(index):
            name, atoms, features, charge, mult, _, measured, _ = items[i]
            p = Prediction(float(mean[k]), float(std[k]), atoms, features, charge, mult, measured_lg_k1=measured,
                           out_of_fold=fold is not None, fold=fold, name=name, model=ensemble.name)
            _add_distance(p, distance, ensemble, k)
            _mixture_gate(p, ensemble)
            _check_finite(p)
            predictions[i] = p
    return predictions


@lru_cache(maxsize=1)
def _feature_tables() -> dict:
    """The bundled feature tables (``data/features``), or ``{}`` when none are there yet.
    A table that is there but unreadable raises :class:`DatasetError`."""
    directory = DATA_DIR / FEATURES_DIR_NAME
    if not (directory / "atoms.csv").is_file():
        return {}
    try:
        return load_feature_tables(directory)
    except ClusterGNNError:
        raise
    except Exception as e:  # pandas/KeyError on a damaged CSV
        raise DatasetError(f"the feature tables in {directory} cannot be read ({type(e).__name__}: {e}); "
                           "rebuild them with 'cluster-gnn features'") from e


def _bundled_features(name: str):
    hit = _feature_tables().get(name)
    return hit[1] if hit else None


def read_names(path) -> list[str]:
    """The ``cluster`` column of a CSV file (``predict --names``); :class:`StructureError`
    for a missing, unreadable or empty file or one without that column."""
    path = Path(path)
    if not path.exists():
        raise StructureError(f"no such file: {path}", reason="no-file")
    if not path.is_file():
        raise StructureError(f"{path} is not a regular file, expected a CSV file", reason="no-file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise StructureError(f"{path} is larger than the {MAX_FILE_BYTES >> 20} MiB limit", reason="file-too-large")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise StructureError(f"{path} is not a readable CSV file ({type(e).__name__})", reason="not-text") from e
    if "cluster" not in table:
        raise StructureError(f"{path} has no 'cluster' column (columns: {', '.join(map(str, table.columns[:5]))})",
                             reason="no-column")
    if table.empty:
        raise StructureError(f"{path} lists no clusters", reason="empty")
    return [str(n) for n in table["cluster"]]


def predict_names(names, ensemble=None):
    """Predictions for many bundled clusters: a DataFrame with columns ``cluster`` (as
    given), ``name``, ``lg_k1_pred``, ``lg_k1_std``, ``domain_distance``, ``measured_lg_k1``,
    ``out_of_fold``. Batched (:func:`_predict_bundled`): each member runs once per fold
    group, not once per cluster; the results equal :func:`predict_named`'s."""
    ensemble = ensemble or load_ensemble()
    names = list(names)
    rows = []
    for given, p in zip(names, _predict_bundled(names, ensemble)):
        shown = p.to_dict()
        rows.append({"cluster": given, "name": p.name, "lg_k1_pred": shown["lg_k1"],
                     "lg_k1_std": shown["lg_k1_std"], "domain_distance": shown["domain_distance"],
                     "measured_lg_k1": p.measured_lg_k1,
                     "out_of_fold": p.out_of_fold})
    return pd.DataFrame(rows)


def _file_row(path, charge, multiplicity, relax, model, models_dir, timeout_s) -> dict:
    """One row of :func:`predict_files`; a project error becomes the row's ``error``."""
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
    line, else the defaults of :func:`~cluster_gnn.spin.charge_and_multiplicity`). With ``workers >
    1`` or a Dask ``scheduler`` (address or ``Client``) the files are spread over
    processes (:func:`~cluster_gnn.parallel.task_executor`); there each file's xTB runs
    in its worker, bounded by the SCF iteration and relaxation step limits rather than
    ``timeout_s``, which applies when files run here one after another.
    """
    timeout_s = check_timeout(timeout_s, "timeout_s")
    paths = [str(p) for p in paths]
    bar = tqdm(total=len(paths), unit="file", disable=not progress, desc="predict")
    if workers <= 1 and scheduler is None:
        rows = []
        for path in paths:
            rows.append(_file_row(path, charge, multiplicity, relax, model, models_dir, timeout_s))
            bar.update(1)
    else:
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
