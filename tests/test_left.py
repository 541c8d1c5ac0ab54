"""``W @ x``: the known operand on the left, fitted with ``fit(x, side="left")``.

The points of the left side are fitted for the transposed problem ``x.T @ W.T``, so
the oracle of ``W @ x`` with a lookup-table point is the oracle of ``x.T`` with that
point, transposed.
"""

import io
import pickle

import numpy as np
import pytest

import approxmat as am
from approxmat import _kernels, _testing


def _left_matrix(rng, make_level, D=7, M=5, C=3, error=0.1):
    """(weights (D, M), W with one left lookup-table point of C codebooks)."""
    weights = rng.standard_normal((D, M))
    level = make_level(M, D, C, rng, error=error)  # for W.T: M inputs, D outputs
    return weights, _testing.with_left(am.ApproxMatrix(weights), [level]), level


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("N", [0, 1, 31, 33])
def test_left_product_is_the_transposed_oracle(rng, make_level, dtype, order, N):
    # The kernel variant is the one chosen at import: CI runs this file once per
    # variant (APPROXMAT_FORCE_ISA), and tests/test_kernels.py checks each variant.
    weights, W, level = _left_matrix(rng, make_level, D=9, M=5, C=3)
    W = _testing.with_left(am.ApproxMatrix(weights.astype(dtype)), [level])
    x = np.asarray(rng.standard_normal((5, N)), dtype=dtype, order=order)
    want, _ = _testing.oracle(np.ascontiguousarray(x.T), level, dtype)
    got = W @ x
    assert got.shape == (9, N) and got.dtype == dtype
    _testing.assert_bits_equal(got, want.T, f"variant {_kernels.selected_variant()}")


@pytest.mark.parametrize("M", [1, 4])
def test_left_forms_agree(rng, make_level, M):
    weights, W, level = _left_matrix(rng, make_level, D=6, M=M, C=1)
    x = rng.standard_normal((M, 12))
    y = W @ x
    want = _testing.oracle(np.ascontiguousarray(x.T), level, np.float64)[0].T
    _testing.assert_bits_equal(y, want)
    _testing.assert_bits_equal(np.matmul(W, x), want)
    _testing.assert_bits_equal(np.dot(W, x), want)
    # 1-D: W @ v is the product with one column
    _testing.assert_bits_equal(W @ x[:, 3], want[:, 3])
    _testing.assert_bits_equal(np.dot(W, x[:, 3]), want[:, 3])
    # stacked: every matrix of the stack, as NumPy broadcasts
    stack = np.stack([x[:, :5], x[:, 5:10]])
    got = W @ stack
    assert got.shape == (2, 6, 5)
    _testing.assert_bits_equal(got[0], want[:, :5])
    _testing.assert_bits_equal(got[1], want[:, 5:10])
    # out=: written in place and returned, in the caller's (C) order
    out = np.empty((6, 12))
    assert np.matmul(W, x, out=out) is out
    _testing.assert_bits_equal(out, want)
    out2 = np.empty((6, 12))
    assert np.dot(W, x, out2) is out2
    _testing.assert_bits_equal(out2, want)
    out3 = np.empty((2, 6, 5), np.float32)  # same-kind cast, as NumPy's matmul
    np.matmul(W, stack, out=out3)
    np.testing.assert_array_equal(out3, got.astype(np.float32))


def test_left_nan_column_gives_a_nan_column(rng, make_level):
    weights, W, _ = _left_matrix(rng, make_level)
    x = rng.standard_normal((5, 4))
    x[2, 1] = np.nan
    y = W @ x
    assert np.isnan(y[:, 1]).all() and np.isfinite(np.delete(y, 1, axis=1)).all()
    r = am.last_call()
    assert r.kind == "lut" and r.rows == 4 and r.rows_nonfinite == 1


@pytest.mark.parametrize("order", ["C", "F"])
def test_left_exact_is_numpys_own(rng, make_level, order):
    weights, W, _ = _left_matrix(rng, make_level, error=0.3)
    x = np.asarray(rng.standard_normal((5, 40)), order=order)
    with am.config(tolerance=0):
        _testing.assert_bits_equal(W @ x, weights @ x)
        assert am.last_call().kind == "exact"
    with am.config(tolerance=0.1):  # no point within: exact, and why
        _testing.assert_bits_equal(W @ x, weights @ x)
        assert "tolerance" in am.last_call().reason
    with am.config(tolerance=0.5):  # the point is cheaper by the test costs
        y = W @ x
        assert am.last_call().kind == "lut"
    assert not np.array_equal(y, weights @ x)


def test_left_unfitted_is_exact_and_right_fit_is_untouched(fitted_pair, rng):
    weights, W = fitted_pair
    x = rng.standard_normal((weights.shape[1], 6))
    _testing.assert_bits_equal(W @ x, weights @ x)  # right side fitted only
    rows = rng.standard_normal((3, weights.shape[0]))
    right = rows @ W
    level = _testing.random_level(weights.shape[1], weights.shape[0], 2, rng)
    both = _testing.with_left(W, [level])
    _testing.assert_bits_equal(rows @ both, right)
    assert not np.array_equal(both @ x, weights @ x)


def test_left_float16_exact_goes_through_float32(rng, make_level):
    weights, W, _ = _left_matrix(rng, make_level)
    W16 = _testing.with_left(am.ApproxMatrix(weights.astype(np.float16)), W._left.points[1:])
    x = rng.standard_normal((5, 30)).astype(np.float16)
    with am.config(tolerance=0):
        y = W16 @ x
    assert y.dtype == np.float16
    want = (weights.astype(np.float16).astype(np.float32) @ x.astype(np.float32))
    np.testing.assert_array_equal(y, want.astype(np.float16))


def test_left_threads_give_the_same_bits(rng, make_level):
    weights, W, _ = _left_matrix(rng, make_level)
    x = rng.standard_normal((5, 3000)).astype(np.float32)
    W = _testing.with_left(am.ApproxMatrix(weights.astype(np.float32)), W._left.points[1:])
    with am.config(threads=1):
        one = W @ x
    with am.config(threads=2):
        two = W @ x
    _testing.assert_bits_equal(one, two)


def test_left_bad_operands_get_numpys_errors(rng, make_level):
    weights, W, _ = _left_matrix(rng, make_level)
    for bad in (rng.standard_normal((4, 3)), rng.standard_normal(4)):
        with pytest.raises(ValueError) as got:
            W @ bad
        with pytest.raises(ValueError) as want:
            weights @ bad
        assert str(got.value) == str(want.value)
    with pytest.raises(ValueError):
        np.matmul(W, rng.standard_normal((5, 3)), out=np.empty((3, 7)))
    with pytest.raises(ValueError, match="output array is not acceptable"):
        np.dot(W, rng.standard_normal((5, 3)), np.empty((7, 3), np.float32))


def test_fit_side_left_learns_the_product(rng):
    D, M = 24, 16
    weights = rng.standard_normal((D, M))
    basis = rng.standard_normal((M, 4))
    x_cal = basis @ rng.standard_normal((4, 2000))  # columns near a rank-4 subspace
    x_cal += 0.05 * rng.standard_normal(x_cal.shape)
    X_right = rng.standard_normal((1000, D))
    W = am.ApproxMatrix(weights).fit(X_right, [2], random_state=0)
    right = X_right[:5] @ W
    W.fit(x_cal, [4], ranks=[4], random_state=0, side="left")
    assert [(p.side, p.kind, p.size) for p in W.levels] == [
        ("right", "lut", 2), ("left", "lut", 4), ("left", "lowrank", 4)]
    assert "side" in repr(W.levels) and "for W @ x at N=" in W.levels.measured_at
    assert "left points=[exact, C4" in repr(W)
    _testing.assert_bits_equal(X_right[:5] @ W, right)  # the right side kept its points
    x = basis @ rng.standard_normal((4, 300))
    exact = weights @ x
    with am.config(tolerance=None):
        y = W @ x
    error = np.linalg.norm(y - exact) / np.linalg.norm(exact)
    best = min(p.error for p in W.levels if p.side == "left")
    assert best < 0.1 and error < 0.1  # rank 4 data: the rank-4 point is near exact
    # the same seed gives the same points
    again = am.ApproxMatrix(weights).fit(x_cal, [4], ranks=[4], random_state=0, side="left")
    assert [p.error for p in again.levels] == [p.error for p in W.levels if p.side == "left"]


def test_fit_side_left_bad_arguments(rng):
    W = am.ApproxMatrix(rng.standard_normal((6, 4)))
    with pytest.raises(ValueError, match='side must be "right" or "left"'):
        W.fit(rng.standard_normal((400, 6)), side="both")
    with pytest.raises(ValueError, match=r"shape \(M, N\) = \(4, N\)"):
        W.fit(rng.standard_normal((400, 6)), side="left")


@pytest.mark.parametrize("how", ["file", "pickle", "copy"])
def test_both_sides_survive_save_pickle_and_copy(rng, make_level, how):
    weights, W, _ = _left_matrix(rng, make_level)
    right_level = make_level(7, 5, 2, rng, error=0.2)
    W._set_points([right_level], None, True)
    rows, cols = rng.standard_normal((4, 7)), rng.standard_normal((5, 6))
    want_right, want_left = rows @ W, W @ cols
    if how == "file":
        buf = io.BytesIO()
        W.save(buf)
        W2 = am.load(io.BytesIO(buf.getvalue()))
    elif how == "pickle":
        W2 = pickle.loads(pickle.dumps(W))
    else:
        import copy

        W2 = copy.deepcopy(W)
    assert [(p.side, p.kind, p.size) for p in W2.levels] == [
        ("right", "lut", 2), ("left", "lut", 3)]
    _testing.assert_bits_equal(rows @ W2, want_right)
    _testing.assert_bits_equal(W2 @ cols, want_left)


def test_left_verification_falls_back_to_numpys_product(rng, make_level):
    """A point that claims more accuracy than it has: verified, and replaced by
    NumPy's own ``W @ x``, into ``out=`` too."""
    weights, W, _ = _left_matrix(rng, make_level, error=0.01)
    x = rng.standard_normal((5, 300))
    with am.config(verify=1.0, tolerance=0.05, drift_fraction=None):
        with pytest.warns(am.ApproxMatrixWarning, match="exact product was returned instead"):
            got = W @ x
        _testing.assert_bits_equal(got, weights @ x)
        report = am.last_call()
        assert report.fell_back and report.rows == 300 and report.rows_verified == 300
        out = np.empty((7, 300))
        assert np.matmul(W, x, out=out) is out
        _testing.assert_bits_equal(out, weights @ x)
