"""The DFT stage (PySCF) on tiny clusters: NPA sanity, clean failures, resume after SIGKILL.

Skipped without the optional extra (``pip install -e '.[dft]'``)."""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

pytest.importorskip("pyscf")

from cluster_gnn.dft import DFTConfig, dft_descriptors, run_dft  # noqa: E402
from cluster_gnn.dft_job import run_dft_job  # noqa: E402
from cluster_gnn.errors import DFTConvergenceError  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
FAST = DFTConfig(basis="sto-3g")  # minutes become seconds; the recipe is the same


def _coh():
    return Atoms("CoH", positions=[[0, 0, 0], [0, 0, 1.5]])


@pytest.mark.slow
def test_npa_charges_sum_to_the_total_charge_and_spin_to_the_unpaired_electrons():
    result = run_dft(_coh(), 0, 3, FAST)
    assert result.charges.sum() == pytest.approx(0.0, abs=1e-3)
    assert result.spin.sum() == pytest.approx(2.0, abs=1e-2)
    assert result.charges[0] > 0 > result.charges[1]  # H is the more electronegative here
    assert result.spin[0] > 1.5  # the unpaired electrons sit on Co
    assert 5.0 < result.d_valence[0] < 9.0 and result.s_valence[1] > 0.5  # Co 3d, H 1s
    assert result.s2 >= result.s2_expected - 0.05  # <S^2> of a spin-unrestricted determinant is at least S(S+1)
    d = dft_descriptors(result)
    assert d["1_Qmax"] == d["1_Qmin"] == d["2_Qave"] == pytest.approx(result.charges[0])
    trace = result.energy_trace[result.rung]  # the SCF energy of every cycle, for tuning the ladder
    assert sum(map(len, result.energy_trace.values())) == result.cycles
    assert "smeared" not in result.energy_trace and result.smearing == 0.0  # Co: straight to the Newton rung
    assert trace[-1] * 27.211386245988 == pytest.approx(result.energy, abs=1e-3)


@pytest.mark.slow
def test_orbitals_on_the_grid_are_evaluated_once_per_calculation_with_the_same_result(monkeypatch):
    """Every rung of the ladder (smeared, polish; on Co the ADIIS and Newton SCFs with a coarse
    Hessian grid) shares one grid per level and the orbital values on it; with the cache off
    (no room) each cycle evaluates them again, and the numbers are the same."""
    import cluster_gnn.dft as dft
    import cluster_gnn.dft_grid as dft_grid

    made = []

    def spy():
        made.append(dft_grid.cached_numint())
        return made[-1]

    monkeypatch.setattr(dft, "cached_numint", spy)
    mo2 = Atoms("Mo2", positions=[[0, 0, 0], [0, 0, 2.2]])
    no_ecp = DFTConfig(basis="sto-3g", ecp_elements=())
    kept = [run_dft(mo2, -1, 2, no_ecp), run_dft(_coh(), 0, 3, FAST)]
    assert len(made) == 2  # one per calculation, shared by its rungs
    grids = [{key[1] for key in numint._grids} for numint in made]
    assert [len(g) for g in grids] == [2, 2]  # the level-2 grid and the Newton Hessian's level-0 grid
    assert all(numint.cached_bytes > 0 for numint in made)
    monkeypatch.setattr(dft_grid, "MAX_CACHE_BYTES", 0)
    again = [run_dft(mo2, -1, 2, no_ecp), run_dft(_coh(), 0, 3, FAST)]
    assert made[-1].cached_bytes == 0 and not made[-1]._grids
    for a, b in zip(kept, again):
        assert a.rung == b.rung and a.cycles == b.cycles
        assert a.energy == pytest.approx(b.energy, abs=1e-8)  # eV
        np.testing.assert_allclose(a.charges, b.charges, atol=1e-8)


@pytest.mark.slow
def test_the_smeared_rung_ends_in_an_unsmeared_energy_below_the_smeared_one():
    """Smearing only gets the SCF started: its E(T) lies above the ground state (0.57 eV for
    Mo2- here), so the rung is polished without smearing and every result is comparable."""
    result = run_dft(Atoms("Mo2", positions=[[0, 0, 0], [0, 0, 2.2]]), -1, 2,
                     DFTConfig(basis="sto-3g", ecp_elements=(), atomic_start=False))
    assert result.rung == "smeared" and result.smearing == 0.0
    hot, polished = result.energy_trace["smeared"][-1], result.energy_trace["polish"][-1]
    assert (hot - polished) * 27.211386245988 > 0.1
    assert result.energy == pytest.approx(polished * 27.211386245988, abs=1e-3)
    assert sum(map(len, result.energy_trace.values())) == result.cycles


@pytest.mark.slow
def test_a_smeared_scf_whose_energy_has_settled_is_polished_without_waiting_for_it_to_converge():
    """Once the smeared DIIS energy stops moving, the polish takes over from that density and
    reaches the solution a converged smeared SCF leads to, in fewer cycles."""
    mo3 = Atoms("Mo3", positions=[[0, 0, 0], [2.2, 0, 0], [1.1, 1.9, 0]])
    config = DFTConfig(basis="sto-3g", ecp_elements=(), settled_eh=0.0, atomic_start=False)
    waited = run_dft(mo3, -1, 2, config)
    settled = run_dft(mo3, -1, 2, replace(config, settled_eh=1e-3, settled_cycles=3))
    assert not any("settled" in note for note in waited.notes)
    assert any(note.startswith("smeared: settled after") for note in settled.notes)
    assert settled.rung == "smeared" and "polish" in settled.energy_trace
    last = settled.energy_trace["smeared"][-3:]
    assert max(last) - min(last) < 1e-3
    assert len(settled.energy_trace["smeared"]) < len(waited.energy_trace["smeared"])
    assert settled.energy == pytest.approx(waited.energy, abs=1e-3)
    np.testing.assert_allclose(np.sort(settled.charges), np.sort(waited.charges), atol=5e-3)


@pytest.mark.slow
def test_a_smeared_scf_still_swinging_goes_on_to_the_newton_rung_early():
    """A smeared DIIS whose energy still swings past ``swinging_from`` cycles hands its density
    to the Newton rung at once instead of running out its cycles (here: any swing, cycle 3)."""
    mo3 = Atoms("Mo3", positions=[[0, 0, 0], [2.2, 0, 0], [1.1, 1.9, 0]])
    result = run_dft(mo3, -1, 2, DFTConfig(basis="sto-3g", ecp_elements=(), atomic_start=False, swinging_eh=1e-6,
                                           swinging_from=3))
    assert "smeared: still swinging after 3 cycles" in result.notes
    assert len(result.energy_trace["smeared"]) == 3 and "polish" not in result.energy_trace
    assert result.rung == "newton" and result.charges.sum() == pytest.approx(-1.0, abs=1e-4)
    with pytest.raises(ValueError, match="swinging_eh"):
        DFTConfig(swinging_eh=-1.0)


@pytest.mark.slow
def test_the_ladder_starts_with_a_newton_scf_from_the_atomic_densities():
    """The first rung is a Newton SCF straight from the superposition of atomic densities: no
    smearing, no first-order steps. On Mo3- it ends 0.02 eV from the smeared rung's solution."""
    mo3 = Atoms("Mo3", positions=[[0, 0, 0], [2.2, 0, 0], [1.1, 1.9, 0]])
    config = DFTConfig(basis="sto-3g", ecp_elements=())
    first = run_dft(mo3, -1, 2, config)
    smeared = run_dft(mo3, -1, 2, replace(config, atomic_start=False))
    assert first.rung == "atomic" and list(first.energy_trace) == ["atomic"] and not first.notes
    assert len(first.energy_trace["atomic"]) == first.cycles
    assert first.energy == pytest.approx(first.energy_trace["atomic"][-1] * 27.211386245988, abs=1e-3)
    assert first.charges.sum() == pytest.approx(-1.0, abs=1e-4) and first.spin.sum() == pytest.approx(1.0, abs=1e-3)
    assert smeared.rung == "smeared" and abs(first.energy - smeared.energy) < 0.05


@pytest.mark.slow
def test_a_failed_atomic_start_leaves_the_rest_of_the_ladder_as_it_was(tmp_path, monkeypatch):
    """A rejected atomic rung hands nothing on: the smeared rung starts from PySCF's usual
    guess, as without the atomic start. The checkpoint between the two says so, and a run
    resumed from it does not try the atomic rung again."""
    import cluster_gnn.dft as dft
    from cluster_gnn.scf_checkpoint import checkpoint_key, load_checkpoint

    class Stopped(Exception):
        pass

    def stop_in_the_smeared_rung(rung, cycles):
        if rung == "smeared":
            raise Stopped

    mo3 = Atoms("Mo3", positions=[[0, 0, 0], [2.2, 0, 0], [1.1, 1.9, 0]])
    config = DFTConfig(basis="sto-3g", ecp_elements=())
    real_check, reject = dft._check, [True]

    def reject_once(mf, mol, cfg):  # a stand-in for a collapsed density on the first check
        if reject[0]:
            reject[0] = False
            return "rejected", None
        return real_check(mf, mol, cfg)

    monkeypatch.setattr(dft, "_check", reject_once)
    result = run_dft(mo3, -1, 2, config)
    without = run_dft(mo3, -1, 2, replace(config, atomic_start=False))
    assert result.rung == "smeared" and result.notes[0] == "atomic: rejected"
    assert result.energy_trace["smeared"] == without.energy_trace["smeared"]  # the same start, cycle for cycle
    assert result.energy == pytest.approx(without.energy, abs=1e-6)
    assert result.cycles == len(result.energy_trace["atomic"]) + without.cycles
    from pyscf.scf import uhf  # no atomic densities at all: the same, said so

    real_guess = uhf.UHF.get_init_guess

    def no_atomic_guess(self, mol=None, key="minao", **kw):
        if key == "atom":
            raise RuntimeError("no atomic densities")
        return real_guess(self, mol, key, **kw)

    monkeypatch.setattr(uhf.UHF, "get_init_guess", no_atomic_guess)
    unguessed = run_dft(mo3, -1, 2, config)
    assert unguessed.notes[0] == "atomic: no atomic guess (RuntimeError)" and unguessed.rung == "smeared"
    assert unguessed.energy == pytest.approx(without.energy, abs=1e-6) and unguessed.cycles == without.cycles
    monkeypatch.setattr(uhf.UHF, "get_init_guess", real_guess)

    path = tmp_path / "Mo3-.scf.npz"
    reject[0] = True
    with pytest.raises(Stopped):
        run_dft(mo3, -1, 2, config, on_cycle=stop_in_the_smeared_rung, checkpoint=path)
    saved = load_checkpoint(path, checkpoint_key(mo3, -1, 2, config.theory()))
    assert saved["stage"] == "smeared-pre" and saved["dm"].size == 1  # no density to go on from
    resumed = run_dft(mo3, -1, 2, config, checkpoint=path)
    assert resumed.notes[0] == f"resumed from a checkpoint (smeared-pre) after {saved['cycles']} cycles"
    assert resumed.energy_trace["atomic"] == result.energy_trace["atomic"]  # kept, not run again
    assert resumed.rung == "smeared" and resumed.energy == pytest.approx(result.energy, abs=1e-6)


@pytest.mark.slow
def test_a_newton_hessian_on_a_coarse_grid_reaches_the_full_grid_result():
    """The orbital Hessian only steers the Newton steps; the gradient, on the full grid, fixes
    where they end. A whole SCF on the coarse grid lands elsewhere (0.34 eV here)."""
    mo2 = Atoms("Mo2", positions=[[0, 0, 0], [0, 0, 2.2]])
    runs = {kw: run_dft(mo2, -1, 2, DFTConfig(basis="sto-3g", ecp_elements=(), grid_level=g, hessian_grid_level=h))
            for kw, (g, h) in {"coarse hessian": (2, 0), "full": (2, 2), "all coarse": (0, 0)}.items()}
    full = runs["full"]
    assert runs["coarse hessian"].rung == "atomic"  # a Newton SCF ran
    assert runs["coarse hessian"].energy == pytest.approx(full.energy, abs=1e-4)
    # the dimer's symmetry is broken either way (-0.51/-0.49): the same solution, mirrored or not
    np.testing.assert_allclose(np.sort(runs["coarse hessian"].charges), np.sort(full.charges), atol=1e-3)
    assert abs(runs["all coarse"].energy - full.energy) > 0.05


@pytest.mark.slow
def test_impossible_spin_state_is_a_clean_error():
    with pytest.raises(DFTConvergenceError, match="multiplicity 2") as err:
        run_dft(Atoms("VC", positions=[[0, 0, 0], [0, 0, 1.7]]), -1, 2, FAST)
    assert err.value.reason == "setup"


def test_too_many_atoms_is_refused_before_any_work():
    atoms = Atoms("H20", positions=np.arange(60.0).reshape(20, 3))
    with pytest.raises(DFTConvergenceError, match="at most 16 atoms") as err:
        run_dft(atoms, 0, 1)
    assert err.value.reason == "too-many-atoms"


_JOB = """
import sys
from ase import Atoms
from cluster_gnn.dft import DFTConfig
from cluster_gnn.dft_job import run_dft_job
clusters = [("CoH", Atoms("CoH", positions=[[0, 0, 0], [0, 0, 1.5]]), 0, 3),
            ("VH", Atoms("VH", positions=[[0, 0, 0], [0, 0, 1.7]]), 0, 5)]
run_dft_job(clusters, sys.argv[1], DFTConfig(basis="sto-3g"), workers=1)
"""


def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True).stdout.split("\n")[1:]
    return {int(p) for p, pp in (line.split() for line in out if line.strip()) if int(pp) == pid}


@pytest.mark.slow
def test_sigkill_then_resume_loses_and_repeats_nothing(tmp_path):
    out = tmp_path / "dft"
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen([sys.executable, "-c", _JOB, str(out)], env=env)
    deadline = time.time() + 300
    while not (out / "CoH.json").exists():
        assert time.time() < deadline and job.poll() is None, "the first cluster never finished"
        time.sleep(0.2)
    workers = _children(job.pid)
    assert (out / ".lock").read_text().strip() == str(job.pid)
    first = (out / "CoH.json").stat().st_mtime_ns
    job.send_signal(signal.SIGKILL)
    job.wait()
    time.sleep(2)
    assert not any(Path(f"/proc/{w}").exists() and "zombie" not in Path(f"/proc/{w}/status").read_text().lower()
                   for w in workers), "a worker outlived the killed job"
    assert not (out / "VH.json").exists() and not (out / ".CoH.scf.npz").exists()
    checkpointed = (out / ".VH.scf.npz").exists()  # VH got past a stage of its ladder before the kill
    # resume: the stale lock is taken over, CoH is skipped, VH is computed (from its checkpoint if any)
    counts = run_dft_job([("CoH", _coh(), 0, 3), ("VH", Atoms("VH", positions=[[0, 0, 0], [0, 0, 1.7]]), 0, 5)],
                         out, FAST, progress=False)
    assert counts == {"done": 1, "failed": 0, "skipped": 1}
    assert (out / "CoH.json").stat().st_mtime_ns == first
    records = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(records) == {"CoH", "VH"} and all(r["status"] == "ok" for r in records.values())
    assert any(n.startswith("resumed from a checkpoint") for n in records["VH"]["result"]["notes"]) == checkpointed
    assert not (out / ".lock").exists() and not list(out.glob(".*.scf.npz"))
    # a record made for another spin state is redone, the other is kept
    counts = run_dft_job([("CoH", _coh(), 0, 1), ("VH", Atoms("VH", positions=[[0, 0, 0], [0, 0, 1.7]]), 0, 5)],
                         out, FAST, progress=False)
    assert counts == {"done": 1, "failed": 0, "skipped": 1}
    assert json.loads((out / "CoH.json").read_text())["multiplicity"] == 1


def test_a_live_lock_keeps_a_second_writer_out(tmp_path):
    out = tmp_path / "dft"
    out.mkdir()
    (out / ".lock").write_text(str(os.getpid()))  # this very process: alive
    with pytest.raises(DFTConvergenceError, match="another DFT job") as err:
        run_dft_job([("CoH", _coh(), 0, 3)], out, FAST, progress=False)
    assert err.value.reason == "locked"


def test_a_record_made_for_another_structure_or_spin_state_is_redone(tmp_path):
    """A record counts only for the structure and multiplicity it was made at (a structure
    searched again, isomer candidates made anew): the job redoes it, and keeps one that fits."""
    atoms = _coh()
    moved = atoms.copy()
    moved.positions[1, 2] += 0.2
    fake = {"cluster": "CoH", "status": "ok", "multiplicity": 3, "positions": moved.positions.tolist(), "result": {}}
    (tmp_path / "CoH.json").write_text(json.dumps(fake))
    counts = run_dft_job([("CoH", atoms, 0, 3)], tmp_path, FAST, progress=False)
    assert counts["done"] + counts["failed"] == 1 and counts["skipped"] == 0
    record = json.loads((tmp_path / "CoH.json").read_text())
    assert np.allclose(record["positions"], atoms.positions)
    again = run_dft_job([("CoH", atoms, 0, 3)], tmp_path, FAST, progress=False)
    assert again["skipped"] == 1 and again["done"] == again["failed"] == 0


@pytest.mark.slow
def test_an_upload_runs_in_the_background_with_progress_and_cleans_up():
    import tempfile

    from cluster_gnn.dft_upload import start_dft

    job = start_dft(_coh(), 0, 3, config=FAST)
    work = job._dir  # its own working folder (other tests may run jobs at the same time)
    assert work.is_dir() and work.parent == Path(tempfile.gettempdir())
    seen = []
    while not job.poll().finished:
        seen.append(job.poll())
        time.sleep(0.2)
    assert job.poll().state == "done", job.poll().message
    # the ladder starts with a Newton SCF from the atomic densities (DFTConfig.atomic_start)
    assert any(s.state == "running" and s.rung == "atomic" and s.cycles > 0 for s in seen), "no SCF progress seen"
    result = job.result()
    assert result.charges.sum() == pytest.approx(0.0, abs=1e-3) and result.spin.sum() == pytest.approx(2.0, abs=1e-2)
    assert not work.exists()


@pytest.mark.slow
def test_an_upload_past_its_time_limit_says_so_and_a_second_one_waits():
    from cluster_gnn.dft_upload import start_dft

    co4 = Atoms("Co4", positions=[[0, 0, 0], [2.3, 0, 0], [1.15, 2.0, 0], [1.15, 0.66, 1.9]])
    job = start_dft(co4, 0, 11, time_limit_s=10, config=DFTConfig(basis="def2-TZVP"))  # minutes of work
    with pytest.raises(DFTConvergenceError, match="already running") as busy:
        start_dft(_coh(), 0, 3, config=FAST)
    assert busy.value.reason == "busy"
    with pytest.raises(DFTConvergenceError, match="took longer than 10 s") as err:
        job.wait(timeout_s=120)
    assert err.value.reason == "timeout"


def test_an_upload_too_large_for_dft_is_refused_before_any_work():
    from cluster_gnn.dft_upload import start_dft

    atoms = Atoms("Mo14", positions=np.arange(42.0).reshape(14, 3) * 1.5)
    with pytest.raises(DFTConvergenceError, match="at most 13 atoms") as err:
        start_dft(atoms, -1, 2)
    assert err.value.reason == "too-many-atoms"


@pytest.mark.slow
def test_a_cluster_past_its_time_limit_is_stopped_by_its_worker_and_the_job_goes_on(tmp_path):
    co4 = Atoms("Co4", positions=[[0, 0, 0], [2.3, 0, 0], [1.15, 2.0, 0], [1.15, 0.66, 1.9]])
    started = time.perf_counter()
    h2 = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    counts = run_dft_job([("Co4", co4, 0, 11), ("H2", h2, 0, 1)], tmp_path, DFTConfig(basis="def2-TZVP"),
                         time_limit_s=3, progress=False)  # Co4 in def2-TZVP: minutes of work; H2 a second
    records = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert counts == {"done": 1, "failed": 1, "skipped": 0}
    assert records["Co4"]["status"] == "failed" and records["Co4"]["reason"] == "timeout"
    # the worker stopped the SCF itself between cycles (the parent's kill would not know the cycle)
    assert "took longer than 3 s (stopped in the atomic rung after" in records["Co4"]["message"]
    assert records["H2"]["status"] == "ok"
    assert time.perf_counter() - started < 3 * 1.1 + 60
    assert records["Co4"]["time_limit_s"] == 3
    # the same limit again: a verdict, skipped; a longer one: run again
    assert run_dft_job([("Co4", co4, 0, 11)], tmp_path, DFTConfig(basis="def2-TZVP"), time_limit_s=3,
                       progress=False) == {"done": 0, "failed": 0, "skipped": 1}
    again = run_dft_job([("Co4", co4, 0, 11)], tmp_path, DFTConfig(basis="def2-TZVP"), time_limit_s=4,
                        progress=False)
    assert again == {"done": 0, "failed": 1, "skipped": 0}
    assert json.loads((tmp_path / "Co4.json").read_text())["time_limit_s"] == 4


def test_a_timeout_under_a_shorter_limit_runs_again_after_the_new_clusters(tmp_path, capsys):
    """A record that timed out at 1 s (written before records carried the limit: read from its
    message) is no verdict for a run allowed 600 s: it runs again, after the cluster without a
    record; at its own limit it is skipped."""
    h2 = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    (tmp_path / "H2.json").write_text(json.dumps({
        "cluster": "H2", "charge": 0, "multiplicity": 1, "status": "failed", "reason": "timeout",
        "message": "the DFT single point took longer than 1 s", "positions": h2.positions.tolist()}))
    assert run_dft_job([("H2", h2, 0, 1)], tmp_path, FAST, time_limit_s=1, progress=False)["skipped"] == 1
    stretched = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.9]])
    counts = run_dft_job([("H2", h2, 0, 1), ("H2-long", stretched, 0, 1)], tmp_path, FAST, time_limit_s=600)
    assert counts == {"done": 2, "failed": 0, "skipped": 0}
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert lines[0].startswith("[1/2] H2-long: ok") and lines[1].startswith("[2/2] H2: ok")
    assert json.loads((tmp_path / "H2.json").read_text())["status"] == "ok"


@pytest.mark.slow
def test_the_job_on_a_dask_cluster_writes_the_records_a_local_run_writes(tmp_path):
    pytest.importorskip("distributed")
    from dask.distributed import Client, LocalCluster

    clusters = [("CoH", _coh(), 0, 3), ("VH", Atoms("VH", positions=[[0, 0, 0], [0, 0, 1.7]]), 0, 5)]
    local = run_dft_job(clusters, tmp_path / "local", FAST, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        remote = run_dft_job(clusters, tmp_path / "dask", FAST, progress=False, scheduler=client)
        again = run_dft_job(clusters, tmp_path / "dask", FAST, progress=False, scheduler=client)
    assert local == remote == {"done": 2, "failed": 0, "skipped": 0}
    assert again == {"done": 0, "failed": 0, "skipped": 2}  # resumes like the local job
    for name in ("CoH", "VH"):
        a, b = (json.loads((tmp_path / d / f"{name}.json").read_text())["result"] for d in ("local", "dask"))
        assert b["energy"] == pytest.approx(a["energy"], abs=1e-6)
        np.testing.assert_allclose(b["charges"], a["charges"], atol=1e-5)
    assert not list((tmp_path / "dask").glob(".*.progress")) and not (tmp_path / "dask" / ".lock").exists()


_KILLED_SCF = """
import sys
from ase import Atoms
import cluster_gnn.dft as dft
dft.run_dft(Atoms("Mo3", positions=[[0, 0, 0], [2.2, 0, 0], [1.1, 1.9, 0]]), -1, 2,
            dft.DFTConfig(basis="sto-3g", ecp_elements=(), atomic_start=False), checkpoint=sys.argv[1])
"""


@pytest.mark.slow
def test_an_scf_killed_mid_way_resumes_from_its_checkpoint_to_the_same_result(tmp_path):
    from cluster_gnn.scf_checkpoint import checkpoint_key, load_checkpoint

    mo3 = Atoms("Mo3", positions=[[0, 0, 0], [2.2, 0, 0], [1.1, 1.9, 0]])
    config = DFTConfig(basis="sto-3g", ecp_elements=(), atomic_start=False)
    path = tmp_path / "Mo3-.scf.npz"
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen([sys.executable, "-c", _KILLED_SCF, str(path)], env=env)
    deadline = time.time() + 300
    saved = None
    while saved is None:  # the smeared SCF has converged; kill it during the polish
        assert time.time() < deadline and job.poll() is None, "the SCF ended before it could be killed"
        time.sleep(0.02)
        saved = load_checkpoint(path, str(np.load(path)["key"])) if path.is_file() else None
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert saved["stage"] == "polish" and saved["cycles"] > 0
    resumed = run_dft(mo3, -1, 2, config, checkpoint=path)
    assert resumed.notes[0] == f"resumed from a checkpoint (polish) after {saved['cycles']} cycles"
    assert resumed.energy_trace["smeared"] == saved["trace"]["smeared"]  # the killed run's cycles are kept
    assert sum(map(len, resumed.energy_trace.values())) == resumed.cycles
    fresh = run_dft(mo3, -1, 2, config)  # uninterrupted: the same numbers
    assert resumed.rung == fresh.rung == "smeared" and resumed.cycles == fresh.cycles
    assert resumed.energy == pytest.approx(fresh.energy, abs=1e-6)
    np.testing.assert_allclose(resumed.charges, fresh.charges, atol=1e-6)
    # a checkpoint made for another spin state, structure or setting is not taken
    assert load_checkpoint(path, checkpoint_key(mo3, -1, 2, config.theory())) is not None
    moved = mo3.copy()
    moved.positions[0, 0] += 0.01
    for key in (checkpoint_key(mo3, -1, 4, config.theory()), checkpoint_key(moved, -1, 2, config.theory()),
                checkpoint_key(mo3, -1, 2, DFTConfig(basis="sto-3g", ecp_elements=(), grid_level=3).theory())):
        assert load_checkpoint(path, key) is None
    # how the SCF gets there (cycles, the Newton Hessian's grid) does not change what a density is for
    path_only = DFTConfig(basis="sto-3g", ecp_elements=(), max_cycles=90, hessian_grid_level=2, atomic_start=True)
    assert load_checkpoint(path, checkpoint_key(mo3, -1, 2, path_only.theory())) is not None


@pytest.mark.slow
def test_a_newton_scf_stopped_within_resumes_from_its_last_density_to_the_same_solution(tmp_path, monkeypatch):
    """Within a Newton SCF (here the polish, 6 cycles) the density is saved every
    ``CHECKPOINT_EVERY_S``; stopped after its third cycle, the run goes on from there."""
    import cluster_gnn.dft as dft
    from cluster_gnn.scf_checkpoint import checkpoint_key, load_checkpoint

    class Stopped(Exception):
        pass

    mo3 = Atoms("Mo3", positions=[[0, 0, 0], [2.2, 0, 0], [1.1, 1.9, 0]])
    config = DFTConfig(basis="sto-3g", ecp_elements=(), settled_eh=0.0, atomic_start=False)  # the polish of a converged smeared SCF
    path = tmp_path / "Mo3-.scf.npz"
    seen = []

    def stop_in_the_polish(rung, cycles):
        seen.append(rung)
        if seen.count("polish") == 3:
            raise Stopped

    monkeypatch.setattr(dft, "CHECKPOINT_EVERY_S", 0.0)
    with pytest.raises(Stopped):
        run_dft(mo3, -1, 2, config, on_cycle=stop_in_the_polish, checkpoint=path)
    saved = load_checkpoint(path, checkpoint_key(mo3, -1, 2, config.theory()))
    assert saved["stage"] == "polish" and saved["cycles"] == len(seen)  # saved at the cycle it stopped after
    assert len(saved["trace"]["polish"]) == 3
    resumed = run_dft(mo3, -1, 2, config, checkpoint=path)
    assert resumed.notes[0] == f"resumed from a checkpoint (polish) after {len(seen)} cycles"
    fresh = run_dft(mo3, -1, 2, config)
    assert resumed.rung == fresh.rung == "smeared"
    assert len(resumed.energy_trace["polish"]) > 3  # went on from the third cycle's density
    assert resumed.energy == pytest.approx(fresh.energy, abs=1e-4)  # eV: the same solution
    # populations to the orbital gradient's threshold (sqrt(conv_tol) = 1e-3): 0.002 e apart here
    np.testing.assert_allclose(resumed.charges, fresh.charges, atol=5e-3)
    np.testing.assert_allclose(resumed.spin, fresh.spin, atol=5e-3)


@pytest.mark.slow
def test_a_polish_resumed_within_that_fails_hands_the_smeared_density_on_as_an_unresumed_one(tmp_path, monkeypatch):
    """The Newton rung after a failed polish starts from the smeared density, whether the
    polish ran through or was resumed from a checkpoint saved within it."""
    import cluster_gnn.dft as dft

    class Stopped(Exception):
        pass

    mo3 = Atoms("Mo3", positions=[[0, 0, 0], [2.2, 0, 0], [1.1, 1.9, 0]])
    config = DFTConfig(basis="sto-3g", ecp_elements=(), atomic_start=False)
    real_check, real_save = dft._check, dft.save_checkpoint
    checks, handed = [], []

    def reject_the_polish(mf, mol, cfg):  # the first check of a run is the polish's
        checks.append(1)
        return ("rejected", None) if len(checks) == 1 else real_check(mf, mol, cfg)

    def spy(path, key, stage, *args, **kwargs):  # the density handed to the Newton rung is saved first
        if stage == "newton-pre":
            handed.append(np.array(args[3]))
        return real_save(path, key, stage, *args, **kwargs)

    monkeypatch.setattr(dft, "_check", reject_the_polish)
    monkeypatch.setattr(dft, "save_checkpoint", spy)
    fresh = run_dft(mo3, -1, 2, config, checkpoint=tmp_path / "fresh.scf.npz")
    assert fresh.rung == "newton" and len(handed) == 1
    assert len(fresh.energy_trace["polish"]) > 3

    def stop_in_the_polish(rung, cycles):
        if rung == "polish" and cycles == len(fresh.energy_trace["smeared"]) + 3:
            raise Stopped

    path = tmp_path / "Mo3-.scf.npz"
    monkeypatch.setattr(dft, "CHECKPOINT_EVERY_S", 0.0)
    checks.clear()
    with pytest.raises(Stopped):
        run_dft(mo3, -1, 2, config, on_cycle=stop_in_the_polish, checkpoint=path)
    checks.clear()
    resumed = run_dft(mo3, -1, 2, config, checkpoint=path)
    assert resumed.notes[0].startswith("resumed from a checkpoint (polish)")
    assert resumed.rung == "newton" and len(handed) == 2
    np.testing.assert_allclose(handed[1], handed[0], atol=1e-8)  # the smeared density, not the mid-polish one
    assert resumed.energy == pytest.approx(fresh.energy, abs=1e-4)
