"""The GIN ensemble averaged with gradient boosting on the cluster descriptors.

:class:`Consensus` predicts ``0.5 * (GIN ensemble mean + boosting)``, the boosting part a
gradient-boosting regressor on the cluster descriptors (the first part of ``u``,
:data:`~cluster_gnn.graphs.CLUSTER_FEATURES`: charge, atom counts, stoichiometry,
cluster-level xTB descriptors). It is evaluated next to the GIN and can be asked for by
name (``--model consensus``); :data:`~cluster_gnn.predict.DEFAULT_MODEL` is the GIN.

The boosting part is refitted from the bundled graphs when the model is loaded (under a
second; deterministic seed), once per fold for out-of-fold predictions, so no pickled
scikit-learn object is ever loaded. The uncertainty is the GIN ensemble's
(:meth:`~cluster_gnn.models.Ensemble.predict`: member spread, validation residuals and
the distance from the training clusters), in lg units.
"""
from __future__ import annotations

import threading

import numpy as np

from .baselines import gradient_boosting
from .graphs import cluster_feature_columns

__all__ = ["Consensus"]


class Consensus:
    """Mean of a GIN :class:`~cluster_gnn.models.Ensemble` and gradient boosting on the
    cluster descriptors.

    Behaves like the ensemble it wraps (``members``, ``record``, ``featurize()``, ``folds()``,
    ``distance()``, ``domain``; explanations use the GIN members) except that
    :meth:`predict` returns the consensus mean.

    Parameters
    ----------
    ensemble: the GIN ensemble.
    graphs: graphs with measured ``y`` (the training data of the boosting part).
    """

    name = "consensus"

    def __init__(self, ensemble, graphs):
        self.ensemble = ensemble
        self._train = [g for g in graphs if not np.isnan(float(g.y))]
        self._fitted: dict = {}
        self._lock = threading.Lock()

    def __getattr__(self, attr):  # members, record, config, featurize, folds, distance, domain ...
        if attr in ("ensemble", "_train", "_fitted", "_lock"):
            raise AttributeError(attr)
        return getattr(self.ensemble, attr)

    def _boosting(self, graphs, fold):
        """lg(k1) of ``graphs`` from gradient boosting on the cluster descriptors, fitted (once, cached) on the
        clusters the fold's members were trained on (all measured clusters when ``fold``
        is None); shape ``[num_graphs]``."""

        def descriptors(gs):
            return np.concatenate([cluster_feature_columns(g.u.numpy()) for g in gs])

        with self._lock:
            if fold not in self._fitted:
                held = set(self.ensemble.held_out(fold))
                train = [g for g in self._train if g.name not in held]
                X = descriptors(train)
                y = np.array([float(g.y) for g in train])
                self._fitted[fold] = gradient_boosting(seed=0).fit(X, y)
            model = self._fitted[fold]
        return model.predict(descriptors(graphs))

    def predict_parts(self, graphs, fold=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(gin_mean, boosting, std)``, each shape ``[num_graphs]``."""
        mean, std = self.ensemble.predict(graphs, fold)
        return mean, self._boosting(graphs, fold), std

    def predict_model_only(self, graphs, fold=None) -> tuple[np.ndarray, np.ndarray]:
        """Consensus lg(k1) and the ensemble's standard deviation without the distance term."""
        mean, std = self.ensemble.predict_model_only(graphs, fold)
        return 0.5 * (mean + self._boosting(graphs, fold)), std

    def predict(self, graphs, fold=None) -> tuple[np.ndarray, np.ndarray]:
        """Consensus lg(k1) and the GIN ensemble's standard deviation, each ``[num_graphs]``."""
        gin, boosting, std = self.predict_parts(graphs, fold)
        return 0.5 * (gin + boosting), std
