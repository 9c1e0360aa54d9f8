"""Cluster names, formulas and structures: parsing, reading, writing, validation.

Names follow the published tables: element symbols with counts (``Mo5S4``), an optional
trailing anion mark (``¯``, ``ˉ``, ``-`` or ``−``; ``+`` for a cation). A count of 1 may be
written (``Ta3S1C``, ``Rh1Co3H2¯``). :func:`normalize_name` gives the project's canonical
spelling: counts of 1 dropped, the published element order kept, ``-`` for an anion.

Structures are :class:`ase.Atoms`. :func:`read_cluster` reads XYZ or extended XYZ
through ASE and refuses anything that is not one sane cluster with a
:class:`~cluster_gnn.errors.StructureError` naming the problem.
"""
from __future__ import annotations

import io
import math
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np

from .errors import StructureError
from .files import atomic_write
from .limits import MAX_COORDINATE, check_charge, check_multiplicity

__all__ = [
    "cluster_family",
    "metal_shares",
    "metal_pairs",
    "multiplicity_from_spin_density",
    "MAX_FILE_BYTES",
    "MAX_ATOMS",
    "MIN_DISTANCE",
    "BOND_SCALE",
    "XTB_MAX_Z",
    "parse_name",
    "normalize_name",
    "formula_counts",
    "is_metal",
    "read_cluster",
    "parse_xyz_text",
    "validate_cluster",
    "write_cluster",
    "fragments",
    "electron_count",
    "check_spin",
]

#: Largest structure file accepted, in bytes (1 MiB: a 100-atom XYZ is ~6 kB).
MAX_FILE_BYTES = 1 << 20
#: Most atoms accepted in one cluster. The data set's largest has 13; xTB and the
#: models stay interactive well past 100, but not past a few hundred.
MAX_ATOMS = 100
#: Closest allowed approach of two atoms, in Å (H2 is 0.74 Å; nothing real is closer).
MIN_DISTANCE = 0.6
#: Two atoms are bonded (for connectivity) when closer than BOND_SCALE x the sum of
#: their covalent radii (ASE's ``covalent_radii``).
BOND_SCALE = 1.3
#: GFN1-/GFN2-xTB are parametrised for H to Rn (Z = 1..86).
XTB_MAX_Z = 86

_ANION_MARKS = ("¯", "ˉ", "-", "−", "⁻")
_CATION_MARKS = ("+", "⁺")
_TOKEN = re.compile(r"([A-Z][a-z]?)(\d*)")
#: Published spellings that are not plain formulas: ``Fe3C41¯`` is Fe3C4¯ with the
#: authors' isomer index 1 appended (their fold sheets call it ``Fe3C4-11-M10``).
NAME_ALIASES = {"Fe3C41": "Fe3C4"}


def is_metal(symbol: str) -> bool:
    """True for d-block (groups 3-12), alkali, alkaline-earth and p-block metals."""
    from ase.data import atomic_numbers

    z = atomic_numbers.get(symbol, 0)
    nonmetals = {1, 2, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 33, 34, 35, 36, 52, 53, 54, 85, 86}
    return z > 0 and z not in nonmetals


def parse_name(name: str) -> tuple[list[tuple[str, int]], int]:
    """Split a cluster name into ``[(symbol, count), ...]`` in written order and a charge.

    >>> parse_name("Mo5S4¯")
    ([('Mo', 5), ('S', 4)], -1)
    """
    from ase.data import atomic_numbers

    text = str(name).strip().replace(" ", "")
    charge = 0
    while text and text[-1] in _ANION_MARKS + _CATION_MARKS:
        charge += -1 if text[-1] in _ANION_MARKS else 1
        text = text[:-1]
    text = NAME_ALIASES.get(text, text)
    if not text or _TOKEN.sub("", text):
        raise StructureError(
            f"cannot read cluster name {name!r}: expected element symbols with counts, "
            "such as 'Mo5S4-' or 'Ta3S2C'",
            reason="formula",
        )
    parts: list[tuple[str, int]] = []
    for symbol, count in _TOKEN.findall(text):
        if symbol not in atomic_numbers or symbol == "X":
            raise StructureError(f"unknown element {symbol!r} in cluster name {name!r}", reason="element")
        n = int(count) if count else 1
        if n < 1:
            raise StructureError(f"count 0 for {symbol} in cluster name {name!r}", reason="formula")
        parts.append((symbol, n))
    return parts, charge


def normalize_name(name: str) -> str:
    """Canonical spelling: counts of 1 dropped, written order kept, ``-`` for an anion.

    >>> normalize_name("Rh1Co3H2¯"), normalize_name("Fe3C41¯"), normalize_name("Ta3S1C")
    ('RhCo3H2-', 'Fe3C4-', 'Ta3SC')
    """
    parts, charge = parse_name(name)
    body = "".join(s + (str(n) if n > 1 else "") for s, n in parts)
    if charge < 0:
        body += "-" * (-charge)
    elif charge > 0:
        body += "+" * charge
    return body


def formula_counts(name: str) -> Counter:
    """Element counts of a cluster name, e.g. ``Counter({'Mo': 5, 'S': 4})``."""
    parts, _ = parse_name(name)
    counts: Counter = Counter()
    for symbol, n in parts:
        counts[symbol] += n
    return counts


_LIGAND_ORDER = ("S", "C", "N", "H")


def cluster_family(name: str) -> str:
    """The cluster's family, its metal set x ligand set: ``Fe-V-C`` for Fe2V2C-, ``Mo-S-C``
    for Mo6S3C-, ``Rh`` for Rh3- (metals alphabetical, then the ligands S, C, N, H)."""
    counts = formula_counts(name)
    metals = sorted(s for s in counts if is_metal(s))
    ligands = [e for e in _LIGAND_ORDER if e in counts] + sorted(
        s for s in counts if not is_metal(s) and s not in _LIGAND_ORDER)
    return "-".join(metals + ligands)


def metal_shares(name: str) -> dict[str, float]:
    """Share of each metal among a cluster's metal atoms: Fe2V2C- -> ``{"Fe": 0.5, "V": 0.5}``."""
    counts = {s: n for s, n in formula_counts(name).items() if is_metal(s)}
    total = sum(counts.values())
    return {s: n / total for s, n in counts.items()} if total else {}


def metal_pairs(name: str) -> set[tuple[str, str]]:
    """The pairs of different metals in a cluster, alphabetical (empty when homonuclear)."""
    metals = sorted(s for s in formula_counts(name) if is_metal(s))
    return {(a, b) for i, a in enumerate(metals) for b in metals[i + 1:]}


def electron_count(numbers, charge: int) -> int:
    """Total number of electrons of a cluster with atomic numbers ``numbers`` and ``charge``."""
    return int(np.sum(numbers)) - int(charge)


def multiplicity_from_spin_density(name: str, mean_metal_spin: float) -> int:
    """2S+1 from a mean spin population per metal atom (e, the authors' ``2_σave``): the
    number of unpaired electrons nearest to ``mean_metal_spin`` x metal atoms that the
    electron count allows (same parity). Over the 159 homonuclear clusters it gives the
    authors' published multiplicity for 156."""
    from ase.data import atomic_numbers

    counts = formula_counts(name)
    n_metal = sum(n for s, n in counts.items() if is_metal(s))
    n_el = electron_count([atomic_numbers[s] for s, n in counts.items() for _ in range(n)], parse_name(name)[1])
    target = abs(float(mean_metal_spin)) * n_metal
    unpaired = n_el % 2 + 2 * max(0, round((target - n_el % 2) / 2))
    return int(unpaired) + 1


def check_spin(numbers, charge: int, multiplicity: int) -> None:
    """Refuse a charge outside +-3 e (:data:`~cluster_gnn.limits.MAX_ABS_CHARGE`) and a
    multiplicity 2S+1 that the electron count or the atom count cannot have."""
    charge = check_charge(charge)
    multiplicity = check_multiplicity(multiplicity, len(numbers))
    n_el = electron_count(numbers, charge)
    if n_el <= 0:
        raise StructureError(f"charge {charge} leaves {n_el} electrons", reason="spin")
    if multiplicity < 1 or multiplicity - 1 > n_el:
        raise StructureError(
            f"multiplicity {multiplicity} is impossible for {n_el} electrons", reason="spin"
        )
    if (n_el + multiplicity - 1) % 2:
        parity = "odd" if n_el % 2 else "even"
        allowed = "even (2, 4, ...)" if n_el % 2 else "odd (1, 3, ...)"
        raise StructureError(
            f"multiplicity {multiplicity} does not fit {n_el} electrons ({parity}); "
            f"use an {allowed} multiplicity or change the charge",
            reason="spin",
        )


def fragments(atoms, scale: float = BOND_SCALE) -> list[list[int]]:
    """Connected fragments: atoms closer than ``scale`` x sum of covalent radii are bonded.

    Returns a list of atom-index lists, largest first.
    """
    from ase.data import covalent_radii
    from scipy.sparse.csgraph import connected_components

    n = len(atoms)
    if n == 0:
        return []
    pos = atoms.get_positions()
    radii = covalent_radii[atoms.get_atomic_numbers()]
    dist = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
    bonded = dist < scale * (radii[:, None] + radii[None, :])
    n_comp, labels = connected_components(bonded, directed=False)
    groups = [np.flatnonzero(labels == k).tolist() for k in range(n_comp)]
    return sorted(groups, key=len, reverse=True)


def validate_cluster(atoms, *, max_atoms: int = MAX_ATOMS, min_distance: float = MIN_DISTANCE):
    """Check that ``atoms`` is one sane cluster xTB can handle; raise StructureError if not.

    Checks, in order: at least one atom, at most ``max_atoms``; finite coordinates;
    elements xTB covers (Z <= 86); no two atoms closer than ``min_distance`` Å; one
    connected fragment (bonds as in :func:`fragments`).
    """
    n = len(atoms)
    if n == 0:
        raise StructureError("the structure has no atoms", reason="empty")
    if n > max_atoms:
        raise StructureError(
            f"{n} atoms is more than the limit of {max_atoms} atoms per cluster", reason="too-many-atoms"
        )
    pos = atoms.get_positions()
    if not np.all(np.isfinite(pos)):
        bad = int(np.flatnonzero(~np.isfinite(pos).all(axis=1))[0])
        raise StructureError(
            f"atom {bad + 1} has a non-finite coordinate (NaN or inf)", reason="coordinates"
        )
    if np.abs(pos).max() > MAX_COORDINATE:
        bad = int(np.flatnonzero((np.abs(pos) > MAX_COORDINATE).any(axis=1))[0])
        raise StructureError(f"atom {bad + 1} has a coordinate of {np.abs(pos[bad]).max():.3g} Å, beyond the "
                             f"+-{MAX_COORDINATE:g} Å allowed", reason="coordinates")
    numbers = atoms.get_atomic_numbers()
    too_heavy = [s for s, z in zip(atoms.get_chemical_symbols(), numbers) if z > XTB_MAX_Z or z < 1]
    if too_heavy:
        raise StructureError(
            f"element {too_heavy[0]} is not covered by GFN-xTB (H to Rn only)",
            reason="unsupported-element",
        )
    if n > 1:
        dist = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
        dist[np.diag_indices(n)] = np.inf
        i, j = np.unravel_index(np.argmin(dist), dist.shape)
        if dist[i, j] < min_distance:
            sym = atoms.get_chemical_symbols()
            raise StructureError(
                f"atoms {i + 1} ({sym[i]}) and {j + 1} ({sym[j]}) are {dist[i, j]:.2f} Å apart, "
                f"closer than the physical minimum of {min_distance} Å",
                reason="overlap",
            )
        groups = fragments(atoms)
        if len(groups) > 1:
            sizes = ", ".join(str(len(g)) for g in groups[:5])
            raise StructureError(
                f"the structure falls apart into {len(groups)} fragments ({sizes} atoms): "
                "expected one connected cluster",
                reason="fragments",
            )
    return atoms


def _decode(data: bytes, source: str) -> str:
    if b"\x00" in data:
        raise StructureError(f"{source} is a binary file, expected XYZ text", reason="binary")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("latin-1")
        except UnicodeDecodeError as e:  # pragma: no cover - latin-1 decodes anything
            raise StructureError(f"{source} is not a text file", reason="not-text") from e
    return text.replace("\r\n", "\n").replace("\r", "\n")


_ASCII_INT = re.compile(r"[0-9]{1,9}")  # str.isdigit() accepts '²', which int() refuses
_CHARGE_IN_COMMENT = re.compile(r"(?i)\bcharge\s*[=:]?\s*([+-]?\d+)")
_MULT_IN_COMMENT = re.compile(r"(?i)\b(?:multiplicity|mult)\s*[=:]?\s*(\d+)")


def parse_xyz_text(text: str, source: str = "input"):
    """Parse XYZ / extended-XYZ text into :class:`ase.Atoms` (not yet validated).

    Tolerates CRLF line ends, blank lines after the structure and free-text comment
    lines. A ``charge`` / ``multiplicity`` found in the comment line is stored in
    ``atoms.info``. Only the first frame is read.
    """
    from ase.data import atomic_numbers
    from ase.io import read

    lines = text.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines or not any(line.strip() for line in lines):
        raise StructureError(f"{source} is empty", reason="empty")
    head = lines[0].split()
    if len(head) != 1 or not _ASCII_INT.fullmatch(head[0]):
        raise StructureError(
            f"{source}: the first line must be the number of atoms, got {lines[0][:40]!r}",
            reason="truncated",
        )
    n = int(head[0])
    if n == 0:
        raise StructureError(f"{source} declares 0 atoms", reason="no-atoms")
    if n > MAX_ATOMS:
        raise StructureError(
            f"{source} declares {n} atoms, more than the limit of {MAX_ATOMS} atoms per cluster",
            reason="too-many-atoms",
        )
    body = [line for line in lines[2 : 2 + n]]
    if len(lines) < 2 + n or sum(1 for line in body if line.strip()) < n:
        got = sum(1 for line in body if line.strip())
        raise StructureError(
            f"{source} is truncated: it declares {n} atoms but has {got} atom lines",
            reason="truncated",
        )
    extra = [line for line in lines[2 + n:] if line.strip()]
    if extra and not _ASCII_INT.fullmatch(extra[0].strip()):  # a next frame starts with its atom count
        raise StructureError(
            f"{source} declares {n} atoms but has {n + len(extra)} or more atom lines; "
            "fix the count on the first line", reason="truncated")
    comment = lines[1]
    symbols, coords = [], []
    for k, line in enumerate(body, start=1):
        fields = line.split()
        if len(fields) < 4:
            raise StructureError(
                f"{source}, atom {k}: expected 'symbol x y z', got {line.strip()[:60]!r}",
                reason="truncated",
            )
        sym = fields[0]
        if _ASCII_INT.fullmatch(sym):
            from ase.data import chemical_symbols

            z = int(sym)
            if not 1 <= z < len(chemical_symbols):
                raise StructureError(f"{source}, atom {k}: unknown atomic number {z}", reason="element")
            sym = chemical_symbols[z]
        else:
            sym = sym[:1].upper() + sym[1:].lower()
            if sym not in atomic_numbers or sym == "X":
                raise StructureError(f"{source}, atom {k}: unknown element {fields[0]!r}", reason="element")
        symbols.append(sym)
        try:
            xyz = [float(v) for v in fields[1:4]]
        except ValueError:
            raise StructureError(
                f"{source}, atom {k}: non-numeric coordinate in {line.strip()[:60]!r}",
                reason="coordinates",
            ) from None
        if not all(math.isfinite(v) for v in xyz):
            raise StructureError(
                f"{source}, atom {k}: coordinate is NaN or infinite", reason="coordinates"
            )
        coords.append(xyz)

    # ASE parses an extended-XYZ comment line (key=value pairs, per-atom columns); a
    # free-text comment would be misread as flags, so it is read as plain XYZ and only
    # searched for "charge ..." / "multiplicity ...".
    atoms = None
    if "=" in comment:
        try:
            atoms = read(io.StringIO("\n".join([str(n), comment] + body) + "\n"), format="extxyz", index=0)
        except Exception:
            atoms = None
    if atoms is None or len(atoms) != n:
        plain = [f"{s} {x!r} {y!r} {z!r}" for s, (x, y, z) in zip(symbols, coords)]
        atoms = read(io.StringIO("\n".join([str(n), ""] + plain) + "\n"), format="extxyz", index=0)
        atoms.info.clear()
    if atoms.calc is not None:  # ASE moves energy=... from the comment line into a calculator
        atoms.info["energy"] = atoms.calc.results.get("energy")
    atoms.calc = None
    atoms.pbc = False
    atoms.cell = None
    return _checked_info(atoms, comment, source)


def _checked_info(atoms, comment: str, source: str):
    """Check the comment line's keys: ``charge`` and ``multiplicity`` whole numbers in
    their ranges, ``energy`` a finite number; free text searched for ``charge -1``."""
    info = atoms.info
    if "energy" in info:
        try:
            energy = float(info["energy"])
        except (TypeError, ValueError):
            energy = math.nan
        if isinstance(info["energy"], bool) or not math.isfinite(energy):
            shown = info["energy"].item() if isinstance(info["energy"], np.generic) else info["energy"]
            raise StructureError(f"{source}: energy {shown!r} in the comment line is not a finite number",
                                 reason="comment")
        info["energy"] = energy
    for key, pattern in (("charge", _CHARGE_IN_COMMENT), ("multiplicity", _MULT_IN_COMMENT)):
        value = info.pop(key, None)
        if value is None:
            m = pattern.search(comment)
            value = m.group(1) if m else None
        if value is None:
            continue
        what = f"{source}: {key} in the comment line"
        if key == "charge":
            info[key] = check_charge(value, what)
        else:
            info[key] = check_multiplicity(value, len(atoms), what)
    return atoms


def read_cluster(source, *, validate: bool = True):
    """Read one cluster from an XYZ / extended-XYZ file, bytes or text.

    Parameters
    ----------
    source:
        A path (``str`` or :class:`~pathlib.Path`), raw ``bytes`` (e.g. an upload) or
        a file object opened in binary or text mode.
    validate:
        Run :func:`validate_cluster` (default).

    Returns
    -------
    ase.Atoms
        Positions in Å. ``atoms.info`` may carry ``charge`` and ``multiplicity`` from
        the comment line.

    Raises
    ------
    StructureError
        With a one-line message naming the problem (empty, truncated, non-numeric or
        NaN coordinates, unknown or unsupported element, overlapping atoms, several
        fragments, too many atoms, file too large).
    """
    label = "input"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = path.name
        if not path.exists():
            raise StructureError(f"no such file: {path}", reason="no-file")
        if not path.is_file():  # a directory, FIFO or device: never opened (a FIFO would block)
            kind = "a directory" if path.is_dir() else "not a regular file"
            raise StructureError(f"{path} is {kind}, expected an XYZ file", reason="no-file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise StructureError(
                f"{label} is {size / 1e6:.1f} MB, more than the {MAX_FILE_BYTES >> 20} MiB limit",
                reason="file-too-large",
            )
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif hasattr(source, "read"):
        label = Path(getattr(source, "name", "input")).name or "input"
        data = source.read(MAX_FILE_BYTES + 1)
        if isinstance(data, str):
            data = data.encode("utf-8")
    else:
        raise TypeError(f"cannot read a cluster from {type(source).__name__}")
    if len(data) > MAX_FILE_BYTES:
        raise StructureError(
            f"{label} is larger than the {MAX_FILE_BYTES >> 20} MiB limit", reason="file-too-large"
        )
    atoms = parse_xyz_text(_decode(data, label), label)
    return validate_cluster(atoms) if validate else atoms


def write_cluster(path, atoms, **info) -> Path:
    """Write ``atoms`` as extended XYZ, atomically (temp file + rename).

    Keys in ``info`` (energy, charge, multiplicity, method, ...) go into the comment line.
    """
    from ase.io import write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = atoms.copy()
    out.calc = None
    out.info = {k: v for k, v in {**atoms.info, **info}.items() if v is not None}
    with atomic_write(path, fsync=True) as fh:
        write(fh, out, format="extxyz", columns=["symbols", "positions"])
    return path
