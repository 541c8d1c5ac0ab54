"""The accuracy budget at call time: verify, on_violation, last_call, drift, NaN rows."""

import threading
import warnings

import numpy as np
import pytest

import approxmat as am
from approxmat import _budget, _reference, _testing


@pytest.fixture(scope="module")
def problem():
    """A small real fit: rank-8 data in D=16, M=4, two levels."""
    rng = np.random.default_rng(7)
    basis = rng.standard_normal((8, 16))

    def rows(n):
        return (rng.standard_normal((n, 8)) @ basis + 0.1 * rng.standard_normal((n, 16)))

    weights = rng.standard_normal((16, 4))
    W = am.ApproxMatrix(weights).fit(rows(2000), ncodebooks=[2, 8], random_state=0)
    # Budgets choose the fewest codebooks within them (cost by size, not timing).
    return _testing.with_costs(W), weights, rows


@pytest.fixture(autouse=True)
def seeded_sampling():
    _budget._rngs.rng = np.random.default_rng(2024)
    # Small batches can cross the drift threshold by chance (1 row of 6 is 17 %);
    # drift warnings are tested on purpose in test_drift_warns_once_and_counts.
    with am.config(drift_fraction=None):
        yield
    _budget._rngs.rng = None


def true_error(approx, exact):
    return np.linalg.norm(approx - exact) / np.linalg.norm(exact)


def test_all_rows_verified_gives_the_exact_error(problem):
    W, weights, rows = problem
    x = rows(50)
    with am.config(verify=1000):  # more rows than the batch: all of them
        y = x @ W
    report = am.last_call()
    assert report.rows == 50 and report.rows_verified == 50
    assert report.error_estimate == pytest.approx(true_error(y, x @ weights), rel=1e-9)
    assert report.error_bound == report.error_estimate  # no uncertainty left
    assert not report.fell_back


def test_one_row(problem):
    W, weights, rows = problem
    x = rows(1)
    with am.config(verify=1):
        y = x @ W
    assert am.last_call().error_bound == pytest.approx(true_error(y, x @ weights))
    x = rows(10)
    with am.config(verify=1, tolerance=0.99, on_violation="warn"):
        with pytest.warns(am.ApproxMatrixWarning, match="upper bound inf > tolerance 0.99"):
            x @ W  # one row of ten: no bound can be given
    assert am.last_call().rows_verified == 1


def test_no_rows(problem):
    W, _, _ = problem
    with am.config(verify=5, tolerance=0.01), warnings.catch_warnings():
        warnings.simplefilter("error")
        y = np.empty((0, 16)) @ W
    assert y.shape == (0, 4)
    report = am.last_call()
    assert report.rows == 0 and report.rows_verified == 0 and not report.fell_back


def test_fraction(problem):
    W, _, rows = problem
    with am.config(verify=0.1):
        rows(95) @ W
    assert am.last_call().rows_verified == 10


def test_violation_falls_back_to_exact_and_warns_once(problem):
    W, weights, rows = problem
    W = W.__copy__()  # fresh one-time-warning state
    cheap = W.levels[0]
    x = rows(400)
    with am.config(verify=64, tolerance=cheap.error / 3):
        # the cheap level is not within tolerance/3 but the budget picks the best level
        # that is: none -> exact, without verification
        np.testing.assert_array_equal(x @ W, x @ weights)
        assert am.last_call().ncodebooks is None
    tolerance = W.levels[1].error * 1.01  # the accurate level qualifies on paper
    bad = x * 40.0  # ... but these rows are far from the calibration data
    with am.config(verify=64, tolerance=tolerance, drift_fraction=None):
        with pytest.warns(am.ApproxMatrixWarning, match="exact product was returned instead"):
            got = bad @ W
        np.testing.assert_array_equal(got, bad @ weights)
        report = am.last_call()
        assert report.fell_back and report.error_bound > tolerance
        assert report.reason == "verification failed: exact product returned"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the second violation does not warn again
            np.testing.assert_array_equal(bad @ W, bad @ weights)
        buf = np.empty((400, 4))
        assert np.matmul(bad, W, out=buf) is buf
        np.testing.assert_array_equal(buf, bad @ weights)


def test_violation_warn_and_raise(problem):
    W, weights, rows = problem
    bad = rows(300) * 40.0
    level = W._levels[1]
    with am.config(verify=64, tolerance=level.error * 1.01, drift_fraction=None):
        with am.config(on_violation="warn"):
            with pytest.warns(am.ApproxMatrixWarning, match="exceeded the accuracy budget"):
                got = bad @ W
            np.testing.assert_array_equal(got, _reference.approx_matmul(bad, level, np.float64))
            assert not am.last_call().fell_back
        with am.config(on_violation="raise"):
            with pytest.raises(am.ApproxAccuracyError, match="estimated relative error"):
                bad @ W
            assert am.last_call().reason == "verification failed: raised"


def test_within_budget_keeps_the_approximation(problem):
    W, weights, rows = problem
    x = rows(500)
    with am.config(verify=100, tolerance=0.9), warnings.catch_warnings():
        warnings.simplefilter("error")
        y = x @ W
    report = am.last_call()
    assert report.ncodebooks == 2 and not report.fell_back  # cheapest level within 0.9
    assert 0 < report.error_estimate <= report.error_bound < 0.9
    np.testing.assert_array_equal(y, _reference.approx_matmul(x, W._levels[0], np.float64))


def test_bound_covers_the_true_error(problem):
    W, weights, rows = problem
    covered = 0
    for scale in np.linspace(1, 3, 100):  # shifting inputs: the error changes call by call
        x = rows(2000) * scale
        with am.config(verify=64, drift_fraction=None):
            y = x @ W
        covered += am.last_call().error_bound >= true_error(y, x @ weights)
    assert covered >= 95, covered


def test_last_call_is_per_thread(problem):
    W, _, rows = problem
    x = rows(10)
    x @ W
    seen = {}

    def worker():
        seen["before"] = am.last_call()
        with am.config(tolerance=0):
            x @ W
        seen["after"] = am.last_call()

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["before"] is None
    assert seen["after"].reason == "tolerance=0 asks for the exact product"
    assert am.last_call().ncodebooks == 8


def test_exact_reasons(problem):
    W, _, rows = problem
    am.ApproxMatrix(np.eye(2)) @ np.eye(2)
    np.ones((1, 16), dtype=np.int64) @ am.ApproxMatrix(np.ones((16, 2), dtype=np.int64))
    assert am.last_call().reason == "not fitted"
    (1j * rows(2)) @ W
    assert am.last_call().reason == "complex128 left operands are computed exactly"
    with am.config(tolerance=1e-9):
        rows(2) @ W
    assert am.last_call().reason == "no fitted point has validated error <= tolerance 1e-09"


@am.config(drift_fraction=0.05)
def test_drift_warns_once_and_counts(problem):
    W, _, rows = problem
    W = W.__copy__()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows(1000) @ W  # same distribution: no warning
    assert am.last_call().rows_out_of_range <= 0.05 * 1000
    shifted = rows(1000) + 50.0
    with pytest.warns(am.DriftWarning, match=r"1000 of 1000 rows \(100.0%\)") as record:
        shifted @ W
    assert record[0].filename == __file__  # points at the user's line
    assert am.last_call().rows_out_of_range == 1000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shifted @ W  # once per matrix
        with am.config(drift_fraction=None):
            shifted @ W.__copy__()  # disabled: a fresh matrix does not warn either


def test_nonfinite_rows_give_nan_rows_only(problem):
    W, weights, rows = problem
    x = rows(6)
    x[1, 3] = np.nan
    x[4, 0] = np.inf
    y = x @ W
    ref = _reference.approx_matmul(x, W._levels[1], np.float64)
    assert np.isnan(y[[1, 4]]).all()
    keep = [0, 2, 3, 5]
    np.testing.assert_array_equal(y[keep], ref[keep])
    assert am.last_call().rows_nonfinite == 2
    with am.config(verify=6):
        x @ W
    assert am.last_call().rows_verified == 4  # NaN rows are NaN in both products


@pytest.mark.parametrize(
    "settings, exc, match",
    [
        ({"verify": 0}, ValueError, "verify as a row count must be >= 1"),
        ({"verify": 1.5}, ValueError, r"verify as a fraction of rows must be in \(0, 1\]"),
        ({"verify": "all"}, TypeError, "verify must be a row count"),
        ({"on_violation": "ignore"}, ValueError, "on_violation must be one of 'exact', 'warn', 'raise'"),
        ({"drift_fraction": 1.0}, ValueError, r"drift_fraction must be in \[0, 1\)"),
    ],
)
def test_invalid_budget_settings(settings, exc, match):
    with pytest.raises(exc, match=match):
        am.config(**settings)


def test_calibrated_ranges_do_not_reuse_tables_packed_without_them(rng, make_level):
    from approxmat import _backend, _budget

    D, M = 12, 3
    level = make_level(D, M, 4, rng)
    X = rng.standard_normal((500, D)).astype(np.float32)
    _backend.prepared_level(level)  # packed without ranges, cached on the level
    ranged = _budget.with_calibrated_ranges(level, X)
    out = np.empty((2, M), np.float32)
    flags = _backend.product(np.stack([X[0], X[0] * 100]), ranged, out, threads=1)
    assert flags is not None and list(flags & _backend.FLAG_OUT_OF_RANGE) == [0, 2]
