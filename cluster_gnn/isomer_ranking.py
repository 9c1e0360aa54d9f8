"""The PBE ranking of isomer candidates as a resumable job, and what it found.

:func:`~cluster_gnn.dft_isomers.isomer_candidates` proposes the structures; here
:func:`run_isomer_job` runs a PBE single point with natural population analysis on each
(through :func:`~cluster_gnn.dft_job.run_dft_job`: resumable, one record per candidate under
``data/features/dft_isomers/``, named ``<cluster>~<k>``; candidate 0 is the xTB minimum, its
record shared with the DFT job both ways, :func:`adopt_isomer_minima`), and
:func:`rank_isomers`, :func:`isomer_summary` and :func:`motif_totals` say which candidate PBE
puts lowest, whether it differs from the xTB minimum and how the ligands bind before and
after. :func:`ranked_records` hands the PBE-lowest records to the DFT tables.

Energies are in eV.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .dft import smeared_result
from .dft_isomers import isomer_candidates, ligand_motifs
from .files import atomic_write

__all__ = ["ISOMERS_DIR_NAME", "candidate_name", "adopt_isomer_minima", "run_isomer_job", "rank_isomers",
           "isomer_summary", "motif_totals", "ranked_records", "TIE_EV"]

#: folder of the candidates' DFT records under ``data/features``
ISOMERS_DIR_NAME = "dft_isomers"

#: PBE energies of two candidates closer than this (eV) are a tie: one structure can hold SCF
#: solutions a few tenths of an eV apart (Mo3C4⁻ candidate 2: 0.21 eV, session 13), and the
#: ranking takes the lowest solution its ladder found.
TIE_EV = 0.3


def candidate_name(cluster: str, k: int) -> str:
    """The DFT record name of candidate ``k`` of ``cluster`` (``Mo5S4-~0`` is the xTB minimum)."""
    return f"{cluster}~{k}"


def _usable(record: dict, config) -> bool:
    """Whether a record can stand in for a single point at ``config``: converged at the same
    level of theory to an unsmeared energy, or failed in the SCF itself with the very same
    settings, convergence ladder included (every rung tried to the end: a run again fails the
    same way; a timeout is not such a failure)."""
    from .dft import DFTConfig

    if record.get("status") == "failed":
        try:
            return record.get("reason") == "scf" and DFTConfig.from_dict(record.get("config") or {}) == config
        except (TypeError, ValueError):  # a config of another version
            return False
    return record.get("status") == "ok" and config.same_theory(record.get("config")) and not smeared_result(record)


def adopt_isomer_minima(out_dir, main_dir, config=None, on_record=None) -> list:
    """Give the DFT job the records of xTB minima (``<cluster>~0``, made here with ``config``,
    default settings, and not copied from the job) that it lacks or failed, as
    ``main_dir/<cluster>.json``, so no single point runs twice (the job still checks structure
    and multiplicity): converged ones, and SCF failures with the same settings where the job
    has no record. ``on_record(path)`` is called for each file written; returns the clusters
    adopted."""
    import json

    from .dft import DFTConfig
    from .dft_job import write_record

    config = config or DFTConfig()

    def status(path):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    adopted = []
    for path in sorted(Path(out_dir).glob("*~0.json")):
        record, name = status(path), path.name[: -len("~0.json")]
        target = Path(main_dir) / f"{name}.json"
        held = status(target)
        if (not _usable(record, config) or "reused_from" in record
                or (held.get("status") == "ok" and not smeared_result(held))
                or (record.get("status") == "failed" and held)):  # a failure only where the job has nothing
            continue
        record.update(cluster=name, adopted_from=path.name)
        write_record(target, record)
        adopted.append(name)
        if on_record is not None:
            on_record(target)
    return adopted


def _prepare_cluster(name: str, out_dir: Path, main_dir, config, candidates_kw, on_record) -> list:
    """The candidates of one cluster (made once, then read from
    ``out_dir/<cluster>.candidates.xyz``), with candidate 0's record adopted from the DFT job's
    record of the xTB minimum where that one is usable (:func:`_usable`: converged, or an SCF
    failure with the same settings, which a second run would repeat)."""
    import json

    from ase.io import read, write

    from .dft_job import write_record

    path = out_dir / f"{name}.candidates.xyz"
    if not path.is_file():
        candidates = isomer_candidates(name, **(candidates_kw or {}))
        with atomic_write(path) as fh:
            write(fh, candidates, format="extxyz")
        if on_record is not None:
            on_record(path)
    candidates = read(path, index=":")
    main = Path(main_dir) / f"{name}.json" if main_dir else None
    first = out_dir / f"{candidate_name(name, 0)}.json"
    if main is not None and main.is_file() and (not first.is_file() or smeared_result(json.loads(first.read_text()))):
        record = json.loads(main.read_text())
        if _usable(record, config):
            record.update(cluster=candidate_name(name, 0), reused_from=str(main.name))
            write_record(first, record)
            if on_record is not None:
                on_record(first)
    return candidates


def run_isomer_job(names, out_dir, main_dir=None, config=None, time_limit_s: float = 3600.0, on_record=None,
                   progress: bool = True, candidates_kw: dict | None = None, workers: int = 1,
                   scheduler=None) -> dict:
    """Rank the isomers of each cluster in ``names`` by PBE, resumably.

    Per cluster: the candidates (:func:`isomer_candidates`) are made once and written to
    ``out_dir/<cluster>.candidates.xyz``; candidate 0's record is taken from the DFT job's
    record of the xTB minimum in ``main_dir`` when it converged there at the same level of
    theory (:meth:`~cluster_gnn.dft.DFTConfig.same_theory` of ``config``, default settings);
    then :func:`~cluster_gnn.dft_job.run_dft_job` runs the rest, one record per candidate,
    skipping finished ones, on ``workers`` processes or on a Dask cluster given its
    ``scheduler``. The candidates of consecutive clusters go together until there are twice
    as many as the workers (local processes, or the Dask cluster's threads when it starts), so
    no worker waits for one cluster's slowest candidate. ``on_record(path)`` is called for each
    file written.
    Returns the summed counts of the DFT job."""
    from .dft import DFTConfig
    from .dft_job import run_dft_job
    from .parallel import dask_client, executor_slots

    config = config or DFTConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {"done": 0, "failed": 0, "skipped": 0}
    with dask_client(scheduler) as client:
        slots = max(1, workers) if client is None else executor_slots(client.get_executor())
        batch = []
        for n, name in enumerate(names, 1):
            candidates = _prepare_cluster(name, out_dir, main_dir, config, candidates_kw, on_record)
            if progress:
                print(f"[{n}/{len(names)}] {name}: {len(candidates)} candidates "
                      f"({', '.join(a.info['source'] + ' ' + str(a.info['motifs']) for a in candidates)})", flush=True)
            batch += [(candidate_name(name, k), a, int(a.info["charge"]), int(a.info["multiplicity"]))
                      for k, a in enumerate(candidates)]
            if len(batch) < 2 * slots and n < len(names):
                continue
            got = run_dft_job(batch, out_dir, config, workers=workers, time_limit_s=time_limit_s,
                              on_record=on_record, progress=progress, scheduler=client)
            batch = []
            for key in counts:
                counts[key] += got.get(key, 0)
    return counts


def rank_isomers(out_dir) -> pd.DataFrame:
    """One row per candidate of every cluster with a candidates file in ``out_dir``:
    ``cluster``, ``candidate`` (0 = the xTB minimum), ``source``, ``terminal``/``mu2``/``mu3``
    (motifs of the ``ligand`` element rearranged, S for candidates made before C and N
    were), ``status`` (``ok``, ``failed``, ``stale`` or ``pending``), ``energy`` (eV), ``rung``,
    ``relative_energy`` (eV above the lowest converged candidate of the cluster), ``lowest``,
    and ``complete`` (every candidate of the cluster has a record). Every energy compared is
    unsmeared: a record with a smeared energy (:func:`~cluster_gnn.dft.smeared_result`, made
    before the smeared rung was polished) is ``stale``, not ranked, until the job redoes it."""
    from ase.io import read

    from .dft_job import load_dft_results

    out_dir = Path(out_dir)
    records = load_dft_results(out_dir)
    rows = []
    for path in sorted(out_dir.glob("*.candidates.xyz")):
        cluster = path.name[: -len(".candidates.xyz")]
        for k, atoms in enumerate(read(path, index=":")):
            record = records.get(candidate_name(cluster, k), {})
            hot = smeared_result(record)
            result = {} if hot else record.get("result") or {}
            rows.append({"cluster": cluster, "candidate": k, "source": atoms.info.get("source", ""),
                         "ligand": atoms.info.get("ligand", "S"), **ligand_motifs(atoms, atoms.info.get("ligand", "S")),
                         "status": "stale" if hot else record.get("status", "pending"),
                         "energy": result.get("energy", np.nan), "rung": result.get("rung")})
    columns = ["cluster", "candidate", "source", "ligand", "terminal", "mu2", "mu3", "status", "energy", "rung"]
    table = pd.DataFrame(rows, columns=columns)
    low = table.groupby("cluster")["energy"].transform("min")
    table["relative_energy"] = (table["energy"] - low).round(4)
    table["lowest"] = table["energy"].notna() & (table["energy"] == low)
    table["complete"] = table.groupby("cluster")["status"].transform(lambda s: bool(s.isin(["ok", "failed"]).all()))
    return table.astype({"complete": bool})


def isomer_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per cluster whose ranking is complete with a converged candidate: the ``ligand``
    rearranged, its motifs in the xTB minimum (``xtb_motifs``, ``"terminal/mu2/mu3"``) and
    in the PBE-lowest candidate (``dft_motifs``), that candidate (``dft_candidate``,
    ``dft_source``), ``changed`` (the PBE-lowest is not the xTB minimum), ``xtb_converged``
    (whether PBE converged on the xTB minimum at all; V5C5-'s chain fails every rung), the
    xTB minimum's energy above the lowest (``xtb_above``, eV; NaN where it did not converge),
    the next converged candidate's (``next_above``, eV; NaN with one) and ``tie``
    (``next_above`` below :data:`TIE_EV`)."""
    rows = []
    for cluster, group in table[table["complete"]].groupby("cluster"):
        first, ok = group[group["candidate"] == 0], group[group["status"] == "ok"]
        if first.empty or ok.empty:
            continue
        converged = first["status"].iloc[0] == "ok"
        best = ok.loc[ok["energy"].idxmin()]
        above = np.sort(ok["energy"].to_numpy())[1:2] - best["energy"]
        next_above = round(float(above[0]), 3) if above.size else np.nan
        motifs = lambda r: f"{int(r['terminal'])}/{int(r['mu2'])}/{int(r['mu3'])}"  # noqa: E731
        rows.append({"cluster": cluster, "ligand": first["ligand"].iloc[0], "xtb_motifs": motifs(first.iloc[0]),
                     "dft_motifs": motifs(best),
                     "dft_candidate": int(best["candidate"]), "dft_source": best["source"],
                     "changed": int(best["candidate"]) != 0, "xtb_converged": converged,
                     "xtb_above": round(float(first["relative_energy"].iloc[0]), 3),  # NaN unconverged
                     "next_above": next_above, "tie": bool(next_above < TIE_EV),
                     "n_ok": len(ok), "n_candidates": len(group)})
    return pd.DataFrame(rows)


def motif_totals(summary: pd.DataFrame) -> pd.DataFrame:
    """Per ligand element of :func:`isomer_summary`: ``clusters`` ranked, how many ``changed``,
    and the ligand atoms that are terminal/mu2/mu3 summed over them, in the xTB minima
    (``xtb_motifs``) and in the PBE-lowest structures (``dft_motifs``)."""
    rows = []
    for ligand, group in summary.groupby("ligand"):
        total = {k: np.sum([list(map(int, m.split("/"))) for m in group[k]], axis=0) for k in ("xtb_motifs", "dft_motifs")}
        rows.append({"ligand": ligand, "clusters": len(group), "changed": int(group["changed"].sum()),
                     **{k: "/".join(map(str, v)) for k, v in total.items()}})
    return pd.DataFrame(rows, columns=["ligand", "clusters", "changed", "xtb_motifs", "dft_motifs"])


def ranked_records(out_dir) -> dict:
    """``{cluster: (record, label)}``: the DFT record of the PBE-lowest candidate of every
    cluster whose ranking is complete and whose lowest is not the xTB minimum, with a label
    such as ``PBE-ranked isomer (ml-start S 0/2/0)``; the record also carries ``ligand``,
    ``motifs`` (``"0/2/0"``) and ``next_above`` (eV, the next candidate). The input ``ranked`` of
    :func:`~cluster_gnn.dft_job.dft_tables`."""
    from .dft_job import load_dft_results

    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return {}
    summary = isomer_summary(rank_isomers(out_dir))
    if summary.empty:
        return {}
    records = load_dft_results(out_dir)
    return {row.cluster: ({**records[candidate_name(row.cluster, row.dft_candidate)], "ligand": row.ligand,
                           "motifs": row.dft_motifs, "next_above": row.next_above},
                          f"PBE-ranked isomer ({row.dft_source} {row.ligand} {row.dft_motifs})")
            for row in summary.itertuples() if row.changed}
