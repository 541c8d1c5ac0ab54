"""dask arrays on the left of ``W``: lazy, block by block, equal to the NumPy path.

Each block of rows must give, bit for bit, what ``block @ W`` gives in NumPy code;
the settings in force when the product is built travel with the graph; ``W`` is
sent once to each worker of a cluster of processes.
"""

import pickle

import numpy as np
import pytest

import approxmat as am
import approxmat.dask as adask
from approxmat import _matrix, _testing

da = pytest.importorskip("dask.array")  # the test extra installs dask: never skipped in CI
import dask  # noqa: E402

D, M = 12, 5

FORMS = {
    "x @ W": lambda x, W: x @ W,
    "np.matmul": lambda x, W: np.matmul(x, W),
    "np.dot": lambda x, W: np.dot(x, W),
    "da.matmul": lambda x, W: da.matmul(x, W),
}


@pytest.fixture(scope="module")
def W():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((3000, D)) @ rng.standard_normal((D, D))
    return am.ApproxMatrix(rng.standard_normal((D, M))).fit(X, [2, 4], random_state=0)


def _blockwise(x, W):
    """What the NumPy path gives for each block of ``x`` (a dask array), concatenated."""
    blocks = [np.matmul(np.asarray(b), W) for b in x.to_delayed().ravel()
              for b in [b.compute()]]
    return np.concatenate(blocks) if blocks else np.empty((0, M))


def _data(rng, n, dtype=np.float64, order="C"):
    x = rng.standard_normal((n, D)) @ rng.standard_normal((D, D))
    return np.asarray(x, dtype=dtype, order=order)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_every_form_is_lazy_and_equals_the_numpy_path(W, rng, form, dtype):
    X = _data(rng, 1000, dtype)
    x = da.from_array(X, chunks=(300, D))
    y = FORMS[form](x, W)
    assert isinstance(y, da.Array) and y.shape == (1000, M)
    assert y.dtype == np.result_type(X.dtype, W.dtype)
    got = y.compute()
    _testing.assert_bits_equal(got, _blockwise(x, W))
    # the lookup-table points are row by row: the blocks make no difference here
    _testing.assert_bits_equal(got, X @ W)


@pytest.mark.parametrize("form", ["x @ W", "np.matmul", "np.dot"])
def test_a_chunked_contraction_axis_is_rechunked(W, rng, form):
    X = _data(rng, 500)
    x = da.from_array(X, chunks=(100, 5))
    y = FORMS[form](x, W)
    assert y.chunks == ((100,) * 5, (M,))
    _testing.assert_bits_equal(y.compute(), X @ W)


def test_da_matmul_with_a_chunked_contraction_axis_is_exact(W, rng):
    """dask splits W itself before approxmat sees it: the pieces are NumPy's products."""
    X = _data(rng, 200)
    y = da.matmul(da.from_array(X, chunks=(100, 5)), W).compute()
    np.testing.assert_allclose(y, X @ np.asarray(W), rtol=1e-12, atol=1e-12)
    assert not np.array_equal(y, X @ W)


@pytest.mark.parametrize("order", ["C", "F"])
def test_block_layouts_and_integer_rows(W, rng, order):
    X = _data(rng, 400, order=order)
    x = da.from_array(X, chunks=(150, D))
    _testing.assert_bits_equal((x @ W).compute(), _blockwise(x, W))
    Xi = rng.integers(-3, 4, size=(100, D)).astype(np.int16)
    xi = da.from_array(Xi, chunks=(40, D))
    yi = xi @ W
    assert yi.dtype == np.float64
    _testing.assert_bits_equal(yi.compute(), _blockwise(xi, W))


def test_zero_rows_one_row_and_other_ranks(W, rng):
    empty = da.zeros((0, D), chunks=(10, D))
    assert (empty @ W).compute().shape == (0, M)
    X = _data(rng, 60)
    v = da.from_array(X[0], chunks=5)  # 1-D: a 1-D result, as NumPy's
    _testing.assert_bits_equal((v @ W).compute(), X[0] @ W)
    X3 = X.reshape(3, 20, D)
    x3 = da.from_array(X3, chunks=(1, 10, D))
    y3 = (x3 @ W).compute()
    assert y3.shape == (3, 20, M)
    _testing.assert_bits_equal(y3, X3 @ W)
    _testing.assert_bits_equal(da.matmul(x3, W).compute(), X3 @ W)


def test_nan_rows_as_in_the_numpy_path(W, rng):
    X = _data(rng, 90)
    X[[3, 50], 2] = np.nan
    x = da.from_array(X, chunks=(30, D))
    y = (x @ W).compute()
    assert np.isnan(y[[3, 50]]).all() and np.isfinite(np.delete(y, [3, 50], axis=0)).all()
    _testing.assert_bits_equal(y, _blockwise(x, W))


def test_settings_at_build_time_travel_with_the_graph(W, rng):
    X = _data(rng, 300)
    x = da.from_array(X, chunks=(100, D))
    with am.config(tolerance=0):
        exact = x @ W
    approx, want = x @ W, X @ W
    with am.config(tolerance=0):  # settings when computing do not matter: building does
        _testing.assert_bits_equal(approx.compute(), want)
    _testing.assert_bits_equal(exact.compute(), X @ np.asarray(W))


class _Probe(np.ndarray):
    """A right operand that answers a product with the settings it ran under."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return am.get_config()


def test_tasks_enter_the_settings_and_split_the_cores(monkeypatch):
    probe = np.zeros((D, M)).view(_Probe)
    settings = am.config(tolerance=0.25, threads=3, verify=10)
    with settings:
        built = am.get_config()
    seen = adask._block(np.zeros((2, D)), probe, built)
    assert (seen.tolerance, seen.threads, seen.verify) == (0.25, 3, 10)
    # threads=None: the process's cores divided by the tasks that run at once
    free = am.get_config()
    monkeypatch.setattr(adask, "task_threads", lambda: 42)
    assert adask._block(np.zeros((2, D)), probe, free).threads == 42


def test_task_threads_under_the_threaded_scheduler():
    from approxmat import _backend

    cores = _backend.kernel_threads(None)
    assert adask.task_threads() == max(1, cores)  # the main thread: nothing beside it
    with dask.config.set(num_workers=2):
        got = dask.delayed(adask.task_threads)().compute(scheduler="threads")
    assert got == max(1, cores // 2)


def test_bad_operands_get_clear_errors(W):
    x = da.zeros((10, D), chunks=5)
    with pytest.raises(TypeError, match="takes no keyword arguments.*out"):
        np.matmul(x, W, out=np.empty((10, M)))
    with pytest.raises(ValueError, match="has 7 values but W has D=12 rows"):
        da.zeros((10, 7), chunks=5) @ W
    with pytest.raises(TypeError, match="complex128 cannot be multiplied"):
        da.zeros((10, D), dtype=complex, chunks=5) @ W


def test_w_pickles_to_its_arrays(W):
    data = pickle.dumps(W)
    arrays = np.asarray(W).nbytes + sum(
        sum(a.nbytes for a in vars(p).values() if isinstance(a, np.ndarray))
        if hasattr(p, "__dict__") else p.nbytes for p in W._levels)
    assert len(data) < arrays + 64 * 1024
    again = pickle.loads(data)
    X = np.random.default_rng(0).standard_normal((7, D))
    _testing.assert_bits_equal(X @ again, X @ W)
    assert dask.base.tokenize(W) == dask.base.tokenize(W)


def test_a_refit_gives_a_new_graph_name(rng):
    X = _data(rng, 400)
    W = am.ApproxMatrix(rng.standard_normal((D, M))).fit(X, [2], random_state=0)
    x = da.from_array(X, chunks=(200, D))
    built = x @ W
    want = X @ W
    before = built.name
    assert (x @ W).name == before
    W.fit(X, [4], random_state=0)
    assert (x @ W).name != before
    _testing.assert_bits_equal((x @ W).compute(), X @ W)
    _testing.assert_bits_equal(built.compute(), want)  # built before: the old points


def test_asarray_keeps_the_products_and_nothing_else(W, rng):
    w = da.asarray(W)
    chunk = w.compute()
    assert isinstance(chunk, adask.WeightsChunk)
    np.testing.assert_array_equal(chunk, np.asarray(W))
    for value in (chunk + 1, np.sum(chunk, axis=0), chunk.T @ np.ones(D)):
        assert type(value) is np.ndarray
    X = _data(rng, 5)
    _testing.assert_bits_equal(X @ chunk, X @ W)
    _testing.assert_bits_equal(X @ chunk[:, :3], X @ np.asarray(W)[:, :3])  # a piece: exact


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, memory_limit="1GiB") as cl:
        with distributed.Client(cl) as client:
            yield client


def test_a_cluster_of_processes_gets_w_once_per_worker(W, rng, cluster):
    client = cluster
    before = client.run(lambda: _matrix._UNPICKLED[0])
    X = _data(rng, 4000)
    x = da.from_array(X, chunks=(100, D))  # 40 tasks
    y = (x @ W).compute()
    _testing.assert_bits_equal(y, X @ W)
    after = client.run(lambda: _matrix._UNPICKLED[0])
    received = {w: after[w] - before[w] for w in after}
    assert all(n <= 1 for n in received.values()) and sum(received.values()) >= 1, received
    # the budget travels into the worker processes
    with am.config(tolerance=0):
        exact = x @ W
    _testing.assert_bits_equal(exact.compute(), X @ np.asarray(W))
    # one kernel thread per task: the worker has one thread, and dask's nanny sets
    # OMP_NUM_THREADS=1 in its processes
    assert client.submit(adask.task_threads, pure=False).result() == 1


@pytest.fixture(scope="module")
def WL():
    """A matrix fitted for W @ x (columns of x are the samples)."""
    rng = np.random.default_rng(8)
    x_cal = rng.standard_normal((M, M)) @ rng.standard_normal((M, 3000))
    W = am.ApproxMatrix(rng.standard_normal((D, M)))
    return W.fit(x_cal, [2, 4], random_state=0, side="left")


@pytest.mark.parametrize("form", ["W @ x", "np.matmul", "np.dot"])
@pytest.mark.parametrize("chunks", [(M, 40), (2, 40)])
def test_w_on_the_left_of_a_dask_array(WL, rng, form, chunks):
    X = rng.standard_normal((M, M)) @ rng.standard_normal((M, 200))
    x = da.from_array(X, chunks=chunks)
    y = {"W @ x": lambda: WL @ x, "np.matmul": lambda: np.matmul(WL, x),
         "np.dot": lambda: np.dot(WL, x)}[form]()
    assert isinstance(y, da.Array) and y.chunks == ((D,), (40,) * 5)
    got = y.compute()
    _testing.assert_bits_equal(got, np.concatenate(
        [WL @ X[:, i:i + 40] for i in range(0, 200, 40)], axis=1))
    _testing.assert_bits_equal(got, WL @ X)  # lookup tables: column by column
    assert not np.array_equal(got, np.asarray(WL) @ X)


def test_w_on_the_left_of_other_dask_shapes(WL, rng):
    X = rng.standard_normal((3, M, 20))
    _testing.assert_bits_equal((WL @ da.from_array(X, chunks=(1, M, 10))).compute(), WL @ X)
    v = rng.standard_normal(M)
    _testing.assert_bits_equal((WL @ da.from_array(v, chunks=2)).compute(), WL @ v)
    with am.config(tolerance=0):
        exact = WL @ da.from_array(X[0], chunks=(M, 10))
    _testing.assert_bits_equal(exact.compute(), np.asarray(WL) @ X[0])
    with pytest.raises(ValueError, match="has 4 values but W has M=5 columns"):
        WL @ da.zeros((4, 3), chunks=2)
    # not fitted for the left: dask's own exact product, still lazy
    W = am.ApproxMatrix(np.asarray(WL))
    y = W @ da.from_array(X[0], chunks=(M, 10))
    assert isinstance(y, da.Array)
    np.testing.assert_allclose(y.compute(), np.asarray(WL) @ X[0], rtol=1e-12)
