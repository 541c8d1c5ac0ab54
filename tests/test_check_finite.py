"""config(check_finite=False): the pure product, without the NaN/inf and range scans."""

import warnings

import numpy as np
import pytest

import approxmat as am
from approxmat import _reference
from approxmat._testing import random_level, with_bounds


@pytest.fixture
def ranged():
    """(weights, W, level): one level with calibration ranges [-1, 1] on every split."""
    rng = np.random.default_rng(3)
    D, M = 20, 6
    weights = rng.standard_normal((D, M)).astype(np.float32)
    level = with_bounds(random_level(D, M, 5, rng), -1.0, 1.0)
    return weights, am.ApproxMatrix(weights)._with_levels([level]), level


def _rows(n, D, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (n, D)).astype(np.float32)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("stacked", [False, True])
def test_finite_rows_give_the_same_product(ranged, order, stacked):
    _, W, level = ranged
    x = np.asarray(_rows(40, 20), order=order)
    want = x @ W
    np.testing.assert_array_equal(want, _reference.approx_matmul(x, level, np.float32))
    xs = x[None] if stacked else x
    with am.config(check_finite=False):
        got = xs @ W
    np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_nonfinite_rows_give_finite_values_and_are_not_counted(ranged):
    _, W, level = ranged
    x = _rows(8, 20)
    x[2, :] = np.nan
    x[5, 3] = np.inf
    checked = x @ W
    assert np.isnan(checked[2]).all() and np.isnan(checked[5]).all()
    assert am.last_call().rows_nonfinite == 2
    for call in (lambda: x @ W, lambda: np.dot(x[None], W)[0]):
        with am.config(check_finite=False):
            y = call()
        assert np.isfinite(y).all()
        assert am.last_call().rows_nonfinite == 0
        # The finite rows are the product as usual.
        keep = [0, 1, 3, 4, 6, 7]
        np.testing.assert_array_equal(y[keep], checked[keep])


def test_rows_out_of_range_are_neither_counted_nor_warned(ranged):
    _, W, _ = ranged
    x = _rows(50, 20) * 10  # every split column far outside [-1, 1]
    with pytest.warns(am.DriftWarning):
        x @ W
    assert am.last_call().rows_out_of_range == 50
    W2 = W._with_levels(W._levels)  # one-time warnings start afresh
    with am.config(check_finite=False), warnings.catch_warnings():
        warnings.simplefilter("error")
        y = x @ W2
    assert am.last_call().rows_out_of_range == 0
    np.testing.assert_array_equal(y, x @ W)


def test_out_buffer_and_float64(ranged):
    weights, W, level = ranged
    x = _rows(33, 20).astype(np.float64)
    out = np.empty((33, 6))
    with am.config(check_finite=False):
        got = np.matmul(x, W, out=out)
    assert got is out
    np.testing.assert_array_equal(out, _reference.approx_matmul(x, level, np.float64))


def test_exact_products_are_unaffected(ranged):
    weights, W, _ = ranged
    x = _rows(4, 20)
    x[1, 0] = np.nan
    with am.config(check_finite=False, tolerance=0):
        y = x @ W
    np.testing.assert_array_equal(y, x @ weights)
    assert np.isnan(y[1]).all()


@pytest.mark.parametrize("bad", [0, 1, "yes", None, 1.0])
def test_check_finite_must_be_a_boolean(bad):
    with pytest.raises(TypeError, match="check_finite must be True or False"):
        am.config(check_finite=bad)


def test_numpy_booleans_accepted():
    with am.config(check_finite=np.False_) as cfg:
        assert cfg.check_finite is False
