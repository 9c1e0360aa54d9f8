"""The published data set -> the project's own tables under ``data/``.

:func:`build_tables` reads ``../shared/datasets`` (the public data of Mou et al.,
ACS Catal. 2025, doi:10.1021/acscatal.5c01379) and writes

- ``data/clusters.csv``: one row per cluster (159 homonuclear with measured lg(k1),
  the authors' fold and spin multiplicity; 57 heteronuclear, 24 with measured lg(k1), with
  the multiplicity their mean metal spin density implies,
  :func:`~cluster_gnn.structures.multiplicity_from_spin_density`);
- ``data/nbo_descriptors.csv``: the authors' 24 DFT-NBO descriptors of the 159
  homonuclear clusters (baselines and a check of our xTB charges only; never model input
  the app needs);

:func:`build_element_table` is a step of its own (``cluster-gnn build-data --elements``,
about a minute): it writes ``data/elements.csv``, periodic properties of H..Rn from the
mendeleev package, so the app and the models need no mendeleev import at run time.

:func:`structure_path` and :func:`load_structure` find the committed global-minimum
structures under ``data/structures/`` (written by :mod:`cluster_gnn.search`).

k1 is the rate constant of the first N2 uptake, in cm^3 molecule^-1 s^-1; lg(k1) is its
log10. :func:`load_clusters` and :func:`load_nbo_descriptors` read the committed tables
and need nothing from the shared folder.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pandas as pd

from .config import DATA_DIR, STRUCTURES_DIR, default_source_dir
from .errors import DatasetError, StructureError, UnknownClusterError
from .structures import (cluster_family, formula_counts, is_metal, multiplicity_from_spin_density, normalize_name,
                         parse_name, read_cluster)

__all__ = [
    "CITATION",
    "CLUSTER_COLUMNS",
    "build_tables",
    "load_clusters",
    "load_nbo_descriptors",
    "find_cluster",
    "parse_fold_label",
    "ELEMENT_COLUMNS",
    "build_element_table",
    "load_element_table",
    "NBO8",
    "DFT15",
    "structure_path",
    "load_structure",
]

#: The authors' 8 DFT-NBO descriptors (columns of ``data/nbo_descriptors.csv``) used as
#: auxiliary training targets and by the ``nbo8`` baseline.
#: the authors' 15 DFT-NBO descriptors published for every cluster, mixed ones included
DFT15 = ["3_VDE/VIE", "1_ΔQmax", "1_ΔQmin", "1_Qmin", "2_Q", "2_σave", "2_nsave", "2_Δnsave", "2_ndave",
         "3_ΔEHOMO", "3_ΔEHOMO/NL", "3_EA", "3_IE", "3_χave", "3_IEave"]
NBO8 = ["1_ΔQmax", "2_Q", "2_σave", "2_ndave", "3_ΔEHOMO", "3_ΔEHOMO/NL", "3_χave", "3_IEave"]

#: Per-element properties in ``data/elements.csv`` (from the mendeleev package): atomic
#: number, group, period, Pauling electronegativity, covalent radius (Å, Pyykkö), first
#: ionisation energy (eV), electron affinity (eV, 0 where unbound), and the free atom's
#: valence s, p and d electron counts.
ELEMENT_COLUMNS = ["symbol", "Z", "group", "period", "electronegativity", "covalent_radius",
                   "ionization_energy", "electron_affinity", "valence_s", "valence_p", "valence_d"]

CITATION = (
    "L.-H. Mou, G.-D. Jiang, C. Wang, X. Cheng, J. Yu, Z. Li, J. Jiang, ACS Catal. 2025, 15, "
    "6618-6627, doi:10.1021/acscatal.5c01379 (public data set MMLhh/cluster_N2); model after "
    "L.-H. Mou, Y. Wang, C. Wang, J. Jiang, JACS Au 2025, 5, 3669-3678, doi:10.1021/jacsau.5c00764"
)

CLUSTER_COLUMNS = [
    "cluster",  # name as published
    "name",  # normalised name (counts of 1 dropped, '-' for an anion)
    "formula",  # normalised formula without charge
    "n_atoms",
    "metals",  # metal elements, ';'-separated, in written order
    "ligands",  # ligand (non-metal) elements, ';'-separated
    "charge",  # total charge in e
    "multiplicity",  # authors' 2S+1 of their lowest DFT structure
    "multiplicity_source",  # "fold label" (the 159: published) or "spin density" (the 57: from their 2_σave)
    "lg_k1",  # log10 k1 / (cm^3 molecule^-1 s^-1), measured (159 homonuclear + 24 mixed)
    "fold",  # the authors' 10-fold CV test fold, 1..10 (homonuclear only)
    "kind",  # homonuclear / heteronuclear
    "family",  # metal set x ligand set, e.g. Mo-S-C, Fe-V-C (structures.cluster_family)
    "rate",  # measured / withheld (the 33 mixed clusters predicted blind)
    "authors_transfer_pred",  # the authors' published transfer prediction of lg(k1) (24 mixed)
    "authors_label",  # the authors' fold-sheet label, e.g. Mo5S4-5-M2
]

_HOMO = "cluster_N2/homonuclear-159-24features.xlsx"
_FOLD = "cluster_N2/folds/homonuclear-159-fold{k}-train-test.xlsx"
_HETERO = "heteronuclear-57-formulas.csv"
_HETERO_MEASURED = "heteronuclear-24-measured.csv"
_HETERO_WITHHELD = "heteronuclear-33-withheld.csv"
_HETERO_DESCRIPTORS = "heteronuclear-57-15features.csv"


def parse_fold_label(label: str) -> tuple[str, int]:
    """Split an authors' fold label into (formula, multiplicity).

    The label is the formula, then the isomer index and ``M<n>`` in either order:
    ``Mo5S4-5-M2`` -> ("Mo5S4", 2), ``V3C5-M1-13`` -> ("V3C5", 1), ``Rh3-M5`` -> ("Rh3", 5).
    """
    parts = str(label).strip().split("-")
    mult = [p for p in parts[1:] if re.fullmatch(r"M\d+", p)]
    if len(mult) != 1:
        raise DatasetError(f"fold label {label!r} has no single M<n> multiplicity field")
    return parts[0], int(mult[0][1:])


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DatasetError(
            f"published data file not found: {path} (expected the shared datasets folder; "
            "pass --source DIR or set CLUSTER_GNN_SOURCE)"
        )
    return path


def _fmt(value) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return repr(round(value, 10))
    return str(value)


def build_tables(source: Path | str | None = None, out_dir: Path | str | None = None) -> dict[str, Path]:
    """Read the published files and write ``clusters.csv`` and ``nbo_descriptors.csv``.

    Deterministic: the same inputs give byte-identical files. ``data/elements.csv`` is
    not rebuilt here (see :func:`build_element_table`).

    Returns
    -------
    dict
        ``{"clusters": path, "nbo_descriptors": path}``.
    """
    source = Path(source) if source else default_source_dir()
    out_dir = Path(out_dir) if out_dir else DATA_DIR
    feats = pd.read_excel(_require(source / _HOMO), sheet_name="Sheet1")
    if len(feats) != 159 or "Clusters" not in feats or "lg(k1)" not in feats:
        raise DatasetError(f"{source / _HOMO} does not have 159 rows with Clusters and lg(k1)")

    # Fold sheets: formula (no charge) -> (fold, multiplicity, label). Every cluster is in
    # exactly one Test sheet.
    folds: dict[str, tuple[int, int, str]] = {}
    for k in range(1, 11):
        test = pd.read_excel(_require(source / _FOLD.format(k=k)), sheet_name="Test")
        for label in test.iloc[:, 0]:
            formula, mult = parse_fold_label(label)
            key = normalize_name(formula)
            if key in folds:
                raise DatasetError(f"{label} is in the Test sheets of folds {folds[key][0]} and {k}")
            folds[key] = (k, mult, str(label))

    rows = []
    for name, lg_k1 in zip(feats["Clusters"], feats["lg(k1)"]):
        name = str(name).strip()
        norm = normalize_name(name)
        _, charge = parse_name(name)
        formula = norm.rstrip("-+")
        if formula not in folds:
            raise DatasetError(f"{name} is in no fold's Test sheet")
        fold, mult, label = folds.pop(formula)
        rows.append(_row(name, charge, mult, float(lg_k1), fold, "homonuclear", label))
    if folds:
        raise DatasetError(f"fold labels without a cluster in the feature table: {sorted(folds)}")

    with open(_require(source / _HETERO), encoding="utf-8") as fh:
        hetero = [r["cluster"].strip() for r in csv.DictReader(fh) if r.get("cluster", "").strip()]
    with open(_require(source / _HETERO_MEASURED), encoding="utf-8") as fh:
        measured = {normalize_name(r["cluster"]): (float(r["lg_k1"]), float(r["authors_transfer_pred"]))
                    for r in csv.DictReader(fh)}
    with open(_require(source / _HETERO_WITHHELD), encoding="utf-8") as fh:
        withheld = {normalize_name(r["cluster"]) for r in csv.DictReader(fh)}
    hetero_names = {normalize_name(n) for n in hetero}
    if set(measured) & withheld or set(measured) | withheld != hetero_names:
        raise DatasetError(f"the {len(measured)} measured and {len(withheld)} withheld mixed clusters do not "
                           f"split the {len(hetero_names)} of {_HETERO}")
    # the authors' multiplicities of the mixed clusters are not published as such, but their mean
    # metal spin density is, and it gives back their published multiplicity for 156 of the 159
    spin = {normalize_name(c): v for c, v in zip(*_columns(_require(source / _HETERO_DESCRIPTORS), "cluster", "2_σave"))}
    for name in hetero:
        _, charge = parse_name(name)
        lg_k1, authors = measured.get(normalize_name(name), (None, None))
        sigma = spin.get(normalize_name(name))
        mult = None if sigma is None else multiplicity_from_spin_density(name, sigma)
        rows.append(_row(name, charge, mult, lg_k1, None, "heteronuclear", "", authors))

    names = [r["name"] for r in rows]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DatasetError(f"clusters listed twice: {dupes}")

    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CLUSTER_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _fmt(v) for k, v in r.items()})
    clusters_path = out_dir / "clusters.csv"
    clusters_path.write_text(buf.getvalue(), encoding="utf-8")

    desc = feats.copy()
    desc.insert(0, "name", [normalize_name(n) for n in desc["Clusters"]])
    desc = desc.rename(columns={"Clusters": "cluster", "lg(k1)": "lg_k1"})
    mixed = pd.read_csv(_require(source / _HETERO_DESCRIPTORS))
    unknown = sorted(set(mixed.columns) - set(desc.columns))
    if unknown or "cluster" not in mixed:
        raise DatasetError(f"{source / _HETERO_DESCRIPTORS}: columns {unknown} are not the homonuclear ones")
    mixed.insert(0, "name", [normalize_name(n) for n in mixed["cluster"]])
    desc = pd.concat([desc, mixed], ignore_index=True)[list(desc.columns)]  # 15 of 24 for the mixed
    buf = io.StringIO()
    desc.to_csv(buf, index=False, float_format="%.10g", lineterminator="\n")
    nbo_path = out_dir / "nbo_descriptors.csv"
    nbo_path.write_text(buf.getvalue(), encoding="utf-8")
    return {"clusters": clusters_path, "nbo_descriptors": nbo_path}


def build_element_table(out_dir: Path | str | None = None, max_z: int = 86) -> Path:
    """Write ``data/elements.csv`` for H..Rn from mendeleev (the elements xTB covers).

    Valence counts come from the ground-state configuration: electrons in the outermost
    s and p shells and in the (n-1)d shell (e.g. Ta 6s2 5d3 -> s 2, d 3; S 3s2 3p4 -> s 2, p 4).
    """
    from mendeleev import element

    out_dir = Path(out_dir) if out_dir else DATA_DIR
    rows = []
    for z in range(1, max_z + 1):
        el = element(z)
        conf = el.ec.conf  # {(n, 'l'): electrons}
        n_max = max(n for n, _ in conf)
        s_count = conf.get((n_max, "s"), 0)
        p_count = conf.get((n_max, "p"), 0)
        d_count = conf.get((n_max - 1, "d"), 0) if 3 <= (el.group_id or 0) <= 12 else 0
        ie = (el.ionenergies or {}).get(1)
        rows.append({
            "symbol": el.symbol, "Z": z, "group": el.group_id or 3, "period": el.period,
            "electronegativity": el.en_pauling if el.en_pauling is not None else "",
            "covalent_radius": round(el.covalent_radius_pyykko / 100.0, 4),
            "ionization_energy": round(ie, 6) if ie is not None else "",
            "electron_affinity": round(el.electron_affinity, 6) if el.electron_affinity else 0.0,
            "valence_s": s_count, "valence_p": p_count, "valence_d": d_count,
        })
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "elements.csv"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ELEMENT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def load_element_table(data_dir: Path | str | None = None):
    """``data/elements.csv`` as a DataFrame indexed by atomic number (missing
    electronegativities filled with the column median)."""
    path = Path(data_dir or DATA_DIR) / "elements.csv"
    if not path.is_file():
        raise DatasetError(f"{path} not found: run 'cluster-gnn build-data --elements' first")
    table = pd.read_csv(path).set_index("Z")
    for col in ("electronegativity", "ionization_energy"):
        table[col] = table[col].fillna(table[col].median())
    return table


def _columns(path: Path, *names: str) -> list[list]:
    """Columns ``names`` of a CSV file (values as float where they parse)."""
    with open(path, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if rows and not set(names) <= set(rows[0]):
        raise DatasetError(f"{path}: columns {sorted(set(names) - set(rows[0]))} missing")
    out = []
    for name in names:
        values = []
        for r in rows:
            try:
                values.append(float(r[name]))
            except ValueError:
                values.append(r[name].strip())
        out.append(values)
    return out


def _row(name, charge, mult, lg_k1, fold, kind, label, authors_pred=None) -> dict:
    counts = formula_counts(name)
    parts, _ = parse_name(name)
    order = list(dict.fromkeys(s for s, _ in parts))
    norm = normalize_name(name)
    return {
        "cluster": name,
        "name": norm,
        "formula": norm.rstrip("-+"),
        "n_atoms": sum(counts.values()),
        "metals": ";".join(s for s in order if is_metal(s)),
        "ligands": ";".join(s for s in order if not is_metal(s)),
        "charge": charge,
        "multiplicity": mult,
        "multiplicity_source": "" if mult is None else ("fold label" if label else "spin density"),
        "lg_k1": lg_k1,
        "fold": fold,
        "kind": kind,
        "family": cluster_family(name),
        "rate": "measured" if lg_k1 is not None else "withheld",
        "authors_transfer_pred": authors_pred,
        "authors_label": label,
    }


def load_clusters(data_dir: Path | str | None = None):
    """The committed cluster table as a :class:`pandas.DataFrame`, one row per cluster.

    ``multiplicity`` and ``fold`` are nullable integers; ``lg_k1`` is NaN for the 33
    mixed clusters whose rates are withheld (``rate == "withheld"``).
    """
    path = Path(data_dir or DATA_DIR) / "clusters.csv"
    if not path.is_file():
        raise DatasetError(f"{path} not found: run 'cluster-gnn build-data' first")
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    for col in ("multiplicity", "fold"):
        table[col] = table[col].astype("Int64")
    for col in ("metals", "ligands", "authors_label"):
        table[col] = table[col].fillna("")
    return table


def load_nbo_descriptors(data_dir: Path | str | None = None):
    """The authors' DFT-NBO descriptors (DataFrame): all 24 for the 159 homonuclear clusters,
    the 15 they published for the 57 mixed ones (the other columns NaN, ``lg_k1`` NaN)."""
    path = Path(data_dir or DATA_DIR) / "nbo_descriptors.csv"
    if not path.is_file():
        raise DatasetError(f"{path} not found: run 'cluster-gnn build-data' first")
    return pd.read_csv(path)


def find_cluster(name: str, table=None):
    """The row of ``clusters.csv`` for a name in any accepted spelling (``Mo5S4¯``, ``Mo5S4-``).

    Raises :class:`UnknownClusterError` if it is not one of the 216.
    """
    table = load_clusters() if table is None else table
    try:
        key = normalize_name(name)
    except Exception:
        key = None
    hit = table[(table["name"] == key) | (table["cluster"] == str(name).strip())]
    if hit.empty:
        raise UnknownClusterError(
            f"unknown cluster {name!r}: not one of the {len(table)} clusters in data/clusters.csv"
        )
    return hit.iloc[0]


def structure_path(name: str, directory: Path | str | None = None) -> Path:
    """``data/structures/<normalised name>.xyz``."""
    return Path(directory or STRUCTURES_DIR) / f"{normalize_name(name)}.xyz"


def load_structure(name: str, directory: Path | str | None = None):
    """The committed global-minimum structure of a cluster (:class:`ase.Atoms`, Å).

    ``atoms.info`` holds energy (eV), charge, multiplicity, method and search settings.
    Raises :class:`StructureError` (reason ``"no-structure"``) if the search has not
    reached the cluster yet.
    """
    path = structure_path(name, directory)
    if not path.is_file():
        raise StructureError(f"no structure for {name} yet ({path.name} not under data/structures/)",
                             reason="no-structure")
    return read_cluster(path)
