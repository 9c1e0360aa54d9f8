"""The DFT of one structure (an upload, a design) as a background job: minutes, with progress.

The fast path for an uploaded structure is GFN1-xTB (seconds, what the model reads).
:func:`start_dft` adds the paper's level of theory on request: one PBE/def2-SVP single
point with natural population analysis (:func:`~cluster_gnn.dft.run_dft`, its convergence
ladder and sanity checks) in a worker process that dies with its parent, bounded by
:data:`~cluster_gnn.limits.MAX_DFT_ATOMS` atoms and a wall-clock limit. The caller gets a
:class:`DFTJob` at once and polls it (:meth:`DFTJob.poll`: SCF rung, cycles, seconds) or
waits for it (:meth:`DFTJob.wait`); :meth:`DFTJob.cancel` kills the worker. A failure
(the SCF did not converge, the time ran out) is a :class:`~cluster_gnn.errors.DFTConvergenceError`
whose one-line message says so. Jobs live in a registry of this process keyed by id
(:func:`get_dft_job`), so an app keeps only the id across reruns; at most
:data:`~cluster_gnn.limits.MAX_DFT_JOBS` run at once. Needs the optional extra
(``pip install -e '.[dft]'``).

From a notebook::

    job = start_dft(atoms, charge=-1, multiplicity=2)
    result = job.wait()        # a DFTResult: charges, s/p/d occupancies, spin per atom
"""
from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .dft import DFTConfig, DFTResult, pyscf_available
from .dft_job import run_dft_job
from .errors import ClusterGNNError, DFTConvergenceError
from .limits import DFT_TIME_LIMIT_S, MAX_DFT_ATOMS, MAX_DFT_JOBS, MAX_DFT_TIME_LIMIT_S
from .spin import charge_and_multiplicity

__all__ = ["DFTJob", "DFTStatus", "start_dft", "get_dft_job", "MIN_DFT_TIME_LIMIT_S"]

#: Shortest wall-clock limit in s accepted for one structure.
MIN_DFT_TIME_LIMIT_S = 10.0
_NAME = "structure"
_JOBS: dict[str, "DFTJob"] = {}
_LOCK = threading.Lock()


@dataclass
class DFTStatus:
    """Where a DFT job stands: ``state`` one of running, done, failed, cancelled; the SCF
    ``rung`` of the convergence ladder and the ``cycles`` so far; ``seconds`` since the
    start; ``message`` the one-line reason of a failed or cancelled job."""

    state: str
    rung: str = ""
    cycles: int = 0
    seconds: float = 0.0
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")


class DFTJob:
    """One PBE/def2-SVP single point running in the background (see :func:`start_dft`)."""

    def __init__(self, atoms, charge: int, multiplicity: int, time_limit_s: float, config: DFTConfig):
        self.id = uuid.uuid4().hex
        self.atoms, self.charge, self.multiplicity = atoms.copy(), int(charge), int(multiplicity)
        self.time_limit_s, self.config = float(time_limit_s), config
        self._dir = Path(tempfile.mkdtemp(prefix="cluster-gnn-dft-"))
        self._stop = threading.Event()
        self._record: dict | None = None
        self._error: str | None = None
        self._started, self._ended = time.perf_counter(), None
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"dft-{self.id[:8]}")
        self._thread.start()

    def _run(self) -> None:
        try:
            run_dft_job([(_NAME, self.atoms, self.charge, self.multiplicity)], self._dir, self.config, workers=1,
                        time_limit_s=self.time_limit_s, progress=False, stop=self._stop)
            path = self._dir / f"{_NAME}.json"
            if path.is_file():
                self._record = json.loads(path.read_text())
        except ClusterGNNError as e:
            self._error = str(e)
        except Exception as e:  # noqa: BLE001 - the job's own failure, reported by poll()
            self._error = f"the DFT job failed: {type(e).__name__}: {e}"
        finally:
            self._ended = time.perf_counter()
            shutil.rmtree(self._dir, ignore_errors=True)

    def poll(self) -> DFTStatus:
        """The job's :class:`DFTStatus` (never raises)."""
        seconds = (self._ended or time.perf_counter()) - self._started
        if self._thread.is_alive():
            try:
                progress = json.loads((self._dir / f".{_NAME}.progress").read_text())
            except (OSError, ValueError):
                progress = {}
            return DFTStatus("running", progress.get("rung", ""), int(progress.get("cycles", 0)), seconds)
        if self._stop.is_set():
            return DFTStatus("cancelled", seconds=seconds, message=f"the DFT calculation was cancelled after "
                                                                   f"{seconds:.0f} s")
        record = self._record or {}
        if self._error or record.get("status") != "ok":
            message = self._error or record.get("message") or "the DFT calculation ended without a result"
            return DFTStatus("failed", seconds=seconds, message=message)
        result = record["result"]
        return DFTStatus("done", result["rung"], int(result["cycles"]), seconds)

    def cancel(self) -> DFTStatus:
        """Kill the worker (within about a second) and return the final status."""
        self._stop.set()
        self._thread.join(timeout=10.0)
        return self.poll()

    def result(self) -> DFTResult:
        """The :class:`~cluster_gnn.dft.DFTResult` of a finished job; a
        :class:`~cluster_gnn.errors.DFTConvergenceError` with the reason otherwise."""
        status = self.poll()
        if status.state == "done":
            return DFTResult.from_dict(self._record["result"])
        if status.state == "running":
            raise DFTConvergenceError("the DFT calculation is still running", reason="running")
        reason = "cancelled" if status.state == "cancelled" else (self._record or {}).get("reason", "scf")
        raise DFTConvergenceError(status.message, reason=reason)

    def wait(self, timeout_s: float | None = None) -> DFTResult:
        """Block until the job ends (or ``timeout_s`` passes), then :meth:`result`."""
        self._thread.join(timeout=timeout_s)
        return self.result()


def _running() -> list[DFTJob]:
    return [job for job in _JOBS.values() if job._thread.is_alive()]


def start_dft(atoms, charge: int | None = None, multiplicity: int | None = None,
              time_limit_s: float = DFT_TIME_LIMIT_S, config: DFTConfig | None = None) -> DFTJob:
    """Start the DFT of one structure in the background and return its :class:`DFTJob`.

    Parameters
    ----------
    atoms: :class:`ase.Atoms`, positions in Å (checked as an upload is).
    charge, multiplicity: in e and 2S+1; default: the structure's comment line, else the
        rule uploads follow (:func:`~cluster_gnn.spin.charge_and_multiplicity`).
    time_limit_s: wall-clock limit, :data:`MIN_DFT_TIME_LIMIT_S` to
        :data:`~cluster_gnn.limits.MAX_DFT_TIME_LIMIT_S`.

    Raises
    ------
    DFTConvergenceError
        Without PySCF (``missing-pyscf``), beyond :data:`~cluster_gnn.limits.MAX_DFT_ATOMS`
        atoms (``too-many-atoms``), or while :data:`~cluster_gnn.limits.MAX_DFT_JOBS` run (``busy``).
    ClusterGNNError
        For a charge, multiplicity or time limit out of range.
    """
    if not pyscf_available():
        raise DFTConvergenceError("the DFT calculation needs PySCF: pip install -e '.[dft]'", reason="missing-pyscf")
    if len(atoms) > MAX_DFT_ATOMS:
        raise DFTConvergenceError(f"the DFT calculation takes at most {MAX_DFT_ATOMS} atoms, got {len(atoms)}",
                                  reason="too-many-atoms")
    try:
        seconds = float(time_limit_s)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not MIN_DFT_TIME_LIMIT_S <= seconds <= MAX_DFT_TIME_LIMIT_S:
        raise ClusterGNNError(f"the DFT time limit must be {MIN_DFT_TIME_LIMIT_S:g} to {MAX_DFT_TIME_LIMIT_S:g} s, "
                              f"got {time_limit_s!r}")
    charge, multiplicity = charge_and_multiplicity(atoms, charge, multiplicity)
    with _LOCK:
        if len(_running()) >= MAX_DFT_JOBS:
            raise DFTConvergenceError(f"{MAX_DFT_JOBS} DFT calculation(s) already running here: wait for it or "
                                      "cancel it", reason="busy")
        job = DFTJob(atoms, charge, multiplicity, seconds, config or DFTConfig())
        _JOBS[job.id] = job
    return job


def get_dft_job(job_id: str | None) -> DFTJob | None:
    """The job started in this process under ``job_id`` (None when unknown)."""
    return _JOBS.get(job_id) if job_id else None
