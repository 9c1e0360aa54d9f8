"""The ranges every user-controlled number must lie in, checked at the edge.

A number from a file's comment line, a command-line flag or an app widget passes through
one of these checks before any work starts, so a value that parses but makes no physical
sense (a charge of -50 e, a time limit of ``nan`` s, a coordinate of 1e300 Å) ends as one
:class:`~cluster_gnn.errors.StructureError` (or :class:`ValueError` for settings) that
names what was received and what is allowed, never as a traceback deep inside xTB.
"""
from __future__ import annotations

import argparse
import math
import numbers

from .errors import ClusterGNNError, PredictionError, StructureError

__all__ = ["MAX_ABS_CHARGE", "MAX_UNPAIRED_PER_ATOM", "MAX_COORDINATE", "MIN_TIMEOUT_S", "MAX_TIMEOUT_S",
           "MAX_DESIGN_ATOMS", "DESIGN_TIME_LIMIT_S",
           "MAX_DESIGN_TIME_LIMIT_S", "MAX_DESIGN_JOBS", "MAX_DFT_ATOMS", "DFT_TIME_LIMIT_S",
           "MAX_DFT_TIME_LIMIT_S", "MAX_DFT_JOBS", "check_design_atoms", "check_integer", "check_charge", "check_multiplicity", "check_timeout", "check_finite_result", "check_workers",
           "check_members", "flag",
           "FlagError", "FlagParser"]

#: Largest |total charge| in e accepted for a cluster. The data set has anions and
#: neutrals (-1 and 0); a gas-phase cluster beyond +-3 e is not what the model describes.
MAX_ABS_CHARGE = 3
#: Most unpaired electrons per atom (a half-filled d shell); 2S+1 <= 1 + 5 x atoms.
MAX_UNPAIRED_PER_ATOM = 5
#: Largest |coordinate| in Å accepted (a 100-atom cluster spans a few nm; beyond this,
#: distances overflow double precision long before they mean anything).
MAX_COORDINATE = 1000.0
#: Time limits in s accepted for the xTB work of one call (0 or None elsewhere means none).
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 0.1, 86400.0
#: Most atoms a design from a formula (structure search, then prediction) accepts: the
#: data set's clusters have 2 to 13; a short search of a larger cluster would not find its minimum.
MAX_DESIGN_ATOMS = 16
#: Wall-clock limit in s of one design (search and prediction), default and largest.
DESIGN_TIME_LIMIT_S, MAX_DESIGN_TIME_LIMIT_S = 600.0, 3600.0
#: Designs that may run at once in one process (each is a worker process on its own core).
MAX_DESIGN_JOBS = 2
#: Most atoms the DFT of one structure accepts (the data set's largest cluster has 13;
#: a 13-atom PBE/def2-SVP single point takes 10-40 min on one core).
MAX_DFT_ATOMS = 13
#: Wall-clock limit in s of the DFT of one structure, default and largest.
DFT_TIME_LIMIT_S, MAX_DFT_TIME_LIMIT_S = 1800.0, 3600.0
#: DFT calculations of single structures that may run at once in one process (one core each).
MAX_DFT_JOBS = 1


def check_integer(value, what: str, low: int, high: int, reason: str = "spin") -> int:
    """``value`` as an ``int`` if it is a whole number in ``[low, high]``; else
    :class:`StructureError` naming ``what`` was received and the allowed range. Accepts
    ints, integral floats and their strings (``"-1"``, ``"2.0"``); refuses bools, NaN, inf."""
    shown = repr(value) if isinstance(value, str) else value
    number = None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        number = int(value)
    elif isinstance(value, (numbers.Real, str)) and not isinstance(value, bool):
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            as_float = math.nan
        if math.isfinite(as_float) and as_float == int(as_float):
            number = int(as_float)
    if number is None:
        raise StructureError(f"{what} must be a whole number from {low} to {high}, got {shown}", reason=reason)
    if not low <= number <= high:
        raise StructureError(f"{what} {number} is outside the allowed range {low} to {high}", reason=reason)
    return number


def check_charge(value, what: str = "charge") -> int:
    """A total charge in e within ``+-MAX_ABS_CHARGE``."""
    return check_integer(value, f"{what} (e)" if what == "charge" else what, -MAX_ABS_CHARGE, MAX_ABS_CHARGE)


def check_multiplicity(value, num_atoms: int | None = None, what: str = "multiplicity") -> int:
    """A multiplicity 2S+1 from 1 to ``1 + MAX_UNPAIRED_PER_ATOM x num_atoms`` (101 atoms
    when ``num_atoms`` is unknown)."""
    high = 1 + MAX_UNPAIRED_PER_ATOM * (num_atoms if num_atoms else 101)
    return check_integer(value, what, 1, high)


def check_timeout(value, what: str = "time limit") -> float | None:
    """A time limit in s: None or 0 (no limit), else a finite number from
    :data:`MIN_TIMEOUT_S` to :data:`MAX_TIMEOUT_S`; :class:`ClusterGNNError` otherwise."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds) or (seconds != 0 and not MIN_TIMEOUT_S <= seconds <= MAX_TIMEOUT_S):
        raise ClusterGNNError(f"{what} must be 0 (none) or {MIN_TIMEOUT_S:g} to {MAX_TIMEOUT_S:g} s, got {value!r}")
    return seconds or None


def check_workers(value, what: str = "workers") -> int:
    """A number of worker processes, 1 to 256."""
    return check_integer(value, what, 1, 256, reason="flag")


def check_members(value, what: str = "members") -> int:
    """A number of ensemble members, 1 to 100."""
    return check_integer(value, what, 1, 100, reason="flag")


def check_design_atoms(num_atoms: int, what: str = "the formula") -> int:
    """A number of atoms a design can search: 2 to :data:`MAX_DESIGN_ATOMS`."""
    if not 2 <= num_atoms <= MAX_DESIGN_ATOMS:
        raise StructureError(f"{what} has {num_atoms} atoms; a design searches clusters of 2 to {MAX_DESIGN_ATOMS} "
                             "atoms", reason="too-many-atoms" if num_atoms > MAX_DESIGN_ATOMS else "formula")
    return num_atoms


def check_finite_result(values, what: str) -> None:
    """Refuse a result that is not finite: a NaN or inf is an error, never an output."""
    import numpy as np

    arr = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise PredictionError(f"{what} is not finite ({arr.ravel()[~np.isfinite(arr.ravel())][0]}); "
                              "the input is outside what the model can describe")


def flag(check, *args):
    """An argparse ``type=`` that parses a flag with ``check(text, *args)`` and reports a
    refusal as a usage error naming the value and the allowed range (one line, exit 2)."""
    def parse(text):
        try:
            return check(text, *args)
        except ClusterGNNError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = getattr(check, "__name__", "value").replace("check_", "")
    return parse


class FlagError(Exception):
    """A command line that :class:`FlagParser` refuses; the CLI prints it as one
    ``error:`` line and exits with 2."""


class FlagParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose refusals raise :class:`FlagError` (one line naming the
    flag, the value and what is allowed) instead of printing the whole usage block."""

    def error(self, message):
        raise FlagError(f"{self.prog}: {message}")
