import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cluster_gnn.config import SearchConfig
from cluster_gnn.electronic import relax_cluster
from cluster_gnn.search import random_cluster, same_minimum, search_cluster
from cluster_gnn.structures import fragments, read_cluster

TINY = SearchConfig(n_starts=3, n_refine=1, hop_steps=1, n_isomers=2)


def test_random_starts_are_compact_and_connected():
    rng = np.random.default_rng(0)
    for _ in range(20):
        atoms = random_cluster(["Mo"] * 5 + ["S"] * 4, rng)
        d = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1) + np.eye(9) * 9
        assert d.min() > 1.5
        assert len(fragments(atoms)) == 1


@pytest.mark.slow
def test_search_two_real_clusters(tmp_path):
    for name, mult in (("Rh3-", 5), ("Fe3C2-", 10)):
        result = search_cluster(name, multiplicities=[mult], config=TINY, out_dir=tmp_path)
        assert result.finished and result.n_relaxations == 4
        atoms = read_cluster(result.path)  # validates: no overlap, one fragment
        assert atoms.info["multiplicity"] == mult and atoms.info["method"] == "GFN1-xTB"
        assert atoms.info["electronic_temperature"] == 5000.0
        assert atoms.info["energy"] == pytest.approx(result.energy)
        assert atoms.info["n_relaxations"] == 4
    # rerunning a finished search does no new relaxation
    again = search_cluster("Rh3-", multiplicities=[5], config=TINY, out_dir=tmp_path)
    assert again.n_relaxations == 4


def test_relax_lowers_the_energy_and_dedup_recognises_itself():
    rng = np.random.default_rng(3)
    start = random_cluster(["Fe"] * 3 + ["C"] * 2, rng)
    relaxed, energy, converged, steps = relax_cluster(start, -1, 10, fmax=0.05, max_steps=300)
    from cluster_gnn.electronic import compute_xtb_features

    assert energy < compute_xtb_features(start, -1, 10).energy
    assert same_minimum(relaxed, relaxed.copy(), energy, energy)
    moved = relaxed.copy()
    moved.positions[0] += [0.5, 0, 0]
    assert not same_minimum(relaxed, moved, energy, energy)


@pytest.mark.slow
def test_budget_stops_and_resume_finishes(tmp_path):
    result = search_cluster("Fe3C2-", multiplicities=[10], config=TINY, out_dir=tmp_path, deadline=time.time())
    assert not result.finished and not (tmp_path / "Fe3C2-.xyz").exists()
    result = search_cluster("Fe3C2-", multiplicities=[10], config=TINY, out_dir=tmp_path)
    assert result.finished


def _lines(path):
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.slow
def test_kill_9_during_search_loses_nothing(tmp_path):
    """SIGKILL the whole search mid-run; the rerun keeps every finished result and every
    checkpointed relaxation, and no half-written file is left."""
    cmd = [sys.executable, "-m", "cluster_gnn", "structures", "Rh3-", "Fe3C2-", "--n-starts", "8",
           "--n-refine", "1", "--hop-steps", "2", "--workers", "1", "--out", str(tmp_path)]
    ckpt = tmp_path / "checkpoints" / "Fe3C2-.jsonl"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(_lines(ckpt)) < 2:
            time.sleep(0.05)
        assert len(_lines(ckpt)) >= 2, "the search did not get going"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert (tmp_path / "Rh3-.xyz").exists() and not (tmp_path / "Fe3C2-.xyz").exists()
    finished_before = (tmp_path / "Rh3-.xyz").read_bytes()
    kept = [line for line in _lines(ckpt) if line.endswith("}")]
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert (tmp_path / "Rh3-.xyz").read_bytes() == finished_before
    after = _lines(ckpt)
    assert after[: len(kept)] == kept  # no checkpointed relaxation redone or lost
    records = [json.loads(line) for line in after]
    keys = [(r["kind"], r["multiplicity"], r["index"], r["hop"]) for r in records]
    assert len(keys) == len(set(keys)) == 8 + 2
    atoms = read_cluster(tmp_path / "Fe3C2-.xyz")
    assert atoms.info["n_relaxations"] == 10
    assert not list(tmp_path.rglob("*.tmp"))
