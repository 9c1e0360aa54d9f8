"""Global-minimum structure search with GFN-xTB, resumable, one cluster at a time.

For one cluster (a formula, a charge and one or more spin multiplicities) the search

1. relaxes ``n_starts`` random compact starting geometries per multiplicity
   (:func:`random_cluster`: atoms grown one by one at bonding distance from an atom
   already placed) with ASE's FIRE at the project's xTB level (:func:`relax_cluster`);
2. refines the ``n_refine`` lowest distinct minima by monotonic basin hopping: each hop
   displaces every atom uniformly by up to ``dr`` Å (ASE's ``BasinHopping`` move),
   relaxes, and keeps the result if it is lower;
3. removes duplicates (:func:`same_minimum`: energies within 0.02 eV and sorted
   interatomic distances within 0.1 Å) and writes the global minimum and up to
   ``n_isomers`` runner-ups.

Every relaxation is appended to a JSON-lines checkpoint
(``data/structures/checkpoints/<name>.jsonl``) and flushed to disk before the next one
starts, so a killed search resumes where it stopped and a half-written last line is
ignored. A lock file next to it (``<name>.lock``, the owner's pid) keeps a second search of
the same cluster out while the first lives (:class:`~cluster_gnn.parallel.PidLock`), and
workers die with the process that started them. Finished clusters are written atomically (temp file + rename) as extended XYZ:
``data/structures/<name>.xyz`` (global minimum) and ``<name>.isomers.xyz``.

ASE's ``BasinHopping`` class is not used directly: its inner FIRE has no step cap, it
draws from the global NumPy RNG and writes trajectory files, which defeats per-relaxation
checkpoints and reproducible seeds.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .config import STRUCTURES_DIR, SearchConfig
from .datasets import load_clusters
from .electronic import relax_cluster
from .errors import DatasetError, LockedError, XTBConvergenceError
from .files import atomic_write
from .parallel import PidLock, task_executor
from .spin import estimate_multiplicity, multiplicities_for
from .structures import (MIN_DISTANCE, check_spin, formula_counts, fragments, is_metal, normalize_name, parse_name,
                         write_cluster)

__all__ = [
    "random_cluster",
    "same_minimum",
    "search_cluster",
    "SearchResult",
    "plan_search",
    "search_many",
    "best_so_far",
]


def random_cluster(symbols: list[str], rng: np.random.Generator, metals_first: bool = True):
    """A random compact, connected starting geometry (:class:`ase.Atoms`).

    Atoms are placed one at a time at ``u * (r_i + r_j)`` from a random atom already
    placed (``u`` uniform in [0.95, 1.15], ``r`` covalent radii), rejecting placements
    closer than 0.85 x the radii sum to any other atom. With ``metals_first`` the metal
    atoms are placed first (a metal core with ligands around it), otherwise in random order.
    """
    from ase import Atoms
    from ase.data import atomic_numbers, covalent_radii


    symbols = list(symbols)
    order = list(rng.permutation(len(symbols)))
    if metals_first:
        order.sort(key=lambda i: not is_metal(symbols[i]))
    placed_sym = [symbols[order[0]]]
    positions = [np.zeros(3)]
    for idx in order[1:]:
        sym = symbols[idx]
        r_new = covalent_radii[atomic_numbers[sym]]
        # hydrogen binds to a metal (a hydride), never to another H: an H-H start is an H2 molecule
        anchors = [k for k, s in enumerate(placed_sym) if is_metal(s)] if sym == "H" else []
        anchors = anchors or list(range(len(positions)))
        for attempt in range(2000):
            anchor = int(anchors[int(rng.integers(len(anchors)))])
            r_anchor = covalent_radii[atomic_numbers[placed_sym[anchor]]]
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            stretch = rng.uniform(0.95, 1.15) * (1.0 + attempt / 1000.0)
            trial = positions[anchor] + direction * stretch * (r_new + r_anchor)
            radii = np.array([covalent_radii[atomic_numbers[s]] for s in placed_sym])
            dist = np.linalg.norm(np.array(positions) - trial, axis=1)
            closest = 0.85 * (radii + r_new)
            if sym == "H":
                closest[[s == "H" for s in placed_sym]] = 1.5 * MIN_HH_DISTANCE
            if np.all(dist >= closest):
                break
        placed_sym.append(sym)
        positions.append(trial)
    atoms = Atoms(placed_sym, positions=np.array(positions))
    atoms.center()
    atoms.positions -= atoms.get_center_of_mass()
    return atoms


def _fingerprint(atoms) -> np.ndarray:
    pos = atoms.get_positions()
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    z = atoms.get_atomic_numbers()
    iu = np.triu_indices(len(atoms), 1)
    pairs = np.stack([np.minimum(z[:, None], z[None])[iu], np.maximum(z[:, None], z[None])[iu], d[iu]], axis=1)
    order = np.lexsort((pairs[:, 2], pairs[:, 1], pairs[:, 0]))
    return pairs[order, 2]


def same_minimum(a, b, energy_a: float, energy_b: float, energy_tol: float = 0.02, dist_tol: float = 0.1) -> bool:
    """True if two relaxed structures are the same minimum (energy within ``energy_tol`` eV,
    element-resolved sorted interatomic distances within ``dist_tol`` Å)."""
    if abs(energy_a - energy_b) > energy_tol or len(a) != len(b):
        return False
    if sorted(a.get_chemical_symbols()) != sorted(b.get_chemical_symbols()):
        return False
    return bool(np.max(np.abs(_fingerprint(a) - _fingerprint(b)), initial=0.0) < dist_tol)


#: Shortest H-H distance in Å a searched minimum may have. The measured species are metal
#: hydrides; GFN1-xTB over-stabilises H2 loss, and a minimum holding an H2 unit (0.74 Å) is
#: another species, so it is rejected.
MIN_HH_DISTANCE = 1.0


def _is_sane(atoms) -> bool:
    """One fragment, no atoms closer than MIN_DISTANCE, no H2 unit."""
    if len(atoms) < 2:
        return True
    pos = atoms.get_positions()
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + np.eye(len(atoms)) * 99
    hydrogen = atoms.get_atomic_numbers() == 1
    if hydrogen.sum() > 1 and d[np.ix_(hydrogen, hydrogen)].min() < MIN_HH_DISTANCE:
        return False
    return bool(d.min() >= MIN_DISTANCE and len(fragments(atoms)) == 1)


@dataclass
class SearchResult:
    """Outcome of :func:`search_cluster` for one cluster."""

    name: str
    finished: bool
    energy: float | None
    multiplicity: int | None
    n_relaxations: int
    seconds: float
    path: Path | None


def _read_checkpoint(path: Path) -> list[dict]:
    records = []
    if not path.is_file():
        return records
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # half-written last line of a killed run
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records


def _append(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, separators=(",", ":")) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _atoms_of(record: dict):
    from ase import Atoms

    return Atoms(numbers=record["numbers"], positions=np.array(record["positions"]))


def _truncate_partial_line(path: Path) -> None:
    """Drop a half-written last line left by a killed run, so appends start clean."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as fh:
            fh.truncate(cut)


def search_cluster(name: str, charge: int | None = None, multiplicities: list[int] | None = None,
                   config: SearchConfig | None = None, out_dir: Path | str | None = None,
                   deadline: float | None = None, progress=None) -> SearchResult:
    """Run (or resume) the global-minimum search of one cluster.

    Parameters
    ----------
    name:
        Cluster name (``Mo5S4-``); the charge is read from it unless given.
    multiplicities:
        Spin states to search (default :func:`estimate_multiplicity`).
    config:
        Search settings and level of theory.
    out_dir:
        Where results go (default ``data/structures``); checkpoints in ``checkpoints/``.
    deadline:
        ``time.time()`` after which no new relaxation is started; the cluster is then
        left unfinished with its checkpoint, to resume later.
    progress:
        Optional callable ``progress(n_done, n_total)`` called after each relaxation.
    """
    from ase.data import atomic_numbers


    config = config or SearchConfig()
    out_dir = Path(out_dir or STRUCTURES_DIR)
    norm = normalize_name(name)
    _, name_charge = parse_name(name)
    charge = name_charge if charge is None else int(charge)
    counts = formula_counts(name)
    symbols = [s for s, n in counts.items() for _ in range(n)]
    multiplicities = multiplicities or [estimate_multiplicity(name, charge)]
    numbers = [atomic_numbers[s] for s in symbols]
    for m in multiplicities:
        check_spin(numbers, charge, m)

    ckpt = out_dir / "checkpoints" / f"{norm}.jsonl"
    with PidLock(ckpt.with_suffix(".lock"), f"structure search of {norm}"):
        return _search_locked(norm, charge, multiplicities, symbols, config, out_dir, ckpt, deadline, progress)


def _search_locked(norm, charge, multiplicities, symbols, config, out_dir, ckpt, deadline, progress) -> SearchResult:
    """:func:`search_cluster` once it holds the checkpoint's lock."""
    final = out_dir / f"{norm}.xyz"
    _truncate_partial_line(ckpt)
    records = _read_checkpoint(ckpt)
    settings = {"method": config.xtb.method, "electronic_temperature": config.xtb.electronic_temperature}
    stale = [r for r in records if {k: r.get(k) for k in settings} != settings]
    if stale:
        raise DatasetError(f"{ckpt} holds results of another level of theory ({stale[0].get('method')}); "
                           "move it away or search with that setting")
    done = {(r["kind"], r["multiplicity"], r["index"], r.get("hop", 0)) for r in records}
    t0 = time.time()
    n_total = config.n_starts * len(multiplicities) + config.n_refine * config.hop_steps

    def run_one(kind, mult, index, hop, start_atoms, seed):
        if (kind, mult, index, hop) in done:
            return True
        if deadline is not None and time.time() > deadline:
            return False
        t = time.time()
        try:
            relaxed, energy, converged, steps = relax_cluster(
                start_atoms, charge, mult, config.xtb, config.fmax, config.max_steps)
            valid = _is_sane(relaxed)
            record = {"kind": kind, "multiplicity": mult, "index": index, "hop": hop, "seed": seed,
                      "energy": energy, "converged": converged, "steps": steps, "valid": valid,
                      "numbers": relaxed.get_atomic_numbers().tolist(),
                      "positions": np.round(relaxed.get_positions(), 6).tolist()}
        except XTBConvergenceError as e:
            record = {"kind": kind, "multiplicity": mult, "index": index, "hop": hop, "seed": seed,
                      "energy": None, "converged": False, "steps": 0, "valid": False, "error": str(e)[:200]}
        record.update(settings, seconds=round(time.time() - t, 3))
        _append(ckpt, record)
        records.append(record)
        done.add((kind, mult, index, hop))
        if progress:
            progress(len(records), n_total)
        return True

    # 1. random starts
    for mult in multiplicities:
        for i in range(config.n_starts):
            seed = config.seed + 1000 * mult + i
            rng = np.random.default_rng(seed)
            start = random_cluster(symbols, rng, metals_first=(i % 2 == 0))
            if not run_one("start", mult, i, 0, start, seed):
                return SearchResult(norm, False, None, None, len(records), time.time() - t0, None)

    # 2. monotonic basin hopping from the lowest distinct minima
    def good(rs):
        return [r for r in rs if r.get("valid") and r.get("energy") is not None]

    starts = sorted(good([r for r in records if r["kind"] == "start"]), key=lambda r: r["energy"])
    seeds: list[dict] = []
    for r in starts:
        if all(not same_minimum(_atoms_of(r), _atoms_of(s), r["energy"], s["energy"]) for s in seeds):
            seeds.append(r)
        if len(seeds) == config.n_refine:
            break
    for k, seed_rec in enumerate(seeds):
        for h in range(1, config.hop_steps + 1):
            chain = good([r for r in records if r["kind"] == "hop" and r["index"] == k]) + [seed_rec]
            current = min(chain, key=lambda r: r["energy"])
            seed = config.seed + 100000 + 100 * k + h
            rng = np.random.default_rng(seed)
            moved = _atoms_of(current)
            moved.positions += rng.uniform(-1.0, 1.0, size=moved.positions.shape) * 0.4
            if not run_one("hop", current["multiplicity"], k, h, moved, seed):
                return SearchResult(norm, False, None, None, len(records), time.time() - t0, None)

    # 3. deduplicate, write global minimum and isomers
    ranked = sorted(good(records), key=lambda r: r["energy"])
    if not ranked:
        raise XTBConvergenceError(f"no valid relaxed structure for {norm}: every relaxation failed")
    distinct: list[dict] = []
    for r in ranked:
        if all(not same_minimum(_atoms_of(r), _atoms_of(s), r["energy"], s["energy"]) for s in distinct):
            distinct.append(r)
        if len(distinct) > config.n_isomers:
            break
    common = {"cluster": norm, "charge": charge, "method": config.xtb.method,
              "electronic_temperature": config.xtb.electronic_temperature,
              "n_relaxations": len(records), "search_seed": config.seed,
              "search_seconds": round(sum(r.get("seconds", 0.0) for r in records), 1)}
    if len(distinct) > 1:
        from ase.io import write

        frames = []
        for rank, r in enumerate(distinct[1:], start=1):
            a = _atoms_of(r)
            a.info = {**common, "energy": r["energy"], "multiplicity": r["multiplicity"], "rank": rank,
                      "relative_energy": round(r["energy"] - distinct[0]["energy"], 6), "seed": r["seed"]}
            frames.append(a)
        iso = out_dir / f"{norm}.isomers.xyz"
        with atomic_write(iso) as fh:
            write(fh, frames, format="extxyz", columns=["symbols", "positions"])
    best = distinct[0]
    write_cluster(final, _atoms_of(best), **common, energy=best["energy"], multiplicity=best["multiplicity"],
                  rank=0, seed=best["seed"], converged=bool(best["converged"]))
    return SearchResult(norm, True, best["energy"], best["multiplicity"], len(records), time.time() - t0, final)


def best_so_far(name: str, out_dir: Path | str | None = None):
    """The lowest valid minimum in a cluster's checkpoint so far, ``(atoms, energy eV,
    multiplicity)``, or None: what an unfinished search (stopped by its deadline) has found."""
    records = _read_checkpoint(Path(out_dir or STRUCTURES_DIR) / "checkpoints" / f"{normalize_name(name)}.jsonl")
    valid = [r for r in records if r.get("valid") and r.get("energy") is not None]
    if not valid:
        return None
    best = min(valid, key=lambda r: r["energy"])
    return _atoms_of(best), float(best["energy"]), int(best["multiplicity"])


def _search_task(name, charge, multiplicities, config, out_dir, deadline):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        return search_cluster(name, charge, multiplicities, config, out_dir, deadline)
    except (XTBConvergenceError, LockedError) as e:
        return SearchResult(name, False, None, None, 0, 0.0, None), str(e)


def plan_search(names=None, table=None) -> list[tuple[str, int, list[int]]]:
    """``[(name, charge, multiplicities), ...]`` for cluster names (default: all 216).

    Names in ``data/clusters.csv`` use the authors' multiplicity where published and
    :func:`multiplicities_for` otherwise; other names are parsed as formulas.
    """

    table = load_clusters() if table is None else table
    by_name = {row["name"]: row for _, row in table.iterrows()}
    names = list(table["name"]) if not names else [normalize_name(n) for n in names]
    plan = []
    for name in names:
        counts = formula_counts(name)
        symbols = [s for s, n in counts.items() for _ in range(n)]
        row = by_name.get(name)
        charge = int(row["charge"]) if row is not None else parse_name(name)[1]
        authors = row["multiplicity"] if row is not None else None
        authors = None if authors is None or str(authors) in ("<NA>", "nan") else int(authors)
        plan.append((name, charge, multiplicities_for(symbols, charge, authors, name)))
    return plan


def search_many(plan, config: SearchConfig | None = None, workers: int = 1, budget_s: float | None = None,
                out_dir: Path | str | None = None, scheduler: str | None = None, redo: bool = False,
                progress: bool = True):
    """Run :func:`search_cluster` for every ``(name, charge, multiplicities)`` in ``plan``.

    Clusters run in parallel on a local process pool of ``workers`` processes or, given a
    ``scheduler`` address (``"tcp://host:8786"``) or a ``dask.distributed.Client``, on a
    Dask cluster. Yields each :class:`SearchResult` (or ``(result, error message)``) as
    it completes. Clusters that already have a result are skipped unless ``redo``.
    """

    config = config or SearchConfig()
    out_dir = Path(out_dir or STRUCTURES_DIR)
    todo = [p for p in plan if redo or not (out_dir / f"{p[0]}.xyz").is_file()]
    if redo:
        for name, _, _ in todo:
            for stale in (out_dir / f"{name}.xyz", out_dir / "checkpoints" / f"{name}.jsonl"):
                if stale.exists():
                    stale.unlink()
    deadline = time.time() + budget_s if budget_s else None
    bar = tqdm(total=len(todo), unit="cluster", disable=not progress, desc="structure search")
    try:
        with task_executor(workers, scheduler) as executor:
            futures = {executor.submit(_search_task, n, c, m, config, out_dir, deadline): n for n, c, m in todo}
            for fut in as_completed(futures):
                result = fut.result()
                bar.update(1)
                yield result
    finally:
        bar.close()
