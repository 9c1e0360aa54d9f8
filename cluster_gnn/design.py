"""Design a cluster from its formula: structure search, then prediction, in the background.

:func:`start_design` checks a formula such as ``Co2Ta2C3-`` (atoms within
:data:`~cluster_gnn.limits.MAX_DESIGN_ATOMS`, charge and multiplicity within
:mod:`cluster_gnn.limits`), then starts one worker process that

1. runs the global-minimum search (:func:`~cluster_gnn.search.search_cluster`) with a
   budget sized to the cluster (:func:`design_config`), resumable: its checkpoint lives in
   a work folder per cluster, charge, multiplicity and budget, so a second design of the same
   cluster resumes (or reuses) the first one's relaxations;
2. predicts lg(k1) with per-atom importances (:func:`~cluster_gnn.predict.predict_structure`).

The caller gets a :class:`DesignJob` at once and polls it (:meth:`DesignJob.poll`) or
waits (:meth:`DesignJob.wait`); :meth:`DesignJob.cancel` kills the worker. The worker
dies with the process that started it (:func:`~cluster_gnn.parallel.die_with_parent`) and
stops starting relaxations at its deadline; past the deadline plus a grace period the job
kills it. Jobs live in a registry of this process keyed by id (:func:`get_design`), so an
app keeps only the id across reruns; at most :data:`~cluster_gnn.limits.MAX_DESIGN_JOBS`
run at once.

From a notebook::

    job = start_design("Mo2S-")
    prediction = job.wait()          # a Prediction, or raises the worker's ClusterGNNError
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import pickle
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .config import SearchConfig
from .errors import ClusterGNNError, StructureError
from .files import atomic_write
from .limits import (DESIGN_TIME_LIMIT_S, MAX_DESIGN_JOBS, MAX_DESIGN_TIME_LIMIT_S, check_charge, check_design_atoms,
                     check_multiplicity)
from .parallel import die_with_parent
from .spin import estimate_multiplicity
from .structures import check_spin, formula_counts, normalize_name, parse_name

__all__ = ["DesignJob", "DesignStatus", "start_design", "get_design", "design_config", "DESIGN_ROOT"]

#: Where designs keep their searches: one folder per cluster, charge, multiplicity and budget.
DESIGN_ROOT = Path(os.environ.get("CLUSTER_GNN_DESIGN_DIR", Path(tempfile.gettempdir()) / "cluster-gnn-design"))
#: Seconds a worker may run past its deadline (the relaxation under way and the prediction) before it is killed.
GRACE_S = 120.0
_STATES = ("starting", "searching", "predicting", "done", "failed", "cancelled")
_JOBS: dict[str, "DesignJob"] = {}
_LOCK = threading.Lock()


def design_config(num_atoms: int) -> SearchConfig:
    """A search budget sized to the cluster: 4 random starts and 1 x 2 basin hops up to 4
    atoms (a few seconds of xTB), 8 starts and 2 x 3 hops up to 8 atoms, the project's
    full search (:class:`~cluster_gnn.config.SearchConfig` defaults) beyond."""
    if num_atoms <= 4:
        return SearchConfig(n_starts=4, n_refine=1, hop_steps=2, n_isomers=0)
    if num_atoms <= 8:
        return SearchConfig(n_starts=8, n_refine=2, hop_steps=3, n_isomers=0)
    return SearchConfig(n_isomers=0)


@dataclass
class DesignStatus:
    """Where a design stands: ``state`` one of starting, searching, predicting, done,
    failed, cancelled; ``done`` / ``total`` relaxations of the search; ``seconds`` since the
    start; ``message`` the error (one line) of a failed or cancelled design."""

    state: str
    done: int = 0
    total: int = 0
    seconds: float = 0.0
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    @property
    def fraction(self) -> float:
        """Progress from 0 to 1 (the search counts 90 %, the prediction the rest)."""
        if self.state == "done":
            return 1.0
        if self.state == "predicting":
            return 0.9
        return 0.9 * self.done / self.total if self.total else 0.0


def _write_json(path: Path, data: dict) -> None:
    with atomic_write(path) as fh:
        fh.write(json.dumps(data))


def _worker(job_dir: str, name: str, charge: int, multiplicity: int, config: SearchConfig, deadline: float) -> None:
    """The design in a worker process: search, predict, write ``result.pkl``; every
    outcome is written to ``status.json``."""
    die_with_parent()
    job_dir, t0 = Path(job_dir), time.time()
    status = job_dir / "status.json"

    def report(state, done=0, total=0, message=""):
        _write_json(status, {"state": state, "done": done, "total": total, "message": message})

    def warm_up():  # torch and the model load while the search runs (a cold worker spends ~20 s here)
        try:
            from .predict import load_ensemble

            load_ensemble()
        except Exception:  # noqa: BLE001 - the prediction below reports any failure properly
            pass

    warming = threading.Thread(target=warm_up, name="design-warm-up", daemon=True)
    warming.start()
    try:
        from .search import best_so_far, search_cluster

        search_dir = job_dir.parent.parent  # <cluster folder>/jobs/<id>
        report("searching")
        result = search_cluster(name, charge, [multiplicity], config, out_dir=search_dir, deadline=deadline,
                                progress=lambda done, total: report("searching", done, total))
        if result.finished:
            from .structures import read_cluster

            atoms = read_cluster(result.path)
            found = f"global minimum of {result.n_relaxations} relaxations"
        else:
            best = best_so_far(name, search_dir)
            if best is None:
                raise ClusterGNNError(f"the time limit ended the search of {name} before any relaxation finished; "
                                      "allow more time")
            atoms = best[0]
            found = f"lowest of {result.n_relaxations} relaxations (the time limit ended the search early)"
        report("predicting", result.n_relaxations, result.n_relaxations)
        warming.join()
        from .predict import predict_structure

        prediction = predict_structure(atoms, charge, multiplicity, name=name, explain=True)
        prediction.relaxation = {"found": found, "seconds": round(time.time() - t0, 1)}
        with atomic_write(job_dir / "result.pkl", "wb") as fh:
            pickle.dump(prediction, fh)
        report("done", result.n_relaxations, result.n_relaxations)
    except ClusterGNNError as e:
        report("failed", message=str(e).splitlines()[0] if str(e) else type(e).__name__)
    except Exception as e:  # noqa: BLE001 - the worker's boundary: one line for the user, never a traceback
        report("failed", message=f"the design of {name} failed unexpectedly: {type(e).__name__}: {e}".splitlines()[0])


@dataclass
class DesignJob:
    """One design running (or run) in a worker process; see :func:`start_design`."""

    id: str
    name: str
    charge: int
    multiplicity: int
    config: SearchConfig
    time_limit_s: float
    job_dir: Path
    started: float = field(default_factory=time.time)
    process: object = None
    _final: DesignStatus | None = None
    _prediction: object = None

    @property
    def num_atoms(self) -> int:
        return sum(formula_counts(self.name).values())

    def poll(self) -> DesignStatus:
        """The current :class:`DesignStatus`; kills a worker that outlived its time limit."""
        if self._final is not None:
            return self._final
        seconds = time.time() - self.started
        try:
            data = json.loads((self.job_dir / "status.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {"state": "starting"}
        status = DesignStatus(data.get("state", "starting"), int(data.get("done", 0)), int(data.get("total", 0)),
                              seconds, data.get("message", ""))
        alive = self.process is not None and self.process.is_alive()
        if status.finished:
            self._final = status
            if self.process is not None:
                self.process.join(timeout=5)
        elif not alive:
            code = getattr(self.process, "exitcode", None)
            self._final = DesignStatus("failed", status.done, status.total, seconds,
                                       f"the design worker of {self.name} stopped without a result (exit code {code})")
        elif seconds > self.time_limit_s + GRACE_S:
            self._kill()
            self._final = DesignStatus("failed", status.done, status.total, seconds,
                                       f"the design of {self.name} ran past its time limit of {self.time_limit_s:g} s "
                                       "and was stopped")
        return self._final or status

    def _kill(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()  # SIGKILL: xTB does not return to Python to hear a SIGTERM
            self.process.join(timeout=10)

    def cancel(self) -> DesignStatus:
        """Kill the worker now; the search's checkpoint stays, so a new design resumes it."""
        if self._final is None:
            self._kill()
            self._final = DesignStatus("cancelled", seconds=time.time() - self.started,
                                       message=f"the design of {self.name} was cancelled")
        return self._final

    def prediction(self):
        """The :class:`~cluster_gnn.predict.Prediction` (with ``importance``) of a finished
        design; raises :class:`ClusterGNNError` with the worker's message otherwise."""
        status = self.poll()
        if status.state != "done":
            raise ClusterGNNError(status.message or f"the design of {self.name} is {status.state}")
        if self._prediction is None:
            self._prediction = pickle.loads((self.job_dir / "result.pkl").read_bytes())
        return self._prediction

    def wait(self, timeout_s: float | None = None, poll_s: float = 0.5):
        """Block until the design ends (or ``timeout_s`` passes: then cancel it) and return
        :meth:`prediction`."""
        end = None if timeout_s is None else time.time() + timeout_s
        while not self.poll().finished:
            if end is not None and time.time() > end:
                self.cancel()
                break
            time.sleep(poll_s)
        return self.prediction()


def _running() -> list[DesignJob]:
    return [job for job in _JOBS.values() if not job.poll().finished]


def start_design(formula: str, charge: int | None = None, multiplicity: int | None = None,
                 time_limit_s: float = DESIGN_TIME_LIMIT_S, config: SearchConfig | None = None,
                 root: Path | str | None = None) -> DesignJob:
    """Check a formula and start its design in a worker process; return the :class:`DesignJob`.

    Parameters
    ----------
    formula:
        Element symbols with counts and an optional charge, e.g. ``Co2Ta2C3-`` or ``Fe2C``.
    charge:
        Total charge in e; default the formula's (``-`` = -1), within +-3.
    multiplicity:
        Spin multiplicity 2S+1; default :func:`~cluster_gnn.spin.estimate_multiplicity`.
    time_limit_s:
        Wall-clock limit in s: no relaxation starts after it (the best minimum so far is
        then used); 10 s to :data:`~cluster_gnn.limits.MAX_DESIGN_TIME_LIMIT_S`.
    config:
        Search budget (default :func:`design_config`).
    root:
        Work folder (default :data:`DESIGN_ROOT`).

    Raises
    ------
    StructureError (bad formula, too many atoms, impossible charge or spin), ClusterGNNError
    (a bad time limit, or too many designs running)
    """
    if not isinstance(formula, str) or not formula.strip():
        raise StructureError("type a formula with its charge, such as 'Mo2S-' or 'Co2Ta2C3-'", reason="formula")
    name = normalize_name(formula)
    counts = formula_counts(name)
    num_atoms = check_design_atoms(sum(counts.values()), f"{name}")
    charge = check_charge(parse_name(name)[1] if charge is None else charge)
    name = normalize_name("".join(s + (str(n) if n > 1 else "") for s, n in parse_name(name)[0])
                          + ("-" * -charge if charge < 0 else "+" * charge))
    multiplicity = estimate_multiplicity(name, charge) if multiplicity is None else multiplicity
    multiplicity = check_multiplicity(multiplicity, num_atoms)
    from ase.data import atomic_numbers

    check_spin([atomic_numbers[s] for s, n in counts.items() for _ in range(n)], charge, multiplicity)
    try:
        time_limit_s = float(time_limit_s)
    except (TypeError, ValueError):
        time_limit_s = float("nan")
    if not 10 <= time_limit_s <= MAX_DESIGN_TIME_LIMIT_S:
        raise ClusterGNNError(f"the time limit must be 10 to {MAX_DESIGN_TIME_LIMIT_S:g} s, got {time_limit_s!r}")
    config = config or design_config(num_atoms)
    with _LOCK:
        running = _running()
        if len(running) >= MAX_DESIGN_JOBS:
            raise ClusterGNNError(f"{len(running)} designs are running ({', '.join(j.name for j in running)}); "
                                  "wait for one to finish or cancel it")
        budget = f"s{config.n_starts}r{config.n_refine}h{config.hop_steps}"
        search_dir = Path(root or DESIGN_ROOT) / f"{name}_q{charge}_m{multiplicity}_{budget}"
        job_id = uuid.uuid4().hex[:12]
        job_dir = search_dir / "jobs" / job_id
        job_dir.mkdir(parents=True, exist_ok=True)
        job = DesignJob(job_id, name, charge, multiplicity, config, time_limit_s, job_dir)
        process = mp.get_context("spawn").Process(
            target=_worker, args=(str(job_dir), name, charge, multiplicity, config, job.started + time_limit_s),
            name=f"design-{name}", daemon=True)
        process.start()
        job.process = process
        _JOBS[job_id] = job
    return job


def get_design(job_id: str | None) -> DesignJob | None:
    """The design started in this process under ``job_id``, else None."""
    return _JOBS.get(job_id) if job_id else None
