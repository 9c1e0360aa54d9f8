"""Writing a file so that a reader never sees half of it.

Results that long jobs leave behind (DFT records, SCF checkpoints, structures, models, a
design's result) are read by other processes while they are written, and a job can be
killed mid-write. :func:`atomic_write` writes to a temporary file beside the target and
renames it over the target only when the write has finished: a reader sees the old file or
the new one, and a kill leaves the old one in place.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write"]


@contextmanager
def atomic_write(path, mode: str = "w", fsync: bool = False):
    """Open a temporary file beside ``path`` (``mode`` ``"w"``, UTF-8 text, or ``"wb"``) and
    yield it; on leaving the block without an error it replaces ``path`` in one rename.

    On an error the temporary file is removed, ``path`` is left as it was and the error
    propagates. The temporary name carries the process id, so two processes writing the
    same file do not write into one temporary. ``fsync``: flush the data to disk before the
    rename (for files whose loss after a power cut would cost a recomputation)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
