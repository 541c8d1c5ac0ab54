"""ApproxMatrix behaves like NumPy: exact path, dispatch of x @ W, errors, read-only."""

import copy
import pickle

import numpy as np
import pytest

import approxmat as am
from approxmat import _reference


@pytest.fixture
def weights(rng):
    return rng.standard_normal((7, 3))


@pytest.fixture
def W(weights):
    return am.ApproxMatrix(weights)


# ---------------------------------------------------------------- construction
def test_wraps_a_private_read_only_copy(weights):
    W = am.ApproxMatrix(weights)
    original = weights.copy()
    weights[0, 0] = 1e9  # the caller's array changes later ...
    np.testing.assert_array_equal(np.asarray(W), original)  # ... W does not
    assert W.shape == (7, 3) and W.dtype == np.float64 and W.ndim == 2 and W.size == 21
    with pytest.raises(ValueError, match="read-only"):
        np.asarray(W)[0, 0] = 1
    with pytest.raises(ValueError):
        np.asarray(W).setflags(write=True)


@pytest.mark.parametrize(
    "bad, exc, match",
    [
        (np.ones(3), ValueError, r"2-D weight array of shape \(D, M\), got a 1-D array of shape \(3,\)"),
        (np.ones((2, 2, 2)), ValueError, "got a 3-D array"),
        (np.ones((2, 2), complex), TypeError, "real numeric weights.*complex128"),
        (np.ones((2, 2), bool), TypeError, "real numeric weights.*bool"),
        (np.array([["a"]]), TypeError, "real numeric weights"),
        (np.array([[1.0, np.nan], [np.inf, 0]]), ValueError, r"2 non-finite value\(s\).*index \(0, 1\)"),
        (np.array([[object()]]), TypeError, "dtype object"),
    ],
)
def test_rejects_bad_weights(bad, exc, match):
    with pytest.raises(exc, match=match):
        am.ApproxMatrix(bad)


def test_accepts_integer_and_float16_weights():
    for dtype in (np.int32, np.float16, np.float32):
        W = am.ApproxMatrix(np.ones((2, 3), dtype=dtype))
        assert W.dtype == dtype
        assert (np.ones(2, dtype=np.int64) @ W).dtype == np.result_type(np.int64, dtype)


def test_repr(W, fitted_pair):
    assert repr(W) == "ApproxMatrix(shape=(7, 3), dtype=float64, not fitted: products are exact)"
    assert repr(fitted_pair[1]) == (
        "ApproxMatrix(shape=(24, 5), dtype=float64, points=[exact, C4: err 0.3, C8: err 0.1])"
    )


# ---------------------------------------------------------------- exact products
@pytest.mark.parametrize(
    "xshape", [(7,), (1, 7), (0, 7), (5, 7), (2, 3, 7), (2, 0, 7)]
)
@pytest.mark.parametrize("xdtype", [np.float16, np.float32, np.float64, np.int8, np.int64, bool])
def test_exact_product_matches_numpy(W, weights, rng, xshape, xdtype):
    x = (rng.standard_normal(xshape) * 3).astype(xdtype)
    expected = x @ weights
    pairs = [(x @ W, expected), (np.matmul(x, W), expected), (np.dot(x, W), np.dot(x, weights))]
    for got, want in pairs:
        assert type(got) is np.ndarray
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_exact_product_strided_and_fortran(W, weights, rng):
    base = rng.standard_normal((20, 16))
    for x in (base[::3, 2:9], base[::-2, 9:2:-1], np.asfortranarray(base[:, :7])):
        np.testing.assert_array_equal(x @ W, x @ weights)


def test_list_on_the_left_uses_rmatmul(W, weights):
    x = [[1, 2, 3, 4, 5, 6, 7]]
    np.testing.assert_array_equal(x @ W, np.array(x) @ weights)
    np.testing.assert_array_equal(W.__rmatmul__(x), np.array(x) @ weights)


def test_matmul_out_and_dtype(W, weights, rng):
    x = rng.standard_normal((4, 7))
    buf = np.empty((4, 3))
    assert np.matmul(x, W, out=buf) is buf
    np.testing.assert_array_equal(buf, x @ weights)
    got = np.matmul(x, W, dtype=np.float32)
    np.testing.assert_array_equal(got, np.matmul(x, weights, dtype=np.float32))
    buf32 = np.empty((4, 3), np.float32)
    with pytest.raises(TypeError, match="Cannot cast"):
        np.matmul(x, W, out=np.empty((4, 3), np.int64))
    np.matmul(x, W, out=buf32)
    np.testing.assert_allclose(buf32, x @ weights, rtol=1e-6)


def test_dot_out(W, weights, rng):
    x = rng.standard_normal((4, 7))
    buf = np.empty((4, 3))
    assert np.dot(x, W, out=buf) is buf
    np.testing.assert_array_equal(buf, x @ weights)


def test_shape_mismatch_messages(W):
    with pytest.raises(ValueError, match=r"matmul: Input operand 1 has a mismatch in its core dimension 0.*size 7 is different from 4"):
        np.ones((2, 4)) @ W
    with pytest.raises(ValueError, match=r"shapes \(2,4\) and \(7,3\) not aligned"):
        np.dot(np.ones((2, 4)), W)
    with pytest.raises(ValueError, match="does not have enough dimensions"):
        np.matmul(np.float64(1.0), W)


def test_in_place_matmul_on_left_operand(rng):
    weights = rng.standard_normal((4, 4))
    W = am.ApproxMatrix(weights)
    x = rng.standard_normal((3, 4))
    expected = x @ weights
    x @= W
    np.testing.assert_array_equal(x, expected)


# ---------------------------------------------------------------- everything else
def test_other_operations_behave_like_the_wrapped_array(W, weights, rng):
    y = rng.standard_normal((3, 5))
    cases = [
        (W @ y, weights @ y),
        (W + 1, weights + 1),
        (2 * W, 2 * weights),
        (-W, -weights),
        (W == weights, weights == weights),
        (np.sin(W), np.sin(weights)),
        (np.sum(W, axis=0), np.sum(weights, axis=0)),
        (np.concatenate([W, W]), np.concatenate([weights, weights])),
        (np.dot(W, y), np.dot(weights, y)),
        (W.T, weights.T),
        (W[1:3], weights[1:3]),
        (W.sum(), weights.sum()),
        (np.linalg.norm(W), np.linalg.norm(weights)),
        (np.add.reduce(W), np.add.reduce(weights)),
    ]
    for got, expected in cases:
        assert type(got) in (np.ndarray, np.float64, np.bool_)
        np.testing.assert_array_equal(got, expected)
    assert len(W) == 7 and [r.tolist() for r in W] == weights.tolist()


def test_approx_matrix_on_the_left_acts_as_its_array(fitted_pair, rng):
    weights, W2 = fitted_pair
    W1 = am.ApproxMatrix(rng.standard_normal((3, 24)))
    # W1 @ W2: W1 is a plain left operand; the fitted W2 on the right approximates.
    np.testing.assert_array_equal(W1 @ W2, np.asarray(W1) @ W2)


@pytest.mark.parametrize(
    "action",
    [
        lambda W: W.__iadd__(1),
        lambda W: W.__imatmul__(np.eye(3)),
        lambda W: W.__setitem__(0, 1.0),
        lambda W: np.add(np.ones((7, 3)), 1, out=W),
        lambda W: np.add.at(W, 0, 1),
    ],
)
def test_writes_into_W_are_refused(W, action):
    with pytest.raises(TypeError, match="ApproxMatrix is read-only"):
        action(W)


def test_in_place_operator_statements_are_refused(W):
    with pytest.raises(TypeError, match="read-only"):
        W += 1


def test_array_protocol(W, weights):
    assert np.asarray(W) is np.asarray(W)  # no copy by default
    np.testing.assert_array_equal(np.asarray(W), weights)
    assert np.asarray(W, dtype=np.float32).dtype == np.float32
    copied = np.array(W, copy=True)
    copied[0, 0] = 5  # a real, writeable copy
    assert np.asarray(W)[0, 0] != 5
    assert np.asarray(W, copy=False) is np.asarray(W)
    with pytest.raises(ValueError, match="Unable to avoid copy"):
        np.asarray(W, dtype=np.float32, copy=False)


def test_attribute_forwarding(W, weights):
    np.testing.assert_array_equal(W.mean(axis=0), weights.mean(axis=0))
    assert W.nbytes == weights.nbytes
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        W.nonexistent
    assert "mean" in dir(W)


def test_copy_and_pickle_keep_levels(fitted_pair, rng):
    _, W = fitted_pair
    x = rng.standard_normal((6, 24))
    expected = x @ W
    def summary(levels):
        return [(p.kind, p.size, p.error, p.nbytes) for p in levels]

    for clone in (copy.copy(W), copy.deepcopy(W), pickle.loads(pickle.dumps(W))):
        assert summary(clone.levels) == summary(W.levels) and clone.fitted
        np.testing.assert_array_equal(x @ clone, expected)


# ---------------------------------------------------------------- approximate path
def test_fitted_product_follows_the_reference(fitted_pair, rng):
    weights, W = fitted_pair
    level = W._levels[1]  # tolerance=None picks the most accurate level (err 0.1)
    x = rng.standard_normal((9, 24))
    expected = _reference.approx_matmul(x, level, np.float64)
    for got in (x @ W, np.matmul(x, W), np.dot(x, W), x.tolist() @ W):
        np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(expected, x @ weights)


def test_large_results_are_64_byte_aligned(fitted_pair, rng):
    """Results of at least ALIGNED_OUTPUT_MIN_BYTES start on a 64-byte boundary, on both
    the fast 2-D path and the general path (3-D x); small ones are plain arrays."""
    from approxmat import _backend

    weights, W = fitted_pair
    level = W._levels[1]
    n = _backend.ALIGNED_OUTPUT_MIN_BYTES // (5 * 8) + 3
    for x in (rng.standard_normal((n, 24)), rng.standard_normal((3, n, 24))):
        for got in (x @ W, np.matmul(x, W)):
            assert got.ctypes.data % 64 == 0 and got.flags.c_contiguous
            want = _reference.approx_matmul(x.reshape(-1, 24), level, np.float64)
            np.testing.assert_array_equal(got.reshape(-1, 5), want)
    small = rng.standard_normal((3, 24)) @ W
    assert small.flags.owndata


def test_tolerance_selects_level_or_exact(fitted_pair, rng):
    weights, W = fitted_pair
    x = rng.standard_normal((9, 24))
    cheap, accurate = W._levels
    with am.config(tolerance=0.5):
        np.testing.assert_array_equal(x @ W, _reference.approx_matmul(x, cheap, np.float64))
    with am.config(tolerance=0.2):
        np.testing.assert_array_equal(x @ W, _reference.approx_matmul(x, accurate, np.float64))
    for t in (0.05, 0):
        with am.config(tolerance=t):
            np.testing.assert_array_equal(x @ W, x @ weights)


def test_fitted_shapes_dtypes_and_out(fitted_pair, rng):
    weights, W = fitted_pair
    level = W._levels[1]
    x3 = rng.standard_normal((2, 3, 24))
    ref = _reference.approx_matmul(x3.reshape(-1, 24), level, np.float64).reshape(2, 3, 5)
    np.testing.assert_array_equal(x3 @ W, ref)
    # 1-D x gives (M,)
    np.testing.assert_array_equal(x3[0, 0] @ W, ref[0, 0])
    # N = 0
    assert (np.empty((0, 24)) @ W).shape == (0, 5)
    # float32 x with float64 weights: float64 result, encode sees float32 values
    x32 = x3.astype(np.float32)
    got = x32 @ W
    assert got.dtype == np.float64
    np.testing.assert_array_equal(
        got, _reference.approx_matmul(x32.reshape(-1, 24), level, np.float64).reshape(2, 3, 5)
    )
    # dtype=float32: inputs cast first, output float32
    got = np.matmul(x3, W, dtype=np.float32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(
        got, _reference.approx_matmul(x32.reshape(-1, 24), level, np.float32).reshape(2, 3, 5)
    )
    # out= of the right dtype, of a castable dtype, non-contiguous, overlapping x
    buf = np.empty((2, 3, 5))
    assert np.matmul(x3, W, out=buf) is buf
    np.testing.assert_array_equal(buf, ref)
    buf32 = np.empty((2, 3, 5), np.float32)
    np.matmul(x3, W, out=buf32)
    np.testing.assert_array_equal(buf32, ref.astype(np.float32))
    wide = np.zeros((2, 3, 10))
    np.matmul(x3, W, out=wide[..., ::2])
    np.testing.assert_array_equal(wide[..., ::2], ref)
    assert not wide[..., 1::2].any()
    with pytest.raises(ValueError, match=r"out has shape \(2, 3, 4\)"):
        np.matmul(x3, W, out=np.empty((2, 3, 4)))
    with pytest.raises(TypeError, match="Cannot cast"):
        np.matmul(x3, W, out=np.empty((2, 3, 5), np.int32))
    with pytest.raises(ValueError, match="output array is not acceptable"):
        np.dot(x3, W, out=np.empty((2, 3, 5), np.float32))


def test_fitted_in_place_square(rng, make_level):
    D = 6
    W = am.ApproxMatrix(rng.standard_normal((D, D)))._with_levels([make_level(D, D, 3, rng)])
    x = rng.standard_normal((4, D))
    expected = _reference.approx_matmul(x, W._levels[0], np.float64)
    x @= W
    np.testing.assert_array_equal(x, expected)


def test_fitted_integer_results_stay_exact(rng, make_level):
    weights = rng.integers(-5, 5, size=(6, 3))
    W = am.ApproxMatrix(weights)._with_levels([make_level(6, 3, 2, rng)])
    x = rng.integers(-5, 5, size=(4, 6))
    got = x @ W
    assert got.dtype == weights.dtype
    np.testing.assert_array_equal(got, x @ weights)
    # complex left operands are computed exactly too
    xc = x + 1j
    np.testing.assert_array_equal(xc @ W, xc @ weights)


def test_float16_result_computed_in_float32(rng, make_level):
    weights = rng.standard_normal((6, 3)).astype(np.float16)
    level = make_level(6, 3, 2, rng)
    W = am.ApproxMatrix(weights)._with_levels([level])
    x = rng.standard_normal((4, 6)).astype(np.float16)
    got = x @ W
    assert got.dtype == np.float16
    expected = _reference.approx_matmul(x.astype(np.float32), level, np.float32)
    np.testing.assert_array_equal(got, expected.astype(np.float16))


def test_exact_calls_of_2d_rows_match_numpy_and_report_why(fitted_pair, rng):
    from approxmat import _reference

    weights, W = fitted_pair
    x = rng.standard_normal((7, weights.shape[0]))
    cases = [({"tolerance": 0}, "tolerance=0 asks for the exact product"),
             ({"tolerance": 1e-9}, "no fitted point has validated error <= tolerance 1e-09")]
    for settings, reason in cases * 2:  # twice: the second time from the cached decision
        with am.config(**settings):
            np.testing.assert_array_equal(x @ W, x @ weights)
            assert am.last_call().reason == reason and am.last_call().ncodebooks is None
            buf = np.empty((7, weights.shape[1]))
            assert np.matmul(x, W, out=buf) is buf
            np.testing.assert_array_equal(buf, x @ weights)
            with pytest.raises(TypeError, match="read-only"):
                np.matmul(x, W, out=W)
    # The approximate decision is cached separately and still approximates.
    np.testing.assert_array_equal(x @ W, _reference.approx_matmul(x, W._levels[1], np.float64))
    assert am.last_call().ncodebooks == W._levels[1].ncodebooks
    unfitted = am.ApproxMatrix(weights)
    for _ in range(2):
        np.testing.assert_array_equal(x.astype(np.float32) @ unfitted,
                                      x.astype(np.float32) @ weights)
        assert am.last_call().reason == "not fitted"
    with pytest.raises(ValueError, match="matmul"):
        x[:, :3] @ unfitted
