"""DFT-ranked structures: which isomer PBE puts lowest, and how its ligands bind.

GFN-xTB ranks Mo-S isomers backwards (it puts S terminal where PBE bridges or caps), and its
carbide and nitride minima are ligand chains hanging off one metal (Ta2C3-: a C3 chain; PBE
puts isolated bridging C 1.45 eV lower). This stage re-ranks the clusters with S, C or N at
the DFT stage's level of theory, placing all their S, C and N atoms anew
(:func:`rearranged_ligands`; hydrogen stays) and reporting the motifs of one of them
(:func:`rearranged_ligand`: S if present, else C, else N):

1. :func:`ligand_starts`: from the framework of the xTB minimum without those atoms, they
   are put on edge-bridging (mu2), face-capping (mu3) and terminal sites in several
   arrangements (C and N also as side-on dimers); around a single metal atom, on a sphere.
2. :func:`pre_relax`: each start is relaxed with a machine-learned potential (CHGNet,
   optional extra ``[dft]``); ML isomer gaps are 3-10x too large, so it only cleans the
   geometry and drops duplicates, it does not choose.
3. :func:`isomer_candidates`: the xTB minimum and the lowest ML-relaxed starts (the
   search's runner-up isomers on request); :func:`isomer_clusters`: which clusters.

:mod:`cluster_gnn.isomer_ranking` runs PBE on them and ranks them.

Energies are in eV; distances in Å.
"""
from __future__ import annotations

import itertools

import numpy as np

from .datasets import load_structure, structure_path
from .errors import ClusterGNNError
from .structures import fragments, is_metal

__all__ = ["ligand_motifs", "ligand_starts", "rearranged_ligand", "rearranged_ligands", "pre_relax", "isomer_candidates",
           "isomer_clusters", "LIGAND_GEOMETRY"]

#: Per rearranged ligand element: ``cutoff`` (Å; a ligand atom with k metal atoms this close
#: is terminal for k <= 1, mu2 for 2, mu3 for 3 or more), metal-ligand bond lengths of the
#: starts on terminal, bridging and capping sites (Å), the smallest ligand-ligand distance
#: in a start (Å), the smallest distance to the atoms that stay (Å) and the bond length of
#: the side-on dimers tried (Å; none for S).
LIGAND_GEOMETRY = {
    "S": {"cutoff": 2.75, "bonds": (2.15, 2.40, 2.45), "separation": 2.6, "clearance": 2.05, "dimer": None},
    "C": {"cutoff": 2.45, "bonds": (1.90, 2.05, 2.15), "separation": 2.4, "clearance": 1.75, "dimer": 1.30},
    "N": {"cutoff": 2.35, "bonds": (1.80, 1.95, 2.05), "separation": 2.4, "clearance": 1.75, "dimer": 1.25},
}
_MM_EDGE = 3.2  # metal-metal distance (Å) below which an edge or face carries a ligand


def rearranged_ligand(atoms_or_symbols) -> str | None:
    """The ligand element whose motifs the isomer stage reports: S if the cluster has S, else
    C, else N (None for hydrides and bare metal clusters); :func:`rearranged_ligands` are all
    the elements it places anew."""
    return next(iter(rearranged_ligands(atoms_or_symbols)), None)


def ligand_motifs(atoms, element: str = "S", cutoff: float | None = None) -> dict:
    """``{"terminal", "mu2", "mu3"}``: how many atoms of ``element`` have 1, 2 or at least 3
    metal atoms within ``cutoff`` Å (default :data:`LIGAND_GEOMETRY`'s); an atom bound to no
    metal (inside a C chain) counts as terminal."""
    cutoff = LIGAND_GEOMETRY[element]["cutoff"] if cutoff is None else cutoff
    pos = atoms.get_positions()
    metals = [i for i, s in enumerate(atoms.get_chemical_symbols()) if is_metal(s)]
    out = {"terminal": 0, "mu2": 0, "mu3": 0}
    for i, s in enumerate(atoms.get_chemical_symbols()):
        if s != element:
            continue
        k = int(np.sum(np.linalg.norm(pos[metals] - pos[i], axis=1) < cutoff))
        out["mu3" if k >= 3 else "mu2" if k == 2 else "terminal"] += 1
    return out


def _perpendicular(v: np.ndarray) -> np.ndarray:
    a = np.array([1.0, 0.0, 0.0]) if abs(v[0]) < 0.9 * np.linalg.norm(v) else np.array([0.0, 1.0, 0.0])
    p = np.cross(v, a)
    return p / np.linalg.norm(p)


def _sphere(n: int) -> np.ndarray:
    """``n`` nearly even unit vectors (a Fibonacci sphere), shape ``[n, 3]``."""
    k = np.arange(n) + 0.5
    z, phi = 1 - 2 * k / n, np.pi * (1 + 5**0.5) * k
    r = np.sqrt(1 - z**2)
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


def _sites(metal_pos: np.ndarray, bonds=(2.15, 2.40, 2.45)) -> dict:
    """Candidate ligand positions on a metal framework, ``{"mu3": [...], "mu2": [...],
    "terminal": [...]}``, on the outer side of each face, edge and atom; both sides of a face
    through the framework's centre (a planar Mo3), four bridging sites around an edge through
    it (an M2 axis), 14 terminal sites on a sphere around a single metal atom. ``bonds``:
    terminal, bridging and capping metal-ligand distances (Å)."""
    terminal, bridge, cap = bonds
    centre = metal_pos.mean(axis=0)
    n = len(metal_pos)
    close = {(i, j) for i, j in itertools.combinations(range(n), 2)
             if np.linalg.norm(metal_pos[i] - metal_pos[j]) < _MM_EDGE}
    sites = {"terminal": [], "mu2": [], "mu3": []}
    if n == 1:
        sites["terminal"] = list(metal_pos[0] + terminal * _sphere(14))
        return sites
    for p in metal_pos:
        d = p - centre
        if np.linalg.norm(d) > 0.3:
            sites["terminal"].append(p + terminal * d / np.linalg.norm(d))
    for i, j in close:
        mid, edge = (metal_pos[i] + metal_pos[j]) / 2, metal_pos[j] - metal_pos[i]
        height = np.sqrt(max(bridge**2 - (np.linalg.norm(edge) / 2) ** 2, 0.5))
        d = (mid - centre) - np.dot(mid - centre, edge) / np.dot(edge, edge) * edge
        if np.linalg.norm(d) > 0.3:
            dirs = [d / np.linalg.norm(d)]
        else:  # the edge passes through the centre (M2): four sites around it
            u = _perpendicular(edge)
            v = np.cross(edge / np.linalg.norm(edge), u)
            dirs = [u, -u, v, -v]
        sites["mu2"] += [mid + height * u for u in dirs]
    for i, j, k in itertools.combinations(range(n), 3):
        if {(i, j), (i, k), (j, k)} <= close:
            tri = metal_pos[[i, j, k]]
            c = tri.mean(axis=0)
            height = np.sqrt(max(cap**2 - np.max(np.linalg.norm(tri - c, axis=1)) ** 2, 0.5))
            normal = np.cross(tri[1] - tri[0], tri[2] - tri[0])
            normal /= np.linalg.norm(normal)
            side = np.dot(normal, c - centre)
            dirs = [normal * np.sign(side)] if abs(side) > 0.3 else [normal, -normal]
            sites["mu3"] += [c + height * u for u in dirs]
    return sites


def _units(site: np.ndarray, metal_pos: np.ndarray, dimer: float | None) -> list:
    """The atom positions one site carries: the site itself, or a side-on dimer of bond
    length ``dimer`` centred on it, perpendicular to the direction from the nearest metal."""
    if dimer is None:
        return [site]
    nearest = metal_pos[np.argmin(np.linalg.norm(metal_pos - site, axis=1))]
    axis = _perpendicular(site - nearest)
    return [site + dimer / 2 * axis, site - dimer / 2 * axis]


def rearranged_ligands(atoms_or_symbols) -> tuple:
    """Every ligand element the isomer stage places anew: each of S, C and N the cluster has,
    in that order (hydrogen stays where the xTB minimum has it). In the xTB minima of the
    S-C clusters the lone C is terminal, so it moves with the S."""
    symbols = set(atoms_or_symbols.get_chemical_symbols() if hasattr(atoms_or_symbols, "get_chemical_symbols")
                  else atoms_or_symbols)
    return tuple(e for e in LIGAND_GEOMETRY if e in symbols)


def _site_pool(sites: dict, attempt: int, rng) -> list:
    """The sites of one element in the order a start tries them: capping first (attempt 0),
    bridging first (attempt 1), else a random draw favouring capping and bridging sites."""
    orders = [["mu3", "mu2", "terminal"], ["mu2", "mu3", "terminal"]]
    if attempt < len(orders):
        return [p for kind in orders[attempt] for p in rng.permutation(np.array(sites[kind]).reshape(-1, 3))]
    weight = {"mu3": 3.0, "mu2": 2.0, "terminal": 1.0}
    pool = [(p, weight[k] * rng.random()) for k in sites for p in sites[k]]
    return [p for p, _ in sorted(pool, key=lambda t: -t[1])]


def ligand_starts(atoms, elements=None, n_starts: int = 8, seed: int = 0) -> list:
    """Arrangements of the cluster's ligand atoms of ``elements`` (an element or a tuple;
    default :func:`rearranged_ligands`) on mu3, mu2 and terminal sites of the framework of
    ``atoms`` (the other atoms stay where they are), with the geometry of
    :data:`LIGAND_GEOMETRY`.

    The first start caps faces first, the second bridges edges first, the rest draw sites at
    random with capping and bridging sites favoured; with two elements, even attempts place
    the last one first (C before S), odd ones the first. For C and N every other start places
    the atoms as side-on dimers where it can (C2 and N2 units are common in carbides); around
    a single metal atom the last start is a fan (:func:`_fan_starts`). Two units are kept the
    smaller of their elements' ``separation`` apart, a ligand atom and a staying atom its
    ``clearance``. Returns up to ``n_starts`` distinct :class:`ase.Atoms`
    (fewer when the framework has fewer arrangements)."""
    symbols = atoms.get_chemical_symbols()
    elements = (elements,) if isinstance(elements, str) else tuple(elements or rearranged_ligands(symbols))
    counts = {e: symbols.count(e) for e in elements if symbols.count(e)}
    if not counts:
        return []
    keep = [i for i, s in enumerate(symbols) if s not in counts]
    base = atoms[keep]
    metal_pos = np.array([atoms.positions[i] for i in keep if is_metal(symbols[i])])
    sites = {e: _sites(metal_pos, LIGAND_GEOMETRY[e]["bonds"]) for e in counts}
    primary = next(iter(counts))
    rng = np.random.default_rng(seed)
    fans = _fan_starts(atoms, base, metal_pos, counts)
    starts, seen = [], set()
    for attempt in range(20 * n_starts):
        if len(starts) >= n_starts - len(fans):
            break
        chosen: list = []  # (element, position)
        for element in (list(counts)[::-1] if attempt % 2 == 0 else list(counts)):
            geometry, n_lig, placed = LIGAND_GEOMETRY[element], counts[element], 0
            # every other start (every other attempt until one succeeds: Ta2C5- fits only with dimers)
            dimers = geometry["dimer"] is not None and n_lig >= 2 and (len(starts) if starts else attempt) % 2 == 1
            for p in _site_pool(sites[element], attempt, rng):
                unit = _units(p, metal_pos, geometry["dimer"] if dimers and n_lig - placed >= 2 else None)
                clear = all(np.min(np.linalg.norm(base.positions - q, axis=1)) >= geometry["clearance"] for q in unit)
                apart = all(np.linalg.norm(c - q) >= min(geometry["separation"], LIGAND_GEOMETRY[e]["separation"])
                            for e, c in chosen for q in unit)
                if clear and apart:
                    chosen += [(element, q) for q in unit]
                    placed += len(unit)
                if placed == n_lig:
                    break
            if placed < n_lig:
                break
        if len(chosen) < sum(counts.values()):
            continue
        start = _placed(atoms, base, chosen)
        key = tuple(ligand_motifs(start, primary).values()) + tuple(np.round(np.sort(start.get_all_distances().ravel()), 1))
        if key not in seen:
            seen.add(key)
            starts.append(start)
    return starts + fans


def _placed(atoms, base, chosen):
    """``base`` with the ligand atoms ``chosen`` (``(element, position)`` pairs) added, and the
    charge and multiplicity of ``atoms``."""
    start = base.copy()
    for element, p in chosen:
        start.append(element)
        start.positions[-1] = p
    start.info.update(charge=atoms.info.get("charge"), multiplicity=atoms.info.get("multiplicity"))
    return start


def _fan_starts(atoms, base, metal_pos, counts) -> list:
    """Around a single metal atom, its C or N (the only ligand placed anew, three or more) as a
    planar arc at the first bond length, neighbours a dimer bond apart: a fan, every ligand atom
    bound to the metal. Sites on a sphere do not make it; for TaC5- it lies 0.33 eV below the
    xTB minimum, a C5 chain, once both are relaxed at PBE (docs/experiments.md)."""
    if len(metal_pos) != 1 or len(counts) != 1:
        return []
    (element, n), = counts.items()
    geometry = LIGAND_GEOMETRY[element]
    if geometry["dimer"] is None or n < 3:
        return []
    radius = geometry["bonds"][0] + 0.1
    step = 2 * np.arcsin(geometry["dimer"] / (2 * radius))  # angle between neighbours on the arc
    if step * (n - 1) >= 2 * np.pi - step:  # would close on itself: a ring, not a fan
        return []
    angles = step * (np.arange(n) - (n - 1) / 2)
    arc = metal_pos[0] + radius * np.column_stack([np.cos(angles), np.sin(angles), np.zeros(n)])
    if min(np.min(np.linalg.norm(base.positions - q, axis=1)) for q in arc) < geometry["clearance"]:  # H, say
        return []
    return [_placed(atoms, base, [(element, q) for q in arc])]


def _ml_calculator():
    try:
        from chgnet.model.dynamics import CHGNetCalculator
    except ImportError as e:
        raise ClusterGNNError("ML pre-relaxation needs CHGNet: pip install -e '.[dft]'") from e
    return CHGNetCalculator(use_device="cpu", on_isolated_atoms="ignore")


def pre_relax(structures, fmax: float = 0.05, steps: int = 300, calculator=None) -> list:
    """Relax each structure with CHGNet (FIRE, forces below ``fmax`` eV/Å or ``steps``) in a
    box with 10 Å of vacuum. Returns ``(atoms, energy_eV)`` pairs sorted by energy, without
    structures that fell apart and without duplicates (same sorted interatomic distances
    within 0.05 Å RMS)."""
    from ase.optimize import FIRE

    calculator = calculator or _ml_calculator()
    out = []
    for atoms in structures:
        work = atoms.copy()
        work.center(vacuum=10.0)
        work.pbc = True
        work.calc = calculator
        FIRE(work, logfile=None).run(fmax=fmax, steps=steps)
        energy = float(work.get_potential_energy())
        relaxed = atoms.copy()
        relaxed.positions = work.positions - work.positions.mean(axis=0)
        if len(fragments(relaxed)) == 1:
            out.append((relaxed, energy))
    out.sort(key=lambda t: t[1])
    unique, prints = [], []
    for atoms, energy in out:
        d = np.sort(atoms.get_all_distances()[np.triu_indices(len(atoms), 1)])
        if all(np.sqrt(np.mean((d - q) ** 2)) > 0.05 for q in prints):
            prints.append(d)
            unique.append((atoms, energy))
    return unique


def _motif_key(atoms, element: str) -> tuple:
    return tuple(ligand_motifs(atoms, element).values())


def _metal_framework_intact(atoms) -> bool:
    """Whether the metal atoms of ``atoms`` hold together by metal-metal bonds alone
    (:func:`~cluster_gnn.structures.fragments`). In nine V xTB minima they do not (in V5C5- one V
    ends a C5 chain 8.5 Å from the other four), and ligands placed around such a framework leave
    it in pieces."""
    metals = [i for i, s in enumerate(atoms.get_chemical_symbols()) if is_metal(s)]
    return len(metals) < 2 or len(fragments(atoms[metals])) == 1


def sibling_framework(atoms, names=None, directory=None):
    """``atoms`` with its metal atoms moved onto the metal framework of the bundled cluster
    with the same metals whose framework is intact (:func:`_metal_framework_intact`), closest
    in size, then by name; ``None`` when there is none, or when ``atoms`` has atoms other than
    metals and the ligands the isomer stage places anew (H, say), whose places the borrowed
    framework would not fit. The ligand atoms sit at the framework's centre until
    :func:`ligand_starts` places them. ``names`` defaults to every bundled cluster."""
    from .datasets import load_clusters

    symbols = atoms.get_chemical_symbols()
    metals = [i for i, s in enumerate(symbols) if is_metal(s)]
    if any(not is_metal(s) and s not in rearranged_ligands(symbols) for s in symbols):
        return None
    formula = sorted(symbols[i] for i in metals)
    names = list(load_clusters()["name"]) if names is None else list(names)
    found = []
    for name in names:
        try:
            other = load_structure(name, directory)
        except (ClusterGNNError, OSError):
            continue
        other_metals = [i for i, s in enumerate(other.get_chemical_symbols()) if is_metal(s)]
        if sorted(other.get_chemical_symbols()[i] for i in other_metals) == formula and _metal_framework_intact(other):
            found.append((abs(len(other) - len(atoms)), name, other[other_metals]))
    if not found:
        return None
    _, sibling, framework = min(found, key=lambda t: t[:2])
    moved = atoms.copy()
    free = {s: [i for i in metals if symbols[i] == s] for s in set(formula)}
    for s, p in zip(framework.get_chemical_symbols(), framework.positions):
        moved.positions[free[s].pop(0)] = p
    ligands = [i for i in range(len(atoms)) if i not in metals]
    moved.positions[ligands] = framework.positions.mean(axis=0)  # ligand_starts places them
    moved.info = dict(atoms.info, framework=sibling)
    return moved


def isomer_candidates(name: str, n_ml: int = 4, n_xtb: int = 0, n_starts: int = 8, seed: int = 0,
                      calculator=None, directory=None) -> list:
    """The structures PBE ranks for cluster ``name``: the committed xTB minimum (candidate 0,
    ``source`` ``xtb-minimum``), the search's ``n_xtb`` lowest runner-up isomers
    (``xtb-isomer``; none by default: in the first 15 rankings the runner-up was never lowest,
    0.45-4.96 eV above the PBE-lowest, and it cost a fifth of the single points) and ``n_ml``
    CHGNet-relaxed ligand arrangements (``ml-start``, :func:`ligand_starts`): the lowest of
    each motif pattern first, then the lowest others.
    With S and C both present, half of them place the S alone (C where the xTB minimum has
    it: Mo2S2C- is lower so) and half every S and C atom (Ta3SC is lower so). Each has
    ``atoms.info`` ``charge``, ``multiplicity``, ``source``, ``ligand`` (the element whose
    motifs are reported), ``rearranged`` (the elements an ML start placed anew, e.g. ``"S,C"``),
    ``motifs`` (the ligand's terminal/mu2/mu3 counts as ``"t/b/c"``) and, for ML ones,
    ``ml_energy`` (eV). A structure already among the candidates (same sorted interatomic
    distances within 0.05 Å RMS) is left out. Where the xTB minimum's metal framework is in
    pieces, the ML starts are built on a sibling's framework instead (:func:`sibling_framework`,
    recorded as ``framework``), every ligand placed anew."""
    from ase.io import read

    minimum = load_structure(name, directory)
    charge, multiplicity = minimum.info["charge"], minimum.info["multiplicity"]
    path = structure_path(name, directory).with_suffix(".isomers.xyz")
    found = [(minimum, "xtb-minimum", None, None)]
    if path.is_file() and n_xtb > 0:
        found += [(a, "xtb-isomer", None, None) for a in read(path, index=":")[:n_xtb]]
    element = rearranged_ligand(minimum)
    families = [rearranged_ligands(minimum)]
    if len(families[0]) > 1:  # also the S alone, the rest where the xTB minimum has it
        families.insert(0, (element,))
    framework = minimum
    if not _metal_framework_intact(minimum):
        framework = sibling_framework(minimum, directory=directory)
        families = [families[-1]] if framework is not None else []
    for k, family in enumerate(families):
        n_pick = n_ml // len(families) + (k < n_ml % len(families))
        relaxed = pre_relax(ligand_starts(framework, family, n_starts=n_starts, seed=seed), calculator=calculator)
        picked, patterns = [], set()
        for i, (atoms, _) in enumerate(relaxed):  # lowest of each motif pattern, lowest first
            if _motif_key(atoms, element) not in patterns:
                patterns.add(_motif_key(atoms, element))
                picked.append(i)
        rest = [i for i in range(len(relaxed)) if i not in picked]
        picked = sorted(picked[:n_pick] + rest[:max(0, n_pick - len(picked))])
        found += [(relaxed[i][0], "ml-start", relaxed[i][1], family) for i in picked]
    out, prints = [], []
    for atoms, source, energy, family in found:
        d = np.sort(atoms.get_all_distances()[np.triu_indices(len(atoms), 1)])
        if any(np.sqrt(np.mean((d - q) ** 2)) < 0.05 for q in prints):
            continue  # the same structure as an earlier candidate (MoC- has one)
        prints.append(d)
        atoms = atoms.copy()
        atoms.info = {"charge": int(charge), "multiplicity": int(multiplicity), "source": source,
                      "ligand": element, "motifs": "/".join(map(str, _motif_key(atoms, element))),
                      **({"rearranged": ",".join(family)} if family else {}),
                      **({"framework": framework.info["framework"]} if family and framework is not minimum else {}),
                      **({} if energy is None else {"ml_energy": round(energy, 5)})}
        out.append(atoms)
    return out


def isomer_clusters() -> list:
    """The clusters of 3 or more atoms with S, C or N whose isomers
    :func:`~cluster_gnn.isomer_ranking.run_isomer_job` ranks: fewest atoms first (the cost of a
    single point grows with size far more than with the metal once the SCF starts from atomic
    densities: 1-3 min for 5-6-atom Fe, V and Co clusters, 5-20 min for 10-13-atom Mo ones),
    the mixed clusters whose rate is withheld last. At one size: the one-metal Mo and Ta
    clusters, the 24 mixed ones with a measured rate (models are chosen on them), then the
    one-metal Fe, V and Co ones (sulfides, carbides and nitrides interleaved by name)."""
    from .datasets import load_clusters

    table = load_clusters()
    table = table[table["ligands"].str.contains("S|C|N", na=False) & (table["n_atoms"] >= 3)]  # a diatomic: one arrangement
    mixed = table["kind"] != "homonuclear"
    group = np.where(mixed, np.where(table["lg_k1"].isna(), 3, 1), np.where(table["metals"].str.contains("Fe|V|Co"), 2, 0))
    table = table.assign(group=group, withheld=group == 3)
    return list(table.sort_values(["withheld", "n_atoms", "group", "name"])["name"])
