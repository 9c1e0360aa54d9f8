"""Design from a formula (cluster_gnn.design and app_pages/4_Design.py): checks at the edge,
a real search + prediction of a tiny cluster in a worker process, cancel, the page."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cluster_gnn import design
from cluster_gnn.errors import ClusterGNNError
from cluster_gnn.limits import MAX_DESIGN_ATOMS

APP = str(Path(__file__).resolve().parent.parent / "app.py")
DESIGN = "app_pages/4_Design.py"


@pytest.fixture(autouse=True)
def design_root(tmp_path, monkeypatch):
    monkeypatch.setattr(design, "DESIGN_ROOT", tmp_path / "design")
    yield tmp_path / "design"
    for job in list(design._JOBS.values()):
        job.cancel()
    design._JOBS.clear()


@pytest.mark.parametrize(("formula", "kwargs", "message"), [
    ("", {}, "type a formula"),
    ("Mo2Xy-", {}, "unknown element 'Xy'"),
    (f"Mo{MAX_DESIGN_ATOMS}S-", {}, f"2 to {MAX_DESIGN_ATOMS} atoms"),
    ("Mo", {}, "2 to"),
    ("Mo2S-", {"charge": -7}, "outside the allowed range -3 to 3"),
    ("Mo2S-", {"multiplicity": 1}, "multiplicity 1"),
    ("Mo2S-", {"time_limit_s": 0}, "time limit must be 10"),
])
def test_bad_requests_are_one_line_errors_and_start_nothing(formula, kwargs, message):
    with pytest.raises(ClusterGNNError, match=message.replace("(", r"\(")) as err:
        design.start_design(formula, **kwargs)
    assert "\n" not in str(err.value)
    assert not design._JOBS


def test_budget_grows_with_the_cluster():
    small, medium, large = design.design_config(3), design.design_config(8), design.design_config(13)
    assert small.n_starts < medium.n_starts < large.n_starts


@pytest.mark.slow
def test_design_of_a_tiny_cluster_searches_and_predicts(design_root):
    job = design.start_design("Mo2S-", time_limit_s=300)
    assert design.get_design(job.id) is job and job.multiplicity == 2
    prediction = job.wait(timeout_s=240)
    status = job.poll()
    assert status.state == "done" and status.done == status.total > 0
    assert prediction.atoms.get_chemical_formula() == "Mo2S" and len(prediction.importance) == 3
    assert -16 < prediction.lg_k1 < -8 and prediction.lg_k1_std > 0
    assert (design_root / "Mo2S-_q-1_m2_s4r1h2" / "Mo2S-.xyz").is_file()  # the search's result, resumable


@pytest.mark.slow
def test_cancel_kills_the_worker():
    job = design.start_design("Fe2C-", time_limit_s=300)
    deadline = time.time() + 60
    while job.process.pid is None and time.time() < deadline:
        time.sleep(0.1)
    status = job.cancel()
    assert status.state == "cancelled" and not job.process.is_alive()
    with pytest.raises(ClusterGNNError, match="cancelled"):
        job.prediction()


def test_page_refuses_a_bad_formula_in_one_line():
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.switch_page(DESIGN).run()
    assert not at.exception
    at.text_input(key="design_formula").set_value("Mo40S-")
    next(b for b in at.button if b.label == "Search and predict").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [f"Mo40S- has 41 atoms; a design searches clusters of 2 to {MAX_DESIGN_ATOMS} atoms"]


@pytest.mark.slow
def test_page_runs_a_design_and_shows_the_prediction():
    """The page polls the running design (a rerun a second) until the prediction shows."""
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(DESIGN).run()
    at.text_input(key="design_formula").set_value("Mo2S-")
    next(b for b in at.button if b.label == "Search and predict").click().run(timeout=240)
    assert not at.exception and not at.error
    job = design.get_design(at.session_state["design_job"])
    assert job is not None and job.poll().state == "done"
    metrics = {m.label: m.value for m in at.metric}
    prediction = job.prediction()
    assert metrics["Predicted lg k₁"] == f"{prediction.lg_k1:.2f} ± {prediction.lg_k1_std:.2f}"
    assert at.get("iframe") and len(at.dataframe[0].value) == 3
