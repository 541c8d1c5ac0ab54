"""Fitting on degenerate calibration data either fits (finite tables, usable products)
or fails with a clear message; never NaN tables or a crash."""

import numpy as np
import pytest

import approxmat as am


def check_fitted(W, X):
    assert W.fitted
    for level in W._levels:
        assert np.isfinite(level.scale).all() and np.isfinite(level.offset).all()
        assert not np.isnan(level.thresholds).any()
        assert np.isfinite(level.error) and level.error >= 0
    with am.config(drift_fraction=None):
        y = X[:50] @ W
    assert np.isfinite(y).all()
    return y


rng = np.random.default_rng(11)
BASE = rng.standard_normal((600, 12))


@pytest.mark.parametrize(
    "name, X",
    [
        ("constant columns", np.where(np.arange(12) % 2 == 0, 3.0, BASE)),
        ("all constant", np.full((600, 12), -2.5)),
        ("duplicated rows", np.repeat(BASE[:30], 20, axis=0)),
        ("huge magnitudes", BASE * 1e30),
        ("tiny magnitudes", BASE * 1e-30),
        ("subnormal float64", BASE * 1e-310),
        ("float16 input", BASE.astype(np.float16)),
        ("integer input", rng.integers(-3, 4, size=(600, 12))),
        ("two distinct values", (BASE > 0).astype(float)),
    ],
)
def test_degenerate_data_fits_with_finite_tables(name, X):
    weights = rng.standard_normal((12, 3))
    W = am.ApproxMatrix(weights).fit(X, ncodebooks=[2, 6], random_state=0)
    check_fitted(W, np.asarray(X, dtype=np.float64))


def test_exactly_representable_data_is_fitted_closely():
    # Rows that take one of 16 values in one column and zero elsewhere: one codebook of
    # one column can represent them exactly, up to 8-bit table rounding.
    X = np.zeros((800, 1))
    X[:, 0] = rng.integers(0, 16, size=800)
    weights = np.array([[1.0, -2.0]])
    W = am.ApproxMatrix(weights).fit(X, ncodebooks=1, random_state=0)
    y = check_fitted(W, X)
    assert W.levels[0].error < 0.01
    np.testing.assert_allclose(y, X[:50] @ weights, atol=0.05)


@pytest.mark.parametrize("D", [1, 2, 3, 5])
def test_narrow_inputs_and_as_many_codebooks_as_columns(D):
    X = rng.standard_normal((400, D))
    weights = rng.standard_normal((D, 2))
    W = am.ApproxMatrix(weights).fit(X, random_state=0, prune=False)  # ladder adapts to D
    sizes = [level.ncodebooks for level in W.levels if level.kind == "lut"]
    assert sizes and max(sizes) <= D
    W2 = am.ApproxMatrix(weights).fit(X, ncodebooks=D, random_state=0)  # C = D
    check_fitted(W2, X)


def test_zero_weights_and_zero_outputs():
    X = rng.standard_normal((400, 6))
    W = am.ApproxMatrix(np.zeros((6, 2))).fit(X, ncodebooks=2, random_state=0)
    y = check_fitted(W, X)
    np.testing.assert_array_equal(y, 0)


@pytest.mark.parametrize(
    "X, match",
    [
        (np.ones((5, 12)), "too few calibration rows: got 5, need at least"),
        (np.ones((0, 12)), "too few calibration rows: got 0"),
        (np.ones((400, 12, 1)), "2-D"),
        (np.full((400, 12), np.inf), "non-finite"),
        (np.ones((400, 12), complex), "real"),
    ],
)
def test_unusable_calibration_data_is_refused_clearly(X, match):
    with pytest.raises((ValueError, TypeError), match=match):
        am.ApproxMatrix(rng.standard_normal((12, 3))).fit(X)
