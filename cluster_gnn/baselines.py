"""Descriptor baselines, scored on exactly the splits the graph models use.

Each descriptor set turns a cluster into one row of numbers; a scikit-learn regressor
(gradient boosting by default; random forest and extra trees as alternatives) is fitted on
the training clusters of a split and predicts its test clusters. Sets (:data:`DESCRIPTOR_SETS`):

- ``nbo8``: the authors' 8 selected DFT-NBO descriptors (``data/nbo_descriptors.csv``;
  homonuclear only): the published protocol.
- ``dft15``: the authors' 15 DFT-NBO descriptors, published for the mixed clusters too:
  what DFT-level inputs buy (a baseline that needs the authors' DFT, never an app input).
- ``composition``: element-agnostic composition: numbers of metal atoms, of S, C, H and N
  atoms, all atoms, the total charge, and the stoichiometry as S, C, H and N atoms per
  metal atom (trees cannot form ratios from counts: extra trees on composition + metal,
  published folds, mean of 3 random states, R2 0.558 / MAE 0.698 without the ratios,
  0.608 / 0.677 with them).
- ``composition+metal``: ``composition`` plus the share of each metal (Mo, Fe, V, Ta, Co,
  Rh) among the metal atoms (a one-hot for homonuclear clusters, fractions for mixtures).
- ``composition+elements``: ``composition`` plus metal-averaged periodic properties
  (group, period, electronegativity, covalent radius, ionisation energy, valence s and d
  electrons): no xTB, but a metal is described by what it is, not by its name.
- ``xtb``: our GFN1-xTB analogues of the authors' descriptors (largest / smallest /
  mean metal charge, total metal charge, largest metal-minus-ligand charge gap, mean metal
  s and d populations, HOMO energy, HOMO-LUMO gap, dipole) plus ``composition``.
- ``xtb+elements``: ``xtb`` plus metal-averaged periodic properties (group, period,
  electronegativity, covalent radius, ionisation energy, valence s and d electrons),
  which carry over to metals and mixtures not seen in training.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, HistGradientBoostingRegressor, RandomForestRegressor

from .datasets import DFT15, NBO8, load_clusters, load_element_table, load_nbo_descriptors
from .graphs import LIGANDS, ligands_per_metal, xtb_descriptors
from .structures import formula_counts, is_metal

__all__ = ["PairwiseDifferenceRegressor", "DESCRIPTOR_SETS", "NBO8", "METALS", "descriptor_table", "gradient_boosting", "fit_predict", "evaluate_descriptors"]

METALS = ["Mo", "Fe", "V", "Ta", "Co", "Rh"]
DESCRIPTOR_SETS = ("nbo8", "dft15", "composition", "composition+metal", "composition+elements", "xtb", "xtb+elements")
_ELEMENT_PROPS = ["group", "period", "electronegativity", "covalent_radius", "ionization_energy",
                  "valence_s", "valence_d"]


def _composition(name: str, charge: int) -> dict:
    counts = formula_counts(name)
    row = {"n_metal": sum(n for s, n in counts.items() if is_metal(s))}
    for lig in LIGANDS:
        row[f"n_{lig}"] = counts.get(lig, 0)
    row["n_atoms"] = sum(counts.values())
    row["charge"] = charge
    row.update(ligands_per_metal(counts))
    return row


def descriptor_table(kind: str, names: list[str], table=None, features: dict | None = None):
    """Rows of descriptor set ``kind`` for ``names`` (a :class:`pandas.DataFrame` indexed by
    name). ``features`` is ``{name: (atoms, AtomFeatures)}`` (needed for ``xtb*``)."""


    if kind not in DESCRIPTOR_SETS:
        raise ValueError(f"unknown descriptor set {kind!r}; choose from {DESCRIPTOR_SETS}")
    table = load_clusters() if table is None else table
    rows = table.set_index("name").loc[names]
    if kind in ("nbo8", "dft15"):
        nbo = load_nbo_descriptors().set_index("name")
        return nbo.loc[names, NBO8 if kind == "nbo8" else DFT15].astype(float)
    out = []
    elements = load_element_table().set_index("symbol") if kind.endswith("+elements") else None
    for name, row in rows.iterrows():
        d = _composition(name, int(row["charge"]))
        if kind in ("composition+metal", "composition+elements", "xtb+elements"):

            counts = formula_counts(name)
            n_metal = sum(counts.get(m, 0) for m in METALS) or 1
            if kind == "composition+metal":
                d.update({f"frac_{m}": counts.get(m, 0) / n_metal for m in METALS})
            else:
                for prop in _ELEMENT_PROPS:
                    d[f"metal_{prop}"] = sum(counts.get(m, 0) * float(elements.loc[m, prop]) for m in METALS) / n_metal
        if kind.startswith("xtb"):
            atoms, f = features[name]
            d.update(xtb_descriptors(atoms, f))
        out.append(d)
    return pd.DataFrame(out, index=names).astype(float)


class PairwiseDifferenceRegressor:
    """Pairwise difference regression (the transfer scheme of the published descriptor model).

    A gradient-boosting model learns ``y_A - y_B`` from ``[x_A, x_B, x_A - x_B]`` over all
    ordered pairs of training clusters; the prediction for a new cluster ``A`` is the mean
    over training references ``B`` of ``y_B + f(A, B)``. Learning differences lets the model
    carry a trend across clusters whose absolute level it has not seen (a new metal).
    ``predict_std`` gives the spread of the per-reference estimates.
    """

    def __init__(self, seed: int = 0, max_pairs: int = 12000):
        self.seed, self.max_pairs = seed, max_pairs

    @staticmethod
    def _pairs(XA, XB):
        a = np.repeat(XA, len(XB), axis=0)
        b = np.tile(XB, (len(XA), 1))
        return np.hstack([a, b, a - b])

    def fit(self, X, y):
        X, y = np.asarray(X, float), np.asarray(y, float)
        self.X_, self.y_ = X, y
        P = self._pairs(X, X)
        target = (y[:, None] - y[None, :]).ravel()
        keep = ~np.eye(len(X), dtype=bool).ravel()
        P, target = P[keep], target[keep]
        rng = np.random.default_rng(self.seed)
        if len(P) > self.max_pairs:
            idx = rng.choice(len(P), self.max_pairs, replace=False)
            P, target = P[idx], target[idx]
        self.model_ = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.07, max_leaf_nodes=15,
                                                    l2_regularization=1.0, random_state=self.seed)
        self.model_.fit(P, target)
        return self

    def _estimates(self, X):
        X = np.asarray(X, float)
        diff = self.model_.predict(self._pairs(X, self.X_)).reshape(len(X), len(self.X_))
        return self.y_[None, :] + diff

    def predict(self, X):
        return self._estimates(X).mean(axis=1)

    def predict_std(self, X):
        return self._estimates(X).std(axis=1)


def gradient_boosting(seed: int = 0):
    """The gradient-boosting regressor of every descriptor model here (and of the
    boosting half of :class:`~cluster_gnn.consensus.Consensus`)."""

    return GradientBoostingRegressor(n_estimators=300, learning_rate=0.05, max_depth=3, subsample=0.8,
                                     random_state=seed)


def fit_predict(X_train, y_train, X_test, regressor: str = "gbr", seed: int = 0) -> np.ndarray:
    """Fit a regressor (``gbr``, ``rf``, ``et`` or ``pairwise``) on the training rows and
    predict the test rows (lg units)."""

    if regressor == "pairwise":
        return PairwiseDifferenceRegressor(seed).fit(X_train, y_train).predict(X_test)
    if regressor == "gbr":
        model = gradient_boosting(seed)
    elif regressor == "rf":
        model = RandomForestRegressor(n_estimators=500, min_samples_leaf=2, random_state=seed, n_jobs=1)
    elif regressor == "et":
        model = ExtraTreesRegressor(n_estimators=500, random_state=seed, n_jobs=1)
    else:
        raise ValueError("regressor must be 'gbr', 'rf', 'et' or 'pairwise'")
    model.fit(np.asarray(X_train), np.asarray(y_train))
    return model.predict(np.asarray(X_test))


def evaluate_descriptors(kind: str, names: list[str], y: np.ndarray, splits: dict, regressor: str = "gbr",
                         features: dict | None = None, table=None, seed: int = 0) -> dict:
    """Out-of-split predictions of a descriptor model: ``{name: (measured, predicted, key)}``.

    ``splits`` maps a key to test indices into ``names``; the model for a key is trained
    on every other measured cluster (``seed``: the regressor's random state).
    """
    X = descriptor_table(kind, names, table, features).to_numpy()
    y = np.asarray(y, float)
    out = {}
    for key, test_idx in splits.items():
        held = set(test_idx)
        train_idx = [i for i in range(len(names)) if i not in held and not np.isnan(y[i])]
        pred = fit_predict(X[train_idx], y[train_idx], X[test_idx], regressor, seed)
        for i, p in zip(test_idx, pred):
            out[names[i]] = (float(y[i]), float(p), key)
    return out
