"""Precomputed predictions of the 216 bundled clusters, so a pick answers instantly.

``cluster-gnn precompute`` (:func:`write_bundled`) predicts and explains every bundled
cluster once and writes two tables under ``data/predictions/``:

``bundled.csv``, one row per cluster
    ``name``, ``charge``, ``multiplicity``, ``lg_k1`` (predicted), ``lg_k1_std``,
    ``interval90_lo``/``interval90_hi`` (``lg_k1 ± 1.645 lg_k1_std``, the convention of
    ``coverage90``), ``model`` (``gin`` or ``prior_blend``), ``out_of_fold``,
    ``measured_lg_k1`` (empty when not measured or withheld), ``rate`` (``measured`` or
    ``withheld``), ``new_metal_pair``, ``mixing_distance``, ``domain_distance``, ``domain_threshold``,
    ``level_of_theory`` and ``fingerprint`` (:func:`model_fingerprint`).
``bundled-atoms.csv``, one row per atom
    ``name``, ``index`` (from 0), ``symbol``, ``x``/``y``/``z`` (Å), ``charge`` (xTB
    Mulliken, e), ``s``/``p``/``d`` (shell populations, e), ``importance`` (share, sums to 1
    per cluster), ``contribution`` (signed, lg units: how much the atom raises or lowers
    lg(k1) against an average atom in its place, by ``method``) and ``method`` (the explainer's).

A measured cluster's row holds its out-of-fold (held-out) prediction, the one
:func:`~cluster_gnn.predict.predict_named` gives. :func:`load_bundled` reads the tables
(cached, keyed by the files' modification times) and says whether their fingerprint
matches the models now in ``models/``; the app computes live when it does not.
k1 is in cm^3 molecule^-1 s^-1.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from . import config
from .datasets import load_clusters
from .errors import DatasetError
from .predict import load_ensemble, predict_named, transfer_inputs
from .results import ClusterResult, explain_live

__all__ = ["BundledTable", "model_fingerprint", "precompute", "write_bundled", "load_bundled", "bundled_result",
           "check_table", "CLUSTER_COLUMNS", "ATOM_COLUMNS", "FINGERPRINT_FILES"]

#: The files that make the model fingerprint: the GIN ensemble and the mixture model's settings.
FINGERPRINT_FILES = ("gin.pt", "transfer.json")
CLUSTER_COLUMNS = ["name", "charge", "multiplicity", "lg_k1", "lg_k1_std", "interval90_lo", "interval90_hi",
                   "model", "out_of_fold", "measured_lg_k1", "rate", "new_metal_pair", "mixing_distance",
                   "domain_distance", "domain_threshold", "level_of_theory", "fingerprint"]
ATOM_COLUMNS = ["name", "index", "symbol", "x", "y", "z", "charge", "s", "p", "d", "importance", "contribution",
                "method"]


def _paths(data_dir=None) -> tuple[Path, Path]:
    directory = Path(data_dir or config.DATA_DIR) / "predictions"
    return directory / "bundled.csv", directory / "bundled-atoms.csv"


def _fingerprint_bytes(path: Path) -> bytes:
    """What of ``path`` enters the fingerprint: all bytes, but of ``transfer.json`` only what
    predictions read (:func:`~cluster_gnn.predict.transfer_inputs`), so re-running an
    evaluation that reports new figures leaves the precomputed table current."""
    if not path.is_file():
        return b"missing"
    if path.name == "transfer.json":
        try:
            return json.dumps(transfer_inputs(json.loads(path.read_text(encoding="utf-8"))), sort_keys=True).encode()
        except (ValueError, AttributeError):
            pass  # not a settings file: its bytes
    return path.read_bytes()


@lru_cache(maxsize=8)
def _fingerprint(stamp: tuple) -> str:
    digest = hashlib.sha256()
    for path, _, _ in stamp:
        digest.update(Path(path).name.encode())
        digest.update(_fingerprint_bytes(Path(path)))
    return digest.hexdigest()


def model_fingerprint(models_dir=None) -> str:
    """sha256 over ``models/gin.pt`` and what predictions read of ``models/transfer.json``
    (hex): equal fingerprints, equal predictions. Cached by the files' sizes and modification
    times."""
    directory = Path(models_dir or config.MODELS_DIR)
    stamp = []
    for name in FINGERPRINT_FILES:
        path = directory / name
        st = path.stat() if path.is_file() else None
        stamp.append((str(path), st and st.st_mtime_ns, st and st.st_size))
    return _fingerprint(tuple(stamp))


def _rows(prediction, explanation, rate: str, fingerprint: str) -> tuple[dict, list[dict]]:
    lo, hi = prediction.interval90
    r = lambda v: None if v is None else round(float(v), 6)  # noqa: E731
    cluster = {"name": prediction.name, "charge": prediction.charge, "multiplicity": prediction.multiplicity,
               "lg_k1": r(prediction.lg_k1), "lg_k1_std": r(prediction.lg_k1_std), "interval90_lo": r(lo),
               "interval90_hi": r(hi), "model": prediction.model, "out_of_fold": bool(prediction.out_of_fold),
               "measured_lg_k1": r(prediction.measured_lg_k1), "rate": rate,
               "new_metal_pair": bool(prediction.new_metal_pair), "mixing_distance": prediction.mixing_distance,
               "domain_distance": r(prediction.domain_distance),
               "domain_threshold": r(prediction.domain_threshold), "level_of_theory": prediction.features.method,
               "fingerprint": fingerprint}
    method = explanation.method
    contribution = (explanation.contribution if explanation.contribution is not None
                    else np.full(len(prediction.atoms), np.nan))
    f = prediction.features
    atoms = [{"name": prediction.name, "index": i, "symbol": s, "x": round(float(x), 6), "y": round(float(y), 6),
              "z": round(float(z), 6), "charge": round(float(f.charges[i]), 6),
              "s": round(float(f.s_population[i]), 6), "p": round(float(f.p_population[i]), 6),
              "d": round(float(f.d_population[i]), 6), "importance": round(float(explanation.importance[i]), 8),
              "contribution": round(float(contribution[i]), 6), "method": method}
             for i, (s, (x, y, z)) in enumerate(zip(prediction.atoms.get_chemical_symbols(),
                                                    prediction.atoms.get_positions()))]
    return cluster, atoms


def precompute(names=None, ensemble=None, progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predict and explain bundled clusters (default: all 216) with one torch thread:
    ``(clusters, atoms)`` DataFrames with :data:`CLUSTER_COLUMNS` and :data:`ATOM_COLUMNS`."""
    import torch
    from tqdm import tqdm

    torch.set_num_threads(1)
    table = load_clusters()
    names = table["name"].tolist() if names is None else list(names)
    rates = dict(zip(table["name"], table["rate"]))
    ensemble = ensemble or load_ensemble()
    fingerprint = model_fingerprint()
    clusters, atoms = [], []
    for name in tqdm(names, disable=not progress, unit="cluster", desc="precompute"):
        prediction = predict_named(name, ensemble)
        explanation = explain_live(prediction, ensemble)
        row, atom_rows = _rows(prediction, explanation, rates.get(prediction.name, "unknown"), fingerprint)
        clusters.append(row)
        atoms.extend(atom_rows)
    return pd.DataFrame(clusters, columns=CLUSTER_COLUMNS), pd.DataFrame(atoms, columns=ATOM_COLUMNS)


def write_bundled(names=None, data_dir=None, progress: bool = False) -> tuple[Path, Path]:
    """:func:`precompute`, written to ``data/predictions/bundled.csv`` and ``bundled-atoms.csv``.
    With ``names``, only their rows are replaced; the other rows are kept when the tables
    were made with the same models, and dropped otherwise."""
    clusters, atoms = precompute(names, progress=progress)
    cluster_path, atom_path = _paths(data_dir)
    old = load_bundled(data_dir) if names is not None else None
    if old is not None and old.fingerprint == clusters["fingerprint"].iloc[0]:
        fresh = set(clusters["name"])
        clusters = pd.concat([old.clusters[~old.clusters["name"].isin(fresh)].reset_index(drop=True), clusters],
                             ignore_index=True)
        atoms = pd.concat([old.atoms[~old.atoms["name"].isin(fresh)], atoms], ignore_index=True)
        order = {n: k for k, n in enumerate(load_clusters()["name"])}
        clusters = clusters.sort_values("name", key=lambda c: c.map(order), kind="stable")
        atoms = atoms.sort_values(["name", "index"], key=lambda c: c.map(order) if c.name == "name" else c,
                                  kind="stable")
    cluster_path.parent.mkdir(parents=True, exist_ok=True)
    clusters.to_csv(cluster_path, index=False, lineterminator="\n")
    atoms.to_csv(atom_path, index=False, lineterminator="\n")
    return cluster_path, atom_path


@dataclass(frozen=True)
class BundledTable:
    """The precomputed tables as read.

    Attributes
    ----------
    clusters, atoms: the two tables (``clusters`` indexed by ``name``).
    fingerprint: the table's model fingerprint; ``current``: equal to :func:`model_fingerprint`.
    path: ``bundled.csv``; ``read_s``: seconds it took to read the tables.
    """

    clusters: pd.DataFrame
    atoms: pd.DataFrame
    fingerprint: str
    current: bool
    path: Path
    read_s: float

    @property
    def status(self) -> str:
        """One sentence for the page: is the table in use, and if not, why."""
        if self.current:
            return (f"Read from the precomputed table ({self.path.parent.name}/{self.path.name}, "
                    f"model fingerprint {self.fingerprint[:12]}).")
        return (f"The precomputed table ({self.path.name}) was made with other models (fingerprint "
                f"{self.fingerprint[:12]}, models now {model_fingerprint()[:12]}): computed live instead; "
                "run 'cluster-gnn precompute' to refresh it.")


@lru_cache(maxsize=2)
def _read(cluster_path: str, atom_path: str, stamps: tuple) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    t0 = time.perf_counter()
    try:
        clusters = pd.read_csv(cluster_path, keep_default_na=False, na_values=[""])
        atoms = pd.read_csv(atom_path)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise DatasetError(f"the precomputed tables cannot be read ({type(e).__name__}: {e}); "
                           "run 'cluster-gnn precompute'") from e
    missing = sorted(set(CLUSTER_COLUMNS) - set(clusters.columns)) + sorted(set(ATOM_COLUMNS) - set(atoms.columns))
    if missing:
        raise DatasetError(f"the precomputed tables lack columns {missing}; run 'cluster-gnn precompute'")
    return clusters.set_index("name", drop=False), atoms, time.perf_counter() - t0


def load_bundled(data_dir=None) -> BundledTable | None:
    """The precomputed tables (cached; re-read when a file changes), or None when they are not
    there. :class:`DatasetError` when they are there but unreadable."""
    cluster_path, atom_path = _paths(data_dir)
    if not (cluster_path.is_file() and atom_path.is_file()):
        return None
    stamps = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in (cluster_path, atom_path))
    clusters, atoms, read_s = _read(str(cluster_path), str(atom_path), stamps)
    fingerprints = set(clusters["fingerprint"].astype(str))
    fingerprint = fingerprints.pop() if len(fingerprints) == 1 else "mixed"
    return BundledTable(clusters, atoms, fingerprint, fingerprint == model_fingerprint(), cluster_path, read_s)


def _bool(value) -> bool:
    return str(value).strip().lower() in ("true", "1")


def bundled_result(name: str, table: BundledTable | None = None) -> ClusterResult | None:
    """The precomputed :class:`ClusterResult` of a bundled cluster (normalised ``name``),
    or None when the table is missing, made with other models, or lacks the cluster."""
    from ase import Atoms

    table = table or load_bundled()
    if table is None or not table.current or name not in table.clusters.index:
        return None
    row = table.clusters.loc[name]
    rows = table.atoms[table.atoms["name"] == name].sort_values("index")
    atoms = Atoms(rows["symbol"].tolist(), positions=rows[["x", "y", "z"]].to_numpy(float))
    measured = None if pd.isna(row["measured_lg_k1"]) else float(row["measured_lg_k1"])
    return ClusterResult(
        name=name, formula=atoms.get_chemical_formula(), charge=int(row["charge"]),
        multiplicity=int(row["multiplicity"]), lg_k1=float(row["lg_k1"]), lg_k1_std=float(row["lg_k1_std"]),
        model=str(row["model"]), out_of_fold=_bool(row["out_of_fold"]), measured_lg_k1=measured,
        rate=str(row["rate"]), new_metal_pair=_bool(row["new_metal_pair"]), atoms=atoms,
        charges=rows["charge"].to_numpy(float), importance=rows["importance"].to_numpy(float),
        contribution=rows["contribution"].to_numpy(float) if "contribution" in rows else None,
        method=str(rows["method"].iloc[0]), source="precomputed", fingerprint=str(row["fingerprint"]),
        domain_distance=None if pd.isna(row["domain_distance"]) else float(row["domain_distance"]),
        domain_threshold=None if pd.isna(row["domain_threshold"]) else float(row["domain_threshold"]),
        level_of_theory=str(row["level_of_theory"]),
        mixing_distance=None if pd.isna(row.get("mixing_distance")) else str(row["mixing_distance"]),
        populations={k: rows[k].to_numpy(float) for k in ("s", "p", "d")})


def check_table(table: BundledTable) -> list[str]:
    """Problems with a loaded table: clusters of ``data/clusters.csv`` it lacks, importances
    that do not sum to 1."""
    problems = []
    missing = sorted(set(load_clusters()["name"]) - set(table.clusters.index))
    if missing:
        problems.append(f"{len(missing)} bundled clusters missing: {', '.join(missing[:5])}")
    sums = table.atoms.groupby("name")["importance"].sum()
    bad = sums[~np.isclose(sums, 1.0, atol=1e-4)]
    if len(bad):
        problems.append(f"importances do not sum to 1 for {', '.join(bad.index[:5])}")
    return problems
