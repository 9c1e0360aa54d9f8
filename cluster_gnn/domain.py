"""Applicability domain: how far a cluster lies from the training clusters, and how much
wider its uncertainty gets for it.

An ensemble's spread barely grows for a metal it has never seen (measured on
leave-one-metal-out: mean std 0.99 in domain vs 1.01 held out, coverage falling to 0.74),
because every member learned the same gaps. So the predicted variance gets a distance
term::

    lg_k1_std**2 = model_std**2 + (scale * distance)**2

``distance`` (:meth:`Domain.distance`) is the mean Euclidean distance from a cluster's
domain vector (:func:`domain_vector`) to its ``k`` nearest training clusters, in units of
the training clusters' standard deviation per coordinate and divided by the square root of
the number of coordinates (so 1.0 is about one standard deviation in every coordinate).
``scale`` (lg units per unit distance) is fitted by maximum likelihood on out-of-fold
residuals of the published folds (:func:`fit_distance_scale`), one number per model.

The domain vector is what a chemist would call the cluster's make-up: its cluster
descriptors (:data:`~cluster_gnn.graphs.CLUSTER_FEATURES`: charge, atom counts,
stoichiometry, cluster-level xTB descriptors; not the one-hot composition classes, which
would make every unseen composition equally far) and the mean periodic
properties of its metal atoms (group, period, electronegativity, radius, ionisation
energy, electron affinity, valence s and d counts). A new metal moves the second part.
"""
from __future__ import annotations

import numpy as np

from .graphs import NODE_FEATURES, cluster_feature_columns

__all__ = ["Domain", "domain_vector", "fit_distance_scale"]

#: The element part of the node features (group .. valence d electrons; averaged over the
#: metal atoms) and the metal flag, by name in :data:`~cluster_gnn.graphs.NODE_FEATURES`.
_ELEMENT_COLUMNS = slice(NODE_FEATURES.index("group"), NODE_FEATURES.index("valence_d") + 1)
_METAL_FLAG = NODE_FEATURES.index("is_metal")


def domain_vector(graph) -> np.ndarray:
    """Domain coordinates of one graph, shape ``[len(graphs.CLUSTER_FEATURES) + 8]``."""
    x = graph.x.numpy()
    metal = x[:, _METAL_FLAG] > 0.5
    rows = x[metal] if metal.any() else x
    descriptors = cluster_feature_columns(graph.u.numpy())[0]
    return np.concatenate([descriptors, rows[:, _ELEMENT_COLUMNS].mean(0)]).astype(float)


class Domain:
    """Reference clusters and the distance scale of one ensemble.

    Parameters
    ----------
    names: reference cluster names (the measured training clusters).
    vectors: their domain vectors, shape ``[num_references, dim]``.
    scale: lg units of extra standard deviation per unit distance.
    k: nearest references averaged.
    threshold: distance beyond which a prediction is an extrapolation: the 90th
        percentile of the references' distances from the other references
        (:meth:`reference_distances`; 0.62 for the 159 measured clusters); computed when
        not given.
    """

    def __init__(self, names, vectors, scale: float = 0.0, k: int = 3, threshold: float | None = None):
        self.names = list(names)
        self.vectors = np.asarray(vectors, float)
        self.scale, self.k = float(scale), int(k)
        self.mean = self.vectors.mean(0)
        std = self.vectors.std(0)
        # a coordinate constant over the references (to float32 noise), e.g. no atom other
        # than H, C, N, S in any training cluster, gets a unit of a tenth of its size
        floor = 0.1 * (np.abs(self.mean) + 1.0)
        self.std = np.where(std > 1e-4 * floor, std, floor)
        self.threshold = float(np.percentile(self.reference_distances(), 90)) if threshold is None else float(threshold)

    def reference_distances(self) -> np.ndarray:
        """Distance of each reference from the other references, shape ``[num_references]``."""
        z = (self.vectors - self.mean) / self.std
        d = np.linalg.norm(z[:, None, :] - z[None, :, :], axis=-1) / np.sqrt(z.shape[1])
        np.fill_diagonal(d, np.inf)
        k = min(self.k, max(len(self.names) - 1, 1))
        return np.sort(d, axis=1)[:, :k].mean(1)

    def extrapolating(self, distance) -> bool:
        """True when ``distance`` lies beyond :attr:`threshold`."""
        return distance is not None and float(distance) > self.threshold

    @classmethod
    def from_graphs(cls, graphs, scale: float = 0.0, k: int = 3) -> "Domain":
        return cls([g.name for g in graphs], np.stack([domain_vector(g) for g in graphs]), scale, k)

    def distance(self, vectors, exclude=()) -> np.ndarray:
        """Distance of each row of ``vectors`` ``[n, dim]`` to the references (leaving out
        the names in ``exclude``, e.g. a fold's test clusters), shape ``[n]``."""
        keep = np.array([n not in set(exclude) for n in self.names])
        refs = (self.vectors[keep] - self.mean) / self.std
        z = (np.atleast_2d(np.asarray(vectors, float)) - self.mean) / self.std
        d = np.linalg.norm(z[:, None, :] - refs[None, :, :], axis=-1) / np.sqrt(z.shape[1])
        k = min(self.k, refs.shape[0])
        return np.sort(d, axis=1)[:, :k].mean(1)

    def widen(self, model_std, distance) -> np.ndarray:
        """``sqrt(model_std**2 + (scale * distance)**2)``."""
        return np.sqrt(np.asarray(model_std, float) ** 2 + (self.scale * np.asarray(distance, float)) ** 2)

    def to_dict(self) -> dict:
        return {"names": self.names, "vectors": self.vectors.round(6).tolist(), "scale": self.scale, "k": self.k,
                "threshold": self.threshold}

    @classmethod
    def from_dict(cls, d: dict) -> "Domain":
        return cls(d["names"], d["vectors"], d["scale"], d.get("k", 3), d.get("threshold"))


def fit_distance_scale(residuals, model_std, distance) -> float:
    """Maximum-likelihood ``scale`` for Gaussian residuals with variance
    ``model_std**2 + (scale * distance)**2`` (a 1-D search on a log grid, 0 allowed)."""
    r2 = np.asarray(residuals, float) ** 2
    s2 = np.asarray(model_std, float) ** 2
    d2 = np.asarray(distance, float) ** 2
    grid = np.concatenate([[0.0], np.geomspace(1e-3, 20.0, 400)])
    var = s2[None, :] + grid[:, None] ** 2 * d2[None, :]
    nll = 0.5 * (np.log(var) + r2[None, :] / var).sum(1)
    return float(grid[int(np.argmin(nll))])
