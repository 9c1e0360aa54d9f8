"""User-facing exceptions.

Every failure a user can cause (a bad file, an unknown cluster name, an SCF that will
not converge, a model file that does not match) raises a subclass of
:class:`ClusterGNNError` with a one-line message that names the problem and says what
was expected. The CLI and the app catch only :class:`ClusterGNNError` and show
``str(err)``; anything else is a bug.
"""
from __future__ import annotations

__all__ = [
    "ClusterGNNError",
    "StructureError",
    "UnknownClusterError",
    "XTBConvergenceError",
    "DFTConvergenceError",
    "XTBTimeoutError",
    "FeatureMismatchError",
    "ModelFileError",
    "DatasetError",
    "PredictionError",
    "LockedError",
]


class ClusterGNNError(Exception):
    """Base class of every error the CLI and the app report to the user."""


class StructureError(ClusterGNNError, ValueError):
    """Raised when a structure file or a formula cannot be used.

    ``reason`` is a short machine-readable code (``"empty"`` for an empty file,
    ``"no-structure"`` for a bundled cluster the search has not reached, ``"no-file"``,
    ``"no-column"``, ``"binary"``, ``"not-text"``, ``"no-atoms"``, ``"truncated"``,
    ``"coordinates"``, ``"element"``, ``"unsupported-element"``, ``"overlap"``,
    ``"fragments"``, ``"too-many-atoms"``, ``"file-too-large"``, ``"formula"``,
    ``"spin"``, ``"comment"`` for a bad key in the comment line) so tests and callers can tell the refusals apart; the message is for people.
    """

    def __init__(self, message: str, reason: str = "invalid"):
        super().__init__(message)
        self.reason = reason


class UnknownClusterError(ClusterGNNError, KeyError):
    """Raised when a cluster name is not one of the 216 in ``data/clusters.csv``."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown cluster"


class XTBConvergenceError(ClusterGNNError, RuntimeError):
    """Raised when the xTB SCF (or a relaxation's SCF) fails or gives non-finite results,
    or the worker process running it dies."""


class XTBTimeoutError(XTBConvergenceError):
    """Raised when an xTB calculation with a time limit
    (:func:`~cluster_gnn.electronic.run_time_limited`) does not finish in time."""


class DFTConvergenceError(ClusterGNNError, RuntimeError):
    """Raised when a DFT single point cannot run or gives no sane result.

    ``reason``: ``"missing-pyscf"``, ``"too-many-atoms"``, ``"setup"`` (charge and
    multiplicity do not fit the electrons), ``"scf"`` (no rung of the convergence ladder
    converged to a sane density), ``"timeout"`` (past the wall-clock limit), ``"locked"``
    (another job writes the same records), ``"busy"`` (the most DFT jobs already run),
    ``"cancelled"``.
    """

    def __init__(self, message: str, reason: str = "scf"):
        super().__init__(message)
        self.reason = reason


class FeatureMismatchError(ClusterGNNError, ValueError):
    """Raised when features do not have the shape or names a model expects, or when a
    model file's record (level of theory, feature names) differs from what this code
    computes (:meth:`~cluster_gnn.models.ModelRecord.check`)."""


class ModelFileError(ClusterGNNError, OSError):
    """Raised when a model file is missing, unreadable or from another version."""


class DatasetError(ClusterGNNError, OSError):
    """Raised when the published data set is missing or does not have the expected layout."""


class PredictionError(ClusterGNNError, ArithmeticError):
    """Raised when a prediction (lg(k1) or its standard deviation) is not finite: such a
    result is an error, never an output."""


class LockedError(ClusterGNNError, RuntimeError):
    """Raised when another live process holds the lock of a checkpoint or job folder
    (:class:`~cluster_gnn.parallel.PidLock`): a checkpoint never has two writers."""
