"""Models that carry lg(k1) to new metal mixtures, and the baselines they must beat.

Each model here is fitted on a cluster table (rows of :func:`~cluster_gnn.datasets.load_clusters`
with ``name``, ``charge``, ``multiplicity``, ``lg_k1``) and predicts lg(k1) of other rows,
so the evaluation scores them on exactly the splits the graph models use.

- :class:`MeanRate` (``mean``): the mean lg(k1) of the training clusters.
- :class:`MetalPrior` (``metal_prior``): each metal's mean lg(k1) over the training clusters
  that contain it (a mixed cluster counts towards each of its metals with its share of the
  metal atoms), averaged over the cluster's metal atoms. Fe2V2C- is half Fe, half V.
- :class:`CompositionRidge` (``composition_ridge``): ridge regression on what does not
  name a metal: S, C, H and N atoms per metal atom, metal atoms, total charge and unpaired
  electrons per metal atom ((multiplicity - 1) / metal atoms; the authors' mean metal spin
  density, their strongest single correlate of lg(k1), follows it at r 0.99 over the 159
  homonuclear clusters). Naming no metal, it cannot mistake a Co + Ta mixture for an Fe
  cluster.
- :class:`PriorBlend` (``prior_blend``): the mean of :class:`MetalPrior` and
  :class:`CompositionRidge`: the metal's level, moved by the stoichiometry and the spin.

How far a mixed cluster lies from the training clusters (:func:`mixing_distance`) sets the
standard deviation of its prediction: :func:`calibrate_mixing_std` measures ``prior_blend``'s
RMS error at each distance on held-out mixed clusters.

All rates are lg(k1) with k1 in cm^3 molecule^-1 s^-1.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .spin import estimate_multiplicity, unpaired_per_metal
from .structures import cluster_family, formula_counts, is_metal, metal_pairs, metal_shares

__all__ = ["MeanRate", "MetalPrior", "CompositionRidge", "PriorBlend", "TRANSFER_MODELS",
           "composition_spin_features", "out_of_split", "MIXING_DISTANCES", "mixing_distance",
           "calibrate_mixing_std"]

_LIGANDS = ("S", "C", "H", "N")


def composition_spin_features(table: pd.DataFrame) -> np.ndarray:
    """Rows ``[S, C, H, N per metal atom, metal atoms, total charge (e), unpaired electrons
    per metal atom]``, shape ``[num_clusters, 7]``; ``table`` needs ``name``, ``charge`` and
    ``multiplicity`` (2S+1; where it is missing, :func:`~cluster_gnn.spin.estimate_multiplicity`,
    the estimate the structure search used)."""
    rows, rates = [], None
    for name, charge, mult in zip(table["name"], table["charge"], table["multiplicity"]):
        if pd.isna(mult):
            rates = unpaired_per_metal() if rates is None else rates
            mult = estimate_multiplicity(name, int(charge), rates)
        counts = formula_counts(name)
        n_metal = sum(n for s, n in counts.items() if is_metal(s)) or 1
        rows.append([counts.get(e, 0) / n_metal for e in _LIGANDS]
                    + [n_metal, float(charge), (float(mult) - 1.0) / n_metal])
    return np.asarray(rows, float)


class MeanRate:
    """``mean``: the mean lg(k1) of the training clusters."""

    def fit(self, table: pd.DataFrame) -> "MeanRate":
        self.mean_ = float(np.mean(table["lg_k1"]))
        return self

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        return np.full(len(table), self.mean_)


class MetalPrior:
    """``metal_prior``: the cluster's metal atoms' mean rates. A metal's rate is the mean
    lg(k1) of the training clusters that contain it, each weighted by that metal's share of
    its metal atoms; a metal no training cluster contains gets the mean of all."""

    def fit(self, table: pd.DataFrame) -> "MetalPrior":
        sums: dict[str, float] = {}
        weights: dict[str, float] = {}
        for name, y in zip(table["name"], table["lg_k1"]):
            for metal, share in metal_shares(name).items():
                sums[metal] = sums.get(metal, 0.0) + share * float(y)
                weights[metal] = weights.get(metal, 0.0) + share
        self.rates_ = {m: sums[m] / weights[m] for m in sums}
        self.default_ = float(np.mean(table["lg_k1"]))
        return self

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        return np.array([sum(share * self.rates_.get(m, self.default_) for m, share in metal_shares(name).items())
                         for name in table["name"]], float)


class CompositionRidge:
    """``composition_ridge``: ridge regression (penalty chosen by leave-one-out over a log
    grid) on :func:`composition_spin_features`, standardised on the training clusters."""

    def fit(self, table: pd.DataFrame) -> "CompositionRidge":
        from sklearn.linear_model import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model_ = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 20)))
        self.model_.fit(composition_spin_features(table), np.asarray(table["lg_k1"], float))
        return self

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        return self.model_.predict(composition_spin_features(table))


class PriorBlend:
    """``prior_blend``: the mean of :class:`MetalPrior` and :class:`CompositionRidge`."""

    def fit(self, table: pd.DataFrame) -> "PriorBlend":
        self.parts_ = (MetalPrior().fit(table), CompositionRidge().fit(table))
        return self

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        return np.mean([p.predict(table) for p in self.parts_], axis=0)


#: the table models by their key in the evaluation
TRANSFER_MODELS = {"mean": MeanRate, "metal_prior": MetalPrior, "composition_ridge": CompositionRidge,
                   "prior_blend": PriorBlend}


def out_of_split(model_cls, table: pd.DataFrame, tests: dict) -> dict:
    """Held-out predictions of a table model: ``{name: (measured, predicted, key)}``.

    ``table`` holds the measured clusters (``name``, ``charge``, ``multiplicity``, ``lg_k1``);
    ``tests`` maps a split key to the names of its test clusters. The model for a key is
    fitted on every row of ``table`` outside that key's test set."""
    out = {}
    for key, names in tests.items():
        held = table["name"].isin(list(names))
        fitted = model_cls().fit(table[~held])
        for name, y, p in zip(table.loc[held, "name"], table.loc[held, "lg_k1"], fitted.predict(table[held])):
            out[name] = (float(y), float(p), key)
    return out


#: how far a mixed-metal cluster lies from the training clusters, nearest first
MIXING_DISTANCES = ("family_seen", "pair_seen", "pair_new", "metal_ligand_new")


def _metal_ligand(name: str) -> set[tuple[str, str]]:
    counts = formula_counts(name)
    return {(m, x) for m in counts if is_metal(m) for x in counts if not is_metal(x)}


def mixing_distance(name: str, training_names) -> str | None:
    """Where a mixed-metal cluster lies relative to ``training_names`` (cluster names), as
    one of :data:`MIXING_DISTANCES`; None for a cluster of one metal.

    ``family_seen``: a training cluster has the same metals and ligands (Fe-V-C).
    ``pair_seen``: its metal pairs are mixed in training clusters, with other ligands.
    ``pair_new``: no training cluster mixes its metals, but each metal was seen with each of
    its ligand elements. ``metal_ligand_new``: a metal never seen, or never with one of the
    cluster's ligand elements (Co with C for Co-Ta-C when only Co-H was measured)."""
    pairs = metal_pairs(name)
    if not pairs:
        return None
    train = list(training_names)
    if cluster_family(name) in {cluster_family(n) for n in train}:
        return "family_seen"
    metals = {m for m in formula_counts(name) if is_metal(m)}
    seen_metals = {m for n in train for m in formula_counts(n) if is_metal(m)}
    if not metals <= seen_metals or not _metal_ligand(name) <= set().union(*map(_metal_ligand, train)):
        return "metal_ligand_new"
    return "pair_seen" if pairs <= set().union(*map(metal_pairs, train)) else "pair_new"


def calibrate_mixing_std(table: pd.DataFrame, model_cls=PriorBlend) -> dict:
    """The standard deviation of a mixed-cluster prediction at each :data:`MIXING_DISTANCES`.

    ``table`` holds the measured clusters (columns as for :func:`out_of_split`). The model is
    refitted without held-out clusters four ways: each measured mixed cluster alone, each
    family, all mixed clusters (the mixtures split) and, for each metal and ligand element,
    every cluster holding both. Each held-out mixed cluster's error is filed under its
    distance from that fit's training clusters. Returns ``{distance: {"rmse", "n", "std",
    "coverage90"}}``: ``rmse`` over ``n`` errors (lg units); ``std`` is the largest ``rmse``
    at this or any nearer distance (a farther cluster is never more certain; a distance
    with no errors takes the nearer one's); ``coverage90`` the share of those errors within
    1.645 ``std``."""
    names = list(table["name"])
    mixed = [n for n in names if metal_pairs(n)]
    tests = [{n: [n] for n in mixed},
             {f: [n for n in names if cluster_family(n) == f] for f in {cluster_family(n) for n in mixed}},
             {"mixtures": mixed}]
    combos = sorted(set().union(*map(_metal_ligand, mixed)))
    tests += [{c: [n for n in names if c in _metal_ligand(n)]} for c in combos]
    errors: dict[str, list[float]] = {d: [] for d in MIXING_DISTANCES}
    for split in tests:
        for key, held in split.items():
            train = [n for n in names if n not in set(held)]
            for name, (y, p, _) in out_of_split(model_cls, table, {key: held}).items():
                distance = mixing_distance(name, train)
                if distance is not None:
                    errors[distance].append(p - y)
    out, std = {}, 0.0
    for distance in MIXING_DISTANCES:
        e = np.asarray(errors[distance])
        rmse = float(np.sqrt(np.mean(e**2))) if len(e) else float("nan")
        std = max(std, rmse) if len(e) else std
        out[distance] = {"rmse": rmse, "n": int(len(e)), "std": std,
                         "coverage90": float(np.mean(np.abs(e) <= 1.645 * std)) if len(e) else float("nan")}
    return out
