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

All rates are lg(k1) with k1 in cm^3 molecule^-1 s^-1.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .spin import estimate_multiplicity, unpaired_per_metal
from .structures import formula_counts, is_metal, metal_shares

__all__ = ["MeanRate", "MetalPrior", "CompositionRidge", "PriorBlend", "TRANSFER_MODELS",
           "composition_spin_features", "out_of_split"]

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
