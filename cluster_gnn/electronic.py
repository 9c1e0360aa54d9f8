"""GFN-xTB (tblite) single points -> per-atom electronic features.

:func:`compute_xtb_features` runs one SCF with the project's level of theory
(:class:`~cluster_gnn.config.XTBConfig`) and returns an :class:`AtomFeatures` with
Mulliken charges, s/p/d shell populations (Mulliken gross populations from the
density and overlap matrices, summed per shell), Wiberg/Mayer bond orders, and
cluster-level energy, HOMO-LUMO gap and dipole. Everything is in ASE units (Å, eV, e).

The calculation is spin-restricted with ``multiplicity - 1`` unpaired electrons and
Fermi smearing, so there is no per-atom spin density; the authors' DFT spin densities
are not reproduced here.
"""
from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms
from ase.calculators.calculator import CalculationFailed
from ase.optimize import FIRE

from .config import DATA_DIR, XTBConfig
from .datasets import load_clusters, structure_path
from .errors import DatasetError, StructureError, XTBConvergenceError, XTBTimeoutError
from .limits import check_timeout
from .parallel import die_with_parent
from .structures import check_spin, read_cluster

__all__ = ["AtomFeatures", "compute_xtb_features", "xtb_calculator", "relax_cluster", "run_time_limited",
           "compute_bundled_features", "write_feature_tables", "load_feature_tables", "FEATURES_DIR_NAME"]

_KELVIN_TO_HARTREE = 3.166808578545117e-06
_HARTREE_EV = 27.211386245988
_BOHR_ANGSTROM = 0.52917721090380

@dataclass(frozen=True)
class AtomFeatures:
    """xTB electronic structure of one cluster.

    Attributes
    ----------
    atomic_numbers: shape ``[num_atoms]``.
    charges: Mulliken partial charges in e, shape ``[num_atoms]``; sums to the total charge.
    s_population, p_population, d_population: Mulliken valence-shell populations in e,
        shape ``[num_atoms]`` each (the xTB basis is valence-only).
    valence_electrons: valence electrons of the neutral atom in the xTB basis,
        shape ``[num_atoms]`` (``s + p + d + charge``).
    bond_orders: Wiberg/Mayer bond orders, shape ``[num_atoms, num_atoms]``.
    energy: total (free) energy in eV at the smearing temperature.
    homo_energy, lumo_energy, homo_lumo_gap: orbital energies and gap in eV (aufbau
        filling of the restricted orbitals: HOMO is orbital ceil(N_el / 2)).
    dipole: dipole moment in e·Å, shape ``[3]``.
    charge, multiplicity: total charge (e) and 2S+1 used.
    method: level-of-theory label, e.g. ``GFN1-xTB/5000K``.
    """

    atomic_numbers: np.ndarray
    charges: np.ndarray
    s_population: np.ndarray
    p_population: np.ndarray
    d_population: np.ndarray
    valence_electrons: np.ndarray
    bond_orders: np.ndarray
    energy: float
    homo_energy: float
    lumo_energy: float
    homo_lumo_gap: float
    dipole: np.ndarray
    charge: int
    multiplicity: int
    method: str

    @property
    def num_atoms(self) -> int:
        return int(len(self.atomic_numbers))

    def to_dict(self) -> dict:
        """JSON-friendly dictionary (lists instead of arrays)."""
        out = {}
        for key, value in self.__dict__.items():
            out[key] = value.tolist() if isinstance(value, np.ndarray) else value
        return out


def xtb_calculator(charge: int, multiplicity: int, config: XTBConfig | None = None):
    """An ASE calculator (``tblite.ase.TBLite``) at the project's level of theory."""
    from tblite.ase import TBLite

    config = config or XTBConfig()
    return TBLite(
        method=config.method,
        charge=int(charge),
        multiplicity=int(multiplicity),
        electronic_temperature=config.electronic_temperature,
        max_iterations=config.max_iterations,
        accuracy=config.accuracy,
        verbosity=0,
    )


def compute_xtb_features(atoms, charge: int, multiplicity: int, config: XTBConfig | None = None) -> AtomFeatures:
    """One xTB single point on ``atoms`` -> :class:`AtomFeatures`.

    Parameters
    ----------
    atoms:
        :class:`ase.Atoms`, positions in Å.
    charge:
        Total charge in e (-1 for an anion).
    multiplicity:
        Spin multiplicity 2S+1; must fit the electron count.
    config:
        Level of theory (default :class:`XTBConfig()`).

    Raises
    ------
    StructureError
        if the multiplicity does not fit the electron count.
    XTBConvergenceError
        if the SCF fails.
    """
    from tblite.interface import Calculator

    config = config or XTBConfig()
    numbers = np.asarray(atoms.get_atomic_numbers())
    check_spin(numbers, charge, multiplicity)
    positions = np.asarray(atoms.get_positions(), dtype=float) / _BOHR_ANGSTROM
    try:
        calc = Calculator(config.method, numbers, positions, charge=float(charge), uhf=int(multiplicity) - 1)
        calc.set("verbosity", 0)
        calc.set("temperature", config.electronic_temperature * _KELVIN_TO_HARTREE)
        calc.set("max-iter", config.max_iterations)
        calc.set("accuracy", config.accuracy)
        calc.set("save-integrals", 1)
        res = calc.singlepoint()
        shell_atom = np.asarray(calc.get("shell-map"))
        shell_l = np.asarray(calc.get("angular-momenta"))
        orbital_shell = np.asarray(calc.get("orbital-map"))
        density = np.asarray(res.get("density-matrix"))
        overlap = np.asarray(res.get("overlap-matrix"))
        mulliken = np.asarray(res.get("charges"))
        bond_orders = np.asarray(res.get("bond-orders"))
        energy = float(res.get("energy")) * _HARTREE_EV
        orbital_energies = np.asarray(res.get("orbital-energies")) * _HARTREE_EV
        dipole = np.asarray(res.get("dipole")) * _BOHR_ANGSTROM
    except RuntimeError as e:  # tblite's errors derive from RuntimeError
        raise XTBConvergenceError(
            f"{config.label} SCF failed for {atoms.get_chemical_formula()} "
            f"(charge {charge}, multiplicity {multiplicity}): {str(e).strip().splitlines()[-1] if str(e).strip() else e}"
        ) from e
    if not np.isfinite(energy) or not np.all(np.isfinite(mulliken)):
        raise XTBConvergenceError(f"{config.label} SCF gave a non-finite energy or charge")

    if density.ndim == 3:  # spin channels
        density = density.sum(axis=0)
    n = len(numbers)
    if bond_orders.ndim == 3:
        # tblite 0.8 hands back its Fortran (nat, nat, nspin) array reshaped in C order, which
        # scrambles atoms and spin channels; undo that, then sum the channels.
        bond_orders = bond_orders.ravel().reshape(-1, n, n).sum(axis=0)
    gross = np.einsum("ij,ji->i", density, overlap)  # Mulliken gross orbital populations
    shell_pop = np.bincount(orbital_shell, weights=gross, minlength=len(shell_l))
    pops = np.zeros((n, 3))
    for l in (0, 1, 2):
        mask = shell_l == l
        pops[:, l] = np.bincount(shell_atom[mask], weights=shell_pop[mask], minlength=n)
    valence = np.rint(pops.sum(axis=1) + mulliken).astype(int)

    n_el = int(round(np.sum(valence) - charge))
    if not 0 < n_el <= 2 * len(orbital_energies):
        raise StructureError(
            f"charge {charge} leaves {n_el} valence electrons for {atoms.get_chemical_formula()}, but the "
            f"{config.method} basis holds 1 to {2 * len(orbital_energies)}", reason="spin")
    order = np.sort(orbital_energies)
    homo_index = max(int(np.ceil(n_el / 2)) - 1, 0)
    homo = float(order[homo_index])
    lumo = float(order[homo_index + 1]) if homo_index + 1 < len(order) else float("nan")
    return AtomFeatures(
        atomic_numbers=numbers,
        charges=mulliken,
        s_population=pops[:, 0],
        p_population=pops[:, 1],
        d_population=pops[:, 2],
        valence_electrons=valence,
        bond_orders=bond_orders,
        energy=energy,
        homo_energy=homo,
        lumo_energy=lumo,
        homo_lumo_gap=lumo - homo,
        dipole=dipole,
        charge=int(charge),
        multiplicity=int(multiplicity),
        method=config.label,
    )


def relax_cluster(atoms, charge: int, multiplicity: int, config: XTBConfig | None = None,
                  fmax: float = 0.05, max_steps: int = 400):
    """Relax ``atoms`` with FIRE at the xTB level; returns ``(atoms, energy_eV, converged, steps)``.

    The input is not modified. Raises :class:`XTBConvergenceError` if the SCF fails.
    """
    check_spin(atoms.get_atomic_numbers(), charge, multiplicity)
    work = atoms.copy()
    work.calc = xtb_calculator(charge, multiplicity, config)
    try:
        opt = FIRE(work, logfile=None)
        converged = bool(opt.run(fmax=fmax, steps=max_steps))
        energy = float(work.get_potential_energy())
    except (CalculationFailed, RuntimeError) as e:
        raise XTBConvergenceError(
            f"xTB failed while relaxing {atoms.get_chemical_formula()} "
            f"(charge {charge}, multiplicity {multiplicity}): {str(e).strip()[:200]}"
        ) from e
    steps = int(opt.nsteps)
    work.calc = None
    return work, energy, converged, steps


FEATURES_DIR_NAME = "features"


def compute_bundled_features(names=None, config: XTBConfig | None = None):
    """xTB features of the bundled global minima (``data/structures``).

    Returns ``({name: (atoms, AtomFeatures)}, [names without a structure])``; charge and
    multiplicity are those stored with each structure.
    """
    table = load_clusters()
    names = list(table["name"]) if names is None else list(names)
    results, missing = {}, []
    for name in names:
        path = structure_path(name)
        if not path.is_file():
            missing.append(name)
            continue
        atoms = read_cluster(path)
        results[name] = (atoms, compute_xtb_features(atoms, int(atoms.info["charge"]),
                                                     int(atoms.info["multiplicity"]), config))
    return results, missing


def write_feature_tables(results: dict, out_dir) -> dict:
    """Write AtomFeatures of many clusters as three tidy CSV tables under ``out_dir``.

    ``results`` maps a cluster name to ``(atoms, AtomFeatures)``. Writes ``atoms.csv``
    (one row per atom: position in Å, charge and populations in e), ``bonds.csv`` (one row
    per atom pair with bond order >= 0.05) and ``clusters.csv`` (energy and orbital
    energies in eV, dipole in e·Å, charge, multiplicity, method).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atom_rows, bond_rows, cluster_rows = [], [], []
    for name in sorted(results):
        atoms, f = results[name]
        for i, (sym, pos) in enumerate(zip(atoms.get_chemical_symbols(), atoms.get_positions())):
            atom_rows.append({"name": name, "atom": i, "symbol": sym, "Z": int(f.atomic_numbers[i]),
                              "x": pos[0], "y": pos[1], "z": pos[2], "charge": f.charges[i],
                              "s_population": f.s_population[i], "p_population": f.p_population[i],
                              "d_population": f.d_population[i], "valence_electrons": int(f.valence_electrons[i])})
        n = f.num_atoms
        for i in range(n):
            for j in range(i + 1, n):
                if f.bond_orders[i, j] >= 0.05:
                    bond_rows.append({"name": name, "i": i, "j": j, "bond_order": f.bond_orders[i, j]})
        cluster_rows.append({"name": name, "charge": f.charge, "multiplicity": f.multiplicity, "energy": f.energy,
                             "homo_energy": f.homo_energy, "lumo_energy": f.lumo_energy,
                             "homo_lumo_gap": f.homo_lumo_gap, "dipole": float(np.linalg.norm(f.dipole)),
                             "dipole_x": f.dipole[0], "dipole_y": f.dipole[1], "dipole_z": f.dipole[2],
                             "method": f.method})
    paths = {}
    for key, rows in (("atoms", atom_rows), ("bonds", bond_rows), ("clusters", cluster_rows)):
        paths[key] = out_dir / f"{key}.csv"
        pd.DataFrame(rows).to_csv(paths[key], index=False, float_format="%.6f", lineterminator="\n")
    return paths


def load_feature_tables(directory=None) -> dict:
    """Read the tables of :func:`write_feature_tables` back into ``{name: (atoms, AtomFeatures)}``."""
    directory = Path(directory or DATA_DIR / FEATURES_DIR_NAME)
    if not (directory / "atoms.csv").is_file():
        raise DatasetError(f"no feature tables in {directory}: run 'cluster-gnn features' first")
    atoms_t = pd.read_csv(directory / "atoms.csv")
    bonds_t = pd.read_csv(directory / "bonds.csv")
    clusters_t = pd.read_csv(directory / "clusters.csv").set_index("name")
    bonds_by = {k: g for k, g in bonds_t.groupby("name")}
    out = {}
    for name, g in atoms_t.groupby("name", sort=False):
        g = g.sort_values("atom")
        n = len(g)
        bo = np.zeros((n, n))
        if name in bonds_by:
            b = bonds_by[name]
            bo[b.i.values, b.j.values] = b.bond_order.values
            bo[b.j.values, b.i.values] = b.bond_order.values
        c = clusters_t.loc[name]
        atoms = Atoms(numbers=g.Z.values, positions=g[["x", "y", "z"]].values)
        out[name] = (atoms, AtomFeatures(
            atomic_numbers=g.Z.values, charges=g.charge.values, s_population=g.s_population.values,
            p_population=g.p_population.values, d_population=g.d_population.values,
            valence_electrons=g.valence_electrons.values, bond_orders=bo, energy=float(c.energy),
            homo_energy=float(c.homo_energy), lumo_energy=float(c.lumo_energy),
            homo_lumo_gap=float(c.homo_lumo_gap), dipole=np.array([c.dipole_x, c.dipole_y, c.dipole_z]),
            charge=int(c.charge), multiplicity=int(c.multiplicity), method=str(c.method)))
    return out


# ---- bounded-time xTB for untrusted input (the app, the CLI's predict) ---------------------
# tblite runs in compiled code that Python cannot interrupt, so a calculation with a time
# limit runs in a worker process, which is killed when the limit passes. Each call checks
# out a worker of its own (one-process pool) and returns it when done, so a timeout kills
# only the timed-out call's worker; concurrent calls (threads of the app) are unaffected.
# Up to _MAX_IDLE warm workers are kept; warm calls cost only the pickling of atoms and
# results. Workers die with this process (parallel.die_with_parent).

_IDLE: list = []
_IDLE_LOCK = threading.Lock()
_MAX_IDLE = 2
#: At most this many time-limited xTB calls run at once (``CLUSTER_GNN_XTB_WORKERS``, default
#: the number of CPU cores); the others wait their turn, and the wait does not count against
#: their time limit. Ten uploads at once on 2 cores then take turns instead of all running
#: out of time together.
XTB_WORKERS = max(1, int(os.environ.get("CLUSTER_GNN_XTB_WORKERS", 0) or os.cpu_count() or 1))
#: Longest wait for a free worker, s, before a call gives up with a clear message.
MAX_QUEUE_WAIT_S = 600.0
_SLOTS = threading.BoundedSemaphore(XTB_WORKERS)


def _checkout() -> ProcessPoolExecutor:
    with _IDLE_LOCK:
        if _IDLE:
            return _IDLE.pop()
    return ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"), initializer=die_with_parent)


def _checkin(pool: ProcessPoolExecutor) -> None:
    with _IDLE_LOCK:
        if len(_IDLE) < _MAX_IDLE:
            _IDLE.append(pool)
            return
    pool.shutdown(wait=False)


def _shutdown_workers():
    """Close the idle workers before the interpreter tears its modules down."""
    with _IDLE_LOCK:
        pools, _IDLE[:] = list(_IDLE), []
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(_shutdown_workers)


def _kill(pool: ProcessPoolExecutor) -> None:
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def run_time_limited(function, *args, timeout_s: float = 60.0):
    """Run ``function(*args)`` (a picklable module-level function) in a worker process and
    raise :class:`XTBTimeoutError` if it takes longer than ``timeout_s`` seconds (a finite
    number from 0.1 s to a day, else :class:`ClusterGNNError`).

    Errors of the project (:class:`ClusterGNNError`) raised in the worker reach the caller
    unchanged. A timed-out worker is killed; it served this call only, so calls running
    at the same time in other threads are not affected. At most :data:`XTB_WORKERS` calls
    run at once; a call waiting for its turn starts its clock when it gets a worker.
    """
    timeout_s = check_timeout(timeout_s, "timeout_s")
    if not _SLOTS.acquire(timeout=MAX_QUEUE_WAIT_S):
        raise XTBTimeoutError(f"all {XTB_WORKERS} xTB workers stayed busy for {MAX_QUEUE_WAIT_S:g} s; "
                              "the machine is overloaded, try again later")
    try:
        return _run_in_worker(function, args, timeout_s)
    finally:
        _SLOTS.release()


def _run_in_worker(function, args, timeout_s: float):
    pool = _checkout()
    try:
        future = pool.submit(function, *args)
        result = future.result(timeout=timeout_s)
    except FutureTimeout:
        _kill(pool)
        raise XTBTimeoutError(
            f"the xTB calculation did not finish within {timeout_s:g} s and was stopped; "
            "try a smaller or less distorted structure") from None
    except BrokenProcessPool as e:
        _kill(pool)
        raise XTBConvergenceError("the xTB worker process died (it was killed, or ran out of memory)") from e
    except Exception:
        _checkin(pool)  # the worker is fine: the function raised
        raise
    except BaseException:  # KeyboardInterrupt while waiting: the worker is still busy
        _kill(pool)
        raise
    _checkin(pool)
    return result
