"""DFT single points (PySCF) -> per-atom natural charges, valence occupancies and spin.

The paper's level of theory, where xTB is too crude: spin-unrestricted PBE/def2-SVP
(def2 effective core potentials on Mo, Rh and Ta; spin-restricted for singlets, which
otherwise fall into broken-symmetry solutions), density fitting, then natural population
analysis (NPA, :mod:`cluster_gnn.npa`). For every atom :func:`run_dft` returns the
natural charge, the valence s, p and d occupancies and the signed spin population
(alpha minus beta electrons).

The SCF of open-shell transition-metal clusters is fragile, so :func:`run_dft` climbs a
convergence ladder and keeps the first rung whose result passes the sanity checks:

1. ``atomic``: a second-order (Newton) SCF straight from the superposition of atomic
   densities (PySCF's ``atom`` guess; ``DFTConfig.atomic_start``). That guess is close to the
   answer, and first-order steps from it are what swing wildly on these clusters;
2. ``smeared``: Fermi smearing (``DFTConfig.smearing``, fixed spin) with PySCF's DIIS, then
   an unsmeared Newton SCF from that density (the *polish*), also when the
   DIIS energy has settled without converging (``DFTConfig.settled_eh``); one whose energy
   still swings by Hartrees goes on to the next rung early (``swinging_eh``);
3. ``newton``: no smearing, ADIIS then Newton SCF from the last density;
4. ``shifted``: level shift and damping, then Newton.

Every result is therefore an unsmeared density and energy, so energies of isomers are
comparable whichever rung converged them. Smearing is only a way in: at 0.01 Ha its energy
E(T) lies 0.4-1.3 eV above the unsmeared one the polish reaches (docs/experiments.md), varying
with the structure. Records made before the polish (``smearing`` > 0 in the result,
:func:`smeared_result`) are redone by the jobs.

A result is rejected when the SCF did not converge, the energy is not finite, or a metal's
natural charge exceeds ``DFTConfig.max_metal_charge`` in size (a collapsed density).
When every rung fails, :class:`~cluster_gnn.errors.DFTConvergenceError` names the rungs
and why each failed.

:mod:`cluster_gnn.dft_job` runs many clusters as a resumable background job. PySCF is an
optional dependency (``pip install -e '.[dft]'``); nothing else in the package needs it.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .dft_grid import cached_numint
from .errors import DFTConvergenceError
from .npa import DFT_DESCRIPTORS, METALS, VALENCE_SHELLS, dft_descriptors, natural_population, spin_square  # noqa: F401
from .scf_checkpoint import checkpoint_key, load_checkpoint, save_checkpoint

__all__ = ["DFTConfig", "DFTResult", "run_dft", "dft_descriptors", "smeared_result", "VALENCE_SHELLS",
           "DFT_DESCRIPTORS", "pyscf_available"]

_HARTREE_EV = 27.211386245988
#: seconds between checkpoints within a Newton SCF (the longest stages: up to an hour on 10-13 atoms)
CHECKPOINT_EVERY_S = 120.0


def pyscf_available() -> bool:
    """True when the optional DFT dependency (PySCF) is installed."""
    try:
        import pyscf  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class DFTConfig:
    """Level of theory and convergence settings of the DFT stage.

    Parameters
    ----------
    xc: exchange-correlation functional (PySCF name).
    basis: Gaussian basis set; the def2 effective core potential of the same name is used
        on the elements of ``ecp_elements``.
    ecp_elements: elements that get the def2 ECP (4d and 5d metals).
    grid_level: PySCF integration grid level (0-9).
    hessian_grid_level: grid level of the approximate orbital Hessian in the Newton SCFs. The
        orbital gradient, hence what counts as converged, stays on ``grid_level``; the Hessian
        only steers the steps (level 0 against 2: Newton 2-5x faster, the same state on 4 of 6
        clusters, another SCF solution 0.03-0.05 eV away on two; docs/experiments.md).
    conv_tol: SCF energy convergence in Hartree.
    atomic_start: the ladder starts with a Newton SCF from the superposition of atomic
        densities (False: from the smeared rung). Side by side 1.1-3.4x less CPU time, the
        same solutions (``benchmarks/dft_ladder.py``); against 10 records of 5-11 atoms the same
        solution on 8, a lower one on 2 (docs/experiments.md).
    smearing: Fermi smearing width in Hartree of the smeared rung (0 skips that rung).
    unsmeared_elements: clusters with any of these elements skip the smeared rung and start
        with the Newton one (21 of the first 24 Fe, V and Co clusters needed Newton anyway,
        after 60 smeared cycles that cost two thirds of their time).
    max_cycles: SCF cycles per rung before it gives up.
    settled_eh: the smeared rung hands its density to the polish once its energy has stayed
        within this many Hartree for ``settled_cycles`` cycles, converged or not (0: only when
        converged). Many never converge but settle within a few mEh; at 0.5 mEh over 6 cycles
        the two of four Mo and Ta clusters that never converged took 1.6-2.7x less CPU time side
        by side (``benchmarks/dft_ladder.py``), all four the same solution or a lower one.
    swinging_eh: the smeared rung gives up, for the Newton rung, once its energy still spans
        more than this many Hartree over the last 10 cycles at cycle ``swinging_from`` or later
        (0: never before ``max_cycles``). Most Mo clusters of 9 or more atoms swing by tens of
        Hartree to the end (docs/experiments.md).
    max_metal_charge: a result with a metal natural charge beyond this (e) is rejected.
    threads: OpenMP threads of one calculation.
    max_atoms: largest cluster accepted.
    """

    xc: str = "PBE"
    basis: str = "def2-SVP"
    ecp_elements: tuple[str, ...] = ("Mo", "Rh", "Ta")
    grid_level: int = 2
    hessian_grid_level: int = 0
    conv_tol: float = 1e-6
    atomic_start: bool = True
    smearing: float = 0.01
    unsmeared_elements: tuple[str, ...] = ("V", "Fe", "Co")
    max_cycles: int = 60
    settled_eh: float = 5e-4
    settled_cycles: int = 6
    swinging_eh: float = 20.0
    swinging_from: int = 25
    max_metal_charge: float = 2.0
    threads: int = 1
    max_atoms: int = 16

    def __post_init__(self):
        if not (0 <= self.grid_level <= 9 and 0 <= self.hessian_grid_level <= 9):
            raise ValueError(f"grid levels must be 0-9, got {self.grid_level} and {self.hessian_grid_level}")
        if not 0 < self.conv_tol < 1e-2:
            raise ValueError(f"conv_tol must be in (0, 1e-2) Hartree, got {self.conv_tol}")
        if not 0 <= self.smearing < 0.1:
            raise ValueError(f"smearing must be in [0, 0.1) Hartree, got {self.smearing}")
        if self.max_cycles < 1 or self.threads < 1 or self.max_atoms < 1:
            raise ValueError("max_cycles, threads and max_atoms must be positive")
        if self.settled_eh < 0 or self.swinging_eh < 0 or self.settled_cycles < 2 or self.swinging_from < 2:
            raise ValueError(f"settled_eh and swinging_eh must be >= 0, settled_cycles and swinging_from >= 2, got "
                             f"{self.settled_eh}, {self.swinging_eh}, {self.settled_cycles}, {self.swinging_from}")

    def newton_first(self, symbols) -> bool:
        """Whether the ladder skips the smeared rung for a cluster of these elements."""
        return bool(set(symbols) & set(self.unsmeared_elements))

    @property
    def label(self) -> str:
        """Short label such as ``PBE/def2-SVP``, written into result files."""
        return f"{self.xc}/{self.basis}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "DFTConfig":
        """The config of :meth:`to_dict` (lists back to tuples); keys of older records that
        lack a field take its default."""
        tuples = {"ecp_elements", "unsmeared_elements"}
        return cls(**{k: tuple(v) if k in tuples else v for k, v in values.items()})

    def same_theory(self, values: dict | None) -> bool:
        """Whether a record's config (``to_dict`` form) used this level of theory and SCF
        target: functional, basis, ECPs, grid, convergence and smearing width (how the SCF
        got there may differ)."""
        return bool(values) and all(values.get(k) == v for k, v in self.theory().items())

    def theory(self) -> dict:
        """The settings that fix the result (``to_dict`` form, tuples as lists): functional,
        basis, ECPs, grid, convergence and smearing width."""
        keys = ("xc", "basis", "ecp_elements", "grid_level", "conv_tol", "smearing")
        values = json.loads(json.dumps(self.to_dict()))
        return {k: values[k] for k in keys}


class _Settled(Exception):
    """The smeared rung's energy has settled; ``args[0]``: its density."""


class _Swinging(Exception):
    """The smeared rung's energy still swings by Hartrees; ``args[0]``: its density."""


@dataclass
class DFTResult:
    """NPA of one converged DFT single point.

    Attributes
    ----------
    symbols: element of each atom, length ``num_atoms``.
    charges: natural charges in e, shape ``[num_atoms]``; they sum to the total charge.
    s_valence, p_valence, d_valence: natural occupancies of the valence s, p and d shells
        (:data:`VALENCE_SHELLS`) in e, shape ``[num_atoms]`` each (0 where the shell is none).
    spin: signed spin population (alpha minus beta electrons), shape ``[num_atoms]``; sums
        to ``multiplicity - 1``.
    energy: total energy in eV (of the unsmeared density; E(T) at the smearing width in
        records made before the polish, ``smearing`` > 0).
    charge, multiplicity: total charge (e) and 2S+1.
    s2, s2_expected: <S^2> of the determinant and S(S+1); a large excess marks a
        broken-symmetry (spin-contaminated) solution.
    rung: the convergence-ladder rung that produced the result.
    smearing: smearing width in Hartree of the final density: 0 (every rung ends unsmeared);
        > 0 only in records made before the smeared rung was polished.
    cycles: SCF cycles over all rungs tried; seconds: wall time.
    method: level-of-theory label.
    energy_trace: ``{rung: [energy per SCF cycle, Hartree]}`` of every rung tried, the smeared
        rung's polish under ``polish`` (the data to tune the ladder with, e.g. when to leave a
        rung that will not converge).
    """

    symbols: list
    charges: np.ndarray
    s_valence: np.ndarray
    p_valence: np.ndarray
    d_valence: np.ndarray
    spin: np.ndarray
    energy: float
    charge: int
    multiplicity: int
    s2: float
    s2_expected: float
    rung: str
    smearing: float
    cycles: int
    seconds: float
    method: str
    notes: list = field(default_factory=list)
    energy_trace: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("charges", "s_valence", "p_valence", "d_valence", "spin"):
            out[key] = [round(float(v), 5) for v in out[key]]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "DFTResult":
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for key in ("charges", "s_valence", "p_valence", "d_valence", "spin"):
            kw[key] = np.asarray(kw[key], float)
        return cls(**kw)


def _molecule(atoms, charge: int, multiplicity: int, config: DFTConfig):
    from pyscf import gto

    symbols = atoms.get_chemical_symbols()
    ecp = {s: config.basis for s in set(symbols) if s in config.ecp_elements}
    try:
        mol = gto.M(atom=[(s, tuple(p)) for s, p in zip(symbols, atoms.get_positions())],
                    basis=config.basis, ecp=ecp or None, charge=int(charge), spin=int(multiplicity) - 1,
                    unit="Angstrom", verbose=0)
        # keep the density-fitting 3-centre integrals in memory (naux x nao^2/2 doubles: 1.0-1.3 GB
        # for the 13-atom Mo-S-C clusters): for a pure functional PySCF otherwise recomputes them
        # every cycle; same energies, 1.6-1.8x faster SCF (Mo2S2-: 60 -> 36 s, Rh3-: 28 -> 16 s)
        mol.incore_anyway = True
        return mol
    except (RuntimeError, KeyError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DFTConvergenceError(
            f"cannot set up the DFT calculation of {atoms.get_chemical_formula()} (charge {charge}, "
            f"multiplicity {multiplicity}): {first}", reason="setup") from e


def _scf_object(mol, config: DFTConfig, smearing: float, shared: dict | None = None):
    """The SCF object of one rung; those given the same ``shared`` dict share the grid, its
    orbital values (:func:`~cluster_gnn.dft_grid.cached_numint`) and the fitted integrals."""
    from pyscf import dft, scf

    closed_shell = mol.spin == 0
    mf = (dft.RKS(mol) if closed_shell else dft.UKS(mol)).density_fit()
    mf.xc, mf.grids.level = config.xc, config.grid_level
    if shared is not None:
        if not shared:  # the first SCF object's grid and fitted integrals, and a NumInt that keeps orbital values
            shared.update(grids=mf.grids, with_df=mf.with_df, numint=cached_numint())
        mf.grids, mf.with_df, mf._numint = shared["grids"], shared["with_df"], shared["numint"]
    mf.conv_tol, mf.max_cycle = config.conv_tol, config.max_cycles
    if smearing > 0:
        mf = scf.addons.smearing_(mf, sigma=smearing, method="fermi", fix_spin=not closed_shell)
    return mf


def _newton_object(mol, config: DFTConfig, shared: dict | None = None):
    """An unsmeared second-order (Newton) SCF whose orbital Hessian is integrated on the
    ``hessian_grid_level`` grid: PySCF takes the orbital gradient from the underlying SCF
    (``grid_level``), the Hessian-vector products from the Newton object's own grid."""
    from pyscf import dft

    mf = _scf_object(mol, config, 0.0, shared).newton()
    if config.hessian_grid_level != config.grid_level:
        grids = (shared or {}).get("hessian_grids")
        if grids is None:  # a new object: the gradient's grid stays as it is
            grids = dft.gen_grid.Grids(mol)
            grids.level = config.hessian_grid_level
        mf.grids = grids if shared is None else shared.setdefault("hessian_grids", grids)
    return mf


def _check(mf, mol, config: DFTConfig):
    """(problem or None, npa) for a finished SCF."""
    if not mf.converged:
        return "did not converge", None
    if not np.isfinite(mf.e_tot):
        return "energy is not finite", None
    npa = natural_population(mf, mol)
    symbols, charges = npa[0], npa[1]
    metal_q = [abs(q) for s, q in zip(symbols, charges) if s in METALS]
    if metal_q and max(metal_q) > config.max_metal_charge:
        return f"metal natural charge {max(metal_q):.1f} e beyond ±{config.max_metal_charge:g} (collapsed density)", None
    return None, npa


def run_dft(atoms, charge: int, multiplicity: int, config: DFTConfig | None = None,
            on_cycle=None, checkpoint=None) -> DFTResult:
    """PBE/def2-SVP single point and natural population analysis of one cluster.

    Parameters
    ----------
    atoms: :class:`ase.Atoms`, positions in Å.
    charge: total charge in e.
    multiplicity: spin multiplicity 2S+1.
    config: level of theory and convergence settings.
    on_cycle: called as ``on_cycle(rung, cycles)`` after every SCF cycle (progress); an
        exception it raises stops the calculation and reaches the caller (a time limit).
    checkpoint: path of a file where the density is saved at the end of each stage of the
        ladder (the smeared SCF, the first-order SCF before each Newton one) and every
        :data:`CHECKPOINT_EVERY_S` within a Newton SCF. Given one made for the same structure,
        spin state and settings, the calculation resumes from there (``notes`` say so): from a
        stage's end it gives the result an uninterrupted one would, from within a Newton SCF
        the same solution to the convergence threshold. A killed job loses at most the DIIS
        stage under way or the last :data:`CHECKPOINT_EVERY_S` of a Newton one. The caller
        removes the file once the result is kept.

    Raises
    ------
    DFTConvergenceError
        When PySCF is missing, the cluster is too large, the charge and multiplicity do
        not fit the electron count, or no rung of the convergence ladder gives a sane result.
    """
    config = config or DFTConfig()
    if not pyscf_available():
        raise DFTConvergenceError("the DFT stage needs PySCF: pip install -e '.[dft]'", reason="missing-pyscf")
    if len(atoms) > config.max_atoms:
        raise DFTConvergenceError(f"the DFT stage takes at most {config.max_atoms} atoms, got {len(atoms)}",
                                  reason="too-many-atoms")
    from pyscf import lib, scf

    lib.num_threads(config.threads)
    mol = _molecule(atoms, charge, multiplicity, config)
    start, cycles, tried = time.perf_counter(), 0, []
    counter = {"n": 0, "rung": "", "newton": "", "start": None, "saved": time.perf_counter()}  # a Newton SCF's stage, start
    shared: dict = {}  # one grid per level and its orbital values, for every rung
    trace: dict = {}
    key = checkpoint_key(atoms, charge, multiplicity, config.theory()) if checkpoint else ""
    resume = load_checkpoint(checkpoint, key) if checkpoint else None
    earlier = 0.0  # seconds spent before a resume

    def count(envs):
        counter["n"] += 1
        energy = envs.get("e_tot") if isinstance(envs, dict) else None
        if energy is not None and np.isfinite(energy):
            trace.setdefault(counter["rung"], []).append(round(float(energy), 8))
        # within a Newton SCF, now and then, its density (a DIIS SCF could not go on without its history)
        if counter["newton"] and time.perf_counter() - counter["saved"] >= CHECKPOINT_EVERY_S:
            save(counter["newton"], envs.get("dm") if isinstance(envs, dict) else None, counter["start"])
        if on_cycle is not None:
            on_cycle(counter["rung"], counter["n"])
        # the smeared DIIS: leave it for the polish once settled, for the next rung while it swings
        on = counter["rung"] == "smeared" and isinstance(envs, dict) and "dm" in envs
        energies = trace.get("smeared", []) if on else []
        last, window = energies[-config.settled_cycles:], energies[-10:]
        if config.settled_eh > 0 and len(last) == config.settled_cycles and max(last) - min(last) < config.settled_eh:
            raise _Settled(envs["dm"])
        if config.swinging_eh > 0 and len(energies) >= config.swinging_from and max(window) - min(window) > config.swinging_eh:
            raise _Swinging(envs["dm"])

    def save(stage, dm, began=None):  # should this process be killed: go on in ``stage`` from ``dm`` (begun at ``began``)
        if checkpoint and dm is not None:
            save_checkpoint(checkpoint, key, stage, counter["n"], earlier + time.perf_counter() - start, trace, dm, began)
            counter["saved"] = time.perf_counter()

    errors = (np.linalg.LinAlgError, ValueError, RuntimeError, FloatingPointError)  # a failed SCF, not a bug

    def attempt(rung, mf, dm0=None, stage="", began=None):  # Newton SCF of checkpoint stage ``stage``: NPA or None
        mf.callback = count
        counter["newton"], counter["start"] = stage, began if began is not None else dm0
        try:
            mf.kernel(dm0=dm0)
        except errors as e:
            tried.append(f"{rung}: {type(e).__name__}")
            return None
        finally:
            counter["newton"], counter["start"] = "", None
        problem, npa = _check(mf, mol, config)
        if problem:
            tried.append(f"{rung}: {problem}")
            return None
        return npa

    rungs = ["atomic"] if config.atomic_start else []
    rungs += ["smeared"] if config.smearing > 0 and not config.newton_first(atoms.get_chemical_symbols()) else []
    rungs += ["newton", "shifted"]
    # a checkpoint's stage -> the rung it belongs to ("-pre": before that rung's Newton SCF)
    owner = {"atomic": "atomic", "smeared-pre": "smeared", "smeared": "smeared", "polish": "smeared", "newton-pre": "newton",
             "newton": "newton", "shifted-pre": "shifted", "shifted": "shifted"}.get(resume["stage"]) if resume else None
    if owner in rungs:
        rungs = rungs[rungs.index(owner):]
        counter["n"], earlier, trace = resume["cycles"], resume["seconds"], resume["trace"]
        tried.append(f"resumed from a checkpoint ({resume['stage']}) after {resume['cycles']} cycles")
    else:
        resume = None
    dm_guess, npa, mf, used = None, None, None, None
    for rung in rungs:
        counter["rung"] = rung
        here = resume is not None and rung == owner  # the rung the checkpoint was saved in
        saved = resume["dm"] if here and resume["dm"].size > 1 else None  # size 1: no density to go on from
        stage = resume["stage"] if here else ""
        next_guess = None
        if rung == "smeared":
            hot = saved if stage == "polish" else None
            # resumed within the polish: should it fail, go on from the smeared density, as unresumed
            smeared = resume["start"] if hot is not None and resume["start"] is not None else hot
            if hot is None:
                mf = _scf_object(mol, config, config.smearing, shared)
                mf.callback = count
                try:
                    mf.kernel(dm0=saved)
                except _Settled as e:
                    hot = np.asarray(e.args[0])
                    tried.append(f"{rung}: settled after {len(trace['smeared'])} cycles")
                except _Swinging as e:  # the Newton rung goes on from here
                    next_guess = np.asarray(e.args[0])
                    tried.append(f"{rung}: still swinging after {len(trace['smeared'])} cycles")
                except errors as e:
                    tried.append(f"{rung}: {type(e).__name__}")
                else:
                    if not mf.converged:
                        tried.append(f"{rung}: did not converge")
                    else:
                        hot = mf.make_rdm1()
                if hot is not None:  # converged or settled: the polish starts from here
                    smeared = hot
                    save("polish", hot)
            if hot is not None:  # the polish: unsmeared Newton from the smeared density
                counter["rung"] = "polish"
                mf = _newton_object(mol, config, shared)
                mf.max_cycle = max(config.max_cycles // 2, 10)
                npa = attempt(f"{rung}, unsmeared polish", mf, hot, stage="polish", began=smeared)
                next_guess = smeared  # if it fails, the next rung starts from the smeared density
        else:
            newton = rung != "shifted"
            began = resume["start"] if stage == rung else None
            if stage == rung:  # saved before or within the Newton SCF: go on from there
                start_dm = saved
            elif rung == "atomic":
                try:
                    start_dm = _scf_object(mol, config, 0.0, shared).get_init_guess(key="atom")
                except errors as e:  # no atomic densities: on with the rest of the ladder
                    tried.append(f"{rung}: no atomic guess ({type(e).__name__})")
                    continue
            else:
                pre = _scf_object(mol, config, 0.0, shared)
                if newton:
                    pre.DIIS, pre.max_cycle = scf.ADIIS, max(config.max_cycles // 2, 10)
                else:
                    pre.level_shift, pre.damp, pre.max_cycle = 0.3, 0.5, config.max_cycles
                pre.callback = count
                try:  # the shifted rung starts afresh
                    pre.kernel(dm0=(saved if saved is not None else dm_guess) if newton else None)
                except errors:
                    pass
                start_dm = pre.make_rdm1()
                save(rung, start_dm)
            mf = _newton_object(mol, config, shared)
            mf.max_cycle = max(config.max_cycles // 2, 10) if newton else config.max_cycles
            npa = attempt(rung, mf, start_dm, stage=rung, began=began)
        if npa is not None:
            used = rung
            break
        try:  # after the atomic rung the ladder goes on as if it had not been tried
            dm_guess = None if rung == "atomic" else next_guess if next_guess is not None else mf.make_rdm1()
        except Exception:  # noqa: BLE001 - a failed rung may leave no density; start the next from scratch
            dm_guess = None
        following = rungs[rungs.index(rung) + 1:]
        if following:
            save(f"{following[0]}-pre", dm_guess if dm_guess is not None else np.zeros(1))
    cycles = counter["n"]
    if npa is None:
        raise DFTConvergenceError(
            f"the DFT SCF (charge {charge}, multiplicity {multiplicity}) gave no sane result after "
            f"{cycles} cycles: " + "; ".join(tried), reason="scf")
    symbols, charges, shells, spins = npa
    s = (multiplicity - 1) / 2
    s2 = spin_square(mf, mol)
    return DFTResult(symbols=symbols, charges=charges, s_valence=shells[:, 0], p_valence=shells[:, 1],
                     d_valence=shells[:, 2], spin=spins, energy=float(mf.e_tot) * _HARTREE_EV, charge=int(charge),
                     multiplicity=int(multiplicity), s2=s2, s2_expected=s * (s + 1), rung=used, smearing=0.0, cycles=cycles,
                     seconds=earlier + time.perf_counter() - start, method=config.label, notes=tried, energy_trace=trace)


def smeared_result(record: dict) -> bool:
    """Whether a DFT record (``status``, ``result`` as written by the jobs) holds a smeared
    density and its energy E(T): made before the smeared rung was polished, so its energy is
    not comparable with unsmeared ones (0.4-1.3 eV too high at 0.01 Ha) and the jobs redo it."""
    result = record.get("result") or {}
    return record.get("status") == "ok" and float(result.get("smearing") or 0.0) > 0
