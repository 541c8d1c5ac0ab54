"""Operating points of several kinds, chosen per call by measured cost.

Choice by cost is tested with hand-made cost curves (:func:`approxmat._testing.with_costs`):
timings are never asserted, only what a given curve makes a call choose.
"""

import io
import json

import numpy as np
import pytest

import approxmat as am
from approxmat import _call, _costs, _io, _reference, _testing
from approxmat._fit import fit_points
from approxmat._points import EXACT, LowRank


def _lowrank(D, M, r, rng, error=0.05):
    return LowRank(rng.standard_normal((D, r)), rng.standard_normal((r, M)), error=error)


@pytest.fixture
def mixed(rng, make_level):
    """(weights, W): a lookup-table point (C=4, err .3) and a rank-2 point (err .1)."""
    D, M = 24, 5
    weights = rng.standard_normal((D, M))
    points = [make_level(D, M, 4, rng, error=0.3), _lowrank(D, M, 2, rng, error=0.1)]
    return weights, am.ApproxMatrix(weights)._with_levels(points)


def _crossing_curve():
    """Exact is cheapest for few rows, the C=4 point from 100 rows, rank 2 never."""
    return _costs.Curve(
        (1, 100, 4096),
        ((1e-6, 100e-6, 4096e-6),  # exact: 1 us a row
         (20e-6, 60e-6, 1000e-6),  # lut: 20 us fixed, then cheap
         (5e-6, 150e-6, 6000e-6)),  # lowrank: slower than exact everywhere
    )


def _report():
    r = am.last_call()
    return r.kind, r.size


# ---------------------------------------------------------------- choice by cost
@pytest.mark.parametrize("entry", ["fast", "general"])
def test_tolerance_takes_the_point_predicted_fastest_for_the_rows(mixed, rng, entry):
    weights, W = mixed
    W = _testing.with_costs(W, _crossing_curve())
    lut = W._levels[0]

    def call(x):
        # 2-D ndarrays take the fast path; a 3-D x the general one.
        return x @ W if entry == "fast" else (x[None] @ W)[0]

    with am.config(tolerance=0.5):
        for n, kind in [(1, "exact"), (10, "exact"), (200, "lut"), (5000, "lut")]:
            x = rng.standard_normal((n, 24))
            y = call(x)
            assert _report() == ((kind, 0) if kind == "exact" else (kind, 4)), n
            report = am.last_call()
            index = 0 if kind == "exact" else 1
            assert report.predicted_seconds == pytest.approx(_crossing_curve().predict(index, n))
            assert report.seconds > 0 and report.rows == n
            if kind == "exact":
                np.testing.assert_array_equal(y, x @ weights)
                assert report.reason == "exact product predicted fastest within the budget"
            else:
                assert report.reason == "level with 4 codebooks predicted fastest within the budget"
            if kind == "exact":
                pass
            else:
                np.testing.assert_array_equal(y, _reference.approx_matmul(x, lut, np.float64))
    with am.config(tolerance=0.2):  # only the rank-2 point qualifies: slower, so exact
        call(rng.standard_normal((5000, 24)))
        assert _report() == ("exact", 0)
    with am.config(tolerance=None):  # the most accurate point, whatever it costs
        x = rng.standard_normal((3, 24))
        left, right = W._levels[1].left, W._levels[1].right
        np.testing.assert_allclose(call(x), x @ left @ right, rtol=1e-12)
        assert _report() == ("lowrank", 2)
        assert np.isnan(am.last_call().predicted_seconds)
    with am.config(tolerance=0):
        call(rng.standard_normal((5000, 24)))
        assert _report() == ("exact", 0)
        assert am.last_call().reason == "tolerance=0 asks for the exact product"


def test_schedule_is_cached_per_layout_and_threads(mixed, rng):
    _, W = mixed
    W = _testing.with_costs(W, _crossing_curve())
    x = rng.standard_normal((300, 24))
    with am.config(tolerance=0.5):
        x @ W
        np.asfortranarray(x) @ W
        with am.config(threads=1):
            x @ W
    keys = {key[1:] for key in W._product._schedules}
    assert ("<f8", "C", _call._kernel_threads(None)) in keys
    assert ("<f8", "F", _call._kernel_threads(None)) in keys
    assert ("<f8", "C", 1) in keys


def test_lowrank_point_computes_two_products(mixed, rng):
    weights, W = mixed
    point = W._levels[1]
    x = rng.standard_normal((33, 24))
    want64 = (x @ point.left) @ point.right
    with am.config(tolerance=None):
        np.testing.assert_allclose(x @ W, want64, rtol=1e-12, atol=1e-12)
        x32 = x.astype(np.float32)
        W32 = am.ApproxMatrix(weights.astype(np.float32))._with_levels(W._levels)
        y32 = x32 @ W32
        assert y32.dtype == np.float32
        left, right = point.factors(np.float32)
        np.testing.assert_array_equal(y32, (x32 @ left) @ right)
        assert (x32 @ W).dtype == np.float64  # NumPy's result type
        out = np.empty((33, 5))
        assert np.matmul(x, W, out=out) is out
        np.testing.assert_allclose(out, want64, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.dot(x, W), want64, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(x[0] @ W, want64[0], rtol=1e-12, atol=1e-12)
        y16 = x.astype(np.float16) @ am.ApproxMatrix(weights.astype(np.float16))._with_levels(
            W._levels)
        assert y16.dtype == np.float16
        assert (np.empty((0, 24)) @ W).shape == (0, 5)
        assert am.last_call().rows == 0
        bad = x.copy()
        bad[3, 7] = np.nan
        y = bad @ W
        assert np.isnan(y[3]).all() and np.isfinite(np.delete(y, 3, axis=0)).all()


def test_lowrank_calls_are_verified(mixed, rng):
    weights, W = mixed
    x = rng.standard_normal((100, 24))
    with am.config(tolerance=None, verify=100):
        y = x @ W
    report = am.last_call()
    assert report.kind == "lowrank" and report.rows_verified == 100
    err = np.linalg.norm(y - x @ weights) / np.linalg.norm(x @ weights)
    assert report.error_estimate == pytest.approx(err, rel=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_rows_under_a_budget(mixed, dtype):
    weights, W = mixed
    W = am.ApproxMatrix(weights.astype(dtype))._with_levels(W._levels)
    W = _testing.with_costs(W, _crossing_curve())
    with am.config(tolerance=0.5):
        y = np.empty((0, 24), dtype) @ W
    assert y.shape == (0, 5) and y.dtype == dtype
    assert am.last_call().rows == 0 and am.last_call().kind == "exact"


def test_curves_are_measured_per_dtype_layout_and_threads(rng):
    D, M = 16, 6
    X = rng.standard_normal((600, D))
    W = am.ApproxMatrix(rng.standard_normal((D, M))).fit(X, [4], ranks=[2], random_state=0)
    measured = set(W._product.costs.curves)
    threads = {1, _call._kernel_threads(None)}
    assert measured == {(np.dtype(np.float64).str, layout, t)
                        for layout in "CF" for t in threads}
    curve = W._product.costs.curves[("<f8", "C", 1)]
    assert curve.rows[0] == 1 and len(curve.seconds) == 3
    with am.config(tolerance=1.0, threads=1):
        X[:10].astype(np.float32) @ W  # a new dtype is measured on first use
    assert ("<f4", "C", 1) in W._product.costs.curves


# ---------------------------------------------------------------- fitting
def test_reduced_rank_regression_beats_truncated_svd(rng):
    D, M = 20, 12
    basis = rng.standard_normal((5, D))
    X = rng.standard_normal((3000, 5)) @ basis + 0.05 * rng.standard_normal((3000, D))
    weights = rng.standard_normal((D, M))
    points = fit_points(X, weights, (), [1, 3, 12], random_state=0)
    assert [(p.kind, p.size) for p in points] == [("lowrank", 1), ("lowrank", 3),
                                                  ("lowrank", 12)]
    assert points[0].error > points[1].error > points[2].error
    assert points[2].error < 1e-12  # full rank is the product itself
    U, s, Vt = np.linalg.svd(weights, full_matrices=False)
    x, y = X[:500], X[:500] @ weights
    for p in points[:2]:
        r = p.size
        svd_err = np.linalg.norm(x @ (U[:, :r] * s[:r]) @ Vt[:r] - y) / np.linalg.norm(y)
        ours = np.linalg.norm(x @ p.left @ p.right - y) / np.linalg.norm(y)
        assert ours < svd_err


def test_bad_ranks_and_prune(rng):
    X = rng.standard_normal((400, 8))
    W = am.ApproxMatrix(rng.standard_normal((8, 3)))
    for ranks, match in [(0, r"rank 0 is out of range"), (4, r"rank 4 is out of range"),
                         ([2.0], "ranks must contain ints"), ([True], "ranks must contain"),
                         ("2", "ranks must be None, an int or a sequence")]:
        with pytest.raises((ValueError, TypeError), match=match):
            W.fit(X, ranks=ranks)
    with pytest.raises(ValueError, match="nothing to fit"):
        W.fit(X, [], ranks=[])
    with pytest.raises(TypeError, match="prune must be True, False or None"):
        W.fit(X, prune="yes")
    assert not W.fitted


def test_ncodebooks_alone_fits_lookup_tables_only(rng):
    X = rng.standard_normal((500, 12))
    W = am.ApproxMatrix(rng.standard_normal((12, 4))).fit(X, [2, 4], random_state=0)
    assert [(p.kind, p.size) for p in W.levels] == [("lut", 2), ("lut", 4)]
    W.fit(X, ranks=[1, 2], random_state=0)
    assert [(p.kind, p.size) for p in W.levels] == [("lowrank", 1), ("lowrank", 2)]


def test_default_fit_keeps_no_dominated_point(rng):
    D, M = 32, 16
    X = rng.standard_normal((2000, 8)) @ rng.standard_normal((8, D))
    W = am.ApproxMatrix(rng.standard_normal((D, M))).fit(X, random_state=0)
    product = W._product
    assert _costs.dominated(product.costs, product.points) == []
    full = am.ApproxMatrix(np.asarray(W)).fit(X, random_state=0, prune=False)
    assert len(full.levels) >= len(W.levels)
    kept = {(p.kind, p.size) for p in W.levels}
    assert kept <= {(p.kind, p.size) for p in full.levels}
    errors = [p.error for p in W.levels]
    assert all(np.isfinite(errors))


def test_pruning_drops_points_slower_and_less_accurate():
    from types import SimpleNamespace as P

    points = [EXACT, P(error=0.3), P(error=0.1), P(error=0.2)]
    curve = _costs.Curve((1, 1000), ((1e-6, 1e-3),  # exact
                                     (2e-6, 1e-4),  # lut, error .3: fast at 1000 rows
                                     (2e-6, 2e-4),  # error .1
                                     (3e-6, 3e-4)))  # error .2, slower than the .1 one
    table = _costs.CostTable(curves={("<f4", "C", 1): curve})
    assert _costs.dominated(table, points) == [3]
    slow = _costs.Curve((1, 1000), ((1e-6, 1e-3), (2e-6, 2e-3), (2e-6, 9.9e-4),
                                    (3e-6, 3e-4)))
    table = _costs.CostTable(curves={("<f4", "C", 1): slow})
    # the .3 point is never 5 % faster than exact; the .1 point only 1 % faster
    assert _costs.dominated(table, points) == [1, 2]
    kept = _costs.subset(table, [0, 3])
    assert kept.curves[("<f4", "C", 1)].seconds == (slow.seconds[0], slow.seconds[3])


def test_pruning_drops_a_point_beaten_by_different_points_at_different_rows():
    from types import SimpleNamespace as P

    points = [EXACT, P(error=0.1), P(error=0.1), P(error=0.3), P(error=float("nan"))]
    curve = _costs.Curve((1, 1000), ((1e-6, 1e-3),
                                     (1e-6, 5e-4),  # fast for few rows
                                     (9e-6, 1e-4),  # fast for many
                                     (5e-6, 3e-4),  # never the fastest of its budget
                                     (1e-7, 1e-7)))  # unmeasured error: never allowed
    table = _costs.CostTable(curves={("<f4", "C", 1): curve})
    assert _costs.dominated(table, points) == [3]
    sched = _costs.schedule(curve, [0, 1, 2, 3], points)
    assert set(sched.indices) <= {0, 1, 2}


def test_a_matrix_with_only_the_exact_point_left_is_fitted(rng):
    weights = rng.standard_normal((6, 2))
    W = am.ApproxMatrix(weights)
    W._set_points((), _costs.CostTable(), True)
    assert W.fitted and W.levels == ()
    x = rng.standard_normal((3, 6))
    with am.config(tolerance=0.5):
        np.testing.assert_array_equal(x @ W, x @ weights)
    assert am.last_call().reason == (
        "no fitted point was faster than the exact product where it was fitted")


# ---------------------------------------------------------------- levels table
def test_levels_table_states_kind_size_error_bytes_and_speedup(mixed):
    _, W = mixed
    W = _testing.with_costs(W, _crossing_curve())
    levels = W.levels
    assert [(p.kind, p.size, p.ncodebooks) for p in levels] == [("lut", 4, 4),
                                                               ("lowrank", 2, None)]
    assert levels[1].nbytes == (24 * 2 + 2 * 5) * 4
    assert levels[0].speedup == pytest.approx(4096e-6 / 1000e-6)
    assert levels[1].speedup == pytest.approx(4096 / 6000)
    text = repr(levels)
    lines = text.splitlines()
    assert lines[0].split() == ["kind", "size", "validated", "error", "bytes", "speedup"]
    assert lines[1].split()[0] == "exact" and lines[2].split()[:2] == ["lut", "4"]
    assert lines[3].split()[:3] == ["lowrank", "2", "0.1"] and lines[2].endswith("4.10x")
    assert "at N=4096 rows of float" in lines[-1]
    unmeasured = am.ApproxMatrix(np.asarray(W))._with_levels(W._levels).levels
    assert np.isnan(unmeasured[0].speedup) and "not measured" in unmeasured.measured_at


# ---------------------------------------------------------------- files
def test_file_round_trip_keeps_factors_and_cost_curves(tmp_path, rng):
    D, M = 16, 6
    X = rng.standard_normal((600, D))
    W = am.ApproxMatrix(rng.standard_normal((D, M))).fit(X, [4], ranks=[1, 3],
                                                          random_state=0)
    path = tmp_path / "w.approx"
    W.save(path)
    W2 = am.load(path)
    assert [(p.kind, p.size, p.error) for p in W2.levels] == [
        (p.kind, p.size, p.error) for p in W.levels]
    for a, b in zip(W._levels[1:], W2._levels[1:]):
        assert a.left.tobytes() == b.left.tobytes() and a.right.tobytes() == b.right.tobytes()
    assert W2._product.costs.curves == W._product.costs.curves  # measured here: kept
    assert W2._product.costs.fingerprint == _costs.fingerprint()
    x = X[:50]
    for tol in (None, 0.9, 0):
        with am.config(tolerance=tol):
            np.testing.assert_array_equal(x @ W, x @ W2)


def test_foreign_cost_curves_are_measured_again(rng):
    D, M = 12, 4
    weights = rng.standard_normal((D, M))
    points = [_lowrank(D, M, 1, rng, error=0.2)]
    curve = _costs.Curve((1, 4096), ((1.0, 2.0), (1e-9, 1e-9)))  # absurd figures
    table = _costs.CostTable("not-this-machine", {("<f8", "C", 1): curve}, np.float64)
    buf = io.BytesIO()
    _io.save(buf, weights, points, {}, costs=table, fitted=True)
    W = am.load(io.BytesIO(buf.getvalue()))
    assert W._product.costs.curves == {}  # foreign figures are not trusted
    with am.config(tolerance=0.5, threads=1):
        np.ones((3, D)) @ W
    new = W._product.costs.curves[("<f8", "C", 1)]
    assert new != curve and min(new.seconds[0]) < 1.0


def test_version_1_files_still_load():
    header = {"meta": {}, "weights": {"dtype": "<f8", "shape": [3, 2]}, "levels": [1]}
    w = np.ones((3, 2)).tobytes()
    lv = (np.zeros((1, 4), "<i4").tobytes() + np.zeros((1, 15), "<f4").tobytes()
          + np.zeros((1, 16, 2), "u1").tobytes() + np.ones(2, "<f8").tobytes()
          + np.zeros(2, "<f8").tobytes() + np.full((1, 4), -1, "<f4").tobytes()
          + np.full((1, 4), 1, "<f4").tobytes())
    f = _forge(header, w + lv + np.array([0.5], "<f8").tobytes(), version=1)
    W = am.load(f)
    assert W.fitted and [(p.kind, p.size, p.error) for p in W.levels] == [("lut", 1, 0.5)]


def _forge(header, payload, version=_io.FORMAT_VERSION):
    import hashlib
    import struct

    head = json.dumps(header).encode()
    body = struct.pack("<16sIIQ", _io.MAGIC, version, len(head), len(payload)) + head + payload
    return io.BytesIO(body + hashlib.sha256(body).digest())


def _lowrank_file(costs, kind="lowrank", size=1):
    header = {"meta": {}, "weights": {"dtype": "<f8", "shape": [3, 2]},
              "points": [{"kind": kind, "size": size}], "fitted": True, "costs": costs,
              "left": None}
    payload = (np.ones((3, 2)).tobytes() + np.ones((3, 1)).tobytes()
               + np.ones((1, 2)).tobytes() + np.array([0.25]).tobytes())
    return _forge(header, payload)


def _costs_json(**changes):
    entry = {"dtype": "<f8", "layout": "C", "threads": 1, "rows": [1, 16],
             "seconds": [[1e-6, 2e-6], [1e-6, 1.5e-6]]}
    entry.update(changes)
    return {"fingerprint": "x", "dtype": "<f8", "curves": [entry]}


def test_forged_lowrank_file_loads():
    W = am.load(_lowrank_file(_costs_json()))
    assert [(p.kind, p.size, p.error) for p in W.levels] == [("lowrank", 1, 0.25)]
    np.testing.assert_array_equal(np.ones((2, 3)) @ W, np.full((2, 2), 3.0))


@pytest.mark.parametrize("changes, match", [
    ({"seconds": [[1e-6, 2e-6]]}, "a cost curve has 1 points, the file 2"),
    ({"seconds": [[1e-6, -2e-6], [1e-6, 1e-6]]}, "invalid cost curve"),
    ({"seconds": [[1e-6, float("inf")], [1e-6, 1e-6]]}, "invalid cost curve"),
    ({"rows": [16, 1]}, "invalid cost curve"),
    ({"rows": [1, 16.5]}, "invalid cost curve"),
    ({"layout": "K"}, "invalid cost layout"),
    ({"threads": 0}, "invalid cost layout or threads"),
    ({"dtype": "|O"}, "invalid cost dtype"),
    ({"extra": 1}, "a cost entry must have keys"),
])
def test_corrupt_cost_curves_are_rejected(changes, match):
    with pytest.raises(ValueError, match="invalid cost curves: " + match):
        am.load(_lowrank_file(_costs_json(**changes)))


def test_corrupt_points_are_rejected():
    with pytest.raises(ValueError, match="invalid rank 3"):
        am.load(_lowrank_file(None, size=3))
    with pytest.raises(ValueError, match="unknown point kind 'pca'"):
        am.load(_lowrank_file(None, kind="pca"))
    with pytest.raises(ValueError, match="costs must have exactly the keys"):
        am.load(_lowrank_file({"fingerprint": "x"}))


# ---------------------------------------------------------------- the compiled entry
def test_the_compiled_entry_answers_like_the_python_one(mixed, rng):
    from approxmat import _dispatch

    weights, W = mixed
    assert am.ApproxMatrix.__array_ufunc__ is _dispatch.array_ufunc
    W = _testing.with_costs(W, _crossing_curve())
    lut = W._levels[0]
    x = rng.standard_normal((300, 24))
    for tol in (0, 0.5, None, 0.5):  # 0.5 twice: the second call from the cached entry
        with am.config(tolerance=tol):
            want = W._array_ufunc_python(np.matmul, "__call__", (x, W), {})
            report = am.last_call()
            np.testing.assert_array_equal(x @ W, want)
            assert am.last_call().kind == report.kind
            buf = np.empty((300, 5))
            assert np.matmul(x, W, out=(buf,)) is buf and np.matmul(x, W, out=buf) is buf
            np.testing.assert_array_equal(buf, want)
            with pytest.raises(ValueError, match="mismatch in its core dimension"):
                x[:, :5] @ W
    with am.config(tolerance=0.5):
        np.testing.assert_array_equal(x @ W, _reference.approx_matmul(x, lut, np.float64))
        with pytest.raises(TypeError, match="read-only"):
            np.matmul(x, W, out=W)
        bad = np.empty((300, 5), np.int64)
        with pytest.raises(TypeError):  # NumPy's casting error for out=
            np.matmul(x, W, out=bad)
    y = np.add(W, 1)  # other ufuncs: the wrapped array's
    np.testing.assert_array_equal(y, weights + 1)


def test_low_rank_errors_by_rank_and_the_svd_end_of_the_shrinkage(rng):
    from approxmat._fit import _lowrank

    X = rng.standard_normal((300, 10))
    W = rng.standard_normal((10, 7))
    Y = X @ W
    for lam in _lowrank.SHRINK:
        V = _lowrank._directions(X, W, lam)
        assert V.shape == (7, 7)
        np.testing.assert_allclose(V.T @ V, np.eye(7), atol=1e-10)
        got = _lowrank._errors_by_rank(Y, V, [1, 3, 7])
        want = [np.linalg.norm(Y - Y @ V[:, :r] @ V[:, :r].T) / np.linalg.norm(Y)
                for r in (1, 3, 7)]
        np.testing.assert_allclose(got, want, atol=1e-6)  # a difference of squares
    _, _, Vt = np.linalg.svd(W, full_matrices=False)
    V = _lowrank._directions(X, W, float("inf"))
    np.testing.assert_allclose(np.abs(V[:, :3]), np.abs(Vt[:3].T), atol=1e-10)
    # All-zero rows: the Gram matrix is zero, the factors those of W's SVD.
    V0 = _lowrank._directions(np.zeros((50, 10)), W, 0.0)
    np.testing.assert_allclose(np.abs(V0[:, :3]), np.abs(Vt[:3].T), atol=1e-10)


def test_the_compiled_entry_follows_changes_of_settings_layout_and_limits(mixed, rng):
    from threadpoolctl import threadpool_limits

    _, W = mixed
    W = _testing.with_costs(W, _crossing_curve())
    x = rng.standard_normal((500, 24))
    xf = np.asfortranarray(x)
    settings = [am.config(tolerance=0.5), am.config(tolerance=0), am.config(tolerance=0.2),
                am.config(tolerance=None), am.config(tolerance=0.5, threads=1)]
    want = {0: "lut", 1: "exact", 2: "exact", 3: "lowrank", 4: "lut"}
    for _ in range(2):  # the second round from the cached entries
        for k, cfg in enumerate(settings):
            for rows in (x, xf, x.astype(np.float32), x[:3]):
                with cfg:
                    rows @ W
                kind = am.last_call().kind
                assert kind == ("exact" if len(rows) == 3 and want[k] == "lut" else want[k])
    with threadpool_limits(1), am.config(tolerance=0.5):
        x @ W
        assert am.last_call().kind == "lut"
    keys = set(W._product._schedules)
    assert any(key[3] == 1 for key in keys)


def test_big_endian_rows_threads_beyond_any_limit_and_verify_types(mixed, rng, tmp_path):
    import pickle

    _, W = mixed
    x = rng.standard_normal((40, 24))
    with am.config(tolerance=0.95):
        x.astype(">f8") @ W  # its curve is keyed by the native dtype
    assert all(key[0] in ("<f8", "<f4", "<f2") for key in W._product.costs.curves)
    W.save(tmp_path / "w.approx")
    am.load(tmp_path / "w.approx")
    pickle.loads(pickle.dumps(W))
    with am.config(threads=2**63, tolerance=None):
        want = W._array_ufunc_python(np.matmul, "__call__", (x, W), {})
        np.testing.assert_array_equal(x @ W, want)
    x = rng.standard_normal((500, 24))
    with am.config(verify=1.0, tolerance=None):  # every row
        with am.config(verify=1):  # one row: equal as a number, not as a setting
            x @ W
            assert am.last_call().rows_verified == 1
        x @ W
        assert am.last_call().rows_verified == 500
