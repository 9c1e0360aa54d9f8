"""Checkpoints of an SCF under way: the density at the end of a stage of the convergence ladder.

:func:`cluster_gnn.dft.run_dft` saves one after each stage and, given a checkpoint made for
the same structure, spin state and level of theory, goes on from it, so a killed job loses
only the stage it was in. One ``.npz`` file per calculation: ``key`` (what it was made for),
``stage``, ``cycles`` and ``seconds`` spent so far, the energy ``trace`` (JSON), the density
matrix ``dm`` (AO basis; shape ``[nao, nao]`` restricted, ``[2, nao, nao]`` unrestricted, or a
placeholder of size 1 when a stage left no density) and, for one saved within a stage, the
density the stage started from (``start``: where the ladder goes on from should the stage fail).
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from .files import atomic_write

__all__ = ["checkpoint_key", "save_checkpoint", "load_checkpoint"]


def checkpoint_key(atoms, charge: int, multiplicity: int, theory: dict) -> str:
    """What a checkpoint is made for: elements and positions (Å, to 1e-6), charge, spin
    multiplicity and the level of theory (``DFTConfig.theory()``); how the SCF got there does
    not enter, since a density is a valid start whatever made it."""
    made = [atoms.get_chemical_symbols(), np.round(atoms.get_positions(), 6).tolist(), int(charge),
            int(multiplicity), theory]
    return hashlib.sha1(json.dumps(made, sort_keys=True).encode()).hexdigest()


def save_checkpoint(path, key: str, stage: str, cycles: int, seconds: float, trace: dict, dm,
                    start=None) -> None:
    """Write the checkpoint atomically (a file beside it, then a rename); a folder this process
    cannot write to (a Dask worker on another machine) is skipped silently. ``start``: the
    density the stage began from, for a checkpoint saved within it (None at a stage's end)."""
    extra = {} if start is None else {"start": np.asarray(start, dtype=float)}
    try:
        with atomic_write(path, "wb") as fh:
            np.savez(fh, key=key, stage=stage, cycles=cycles, seconds=seconds, trace=json.dumps(trace),
                     dm=np.asarray(dm, dtype=float), **extra)
    except OSError:
        pass


def load_checkpoint(path, key: str) -> dict | None:
    """The checkpoint at ``path`` as a dict (``stage``, ``cycles``, ``seconds``, ``trace``,
    ``dm``, ``start`` or None) if it was made for ``key``; None when there is none, it is unreadable, or it was
    made for another structure, spin state or level of theory."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["key"]) != key:
                return None
            return {"stage": str(saved["stage"]), "cycles": int(saved["cycles"]), "seconds": float(saved["seconds"]),
                    "trace": json.loads(str(saved["trace"])), "dm": np.array(saved["dm"]),
                    "start": np.array(saved["start"]) if "start" in saved.files else None}
    except (OSError, ValueError, KeyError, TypeError):
        return None
