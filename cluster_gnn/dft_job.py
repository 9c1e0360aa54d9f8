"""The DFT stage as a resumable background job over many clusters.

:func:`run_dft_job` runs :func:`~cluster_gnn.dft.run_dft` cluster by cluster: one JSON
record per cluster (the result, or the failure with its reason) written atomically under
``data/features/dft/``, so a killed job resumes without losing or repeating a cluster (and
the cluster it was on from its SCF's last finished stage); a lock file with the owner's pid,
so records never have two writers (a dead owner's lock is taken over); workers that die with their
parent, or the workers of a Dask cluster (the structure search's
:func:`~cluster_gnn.parallel.task_executor`); a wall-time limit per cluster, which the worker
enforces itself between SCF cycles. :func:`dft_tables` turns the records into the
tables ``data/features/dft_descriptors.csv`` (the authors' NPA descriptors, by their
names) and ``data/features/dft_atoms.csv`` (per atom).
"""
from __future__ import annotations

import io
import json
import multiprocessing as mp
import re
import time
from contextlib import ExitStack
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np
import pandas as pd
from ase.io import read, write

from .datasets import find_cluster, load_clusters, load_structure
from .dft import DFTConfig, DFTResult, dft_descriptors, run_dft, smeared_result
from .errors import ClusterGNNError, DFTConvergenceError
from .files import atomic_write
from .parallel import PidLock, die_with_parent, executor_slots, task_executor

__all__ = ["run_dft_job", "record_state", "timed_out_under", "write_record", "job_status", "bundled_clusters",
           "current_structures", "record_is_current", "load_dft_results", "load_dft_atoms", "dft_tables",
           "write_dft_tables", "typical_seconds", "expected_seconds", "DFT_DIR_NAME", "DFT_CHARGE_LABEL"]

#: How the Explorer and the descriptor table name DFT charges.
DFT_CHARGE_LABEL = "PBE/def2-SVP NPA"

#: folder of the per-cluster records under ``data/features``
DFT_DIR_NAME = "dft"


def bundled_clusters(names=None):
    """``(name, atoms, charge, multiplicity)`` of bundled clusters at their committed
    structures, the input of :func:`run_dft_job`, with the multiplicity of
    ``data/clusters.csv`` (the authors': published for the 159 homonuclear clusters, from their
    spin density for the 57 mixed ones), else the structure's. Default: all 216, the 159
    homonuclear clusters before the 57 mixed ones, and of those the 24 with a measured rate
    first (the mixtures split needs them); within each, clusters without a 3d metal (Fe, V,
    Co) first, as 21 of the first 24 records with one needed the slow Newton rungs or timed
    out (3 of 21 without), then fewest atoms first."""
    table = load_clusters()
    if names:
        names = [find_cluster(n)["name"] for n in names]
    else:
        table = table.assign(mixed=lambda t: t["kind"] != "homonuclear", unmeasured=lambda t: t["lg_k1"].isna(),
                             slow=lambda t: t["metals"].str.contains("Fe|V|Co"))
        names = list(table.sort_values(["mixed", "unmeasured", "slow", "n_atoms", "name"])["name"])
    multiplicity = table.set_index("name")["multiplicity"]
    for name in names:
        atoms = load_structure(name)
        mult = multiplicity.get(name)
        yield name, atoms, int(atoms.info["charge"]), int(atoms.info["multiplicity"] if pd.isna(mult) else mult)


def _die_with_parent() -> None:
    """Worker start-up: one thread, and exit when the parent dies (even by SIGKILL): a
    SIGTERM from Linux and a watchdog (:func:`~cluster_gnn.parallel.die_with_parent`)."""
    die_with_parent(pdeathsig=True)


class _OutOfTime(Exception):
    """Raised from the SCF callback when a cluster has used its time: the worker stops it
    itself, between two SCF cycles, so nothing has to be killed (a Dask worker cannot be)."""


def _task(name: str, xyz_text: str, charge: int, multiplicity: int, config_dict: dict,
          progress_path: str | None = None, time_limit_s: float | None = None,
          checkpoint_path: str | None = None) -> dict:
    """Worker side of the job: one cluster -> its JSON record (never raises for the cluster's
    own failures). With ``progress_path``, ``{"rung", "cycles", "seconds"}`` of the SCF is
    rewritten there after every cycle (skipped where the worker cannot write it, e.g. a Dask
    worker on another machine). With ``time_limit_s``, the SCF stops at the first cycle past
    it and the record is a failure with ``reason`` ``timeout``. With ``checkpoint_path``, the
    SCF saves where it stands there and resumes from it (:func:`~cluster_gnn.dft.run_dft`)."""
    config = DFTConfig.from_dict(config_dict)
    atoms = read(io.StringIO(xyz_text), format="extxyz")
    record = {"cluster": name, "charge": charge, "multiplicity": multiplicity, "method": config.label,
              "config": config.to_dict(), "positions": np.round(atoms.get_positions(), 6).tolist()}
    started = time.perf_counter()
    where = {"rung": "", "cycles": 0}

    def on_cycle(rung, cycles):
        seconds = time.perf_counter() - started
        where.update(rung=rung, cycles=cycles)
        if progress_path:
            try:
                write_record(Path(progress_path), {"rung": rung, "cycles": cycles, "seconds": round(seconds, 1)})
            except OSError:
                pass
        if time_limit_s is not None and seconds > time_limit_s:
            raise _OutOfTime
    try:
        record.update(status="ok", result=run_dft(atoms, charge, multiplicity, config, on_cycle=on_cycle,
                                                   checkpoint=checkpoint_path).to_dict())
    except DFTConvergenceError as e:
        record.update(status="failed", reason=e.reason, message=str(e))
    except _OutOfTime:
        record.update(status="failed", reason="timeout", time_limit_s=float(time_limit_s),
                      message=f"the DFT single point took longer than {time_limit_s:g} s (stopped in the "
                              f"{where['rung']} rung after {where['cycles']} SCF cycles)")
    finally:
        if progress_path:  # a worker on another machine leaves none behind in its own checkout
            Path(progress_path).unlink(missing_ok=True)
    return record


class _JobLock(PidLock):
    """``<out_dir>/.lock`` holding the owner's pid; a lock whose owner is dead is taken over."""

    def __init__(self, out_dir: Path):
        super().__init__(Path(out_dir) / ".lock", "DFT job",
                         error=lambda message: DFTConvergenceError(message, reason="locked"))


def write_record(path, record: dict) -> None:
    """Write a JSON record atomically (a temporary file beside it, then a rename)."""
    with atomic_write(path) as fh:
        fh.write(json.dumps(record, indent=1, ensure_ascii=False) + "\n")


def timed_out_under(record: dict) -> float | None:
    """The time limit (s) a ``timeout`` failure ran under (``time_limit_s``, or read from the
    message of records made before that field), None for any other record."""
    if record.get("status") != "failed" or record.get("reason") != "timeout":
        return None
    if isinstance(record.get("time_limit_s"), (int, float)):
        return float(record["time_limit_s"])
    found = re.search(r"longer than ([0-9.]+) s", str(record.get("message", "")))
    return float(found.group(1)) if found else None


def record_state(path, atoms, multiplicity: int) -> tuple:
    """``(state, reason)`` of the record at ``path`` for a cluster at ``atoms`` in spin state
    ``multiplicity``: ``("ok", None)``, ``("failed", reason)``, ``("stale", why)`` when it was
    made for another multiplicity or structure (searched again, candidates made anew), holds a
    smeared energy (:func:`~cluster_gnn.dft.smeared_result`) or cannot be read, ``(None, None)``
    when there is none. The job redoes stale and missing ones."""
    return _read_state(path, atoms, multiplicity)[:2]


def _read_state(path, atoms, multiplicity: int) -> tuple:
    """:func:`record_state` and the record it read (None when there is none or it is unreadable)."""
    path = Path(path)
    if not path.is_file():
        return None, None, None
    try:
        record = json.loads(path.read_text())
        status = record["status"]
    except (OSError, ValueError, KeyError, TypeError):
        return "stale", "unreadable", None
    if record.get("multiplicity") not in (None, int(multiplicity)):
        return "stale", "another multiplicity", record
    if not _same_positions(record.get("positions", atoms.positions), atoms.positions):
        return "stale", "another structure", record
    if smeared_result(record):
        return "stale", "smeared energy", record
    return status, record.get("reason"), record


def job_status(clusters, out_dir) -> pd.DataFrame:
    """Where the job stands: one row per ``(name, atoms, charge, multiplicity)`` of
    ``clusters`` with ``cluster``, ``state`` (``ok``, ``failed``, ``stale``, ``pending``),
    ``reason``, ``timed_out_at`` (s: the limit a timeout came under, else NaN) and ``running``
    (a worker is on it now: its progress file exists)."""
    out_dir = Path(out_dir)
    rows = []
    for name, atoms, _, multiplicity in clusters:
        state, reason, record = _read_state(out_dir / f"{name}.json", atoms, multiplicity)
        limit = timed_out_under(record) if state == "failed" else None
        if limit is not None:  # "timeout at 1200 s": a run with a longer limit retries it
            reason = f"timeout at {limit:g} s"
        rows.append({"cluster": name, "state": state or "pending", "reason": reason,
                     "timed_out_at": np.nan if limit is None else limit,
                     "running": (out_dir / f".{name}.progress").is_file()})
    return pd.DataFrame(rows, columns=["cluster", "state", "reason", "timed_out_at", "running"])


#: A local worker this far past its time limit (no SCF cycle came) is killed: limit*(1+f)+s.
KILL_GRACE = (0.1, 60.0)


def run_dft_job(clusters, out_dir, config: DFTConfig | None = None, workers: int = 1,
                time_limit_s: float = 3600.0, retry_failed: bool = False, on_record=None,
                progress: bool = True, stop=None, scheduler=None) -> dict:
    """Run :func:`run_dft` over many clusters, resumably.

    Parameters
    ----------
    clusters: iterable of ``(name, atoms, charge, multiplicity)``.
    out_dir: folder of the per-cluster records ``<name>.json`` (``status`` ``ok`` with the
        result, or ``failed`` with ``reason`` and ``message``). Clusters with a record are
        skipped (failed ones too, unless ``retry_failed``), so a killed job resumes where it
        stopped without losing or repeating a finished cluster; a record made for another
        multiplicity is redone. A timeout under a shorter limit than ``time_limit_s`` is not a
        verdict: it is run again, after the clusters without a record, from its SCF
        checkpoint where one was kept.
    workers: local worker processes (one thread each); they die with this process.
    time_limit_s: wall-time limit per cluster: the worker stops the SCF at the first cycle
        past it and the cluster is recorded as failed (``reason`` ``timeout``). A local worker
        that does not stop within :data:`KILL_GRACE` is killed and replaced.
    on_record: called with the path of each record written (to commit it, say).
    progress: print a line per cluster; the worker also keeps ``<out_dir>/.<name>.progress``
        (rung, SCF cycles, seconds) up to date, and local ones the SCF's checkpoint
        ``.<name>.scf.npz`` until the record is written (a killed cluster resumes from it;
        kept after a timeout, for a run with a longer limit).
    stop: a :class:`threading.Event`; once set, local workers are killed within about a
        second (Dask tasks are cancelled, or end at their time limit) and the job returns
        without a record for the clusters under way.
    scheduler: a Dask scheduler's address (``"tcp://host:8786"``) or ``Client``: the clusters
        run on its workers (:func:`~cluster_gnn.parallel.task_executor`, as the search); records
        are written here. A late Dask task cannot be killed: it is recorded and left to end.

    Returns
    -------
    dict: counts ``{"done": ..., "failed": ..., "skipped": ...}`` of this run (and
    ``"stopped": 1`` when ``stop`` ended it).
    """
    config = config or DFTConfig()
    out_dir = Path(out_dir)
    if not (isinstance(time_limit_s, (int, float)) and np.isfinite(time_limit_s) and 1 <= time_limit_s <= 7 * 86400):
        raise ClusterGNNError(f"time limit per cluster must be 1 s to 7 days, got {time_limit_s!r}")
    kill_after = time_limit_s * (1 + KILL_GRACE[0]) + KILL_GRACE[1]
    counts = {"done": 0, "failed": 0, "skipped": 0}
    with _JobLock(out_dir), ExitStack() as stack:
        todo, longer = [], []  # longer: timeouts under a shorter limit, run after the new ones
        for name, atoms, charge, multiplicity in clusters:
            status, _, record = _read_state(out_dir / f"{name}.json", atoms, multiplicity)
            limit = timed_out_under(record) if status == "failed" else None
            shorter = limit is not None and limit < time_limit_s
            if status == "ok" or (status == "failed" and not retry_failed and not shorter):
                counts["skipped"] += 1
                continue
            buf = io.StringIO()
            write(buf, atoms, format="extxyz")
            (longer if shorter and not retry_failed else todo).append(
                (name, buf.getvalue(), int(charge), int(multiplicity), len(atoms)))
        todo += longer
        total = len(todo)
        if progress:
            where = "" if scheduler is None else f" on the Dask cluster {scheduler}"
            print(f"DFT ({config.label}): {total} clusters to run{where}, {counts['skipped']} already done", flush=True)
        local = scheduler is None

        def new_pool():
            return ProcessPoolExecutor(max_workers=max(1, workers), mp_context=mp.get_context("spawn"),
                                       initializer=_die_with_parent)

        def kill(pool):
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.kill()
            pool.shutdown(wait=False, cancel_futures=True)

        def failure(name, charge, multiplicity, reason, message):
            return {"cluster": name, "charge": charge, "multiplicity": multiplicity, "method": config.label,
                    "status": "failed", "reason": reason, "message": message}

        def finish(name, record, started):
            path = out_dir / f"{name}.json"
            (out_dir / f".{name}.progress").unlink(missing_ok=True)
            record["seconds_wall"] = round(time.perf_counter() - started, 1)
            write_record(path, record)
            if timed_out_under(record) is None:  # a timeout keeps it: a longer run resumes from it
                (out_dir / f".{name}.scf.npz").unlink(missing_ok=True)
            counts["done" if record["status"] == "ok" else "failed"] += 1
            if progress:
                n = counts["done"] + counts["failed"]
                what = (f"ok ({record['result']['rung']}, {record['result']['cycles']} cycles)"
                        if record["status"] == "ok" else f"FAILED ({record['reason']})")
                print(f"[{n}/{total}] {name}: {what} in {record['seconds_wall']:.0f} s", flush=True)
            if on_record is not None:
                on_record(path)

        pool = new_pool() if local else stack.enter_context(task_executor(scheduler=scheduler))
        pending = list(todo)
        running = {}

        def requeue_running():
            for name, *_rest in running.values():
                pending.insert(0, next(t for t in todo if t[0] == name))
            running.clear()

        try:
            while pending or running:
                # no more at once than run at once, so that a cluster's clock starts when it does
                while pending and len(running) < (max(1, workers) if local else executor_slots(pool)):
                    name, xyz, charge, multiplicity, _ = pending.pop(0)
                    fut = pool.submit(_task, name, xyz, charge, multiplicity, config.to_dict(),
                                      str(out_dir / f".{name}.progress"), float(time_limit_s),
                                      str(out_dir / f".{name}.scf.npz") if local else None)
                    running[fut] = (name, charge, multiplicity, time.perf_counter())
                done, _ = wait(list(running), timeout=1.0 if stop is not None else 5.0, return_when=FIRST_COMPLETED)
                if stop is not None and stop.is_set():
                    counts["stopped"] = 1
                    break
                broken = False
                for fut in done:
                    name, charge, multiplicity, started = running.pop(fut)
                    try:
                        record = fut.result()
                    except Exception as e:  # noqa: BLE001 - a dead worker: record it, go on
                        broken = True
                        record = failure(name, charge, multiplicity, "worker-died",
                                         f"the DFT worker died: {type(e).__name__}: {e}")
                    finish(name, record, started)
                if broken and local:  # a dead worker breaks the whole pool: start a new one
                    requeue_running()
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = new_pool()
                late = [f for f, (_, _, _, t0) in running.items() if time.perf_counter() - t0 > kill_after]
                for fut in late:
                    name, charge, multiplicity, started = running.pop(fut)
                    fut.cancel()
                    finish(name, {**failure(name, charge, multiplicity, "timeout",
                                            f"the DFT single point took longer than {time_limit_s:g} s"),
                                  "time_limit_s": float(time_limit_s)}, started)
                if late and local:  # the pool cannot cancel a running task: replace it, resubmit the others
                    requeue_running()
                    kill(pool)
                    pool = new_pool()
        finally:
            if local:
                kill(pool)
            else:  # cancels what is queued; a running Dask task ends at its own time limit
                pool.shutdown(wait=False)
            for name, *_ in running.values():
                (out_dir / f".{name}.progress").unlink(missing_ok=True)
    return counts


def load_dft_results(out_dir) -> dict:
    """``{name: record}`` of every readable record in ``out_dir``."""
    out = {}
    for path in sorted(Path(out_dir).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out[record.get("cluster", path.stem)] = record
    return out


def atomic_start_record(record: dict) -> bool:
    """Whether a record (as written by the jobs) was made with ``DFTConfig.atomic_start``."""
    return bool((record.get("config") or {}).get("atomic_start", False))


def typical_seconds(records, config: DFTConfig | None = None) -> dict:
    """``{(atoms, newton_first): [wall seconds]}`` of the converged ``records`` (dicts as
    written by the jobs), by number of atoms and whether the ladder would start at Newton
    without the atomic start (Fe, V and Co clusters: slower); where two or more of a key
    ran the ladder of ``config`` (its ``atomic_start``: 1.1-3.4x faster), only those. The data
    of :func:`expected_seconds`."""
    config = config or DFTConfig()
    out: dict = {}
    current: dict = {}
    for record in records:
        result = record.get("result") or {}
        if record.get("status") == "ok" and result.get("symbols") and record.get("seconds_wall"):
            key = (len(result["symbols"]), config.newton_first(result["symbols"]))
            out.setdefault(key, []).append(float(record["seconds_wall"]))
            if atomic_start_record(record) == config.atomic_start:
                current.setdefault(key, []).append(float(record["seconds_wall"]))
    return {key: current[key] if len(current.get(key, [])) >= 2 else times for key, times in out.items()}


def expected_seconds(symbols, typical: dict, config: DFTConfig | None = None) -> float:
    """Median wall time (s, one core) of the converged single points of the same kind and
    number of atoms as ``symbols`` in ``typical`` (:func:`typical_seconds`): the nearest
    number of atoms when none has as many, the other kind when none is of this kind; NaN
    when ``typical`` is empty."""
    newton = (config or DFTConfig()).newton_first(symbols)
    keys = [key for key in typical if key[1] == newton] or list(typical)
    if not keys:
        return float("nan")
    # the nearest size; of two as near, the larger (not an underestimate)
    key = min(keys, key=lambda k: (abs(k[0] - len(symbols)), -k[0]))
    return float(np.median(typical[key]))


def load_dft_atoms(path=None) -> dict:
    """``{cluster: DataFrame}`` of the committed per-atom DFT table (``data/features/dft_atoms.csv``:
    ``index``, ``symbol``, ``charge`` in e, ``s_valence``, ``p_valence``, ``d_valence``,
    ``spin`` in e), in atom order; empty when the table is not there. Needs no PySCF."""
    from .config import DATA_DIR
    from .electronic import FEATURES_DIR_NAME

    path = Path(path) if path else DATA_DIR / FEATURES_DIR_NAME / "dft_atoms.csv"
    if not path.is_file():
        return {}
    table = pd.read_csv(path)
    return {name: rows.sort_values("index").reset_index(drop=True) for name, rows in table.groupby("cluster")}


def current_structures(names) -> dict:
    """``{name: (multiplicity, positions [num_atoms, 3] in Å)}`` of bundled clusters as the DFT
    job would run them now (:func:`bundled_clusters`): what a record must match to be used."""
    return {name: (mult, atoms.positions.copy()) for name, atoms, _, mult in bundled_clusters(names)}


def _same_positions(made, positions, tolerance: float = 1e-3) -> bool:
    """Whether a record's positions (Å) are those of ``positions`` within ``tolerance`` Å."""
    made, positions = np.asarray(made, float), np.asarray(positions, float)
    return made.shape == positions.shape and float(np.abs(made - positions).max()) < tolerance


def record_is_current(record: dict, current: dict | None) -> bool:
    """Whether a record was made for the structure and multiplicity in ``current``
    (:func:`current_structures`; always, for a cluster ``current`` does not know)."""
    name = record.get("cluster")
    if current is None or name not in current:
        return True
    mult, positions = current[name]
    return int(record.get("multiplicity", -1)) == int(mult) and _same_positions(record.get("positions", []), positions)


def dft_tables(out_dir, ranked: dict | None = None, current: dict | None = None):
    """``(descriptors, atoms)`` DataFrames of the finished records: one row per cluster
    (``cluster``, :data:`DFT_DESCRIPTORS`, ``s2``, ``s2_expected``, ``rung``, ``method``,
    ``structure``) and one per atom (``cluster``, ``index``, ``symbol``, ``charge``,
    ``s_valence``, ``p_valence``, ``d_valence``, ``spin``).

    ``ranked`` maps a cluster to ``(record, label)``: the DFT record of a structure PBE puts
    lower than the committed one (:func:`~cluster_gnn.isomer_ranking.ranked_records`). Its
    descriptors replace the committed structure's, with ``structure`` = ``label``
    (otherwise ``xTB minimum``); the per-atom rows stay those of the committed structure,
    the one the app draws.

    ``current`` (:func:`current_structures`): records made at another structure or
    multiplicity than the cluster's current one (a structure searched again, a spin state
    changed) are left out; the job redoes them."""
    ranked = ranked or {}
    rows, atom_rows = [], []
    records = {n: r for n, r in load_dft_results(out_dir).items() if record_is_current(r, current)}
    for name in sorted(set(records) | set(ranked)):
        record, label = ranked.get(name, (records.get(name), "xTB minimum"))
        if record is None or record.get("status") != "ok":
            continue
        result = DFTResult.from_dict(record["result"])
        rows.append({"cluster": name, **{k: round(v, 4) for k, v in dft_descriptors(result).items()},
                     "s2": round(result.s2, 3), "s2_expected": result.s2_expected, "rung": result.rung,
                     "method": result.method, "structure": label})
        own = records.get(name)
        if own is None or own.get("status") != "ok":
            continue
        result = DFTResult.from_dict(own["result"])
        for i, sym in enumerate(result.symbols):
            atom_rows.append({"cluster": name, "index": i, "symbol": sym, "charge": result.charges[i],
                              "s_valence": result.s_valence[i], "p_valence": result.p_valence[i],
                              "d_valence": result.d_valence[i], "spin": result.spin[i]})
    return pd.DataFrame(rows), pd.DataFrame(atom_rows)


def write_dft_tables(out_dir, dest_dir, ranked: dict | None = None) -> dict:
    """Write ``dft_descriptors.csv`` and ``dft_atoms.csv`` (rounded, one file each) into
    ``dest_dir`` from the records in ``out_dir`` that match the bundled clusters' current
    structures and multiplicities (and ``ranked``, see :func:`dft_tables`); returns their
    paths."""
    names = [n for n in load_dft_results(out_dir) if "~" not in n]
    known = set(load_clusters()["name"])
    descriptors, atoms = dft_tables(out_dir, ranked, current_structures([n for n in names if n in known]))
    dest_dir = Path(dest_dir)
    paths = {"descriptors": dest_dir / "dft_descriptors.csv", "atoms": dest_dir / "dft_atoms.csv"}
    descriptors.sort_values("cluster").to_csv(paths["descriptors"], index=False, lineterminator="\n")
    atoms.sort_values(["cluster", "index"]).round(4).to_csv(paths["atoms"], index=False, lineterminator="\n")
    return paths
