"""Charge and spin multiplicity of a cluster: estimates and the defaults for an upload.

Restricted xTB with smearing cannot rank spin states, so the multiplicity of a cluster
without a published one is estimated from the authors' homonuclear multiplicities
(:func:`estimate_multiplicity`). :func:`charge_and_multiplicity` is the one rule for a
structure whose charge or multiplicity is not given; the CLI and the app both use it.
"""
from __future__ import annotations

import numpy as np
from ase.data import atomic_numbers

from .datasets import load_clusters
from .structures import check_spin, electron_count, formula_counts, is_metal, parse_name

__all__ = ["DEFAULT_CHARGE", "unpaired_per_metal", "estimate_multiplicity", "multiplicities_for",
           "default_charge_and_multiplicity", "charge_and_multiplicity"]

#: Charge in e of an uploaded cluster whose file does not give one: -1, since 194 of the
#: 216 clusters of the data set (all but 22 neutrals) are anions, as in the experiments.
DEFAULT_CHARGE = -1


def unpaired_per_metal(table=None) -> dict[str, float]:
    """Median unpaired electrons per metal atom, ``(M - 1) / n_metal``, of the authors'
    homonuclear clusters, per metal (e.g. Fe 3, Co 2, Rh 1.5, V 0.4, Ta 0.33, Mo 0.25)."""
    table = load_clusters() if table is None else table
    homo = table[table["multiplicity"].notna() & (table["metals"].str.count(";") == 0)]
    rates: dict[str, list[float]] = {}
    for _, row in homo.iterrows():
        n_metal = formula_counts(row["name"])[row["metals"]]
        rates.setdefault(row["metals"], []).append((int(row["multiplicity"]) - 1) / n_metal)
    return {metal: float(np.median(v)) for metal, v in rates.items()}


def estimate_multiplicity(name: str, charge: int | None = None, rates: dict | None = None) -> int:
    """Spin multiplicity 2S+1 of a cluster without a published one.

    The unpaired electrons are the per-metal medians of :func:`unpaired_per_metal`,
    summed over the metal atoms and rounded to the nearest count the electron number
    allows. Leave-one-out on the 159 homonuclear clusters this recovers the authors'
    multiplicity exactly for 69 % (MAE 0.73 unpaired electrons; always taking the lowest
    multiplicity: 61 %, MAE 2.16). Metals without data count 0.
    """
    rates = unpaired_per_metal() if rates is None else rates
    counts = formula_counts(name)
    charge = parse_name(name)[1] if charge is None else int(charge)
    raw = sum(rates.get(s, 0.0) * n for s, n in counts.items() if is_metal(s))
    n_el = sum(atomic_numbers[s] * n for s, n in counts.items()) - charge
    u = int(round(raw))
    if (n_el - u) % 2:
        u = u + 1 if (u == 0 or raw >= u) else u - 1
    return u + 1


def multiplicities_for(symbols: list[str], charge: int, authors_multiplicity=None, name: str | None = None) -> list[int]:
    """Spin states to search: the authors' multiplicity where published, else
    :func:`estimate_multiplicity` (needs ``name``), else the lowest the electron count allows."""
    if authors_multiplicity is not None and not (isinstance(authors_multiplicity, float) and np.isnan(authors_multiplicity)):
        return [int(authors_multiplicity)]
    if name is not None:
        return [estimate_multiplicity(name, charge)]
    n_el = sum(atomic_numbers[s] for s in symbols) - charge
    return [1] if n_el % 2 == 0 else [2]


def default_charge_and_multiplicity(atoms, charge: int | None = None,
                                    multiplicity: int | None = None) -> tuple[int, int]:
    """Charge (e) and multiplicity 2S+1 to use for a structure, unchecked.

    Each is, in order: the value given here, the value in ``atoms.info`` (an XYZ comment
    line such as ``charge=-1 multiplicity=2``), else the default: charge
    :data:`DEFAULT_CHARGE` (-1, an anion like most of the data set) and the multiplicity
    :func:`estimate_multiplicity` gives for the formula at that charge (the lowest the
    electron count allows when the cluster has no electrons left to place).
    """
    charge = int(atoms.info.get("charge", DEFAULT_CHARGE) if charge is None else charge)
    if multiplicity is None:
        multiplicity = atoms.info.get("multiplicity")
    if multiplicity is None:
        n_el = electron_count(atoms.get_atomic_numbers(), charge)
        multiplicity = estimate_multiplicity(atoms.get_chemical_formula(), charge) if n_el > 0 else 1
    return charge, int(multiplicity)


def charge_and_multiplicity(atoms, charge: int | None = None, multiplicity: int | None = None) -> tuple[int, int]:
    """:func:`default_charge_and_multiplicity`, checked with
    :func:`~cluster_gnn.structures.check_spin` (:class:`StructureError`, reason ``"spin"``).
    The one rule the CLI and the app use for an uploaded structure."""
    charge, multiplicity = default_charge_and_multiplicity(atoms, charge, multiplicity)
    check_spin(atoms.get_atomic_numbers(), charge, multiplicity)
    return charge, multiplicity
