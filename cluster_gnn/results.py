"""What the app shows for one cluster, however it was made: :class:`ClusterResult`.

A result comes either from a live prediction (:func:`result_from_prediction`: xTB, the
ensemble and its explainer ran just now) or from the precomputed table of the 216 bundled
clusters (:func:`cluster_gnn.bundled.bundled_result`), and both carry the same fields, so a
page draws them the same way. Also here: the measured cluster behind an uploaded
composition (:func:`known_cluster`), the runner-up isomers of the structure search
(:func:`load_isomers`), the DFT natural charges and spins where the DFT job has reached a
cluster (:func:`dft_atom_values`), and predictions for several uploaded files at once
(:func:`predict_uploads`).

Units: positions in Å, charges and spins in e, lg(k1) with k1 in cm^3 molecule^-1 s^-1.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from .config import DATA_DIR, STRUCTURES_DIR
from .datasets import load_clusters
from .errors import ClusterGNNError, StructureError
from .predict import Z90, predict_structure
from .spin import charge_and_multiplicity
from .structures import cluster_family, formula_counts, normalize_name, read_cluster

__all__ = ["ClusterResult", "atom_table", "result_from_prediction", "explain_live", "known_cluster", "load_isomers",
           "dft_atom_values", "pbe_ranked_isomer", "predict_uploads", "xyz_text", "LIVE_ENV", "check_live_allowed"]

#: Set this environment variable to ``0`` to make every live computation (xTB, ensemble,
#: explainer) through :func:`check_live_allowed` raise: tests and benchmarks use it to prove
#: that a bundled cluster is read from the precomputed table.
LIVE_ENV = "CLUSTER_GNN_LIVE"



@dataclass
class ClusterResult:
    """One cluster's prediction as shown: the numbers, the structure and per-atom values.

    Attributes
    ----------
    name: cluster name when it is one of the 216 (or an upload matched to one), else None.
    formula: chemical formula, e.g. ``Mo5S4``.
    charge, multiplicity: total charge (e) and 2S+1.
    lg_k1, lg_k1_std: prediction and its standard deviation (lg units).
    model: ``gin`` or ``prior_blend`` (:attr:`~cluster_gnn.predict.Prediction.model`).
    out_of_fold: True when the model never saw this cluster's rate when predicting it.
    measured_lg_k1: the measured value, else None.
    rate: ``measured``, ``withheld`` (measured, held back for a blind test) or ``unknown``.
    new_metal_pair: True for a mixed cluster whose metal pair no training cluster mixes.
    mixing_distance: a mixed cluster's distance from the training clusters
        (:func:`~cluster_gnn.transfer.mixing_distance`), else None.
    domain_distance, domain_threshold: distance from the training clusters and the model's
        extrapolation threshold (None when not known).
    atoms: :class:`ase.Atoms`, positions in Å.
    charges: xTB Mulliken charges in e, shape ``[num_atoms]``.
    populations: ``{"s", "p", "d"}`` -> Mulliken shell populations in e, each ``[num_atoms]`` (may be empty).
    importance: per-atom importance shares, shape ``[num_atoms]``, summing to 1, or None.
    contribution: signed per-atom contributions to lg(k1) in lg units against an average
        atom (by ``method``), shape ``[num_atoms]``, or None.
    method: the explainer's method, e.g. ``occlusion``.
    source: ``precomputed`` (read from ``data/predictions/bundled.csv``) or ``live``.
    fingerprint: the model fingerprint of a precomputed result, else None.
    relaxation: ``{"energy", "converged", "steps"}`` when relaxed first, else None.
    level_of_theory: e.g. ``GFN1-xTB/5000K``.
    """

    name: str | None
    formula: str
    charge: int
    multiplicity: int
    lg_k1: float
    lg_k1_std: float
    model: str
    out_of_fold: bool
    measured_lg_k1: float | None
    rate: str
    new_metal_pair: bool
    atoms: object
    charges: np.ndarray
    importance: np.ndarray | None = None
    contribution: np.ndarray | None = None
    method: str = "occlusion"
    source: str = "live"
    fingerprint: str | None = None
    domain_distance: float | None = None
    domain_threshold: float | None = None
    relaxation: dict | None = None
    level_of_theory: str = "GFN1-xTB/5000K"
    populations: dict = field(default_factory=dict)
    mixing_distance: str | None = None

    @property
    def interval90(self) -> tuple[float, float]:
        """The central 90 % interval ``lg_k1 ± 1.645 lg_k1_std`` (the convention of ``coverage90``)."""
        return self.lg_k1 - Z90 * self.lg_k1_std, self.lg_k1 + Z90 * self.lg_k1_std

    @property
    def family(self) -> str:
        """Metal set x ligand set, e.g. ``Mo-S`` (:func:`~cluster_gnn.structures.cluster_family`)."""
        return cluster_family(self.formula)

    @property
    def extrapolating(self) -> bool:
        return (self.domain_distance is not None and self.domain_threshold is not None
                and self.domain_distance > self.domain_threshold)

    @property
    def title(self) -> str:
        return self.name or f"{self.formula} ({self.charge:+d})"


def _rate_of(name: str | None) -> tuple[float | None, str]:
    """Measured lg(k1) and rate status of a bundled cluster (``(None, "unknown")`` otherwise)."""
    if name is None:
        return None, "unknown"
    table = load_clusters()
    hit = table[table["name"] == name]
    if hit.empty:
        return None, "unknown"
    row = hit.iloc[0]
    return (None if pd.isna(row["lg_k1"]) else float(row["lg_k1"])), str(row["rate"])


def result_from_prediction(prediction, explanation=None) -> ClusterResult:
    """The :class:`ClusterResult` of a live :class:`~cluster_gnn.predict.Prediction`
    (with its :class:`~cluster_gnn.explain.Explanation`, when explained)."""
    measured, rate = _rate_of(prediction.name)
    if prediction.measured_lg_k1 is not None:
        measured = prediction.measured_lg_k1
    f = prediction.features
    importance = prediction.importance if explanation is None else explanation.importance
    return ClusterResult(
        name=prediction.name, formula=prediction.atoms.get_chemical_formula(), charge=int(prediction.charge),
        multiplicity=int(prediction.multiplicity), lg_k1=float(prediction.lg_k1),
        lg_k1_std=float(prediction.lg_k1_std), model=prediction.model, out_of_fold=bool(prediction.out_of_fold),
        measured_lg_k1=measured, rate=rate, new_metal_pair=bool(prediction.new_metal_pair),
        atoms=prediction.atoms, charges=np.asarray(f.charges, dtype=float),
        importance=None if importance is None else np.asarray(importance, dtype=float),
        contribution=None if explanation is None or explanation.contribution is None
        else np.asarray(explanation.contribution, float),
        method=explanation.method if explanation is not None else "occlusion", source="live",
        domain_distance=prediction.domain_distance, domain_threshold=prediction.domain_threshold,
        relaxation=prediction.relaxation, level_of_theory=f.method, mixing_distance=prediction.mixing_distance,
        populations={"s": np.asarray(f.s_population, float), "p": np.asarray(f.p_population, float),
                     "d": np.asarray(f.d_population, float)})


def check_live_allowed(what: str = "a live prediction") -> None:
    """Raise :class:`ClusterGNNError` when ``CLUSTER_GNN_LIVE=0`` forbids live computation."""
    if os.environ.get(LIVE_ENV, "1").strip() == "0":
        raise ClusterGNNError(f"{what} was asked for, but {LIVE_ENV}=0 forbids live computation")


def explain_live(prediction, ensemble):
    """:func:`~cluster_gnn.explain.explain_prediction` with the model that made the prediction
    (the GIN members, or the composition model behind a mixed-metal cluster,
    :func:`~cluster_gnn.predict.formula_model`). Sets ``prediction.importance`` and returns
    the :class:`~cluster_gnn.explain.Explanation`."""
    from .explain import explain_prediction
    from .predict import formula_model

    check_live_allowed("the explainer")
    return explain_prediction(prediction, ensemble, formula_model=formula_model(prediction))


def known_cluster(atoms, charge: int) -> pd.Series | None:
    """The row of ``data/clusters.csv`` with the same composition and charge as ``atoms``
    (an upload of a published cluster), else None."""
    counts = dict(formula_counts(atoms.get_chemical_formula()))
    table = load_clusters()
    for _, row in table[table["charge"] == int(charge)].iterrows():
        if dict(formula_counts(row["formula"])) == counts:
            return row
    return None


def load_isomers(name: str, directory: Path | str | None = None) -> list:
    """The runner-up isomers the structure search kept for a bundled cluster
    (``data/structures/<name>.isomers.xyz``), lowest energy first: a list of
    :class:`ase.Atoms` whose ``info`` holds ``rank`` and ``relative_energy`` (eV above the
    global minimum); empty when the search kept none."""
    from ase.io import read

    path = Path(directory or STRUCTURES_DIR) / f"{normalize_name(name)}.isomers.xyz"
    if not path.is_file():
        return []
    try:
        images = read(path, index=":", format="extxyz")
    except Exception as e:  # ase raises many types on a damaged file
        raise StructureError(f"{path.name} cannot be read ({type(e).__name__}: {e})", reason="not-text") from e
    return sorted(images, key=lambda a: float(a.info.get("relative_energy", 0.0)))


@lru_cache(maxsize=4)
def _dft_atoms(path: str, mtime: float) -> pd.DataFrame | None:
    return pd.read_csv(path)


def _same_structure(a, b, tol: float = 1e-3) -> bool:
    return (a.get_chemical_symbols() == b.get_chemical_symbols()
            and np.allclose(a.get_positions(), b.get_positions(), atol=tol))


def dft_atom_values(name: str | None, data_dir: Path | str | None = None, atoms=None) -> dict | None:
    """PBE/def2-SVP natural charges and spin densities (e) of a bundled cluster where the
    DFT job has reached it (``data/features/dft_atoms.csv``): ``{"charge": [n], "spin": [n]}``
    in atom order, else None. Given ``atoms`` (the structure shown), the values are those of
    that very structure: the committed global minimum's, the PBE-ranked isomer's
    (:func:`pbe_ranked_isomer`), else None (another isomer)."""
    path = Path(data_dir or DATA_DIR) / "features" / "dft_atoms.csv"
    if name is None:
        return None
    if atoms is not None:
        committed = Path(data_dir or DATA_DIR) / "structures" / f"{normalize_name(name)}.xyz"
        if not committed.is_file() or not _same_structure(read_cluster(committed), atoms):
            isomer = pbe_ranked_isomer(name, data_dir)
            return isomer.info["dft"] if isomer is not None and _same_structure(isomer, atoms) else None
    if not path.is_file():
        return None
    table = _dft_atoms(str(path), path.stat().st_mtime)
    rows = table[table["cluster"] == name].sort_values("index")
    if rows.empty:
        return None
    return {"charge": rows["charge"].to_numpy(float), "spin": rows["spin"].to_numpy(float)}


@lru_cache(maxsize=4)
def _ranked(directory: str, stamp: tuple) -> dict:
    from .isomer_ranking import ranked_records

    return ranked_records(directory)


def pbe_ranked_isomer(name: str | None, data_dir: Path | str | None = None):
    """The isomer PBE puts below a bundled cluster's xTB global minimum, where the isomer
    ranking (``cluster-gnn dft --isomers``) found one: :class:`ase.Atoms` whose ``info`` holds
    ``charge``, ``multiplicity``, ``label`` (e.g. ``PBE-ranked isomer (ml-start S 0/2/0)``),
    ``ligand`` (the element rearranged) and ``motifs`` (its terminal/mu2/mu3 counts, e.g.
    ``"0/2/0"``), ``below_xtb_minimum`` (eV, PBE; NaN where PBE did not converge at the xTB
    minimum), ``next_above`` (eV, PBE: how far the next
    candidate lies above it; below :data:`~cluster_gnn.isomer_ranking.TIE_EV` the two are a tie)
    and ``dft`` (``{"charge", "spin"}``, its NPA values in e); else None."""
    from ase import Atoms

    from .isomer_ranking import ISOMERS_DIR_NAME

    directory = Path(data_dir or DATA_DIR) / "features" / ISOMERS_DIR_NAME
    if name is None or not directory.is_dir():
        return None
    stamp = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in directory.glob("*.json")))
    hit = _ranked(str(directory), stamp).get(normalize_name(name))
    if hit is None:
        return None
    record, label = hit
    result = record["result"]
    first = json.loads((directory / f"{normalize_name(name)}~0.json").read_text())
    xtb_energy = float(first["result"]["energy"]) if first.get("status") == "ok" else np.nan  # V5C5-: no SCF there
    atoms = Atoms(result["symbols"], positions=record["positions"])
    atoms.info.update(charge=int(result["charge"]), multiplicity=int(result["multiplicity"]), label=label,
                      ligand=record["ligand"], motifs=record["motifs"],
                      below_xtb_minimum=xtb_energy - float(result["energy"]),
                      next_above=float(record.get("next_above", np.nan)),
                      dft={"charge": np.asarray(result["charges"], float), "spin": np.asarray(result["spin"], float)})
    return atoms


def atom_table(result: ClusterResult) -> pd.DataFrame:
    """Per-atom numbers of a result, one row per atom: ``atom`` (symbol + number from 1),
    ``element``, ``charge (e)`` (xTB Mulliken), ``s``/``p``/``d`` (shell populations, e) when
    known, ``importance`` when explained."""
    symbols = result.atoms.get_chemical_symbols()
    table = pd.DataFrame({"atom": [f"{s}{i + 1}" for i, s in enumerate(symbols)], "element": symbols,
                          "charge (e)": np.asarray(result.charges, dtype=float)})
    for shell in ("s", "p", "d"):
        if shell in result.populations:
            table[shell] = np.asarray(result.populations[shell], dtype=float)
    if result.importance is not None:
        table["importance"] = np.asarray(result.importance, dtype=float)
    return table


def xyz_text(result: ClusterResult) -> str:
    """The structure as an XYZ file, its comment line holding charge, multiplicity and the level of theory."""
    atoms = result.atoms
    lines = [str(len(atoms)), f"{result.title} charge={result.charge} multiplicity={result.multiplicity} "
                              f"method={result.level_of_theory.replace(' ', '_')}"]
    for symbol, (x, y, z) in zip(atoms.get_chemical_symbols(), atoms.get_positions()):
        lines.append(f"{symbol:<2s} {x:14.8f} {y:14.8f} {z:14.8f}")
    return "\n".join(lines) + "\n"


UPLOAD_COLUMNS = ["file", "formula", "charge", "multiplicity", "lg_k1", "lg_k1_std", "interval90_lo",
                  "interval90_hi", "model", "known_cluster", "measured_lg_k1", "error"]


def predict_uploads(files, ensemble=None, timeout_s: float | None = 90.0, progress=None) -> pd.DataFrame:
    """Predict several uploaded files: ``files`` is a list of ``(file name, bytes)``.

    Each file's charge and multiplicity follow :func:`~cluster_gnn.spin.charge_and_multiplicity`
    (its comment line, else the defaults). A file that fails gets its one-line message in
    ``error`` and leaves the others alone. A file of a published composition and charge
    gets that cluster's name and measured value. ``progress(i, n, file name)`` is called
    before each file. Columns: :data:`UPLOAD_COLUMNS`.
    """
    rows = []
    for i, (file_name, data) in enumerate(files):
        if progress is not None:
            progress(i, len(files), file_name)
        row = dict.fromkeys(UPLOAD_COLUMNS)
        row["file"] = file_name
        try:
            source = io.BytesIO(data)
            source.name = file_name
            atoms = read_cluster(source)
            charge, mult = charge_and_multiplicity(atoms)
            row.update(formula=atoms.get_chemical_formula(), charge=charge, multiplicity=mult)
            check_live_allowed()
            p = predict_structure(atoms, charge, mult, ensemble=ensemble, timeout_s=timeout_s)
            lo, hi = p.interval90
            row.update(lg_k1=round(p.lg_k1, 3), lg_k1_std=round(p.lg_k1_std, 3), interval90_lo=round(lo, 3),
                       interval90_hi=round(hi, 3), model=p.model)
            known = known_cluster(atoms, charge)
            if known is not None:
                row.update(known_cluster=known["name"],
                           measured_lg_k1=None if pd.isna(known["lg_k1"]) else round(float(known["lg_k1"]), 3))
        except ClusterGNNError as err:
            row["error"] = str(err)
        rows.append(row)
    return pd.DataFrame(rows, columns=UPLOAD_COLUMNS).astype({"charge": "Int64", "multiplicity": "Int64"})
