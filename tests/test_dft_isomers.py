"""PBE ranking of isomers: ligand motifs, bridged and capping starts, the ranking table.

The geometry and ranking tests need neither PySCF nor CHGNet; the end-to-end run skips
cleanly without the ``[dft]`` extra."""
import json

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.io import write

from cluster_gnn.datasets import load_nbo_descriptors, load_structure
from cluster_gnn.dft import DFTResult
from cluster_gnn.dft_isomers import LIGAND_GEOMETRY, isomer_clusters, ligand_motifs, ligand_starts, rearranged_ligand
from cluster_gnn.isomer_ranking import (candidate_name, isomer_summary, motif_totals, rank_isomers, ranked_records,
                                        run_isomer_job)
from cluster_gnn.dft_job import dft_tables
from cluster_gnn.structures import fragments


def _mo3(*s_positions):
    """An Mo3 triangle (2.6 Å edges, in the xy plane) with S atoms at the given positions."""
    mo = [[0, 0, 0], [2.6, 0, 0], [1.3, 2.252, 0]]
    return Atoms("Mo3" + "S" * len(s_positions), positions=mo + [list(p) for p in s_positions])


def test_sulfur_motifs_count_the_metals_each_s_binds():
    capping = [1.3, 0.751, 1.85]  # above the triangle's centre: 2.33 Å from each Mo
    bridging = [1.3, -1.6, 0.0]  # outside the Mo0-Mo1 edge: 2.06 Å from both, 3.85 Å from Mo2
    terminal = [-2.1, -0.5, 0.0]
    assert ligand_motifs(_mo3(capping, bridging, terminal)) == {"terminal": 1, "mu2": 1, "mu3": 1}
    assert ligand_motifs(_mo3()) == {"terminal": 0, "mu2": 0, "mu3": 0}


def test_starts_put_sulfur_on_faces_edges_and_tops_without_clashes():
    minimum = load_structure("Mo3S2-")  # xTB minimum: both S terminal
    assert ligand_motifs(minimum) == {"terminal": 2, "mu2": 0, "mu3": 0}
    starts = ligand_starts(minimum, n_starts=8)
    patterns = [tuple(ligand_motifs(a).values()) for a in starts]
    assert patterns[0] == (0, 0, 2)  # caps the two faces of the planar Mo3 first
    assert patterns[1] == (0, 2, 0)  # then bridges edges
    assert len(starts) >= 4
    for atoms in starts:
        assert sorted(atoms.get_chemical_symbols()) == sorted(minimum.get_chemical_symbols())
        d = atoms.get_all_distances()[np.triu_indices(len(atoms), 1)]
        assert d.min() > 2.0 and len(fragments(atoms)) == 1
        assert atoms.info["charge"] == -1 and atoms.info["multiplicity"] == minimum.info["multiplicity"]
    # an S-C cluster: the terminal C of the xTB minimum is placed anew with the S, hydrogen stays
    mixed = load_structure("Mo2S2C-")
    assert ligand_motifs(mixed, "C") == {"terminal": 1, "mu2": 0, "mu3": 0}
    starts = ligand_starts(mixed)
    assert starts and all(sorted(a.get_chemical_symbols()) == sorted(mixed.get_chemical_symbols()) for a in starts)
    assert max(ligand_motifs(a, "C")["mu2"] + ligand_motifs(a, "C")["mu3"] for a in starts) >= 1
    hydride = load_structure("Ta3N3H-")
    h = hydride.get_chemical_symbols().index("H")
    for atoms in ligand_starts(hydride, n_starts=3):
        assert np.allclose(atoms.positions[[i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "H"]],
                           hydride.positions[h])


def test_carbides_get_bridging_carbon_and_side_on_dimers_where_xtb_has_a_chain():
    """Ta2C3-: the xTB minimum is a C3 chain on one Ta; the starts put isolated C on the Ta2
    edge's bridging sites and, every other start, C2 dimers; a single metal gets sites on a
    sphere; hydrides have nothing to rearrange."""
    minimum = load_structure("Ta2C3-")
    assert rearranged_ligand(minimum) == "C" and rearranged_ligand(load_structure("Mo2S2C-")) == "S"
    assert rearranged_ligand(["Ta", "H", "H"]) is None and ligand_starts(load_structure("Ta3H5-")) == []
    assert ligand_motifs(minimum, "C")["mu2"] == 0
    starts = ligand_starts(minimum, n_starts=8)
    assert len(starts) >= 3
    for k, atoms in enumerate(starts):
        assert sorted(atoms.get_chemical_symbols()) == sorted(minimum.get_chemical_symbols())
        c = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "C"]
        d = atoms.get_all_distances()
        cc = d[np.ix_(c, c)][np.triu_indices(len(c), 1)]
        assert d[np.triu_indices(len(atoms), 1)].min() > 1.2 and len(fragments(atoms)) == 1
        if k % 2 == 0:
            assert cc.min() >= 2.4  # isolated carbon atoms
        else:
            assert np.isclose(cc.min(), 1.30, atol=0.01)  # at least one side-on C2
    assert max(ligand_motifs(a, "C")["mu2"] for a in starts) >= 2
    single = ligand_starts(load_structure("TaC4-"), n_starts=4)
    assert single and all(len(fragments(a)) == 1 for a in single)


def test_a_single_metal_atom_gets_a_fan_of_its_carbon_atoms_and_larger_frameworks_none():
    """TaC5-: its xTB minimum is a C5 chain on Ta; the last start wraps the C5 around the Ta
    (a fan, every C bound to Ta), which sites on a sphere do not make."""
    def fan_around(atoms):  # the metal atoms with every C one chain around them, equally far
        d, symbols = atoms.get_all_distances(), atoms.get_chemical_symbols()
        carbon = [i for i, s in enumerate(symbols) if s == "C"]
        if len(fragments(atoms[carbon])) != 1:
            return []
        return [m for m, s in enumerate(symbols) if s != "C" and np.ptp(d[m, carbon]) < 1e-6]

    starts = ligand_starts(load_structure("TaC5-"))
    fan = starts[-1]
    assert fan_around(fan) == [fan.get_chemical_symbols().index("Ta")]
    carbon = [i for i, s in enumerate(fan.get_chemical_symbols()) if s == "C"]
    d = fan.get_all_distances()
    assert len(carbon) == 5 and d[fan_around(fan)[0], carbon].max() < LIGAND_GEOMETRY["C"]["cutoff"]  # all bound
    neighbours = np.sort(d[np.ix_(carbon, carbon)][np.triu_indices(5, 1)])[:4]  # the arc's four C-C bonds
    assert np.allclose(neighbours, LIGAND_GEOMETRY["C"]["dimer"], atol=1e-6) and len(fragments(fan)) == 1
    assert not any(fan_around(a) for a in starts[:-1])
    for name in ("Mo2C4-", "Ta3C3-"):  # two or more metal atoms: no fan
        assert not any(fan_around(a) for a in ligand_starts(load_structure(name)))


def test_a_dimetal_with_more_ligands_than_single_sites_gets_dimer_starts():
    """Ta2 offers 2 terminal and 4 bridging sites: Ta2C5- fits only with side-on C2 units, so
    dimers must be tried before any single-atom start has worked (it had no start at all)."""
    starts = ligand_starts(load_structure("Ta2C5-"))
    assert starts
    for start in starts:
        c = start.positions[[i for i, s in enumerate(start.get_chemical_symbols()) if s == "C"]]
        d = np.linalg.norm(c[:, None] - c[None], axis=-1)[np.triu_indices(5, 1)]
        assert np.sum(np.isclose(d, LIGAND_GEOMETRY["C"]["dimer"], atol=0.01)) >= 2  # two C2 units
        assert d.min() > 1.2


def test_an_xtb_minimum_with_its_metals_in_pieces_gets_starts_on_a_siblings_framework():
    """In the xTB minimum of V5C5- one V hangs off a C chain 8.5 Å from the other four: starts
    built on that framework all fell apart, and the ranking had only the minimum, whose SCF
    never converged. The starts now use the intact V5 framework of another V5 cluster."""
    from cluster_gnn.dft_isomers import _metal_framework_intact, sibling_framework

    minimum = load_structure("V5C5-")
    assert not _metal_framework_intact(minimum)
    assert all(len(fragments(s)) > 1 for s in ligand_starts(minimum))  # the old failure
    moved = sibling_framework(minimum)
    assert moved.info["framework"] != "V5C5-" and sorted(moved.get_chemical_symbols()) == sorted(
        minimum.get_chemical_symbols())
    assert _metal_framework_intact(moved) and _metal_framework_intact(load_structure(moved.info["framework"]))
    starts = ligand_starts(moved)
    assert len(starts) >= 4 and all(len(fragments(s)) == 1 for s in starts)
    assert sibling_framework(load_structure("Rh2Co2H3-")) is None  # H would not fit a borrowed framework
    assert _metal_framework_intact(load_structure("Mo5S2-"))


def test_an_s_c_cluster_gets_candidates_with_the_s_alone_and_with_every_ligand_placed(tmp_path):
    """Mo2S2C-: half the ML starts move the S alone (C where the xTB minimum has it), half
    move S and C; a Lennard-Jones stand-in replaces CHGNet (the test is about the mix)."""
    from ase.calculators.lj import LennardJones

    from cluster_gnn.dft_isomers import isomer_candidates

    candidates = isomer_candidates("Mo2S2C-", n_xtb=0, calculator=LennardJones(sigma=2.2, epsilon=0.1, rc=6.0))
    assert candidates[0].info["source"] == "xtb-minimum"
    families = [a.info["rearranged"] for a in candidates[1:]]
    assert "S" in families and "S,C" in families
    for atoms in candidates[1:]:
        if atoms.info["rearranged"] == "S":  # the pre-relaxation moves every atom a little
            assert ligand_motifs(atoms, "C") == ligand_motifs(candidates[0], "C")
        assert atoms.info["ligand"] == "S"
    write(tmp_path / "c.xyz", candidates, format="extxyz")  # the job reads them back from this file
    from ase.io import read

    back = read(tmp_path / "c.xyz", index=":")
    assert [a.info["motifs"] for a in back] == [a.info["motifs"] for a in candidates]
    assert [a.info.get("rearranged") for a in back] == [a.info.get("rearranged") for a in candidates]


def test_the_isomer_stage_covers_every_cluster_with_s_c_or_n_smallest_first_withheld_last():
    from cluster_gnn.datasets import load_clusters

    names = isomer_clusters()
    table = load_clusters().set_index("name").loc[names]
    assert {"Mo2S-", "Ta2C3-", "Ta3N3-", "Fe2C2-", "FeVS2-", "Fe2TaC2-"} <= set(names)
    assert not {"Ta3H5-", "Rh3-", "MoC-", "Rh2Co2H3-"} & set(names)  # nothing to rearrange; a diatomic
    mixed, withheld = table["kind"] != "homonuclear", table["lg_k1"].isna()
    three_d = table["metals"].str.contains("Fe|V|Co") & ~mixed
    group = np.select([~mixed & ~three_d, mixed & ~withheld, three_d, mixed & withheld], [0, 1, 2, 3])
    assert set(group) == {0, 1, 2, 3} and (group == 1).sum() == 24  # Mo, Ta; measured mixed; Fe, V, Co; withheld
    withheld = group == 3
    assert not withheld[:-withheld.sum()].any()  # the withheld mixed ones last
    order = list(zip(table["n_atoms"][~withheld], group[~withheld]))
    assert order == sorted(order) and order[0] == (3, 0) and order[-1][0] == 13  # Mo2S- first, 13-atom Mo clusters last


def test_a_record_counts_at_the_same_level_of_theory_however_its_scf_got_there():
    """The isomer job reuses the DFT job's record of the xTB minimum when functional, basis,
    ECPs, grid, convergence and smearing width agree; a record written before a field was
    added (no ``unsmeared_elements``) still counts, another basis does not."""
    from cluster_gnn.dft import DFTConfig

    config = DFTConfig()
    stored = json.loads(json.dumps(config.to_dict()))
    assert DFTConfig.from_dict(stored) == config
    older = {k: v for k, v in stored.items() if k != "unsmeared_elements"}
    assert DFTConfig.from_dict(older) == config and config.same_theory(older)
    assert not config.same_theory({**stored, "basis": "def2-TZVP"}) and not config.same_theory(None)
    assert config.same_theory({**stored, "max_cycles": 200})  # how the SCF got there


def _record(name, energy, rung="smeared", status="ok"):
    out = {"cluster": name, "status": status}
    if status == "ok":
        out["result"] = {"energy": energy, "rung": rung}
    else:
        out["reason"] = "scf"
    return out


def test_a_smeared_energy_is_not_ranked_until_it_is_redone(tmp_path):
    """E(T) of a smeared density lies ~0.7 eV above the unsmeared energy: a ranking never
    compares it, and the job redoes the record."""
    from cluster_gnn.dft_job import record_state

    terminal, capped = _mo3([-2.1, -0.5, 0]), _mo3([1.3, 0.751, 1.85])
    for atoms, source in ((terminal, "xtb-minimum"), (capped, "ml-start")):
        atoms.info["source"] = source
    write(tmp_path / "Mo3S-.candidates.xyz", [terminal, capped], format="extxyz")
    hot = {**_record("Mo3S-~0", -101.0), "positions": terminal.positions.tolist()}
    hot["result"]["smearing"] = 0.01
    (tmp_path / "Mo3S-~0.json").write_text(json.dumps(hot))
    (tmp_path / "Mo3S-~1.json").write_text(json.dumps(_record("Mo3S-~1", -100.4, rung="newton")))
    table = rank_isomers(tmp_path).set_index("candidate")
    assert table.loc[0, "status"] == "stale" and np.isnan(table.loc[0, "energy"])
    assert table.loc[1, "lowest"] and not table["complete"].any()
    assert isomer_summary(rank_isomers(tmp_path)).empty
    assert record_state(tmp_path / "Mo3S-~0.json", terminal, 2) == ("stale", "smeared energy")
    hot["result"]["smearing"] = 0.0  # polished: ranked
    (tmp_path / "Mo3S-~0.json").write_text(json.dumps(hot))
    assert record_state(tmp_path / "Mo3S-~0.json", terminal, 2) == ("ok", None)
    assert rank_isomers(tmp_path).set_index("candidate").loc[0, "lowest"]


def test_ranking_picks_the_lowest_converged_candidate_and_reports_motifs(tmp_path):
    terminal, capped, bridged = _mo3([-2.1, -0.5, 0]), _mo3([1.3, 0.751, 1.85]), _mo3([1.3, -1.6, 0])
    for atoms, source in ((terminal, "xtb-minimum"), (capped, "ml-start"), (bridged, "ml-start")):
        atoms.info["source"] = source
    write(tmp_path / "Mo3S-.candidates.xyz", [terminal, capped, bridged], format="extxyz")
    write(tmp_path / "Mo2S-.candidates.xyz", [terminal, capped], format="extxyz")  # still pending
    energies = {0: -100.0, 1: -100.4, 2: None}
    for k, e in energies.items():
        record = _record(candidate_name("Mo3S-", k), e, rung="newton" if k == 1 else "smeared",
                         status="ok" if e is not None else "failed")
        (tmp_path / f"{candidate_name('Mo3S-', k)}.json").write_text(json.dumps(record))
    (tmp_path / f"{candidate_name('Mo2S-', 0)}.json").write_text(json.dumps(_record("Mo2S-~0", -50.0)))
    table = rank_isomers(tmp_path)
    mo3s = table[table.cluster == "Mo3S-"].set_index("candidate")
    assert list(mo3s.status) == ["ok", "ok", "failed"]
    assert mo3s.loc[1, "lowest"] and not mo3s.loc[0, "lowest"]
    assert mo3s.loc[0, "relative_energy"] == pytest.approx(0.4)
    assert mo3s["complete"].all()
    assert not table[table.cluster == "Mo2S-"]["complete"].any()
    summary = isomer_summary(table)
    assert list(summary.cluster) == ["Mo3S-"]  # the pending cluster is not summarised
    row = summary.iloc[0]
    assert (row.xtb_motifs, row.dft_motifs, row.dft_candidate, bool(row.changed)) == ("1/0/0", "0/0/1", 1, True)
    assert row.xtb_above == pytest.approx(0.4) and row.n_ok == 2
    assert row.next_above == pytest.approx(0.4) and not row.tie  # the failed candidate is not a runner-up
    ranked = ranked_records(tmp_path)
    assert list(ranked) == ["Mo3S-"] and ranked["Mo3S-"][0]["cluster"] == "Mo3S-~1"
    assert ranked["Mo3S-"][1] == "PBE-ranked isomer (ml-start S 0/0/1)"
    two = pd.concat([summary, summary.assign(cluster="Mo4S2-", xtb_motifs="2/0/0", dft_motifs="2/0/0", changed=False)])
    totals = motif_totals(two).set_index("ligand").loc["S"]
    assert (totals.clusters, totals.changed, totals.xtb_motifs, totals.dft_motifs) == (2, 1, "3/0/0", "2/0/1")


def _tied_mo3s(directory):
    """A complete Mo3S- ranking whose runner-up lies 0.15 eV above the lowest (the xTB minimum 0.4)."""
    terminal, capped, bridged = _mo3([-2.1, -0.5, 0]), _mo3([1.3, 0.751, 1.85]), _mo3([1.3, -1.6, 0])
    for atoms, source in ((terminal, "xtb-minimum"), (capped, "ml-start"), (bridged, "ml-start")):
        atoms.info["source"] = source
    write(directory / "Mo3S-.candidates.xyz", [terminal, capped, bridged], format="extxyz")
    for k, e in {0: -100.0, 1: -100.4, 2: -100.25}.items():
        (directory / f"{candidate_name('Mo3S-', k)}.json").write_text(json.dumps(_record(candidate_name("Mo3S-", k), e)))


def test_a_runner_up_within_the_tie_margin_marks_the_ranking_a_tie(tmp_path):
    _tied_mo3s(tmp_path)
    row = isomer_summary(rank_isomers(tmp_path)).iloc[0]
    assert row.dft_candidate == 1 and row.xtb_above == pytest.approx(0.4)
    assert row.next_above == pytest.approx(0.15) and row.tie
    assert ranked_records(tmp_path)["Mo3S-"][0]["next_above"] == pytest.approx(0.15)


def test_a_cluster_whose_xtb_minimum_pbe_cannot_converge_takes_its_descriptors_from_the_ranking(tmp_path):
    """V5C5-'s xTB chain fails every rung of the ladder; its other candidates converge, so the
    ranking still gives the cluster a PBE structure and descriptors (no per-atom rows: those
    belong to the drawn structure, which has no DFT)."""
    isomers, main = tmp_path / "isomers", tmp_path / "dft"
    isomers.mkdir(), main.mkdir()
    terminal, capped, bridged = _mo3([-2.1, -0.5, 0]), _mo3([1.3, 0.751, 1.85]), _mo3([1.3, -1.6, 0])
    for atoms, source in ((terminal, "xtb-minimum"), (capped, "ml-start"), (bridged, "ml-start")):
        atoms.info["source"] = source
    write(isomers / "Mo3S-.candidates.xyz", [terminal, capped, bridged], format="extxyz")
    failed = _record("Mo3S-~0", None, status="failed")
    (isomers / "Mo3S-~0.json").write_text(json.dumps(failed))
    for k, e in ((1, -100.4), (2, -100.2)):
        record = {"cluster": candidate_name("Mo3S-", k), "status": "ok", "result": _result([0.3, 0.1, -1.4], e).to_dict()}
        (isomers / f"{candidate_name('Mo3S-', k)}.json").write_text(json.dumps(record))
    row = isomer_summary(rank_isomers(isomers)).set_index("cluster").loc["Mo3S-"]
    assert not row.xtb_converged and np.isnan(row.xtb_above) and row.changed and row.dft_candidate == 1
    assert row.next_above == pytest.approx(0.2) and row.tie and row.n_ok == 2
    ranked = ranked_records(isomers)
    assert ranked["Mo3S-"][0]["cluster"] == "Mo3S-~1"
    (main / "Mo3S-.json").write_text(json.dumps({**failed, "cluster": "Mo3S-"}))
    descriptors, atoms = dft_tables(main, ranked)
    assert descriptors.set_index("cluster").loc["Mo3S-", "1_Qmin"] == pytest.approx(0.1)
    assert "Mo3S-" not in set(atoms.get("cluster", []))


def test_an_scf_failure_is_shared_between_the_dft_job_and_the_ranking_but_a_timeout_is_not(tmp_path, monkeypatch):
    """Every rung of the ladder failing repeats itself with the same settings, so the 30-50 min
    it cost are not spent twice; a timeout, or a failure with another ladder, is run again."""
    import cluster_gnn.dft_job
    import cluster_gnn.isomer_ranking as ranking
    from cluster_gnn.dft import DFTConfig
    from cluster_gnn.isomer_ranking import adopt_isomer_minima

    def two_candidates(name, **kw):
        out = []
        for k in range(2):
            a = Atoms("Mo2S", positions=[[0, 0, 0], [2.2, 0, 0], [1.1, 1.5 + 0.1 * k, 0]])
            a.info.update(source="xtb-minimum" if k == 0 else "ml-start", motifs="0/1/0", charge=-1, multiplicity=2)
            out.append(a)
        return out

    monkeypatch.setattr(ranking, "isomer_candidates", two_candidates)
    monkeypatch.setattr(cluster_gnn.dft_job, "run_dft_job", lambda jobs, *a, **kw: {"done": 0, "failed": 0, "skipped": 0})
    isomers, main = tmp_path / "isomers", tmp_path / "dft"
    isomers.mkdir(), main.mkdir()
    same, other = DFTConfig().to_dict(), DFTConfig(atomic_start=False).to_dict()
    scf = {"status": "failed", "reason": "scf", "config": same}
    (main / "Mo2S-.json").write_text(json.dumps({**scf, "cluster": "Mo2S-"}))
    (main / "Mo3S-.json").write_text(json.dumps({**scf, "cluster": "Mo3S-", "reason": "timeout"}))
    (main / "Mo4S-.json").write_text(json.dumps({**scf, "cluster": "Mo4S-", "config": other}))
    run_isomer_job(["Mo2S-", "Mo3S-", "Mo4S-"], isomers, main_dir=main, progress=False)
    adopted = json.loads((isomers / "Mo2S-~0.json").read_text())
    assert adopted["status"] == "failed" and adopted["reused_from"] == "Mo2S-.json"
    assert not (isomers / "Mo3S-~0.json").exists() and not (isomers / "Mo4S-~0.json").exists()
    # the other way: the ranking's SCF failure fills a missing job record, never replaces one
    (isomers / "Ta3S2~0.json").write_text(json.dumps({**scf, "cluster": "Ta3S2~0"}))
    (isomers / "Mo3S-~0.json").write_text(json.dumps({**scf, "cluster": "Mo3S-~0"}))
    assert adopt_isomer_minima(isomers, main) == ["Ta3S2"]
    assert json.loads((main / "Mo3S-.json").read_text())["reason"] == "timeout"


def _result(charges, energy):
    n = len(charges)
    return DFTResult(symbols=["Mo", "Mo", "S"], charges=np.asarray(charges, float), s_valence=np.full(n, 0.5),
                     p_valence=np.zeros(n), d_valence=np.array([4.5, 4.6, 0.0]), spin=np.array([0.5, 0.5, 0.0]),
                     energy=energy, charge=-1, multiplicity=2, s2=0.76, s2_expected=0.75, rung="smeared",
                     smearing=0.0, cycles=20, seconds=5.0, method="PBE/def2-SVP")


def test_tables_take_descriptors_from_the_pbe_ranked_isomer_and_atoms_from_the_drawn_structure(tmp_path):
    main = {"cluster": "Mo2S-", "status": "ok", "multiplicity": 2, "result": _result([0.1, -0.3, -0.8], -10.0).to_dict()}
    (tmp_path / "Mo2S-.json").write_text(json.dumps(main))
    (tmp_path / "Rh3-.json").write_text(json.dumps({**main, "cluster": "Rh3-"}))
    better = {"cluster": "Mo2S-~2", "status": "ok", "result": _result([0.2, 0.2, -1.4], -10.7).to_dict()}
    descriptors, atoms = dft_tables(tmp_path, {"Mo2S-": (better, "PBE-ranked isomer (ml-start 0/1/0)")})
    row = descriptors.set_index("cluster").loc["Mo2S-"]
    assert row["1_Qmin"] == pytest.approx(0.2) and row["1_Qmax"] == pytest.approx(0.2)  # the ranked isomer's metals
    assert row["structure"] == "PBE-ranked isomer (ml-start 0/1/0)"
    assert descriptors.set_index("cluster").loc["Rh3-", "structure"] == "xTB minimum"
    mo2s = atoms[atoms.cluster == "Mo2S-"].sort_values("index")
    assert list(mo2s.charge) == pytest.approx([0.1, -0.3, -0.8])  # per atom: the committed structure's


def test_tables_leave_out_records_made_at_another_structure_or_spin_state(tmp_path):
    """A record counts only for the structure and multiplicity it was made at: a cluster
    searched again or given another spin state waits for the job to redo it."""
    from cluster_gnn.dft_job import current_structures

    now = current_structures(["Mo2S-"])
    mult, positions = now["Mo2S-"]
    result = _result([0.1, -0.3, -0.8], -10.0).to_dict()
    record = {"cluster": "Mo2S-", "status": "ok", "multiplicity": int(mult), "positions": positions.tolist(),
              "result": result}
    (tmp_path / "Mo2S-.json").write_text(json.dumps(record))
    assert list(dft_tables(tmp_path, current=now)[0].cluster) == ["Mo2S-"]
    for stale in ({**record, "multiplicity": int(mult) + 2}, {**record, "positions": (positions + 0.1).tolist()}):
        (tmp_path / "Mo2S-.json").write_text(json.dumps(stale))
        descriptors, atoms = dft_tables(tmp_path, current=now)
        assert descriptors.empty and atoms.empty
        assert list(dft_tables(tmp_path)[0].cluster) == ["Mo2S-"]  # without ``current`` nothing is checked


def test_the_dft_job_takes_xtb_minimum_records_the_isomer_ranking_made(tmp_path):
    """A single point the isomer stage ran on an xTB minimum is not run again by the DFT job:
    it fills a missing or failed record, never replaces a converged one, and a record the
    isomer stage itself copied from the job is not copied back."""
    from cluster_gnn.isomer_ranking import adopt_isomer_minima

    isomers, main = tmp_path / "isomers", tmp_path / "dft"
    isomers.mkdir(), main.mkdir()
    from cluster_gnn.dft import DFTConfig

    made = {**_record("Mo2S-~0", -50.0), "config": DFTConfig().to_dict()}
    (isomers / "Ta3S2~0.json").write_text(json.dumps({**made, "config": DFTConfig(basis="sto-3g").to_dict()}))
    for name in ("Mo2S-", "Rh3-", "Ta3S", "Mo3S-"):
        (isomers / f"{candidate_name(name, 0)}.json").write_text(json.dumps({**made, "cluster": f"{name}~0"}))
    (isomers / "Mo3S-~0.json").write_text(json.dumps({**made, "reused_from": "Mo3S-.json"}))
    (isomers / "Mo2S-~1.json").write_text(json.dumps(made))  # not an xTB minimum
    (main / "Rh3-.json").write_text(json.dumps({"cluster": "Rh3-", "status": "failed", "reason": "timeout"}))
    (main / "Ta3S.json").write_text(json.dumps({**made, "cluster": "Ta3S", "energy_marker": "the job's own"}))
    written = []
    assert adopt_isomer_minima(isomers, main, on_record=written.append) == ["Mo2S-", "Rh3-"]
    assert [p.name for p in written] == ["Mo2S-.json", "Rh3-.json"]
    record = json.loads((main / "Mo2S-.json").read_text())
    assert record["cluster"] == "Mo2S-" and record["adopted_from"] == "Mo2S-~0.json" and record["status"] == "ok"
    assert json.loads((main / "Ta3S.json").read_text())["energy_marker"] == "the job's own"
    assert not (main / "Mo3S-.json").exists() and not (main / "Ta3S2.json").exists()  # copied back; other theory
    assert adopt_isomer_minima(isomers, main) == []  # done once
    assert not list(main.glob(".*.tmp"))
    # a smeared energy (made before the polish) is replaced by a polished record, never adopted
    hot = {**made, "cluster": "Ta3S", "result": {**made["result"], "smearing": 0.01}}
    (main / "Ta3S.json").write_text(json.dumps(hot))
    (isomers / "Ta4S~0.json").write_text(json.dumps({**hot, "cluster": "Ta4S~0"}))
    assert adopt_isomer_minima(isomers, main) == ["Ta3S"]
    assert json.loads((main / "Ta3S.json").read_text())["adopted_from"] == "Ta3S~0.json"
    assert not (main / "Ta4S.json").exists()


def test_job_status_tells_done_failed_stale_and_pending_records_apart(tmp_path, capsys):
    from cluster_gnn.cli_build import DFT
    from cluster_gnn.dft_job import bundled_clusters, job_status

    clusters = list(bundled_clusters(["Mo2S-", "Rh3-", "Ta3S", "Mo3S-", "FeV2C-"]))
    (name, atoms, _, mult), *_ = clusters
    ok = {"cluster": name, "status": "ok", "multiplicity": mult, "positions": atoms.positions.tolist(),
          "result": _result([0.1, -0.3, -0.8], -10.0).to_dict(), "seconds_wall": 120.0}
    (tmp_path / "Mo2S-.json").write_text(json.dumps(ok))
    (tmp_path / "Rh3-.json").write_text(json.dumps({"cluster": "Rh3-", "status": "failed", "reason": "timeout",
                                                    "message": "the DFT single point took longer than 1200 s"}))
    (tmp_path / "Ta3S.json").write_text(json.dumps({**ok, "cluster": "Ta3S", "multiplicity": 9}))
    (tmp_path / "Mo3S-.json").write_text("{half a rec")
    (tmp_path / ".FeV2C-.progress").write_text("{}")
    status = job_status(clusters, tmp_path).set_index("cluster")
    assert status["state"].to_dict() == {"Mo2S-": "ok", "Rh3-": "failed", "Ta3S": "stale", "Mo3S-": "stale",
                                         "FeV2C-": "pending"}
    assert status.loc["Rh3-", "reason"] == "timeout at 1200 s"  # a run with a longer limit retries it
    assert status.loc["Ta3S", "reason"] == "another multiplicity"
    assert status["running"].tolist() == [False, False, False, False, True]

    class Args:
        names = [n for n, *_ in clusters]
    features = tmp_path / "features"
    (features / "dft_isomers").mkdir(parents=True)
    DFT.print_status(Args, tmp_path, features)
    out = capsys.readouterr().out
    assert "failed, timeout at 1200 s (1): Rh3-" in out and "running now: FeV2C-" in out
    assert "stale, another multiplicity (1): Ta3S" in out and "stale, unreadable (1): Mo3S-" in out
    # the time left: Ta3S, Mo3S- and FeV2C- at the one converged record's 120 s, Rh3- at 3600 s
    assert "main job ~1.1 CPU-h (4 single points; timeouts to rerun: 1, at 3600 s each)" in out
    assert "with DFT features: 1 of 5 clusters (0 at their PBE-ranked isomer" in out
    _tied_mo3s(features / "dft_isomers")
    DFT.print_status(Args, tmp_path, features)
    out = capsys.readouterr().out
    assert "isomer rankings: 1 complete (1 ties within 0.3 eV)" in out
    # Mo3S- has no usable record at its xTB minimum (unreadable) but a complete ranking
    assert "with DFT features: 2 of 5 clusters (1 at their PBE-ranked isomer, 1 of them only there" in out


def test_agreement_with_the_authors_by_structure_and_for_mixed_clusters():
    """Our descriptors against the authors': r and mean difference per subset; a mixed
    cluster's mean metal charge is the authors' total metal charge over its metal atoms."""
    from cluster_gnn.dft_agreement import AGREEMENT_DESCRIPTORS, authors_agreement, authors_pairs, authors_values

    ranked = ["Mo2S-", "Mo2S2-", "Mo3S-", "Ta3S", "Ta3S2", "Mo2S3-"]
    xtb = ["Rh3-", "Rh3H-", "Ta3H-", "Co3H2-", "Ta2H2-"]
    names = ranked + xtb + ["FeV2C-"]
    theirs = authors_values(names)
    assert theirs.loc["FeV2C-", "2_Qave"] == pytest.approx(
        load_nbo_descriptors().set_index("name").loc["FeV2C-", "2_Q"] / 3)  # Fe + 2 V
    assert np.isnan(theirs.loc["FeV2C-", "1_Qmax"])
    ours = theirs.copy()
    ours.loc[ranked] += 0.05  # a shift: r 1 at the ranked isomers
    rng = np.random.default_rng(0)
    ours.loc[xtb + ["FeV2C-"]] = rng.normal(size=(len(xtb) + 1, len(AGREEMENT_DESCRIPTORS)))
    ours["structure"] = ["PBE-ranked isomer (ml-start S 0/1/0)"] * len(ranked) + ["xTB minimum"] * (len(xtb) + 1)
    table = authors_agreement(ours.rename_axis("cluster").reset_index()).set_index("subset")
    assert table.loc["all", "clusters"] == 12 and table.loc["mixed", "clusters"] == 1
    assert table.loc["PBE-ranked isomer", "2_Qave r"] == pytest.approx(1.0)
    assert table.loc["PBE-ranked isomer", "2_Qave mad"] == pytest.approx(0.05)
    assert table.loc["xTB minimum", "2_Qave r"] < 0.9
    assert table.loc["xTB minimum", "1_Qmax n"] == 5  # the mixed cluster has no authors' 1_Qmax
    assert np.isnan(table.loc["mixed", "2_Qave r"])  # one pair: no r
    assert table.loc["ligand: H", "clusters"] == 4 and table.loc["metal: Fe–V", "clusters"] == 1
    pairs = authors_pairs(ours.rename_axis("cluster").reset_index(), "1_Qmax").set_index("cluster")
    assert len(pairs) == 11 and "FeV2C-" not in pairs.index  # no authors' 1_Qmax for a mixed cluster
    assert pairs.loc["Mo2S-", "ours"] - pairs.loc["Mo2S-", "authors"] == pytest.approx(0.05)
    assert pairs.loc["Mo2S-", "structure"] == "PBE-ranked isomer" and pairs.loc["Rh3H-", "ligand"] == "H"


def test_the_dft_command_reports_the_agreement_of_the_tables_it_wrote(tmp_path, capsys):
    from cluster_gnn.cli_build import DFT
    from cluster_gnn.dft_agreement import authors_values

    names = ["Mo2S-", "Mo2S2-", "Mo3S-", "Ta3S", "Ta3S2", "Rh3H-"]
    ours = (authors_values(names) * 2 + 0.1).rename_axis("cluster").reset_index()
    ours["structure"] = "xTB minimum"
    ours.to_csv(tmp_path / "dft_descriptors.csv", index=False)
    DFT.print_agreement(tmp_path)
    out = capsys.readouterr().out
    assert "r with the authors, all (6 clusters): 2_Qave 1.00 (6), 1_Qmax 1.00 (6), 1_Qmin 1.00 (6)" in out
    assert "PBE-ranked isomer" not in out  # no such rows: no line


@pytest.mark.slow
def test_isomer_job_ranks_a_tiny_sulfide_and_resumes_without_repeating(tmp_path):
    pytest.importorskip("pyscf")
    pytest.importorskip("chgnet")
    from cluster_gnn.dft import DFTConfig

    config = DFTConfig(basis="sto-3g", ecp_elements=())  # seconds instead of minutes; the recipe is the same
    kw = {"n_ml": 2, "n_xtb": 0, "n_starts": 3}
    counts = run_isomer_job(["Mo2S-"], tmp_path, config=config, time_limit_s=600, progress=False, candidates_kw=kw,
                            workers=2)  # the candidates side by side
    table = rank_isomers(tmp_path)
    assert counts["done"] + counts["failed"] == len(table) >= 2
    assert table["complete"].all() and table["status"].isin(["ok", "failed"]).all()
    assert list(table.source)[0] == "xtb-minimum" and "ml-start" in set(table.source)
    if (table.status == "ok").any():
        assert table.loc[table.status == "ok", "relative_energy"].min() == 0.0
        record = json.loads((tmp_path / f"{candidate_name('Mo2S-', 0)}.json").read_text())
        if record["status"] == "ok":  # the ladder's first rung: Newton from the atomic densities
            assert next(iter(record["result"]["energy_trace"])) == "atomic"
    again = run_isomer_job(["Mo2S-"], tmp_path, config=config, time_limit_s=600, progress=False, candidates_kw=kw)
    assert again["done"] == again["failed"] == 0 and again["skipped"] == len(table)


def test_dft_values_belong_to_the_structure_shown(tmp_path):
    """The committed global minimum gets the DFT job's per-atom values, the PBE-ranked isomer
    its own, any other structure of the cluster none."""
    import shutil

    import pandas as pd

    from cluster_gnn.config import STRUCTURES_DIR
    from cluster_gnn.results import dft_atom_values, pbe_ranked_isomer

    (tmp_path / "structures").mkdir()
    shutil.copy(STRUCTURES_DIR / "Mo2S-.xyz", tmp_path / "structures")
    minimum = load_structure("Mo2S-", tmp_path / "structures")
    features = tmp_path / "features"
    (features / "dft_isomers").mkdir(parents=True)
    pd.DataFrame({"cluster": "Mo2S-", "index": [0, 1, 2], "symbol": minimum.get_chemical_symbols(),
                  "charge": [0.1, -0.3, -0.8], "spin": [0.5, 0.5, 0.0]}).to_csv(features / "dft_atoms.csv", index=False)
    bridged = minimum.copy()
    bridged.positions[2] = (minimum.positions[0] + minimum.positions[1]) / 2 + [0, 0, 1.7]
    bridged.info["source"], minimum.info["source"] = "ml-start", "xtb-minimum"
    write(features / "dft_isomers" / "Mo2S-.candidates.xyz", [minimum, bridged], format="extxyz")
    for k, (atoms, e, q) in enumerate([(minimum, -10.0, [0.1, -0.3, -0.8]), (bridged, -10.5, [-0.1, -0.1, -0.8])]):
        result = _result(q, e).to_dict()
        result["symbols"] = atoms.get_chemical_symbols()
        record = {"cluster": f"Mo2S-~{k}", "status": "ok", "positions": atoms.positions.tolist(), "result": result}
        (features / "dft_isomers" / f"Mo2S-~{k}.json").write_text(json.dumps(record))
    isomer = pbe_ranked_isomer("Mo2S-", tmp_path)
    assert isomer.info["below_xtb_minimum"] == pytest.approx(0.5) and isomer.info["multiplicity"] == 2
    assert isomer.info["next_above"] == pytest.approx(0.5)  # the only other candidate, not a tie
    assert isomer.info["ligand"] == "S" and isomer.info["motifs"].count("/") == 2
    assert np.allclose(isomer.positions, bridged.positions)
    assert list(dft_atom_values("Mo2S-", tmp_path, atoms=minimum)["charge"]) == pytest.approx([0.1, -0.3, -0.8])
    assert list(dft_atom_values("Mo2S-", tmp_path, atoms=isomer)["charge"]) == pytest.approx([-0.1, -0.1, -0.8])
    other = minimum.copy()
    other.positions[2] += [0.0, 0.5, 0.0]
    assert dft_atom_values("Mo2S-", tmp_path, atoms=other) is None
    # where PBE never converged at the xTB minimum (V5C5-), the isomer is still offered, with no gap
    (features / "dft_isomers" / "Mo2S-~0.json").write_text(json.dumps(
        {"cluster": "Mo2S-~0", "status": "failed", "reason": "scf", "message": "no sane result"}))
    isomer = pbe_ranked_isomer("Mo2S-", tmp_path)
    assert np.isnan(isomer.info["below_xtb_minimum"]) and np.allclose(isomer.positions, bridged.positions)


@pytest.mark.parametrize("workers, dask_threads, sizes", [(1, None, [3, 3, 3]), (2, None, [6, 3]),
                                                          (1, 4, [9])])
def test_isomer_job_sends_several_clusters_candidates_together_to_many_workers(tmp_path, monkeypatch, workers,
                                                                               dask_threads, sizes):
    """One cluster's few candidates would leave workers idle and make all wait for its slowest:
    consecutive clusters go together until there are twice as many candidates as workers."""
    import cluster_gnn.dft_job
    import cluster_gnn.isomer_ranking as ranking

    def three_candidates(name, **kw):
        out = []
        for k in range(3):
            a = Atoms("Mo2S", positions=[[0, 0, 0], [2.2, 0, 0], [1.1, 1.5 + 0.1 * k, 0]])
            a.info.update(source="ml-start", motifs="0/1/0", charge=-1, multiplicity=2)
            out.append(a)
        return out

    batches = []

    def fake_job(jobs, out_dir, config, workers=1, scheduler=None, **kw):
        batches.append(([name for name, *_ in jobs], scheduler))
        return {"done": len(jobs), "failed": 0, "skipped": 0}

    monkeypatch.setattr(ranking, "isomer_candidates", three_candidates)
    monkeypatch.setattr(cluster_gnn.dft_job, "run_dft_job", fake_job)
    names = ["Mo2S-", "Mo3S-", "Mo4S-"]
    if dask_threads is None:
        counts = run_isomer_job(names, tmp_path, workers=workers, progress=False)
    else:
        pytest.importorskip("distributed")
        from dask.distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=dask_threads // 2, processes=False,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            counts = run_isomer_job(names, tmp_path, workers=workers, progress=False, scheduler=client)
        assert all(scheduler is client for _, scheduler in batches)
    assert [len(jobs) for jobs, _ in batches] == sizes
    assert [n for jobs, _ in batches for n in jobs] == [candidate_name(c, k) for c in names for k in range(3)]
    assert counts == {"done": 9, "failed": 0, "skipped": 0}


def test_the_time_left_is_the_median_of_converged_single_points_of_the_same_kind_and_size():
    from cluster_gnn.dft_job import expected_seconds, typical_seconds

    def record(symbols, seconds, status="ok"):
        return {"status": status, "seconds_wall": seconds, "result": {"symbols": symbols}}

    typical = typical_seconds([record(["Mo", "Mo", "S"], 100), record(["Mo", "S", "Mo"], 300),
                               record(["Ta"] * 5, 900), record(["Fe", "Fe", "S"], 2000),
                               record(["Mo"] * 3, 5000, status="failed")])
    assert typical == {(3, False): [100.0, 300.0], (5, False): [900.0], (3, True): [2000.0]}
    assert expected_seconds(["Mo", "S", "S"], typical) == 200.0  # median of the 3-atom Mo/Ta ones
    assert expected_seconds(["Ta"] * 4, typical) == 900.0  # 3 and 5 atoms as near: the larger
    assert expected_seconds(["V"] * 6, typical) == 2000.0  # Fe, V, Co start at Newton: their own kind
    assert expected_seconds(["Co"] * 3, {(3, False): [100.0]}) == 100.0  # none of its kind: the other
    assert np.isnan(expected_seconds(["Mo"], {}))
    # two or more made with today's ladder (the atomic start) time the rest of their kind and size alone
    fast = [{**record(["Mo", "Mo", "S"], t), "config": {"atomic_start": True}} for t in (20, 40)]
    typical = typical_seconds([record(["Mo", "Mo", "S"], 100), record(["Mo", "S", "Mo"], 300), *fast,
                               {**record(["Ta"] * 5, 60), "config": {"atomic_start": True}}, record(["Ta"] * 5, 900)])
    assert typical == {(3, False): [20.0, 40.0], (5, False): [60.0, 900.0]}  # one new 5-atom record: not yet
