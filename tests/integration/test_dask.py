"""Fan-out on a dask.distributed cluster: same results as local, and a killed worker is survived."""
import os
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from topo_mi.parallel import DaskExecutor, SerialExecutor, get_executor  # noqa: E402


def _work(item):
    seed, delay = item
    time.sleep(delay)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(50, 4))
    return float(np.linalg.svd(X, compute_uv=False)[0]), os.getpid()


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as c:
        yield c


def test_dask_results_identical_to_serial(cluster):
    items = [(s, 0.0) for s in range(12)]
    local = [r for r, _ in SerialExecutor().map(_work, items, progress=False)]
    ex = get_executor("dask", address=cluster.scheduler_address)
    try:
        remote = [r for r, _ in ex.map(_work, items, progress=False)]
    finally:
        ex.close()
    assert remote == local


def test_killed_worker_is_survived(cluster):
    import threading

    from distributed import Client

    client = Client(cluster)
    try:
        ex = DaskExecutor(client)
        items = [(s, 0.4) for s in range(10)]
        expected = [r for r, _ in SerialExecutor().map(_work, [(s, 0.0) for s in range(10)], progress=False)]

        killed = []

        def kill_one():
            time.sleep(0.6)
            worker_pids = client.run(os.getpid)
            addr, pid = sorted(worker_pids.items())[0]
            os.kill(pid, 9)
            killed.append(pid)

        t = threading.Thread(target=kill_one)
        t.start()
        out = ex.map(_work, items, progress=False)
        t.join()
        assert [r for r, _ in out] == expected
        assert killed and killed[0] not in client.run(os.getpid).values()
        assert killed[0] in {pid for _, pid in out} or len({pid for _, pid in out}) >= 2
    finally:
        client.close()


DASK_SPEC = """
name = "dask"
seed = 1
[dataset]
name = "clusters"
n = 120
params = { n_clusters = 2 }
[model]
architecture = "mlp"
params = { widths = [8, 8], out_dim = 2 }
train = { epochs = 2 }
[analyses.topology]
max_dim = 1
"""


def test_spec_run_identical_locally_and_on_dask(cluster, tmp_path):
    from topo_mi.pipelines import run

    spec = DASK_SPEC
    local = run(spec, out=tmp_path / "local", progress=False)
    ex = get_executor("dask", address=cluster.scheduler_address)
    try:
        remote = run(spec, out=tmp_path / "dask", executor=ex, progress=False)
    finally:
        ex.close()
    assert (tmp_path / "local" / "results.json").read_bytes() == (tmp_path / "dask" / "results.json").read_bytes()
    assert local.results == remote.results
