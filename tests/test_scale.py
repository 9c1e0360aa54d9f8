"""Scale-out and concurrency: the same numbers through a Dask LocalCluster and from
simultaneous predictions as from plain sequential runs."""
import threading
import tracemalloc

import numpy as np
import pytest

from cluster_gnn.config import SearchConfig
from cluster_gnn.search import plan_search, search_many

TINY = SearchConfig(n_starts=2, n_refine=1, hop_steps=1, n_isomers=1)


@pytest.mark.slow
def test_search_through_dask_matches_local_pool(tmp_path):
    from dask.distributed import Client, LocalCluster

    plan = plan_search(["Rh3-", "Fe3C2-"])
    local = {r.name: r for r in search_many(plan, TINY, workers=2, out_dir=tmp_path / "local", progress=False)}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        remote = {r.name: r for r in search_many(plan, TINY, out_dir=tmp_path / "dask", scheduler=client,
                                                 progress=False)}
    assert set(local) == set(remote) == {"Rh3-", "Fe3C2-"}
    for name in local:
        assert remote[name].finished and remote[name].energy == pytest.approx(local[name].energy, abs=1e-8)
        a = (tmp_path / "local" / f"{name}.xyz").read_text().splitlines()[2:]
        b = (tmp_path / "dask" / f"{name}.xyz").read_text().splitlines()[2:]
        assert a == b  # identical coordinates


@pytest.mark.slow
def test_simultaneous_predictions_match_sequential(test_data):
    from cluster_gnn.predict import load_ensemble, predict_structure
    from cluster_gnn.structures import read_cluster

    ensemble = load_ensemble()
    jobs = [(read_cluster(test_data / f), c, m) for f, c, m in
            (("Mo2S2-.xyz", -1, 2), ("Mo5S4-.xyz", -1, 2), ("Rh3-.xyz", -1, 5), ("Fe3C2-.xyz", -1, 10))] * 2
    sequential = [predict_structure(a, c, m, ensemble=ensemble).lg_k1 for a, c, m in jobs]
    results = [None] * len(jobs)
    errors = []

    def work(i):
        try:
            a, c, m = jobs[i]
            results[i] = predict_structure(a.copy(), c, m, ensemble=ensemble).lg_k1
        except Exception as e:  # noqa: BLE001 - the test reports any failure
            errors.append(repr(e))

    tracemalloc.start()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert not errors
    np.testing.assert_allclose(results, sequential, rtol=0, atol=1e-5)
    print(f"{len(jobs)} simultaneous predictions, peak traced Python memory {peak / 1e6:.1f} MB")
    assert peak < 500e6


@pytest.mark.slow
def test_batch_prediction_through_dask_matches_sequential(test_data, tmp_path):
    """Several files: the same numbers sequentially, on a local pool and on a Dask
    LocalCluster; a broken file gets its own error row and costs the others nothing."""
    from dask.distributed import Client, LocalCluster

    from cluster_gnn.predict import predict_files

    files = [test_data / "Mo2S2-.xyz", test_data / "bad" / "truncated.xyz", test_data / "Rh3-.xyz"]
    sequential = predict_files(files)
    pool = predict_files(files, workers=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        remote = predict_files(files, scheduler=client)
    for table in (sequential, pool, remote):
        assert list(table["file"]) == [str(f) for f in files]
        assert table["error"].isna().tolist() == [True, False, True]
        assert "declares 4 atoms but has 2" in table.loc[1, "error"]
    np.testing.assert_allclose(pool["lg_k1"][[0, 2]].astype(float), sequential["lg_k1"][[0, 2]].astype(float), atol=1e-4)
    np.testing.assert_allclose(remote["lg_k1"][[0, 2]].astype(float), sequential["lg_k1"][[0, 2]].astype(float), atol=1e-4)


def test_a_scheduler_that_cannot_be_reached_is_one_clear_error():
    pytest.importorskip("distributed")
    from cluster_gnn.errors import ClusterGNNError
    from cluster_gnn.parallel import task_executor

    with pytest.raises(ClusterGNNError, match="cannot reach the Dask scheduler 'no-such-host'"):
        with task_executor(scheduler="no-such-host"):
            pass
