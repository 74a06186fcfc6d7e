"""Shared pieces: validation messages, result save/load, executors, max-min landmarks."""
import dataclasses
import os

import numpy as np
import pytest

from topo_mi import _validation as v
from topo_mi._results import Result, load_result, result_dataclass
from topo_mi._sampling import maxmin_landmarks
from topo_mi.errors import InvalidParameterError, NonFiniteError, UnknownNameError
from topo_mi.parallel import ProcessExecutor, SerialExecutor, get_executor


@result_dataclass
class _Inner(Result):
    values: np.ndarray
    label: str


@result_dataclass
class _Outer(Result):
    inner: list
    table: dict
    scale: float
    pair: tuple = (1, 2)

    def summary(self):
        return {"scale": self.scale}


def test_result_roundtrip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    a = _Outer(inner=[_Inner(rng.normal(size=(3, 2)), "x"), _Inner(np.array([np.inf, 1.0]), "y")],
               table={"k": np.arange(4), 3: "three"}, scale=0.5)
    a.save(tmp_path / "r")
    b = load_result(tmp_path / "r")
    assert isinstance(b, _Outer) and isinstance(b.inner[0], _Inner)
    np.testing.assert_array_equal(b.inner[0].values, a.inner[0].values)
    np.testing.assert_array_equal(b.inner[1].values, a.inner[1].values)
    np.testing.assert_array_equal(b.table["k"], np.arange(4))
    assert b.table[3] == "three" and b.pair == (1, 2) and b.scale == 0.5
    d = a.to_dict()
    assert d["type"] == "_Outer" and d["inner"][0]["values"] == a.inner[0].values.tolist()
    assert "scale=0.5" in repr(a)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.scale = 1.0
    with pytest.raises(InvalidParameterError, match="expected a saved _Inner"):
        _Inner.load(tmp_path / "r")


def test_validation_messages():
    with pytest.raises(InvalidParameterError, match=r"X: expected a 2-D array"):
        v.check_point_cloud(np.zeros(5))
    with pytest.raises(NonFiniteError, match=r"1 non-finite entries in 1 of 3 rows \(rows 1\) \(1 NaN"):
        v.check_point_cloud(np.array([[0.0], [np.nan], [1.0]]))
    with pytest.raises(InvalidParameterError, match="at least 2 points"):
        v.check_point_cloud(np.zeros((1, 3)))
    with pytest.raises(UnknownNameError, match="did you mean 'ripser'"):
        v.check_choice("backend", "riper", ("ripser", "gudhi"))
    with pytest.raises(InvalidParameterError, match="symmetric"):
        v.check_distance_matrix(np.array([[0, 1.0], [2.0, 0]]))
    with pytest.raises(InvalidParameterError, match="n: expected an integer >= 1"):
        v.check_int("n", 0, min_value=1)
    assert isinstance(v.check_random_state(3), np.random.Generator)


def _square(x):
    return x * x


def test_executors_agree():
    items = list(range(7))
    expected = [i * i for i in items]
    assert SerialExecutor().map(_square, items, progress=False) == expected
    assert ProcessExecutor(2).map(_square, items, progress=False) == expected
    assert isinstance(get_executor(None), SerialExecutor)
    with pytest.raises(UnknownNameError):
        get_executor("threads")


def _blas_threads(_):
    from threadpoolctl import threadpool_info

    import numpy  # noqa: F401  (its BLAS is loaded by now either way)

    return os.environ.get("OMP_NUM_THREADS"), max(i["num_threads"] for i in threadpool_info())


def test_process_workers_share_the_cores_instead_of_oversubscribing_them():
    # each worker gets cores // workers BLAS/OpenMP threads by default (at least 1), or what is asked;
    # the workers report what they run with, whatever OMP_NUM_THREADS the tests themselves run under
    cores = os.cpu_count() or 1
    ex = ProcessExecutor(2)
    assert ex.threads_per_worker == max(1, cores // 2)
    assert ex._threads_for(1) == cores  # a pool of one worker (one task left) gets every core
    assert ProcessExecutor(4 * cores).threads_per_worker == 1
    for env, blas in ex.map(_blas_threads, [0, 1], progress=False):
        assert env == str(ex.threads_per_worker) and blas <= ex.threads_per_worker
    for k in (1, 3):  # asked for: exactly that many, 3 more than these tests' own setting
        got = ProcessExecutor(2, threads_per_worker=k).map(_blas_threads, [0, 1], progress=False)
        assert got == [(str(k), k)] * 2
    with pytest.raises(InvalidParameterError, match="threads_per_worker"):
        ProcessExecutor(2, threads_per_worker=0)


def test_maxmin_cover_radius_is_exact():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 5))
    idx, r = maxmin_landmarks(X, 40, seed=0)
    assert len(set(idx.tolist())) == 40
    D = np.linalg.norm(X[:, None, :] - X[None, idx, :], axis=-1)
    assert r == pytest.approx(D.min(axis=1).max(), rel=1e-9)
    # Greedy property: each new landmark is the farthest point from the previous ones.
    for k in range(1, 40):
        dk = np.linalg.norm(X[:, None, :] - X[None, idx[:k], :], axis=-1).min(axis=1)
        assert dk[idx[k]] == pytest.approx(dk.max(), rel=1e-9)
    idx2, r2 = maxmin_landmarks(X, 40, seed=0)
    np.testing.assert_array_equal(idx, idx2)
