"""Property-based tests: any input either matches the NumPy reference bit for bit or
raises a clear NumPy-style error. They run on the kernel variant in use; CI repeats the
whole suite with APPROXMAT_FORCE_ISA set to every variant the machine has."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import approxmat as am
from approxmat import _reference, _testing

D, M = 13, 5


@pytest.fixture(autouse=True)
def no_drift_warnings():
    # Random inputs leave the (made-up) calibrated ranges all the time; drift
    # warnings are tested in test_budget.py.
    with am.config(drift_fraction=None):
        yield

VALUE_KINDS = list(_testing.VALUE_KINDS)


def make_W(seed, weights_dtype=np.float64):
    """A fitted matrix of one random level (1..8 codebooks, ranges [-2, 2])."""
    rng = np.random.default_rng(seed)
    C = int(rng.integers(1, 9))
    weights = rng.standard_normal((D, M)).astype(weights_dtype)
    level = _testing.random_level(D, M, C, rng, saturated=0.0, offset_scale=1.0,
                                  scale_range=(1e-3, 1.0), ranges=(-2.0, 2.0))
    return am.ApproxMatrix(weights)._with_levels([level]), level


def expected_product(x, W, level, dtype=None):
    """What the approximate product must be, computed from the reference oracle."""
    weights = np.asarray(W)
    result = np.dtype(dtype) if dtype is not None else np.result_type(x.dtype, weights.dtype)
    compute = np.dtype(np.float64 if result == np.float64 else np.float32)
    x2d = x.reshape(-1, D)
    if dtype is not None or x2d.dtype.kind != "f" or x2d.dtype == np.float16:
        x2d = x2d.astype(compute)
    y = _reference.approx_matmul(x2d, level, compute)
    nonfinite, _ = _reference.row_flags(x2d, level)
    y[nonfinite] = np.nan
    return y.reshape(x.shape[:-1] + (M,)).astype(result)


@st.composite
def left_operands(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    lead = draw(st.sampled_from([(), (0,), (1,), (2,), (31,), (33,), (2, 3), (3, 0)]))
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.int32, bool]))
    kind = draw(st.sampled_from(VALUE_KINDS))
    order = draw(st.sampled_from(["C", "F"]))
    step = draw(st.sampled_from([1, 2, -1, -3]))
    col_step = draw(st.sampled_from([1, -1, 2]))
    # Build a larger array and take a strided view of shape lead + (D,).
    big_lead = tuple(n * abs(step) for n in lead)
    base = _testing.random_values(big_lead + (D * abs(col_step),), rng, kind)
    with np.errstate(all="ignore"):
        base = np.asarray(base).astype(dtype)
    base = np.asarray(base, order=order)
    index = tuple(slice(None, None, step) for _ in lead) + (slice(None, None, col_step),)
    x = base[index]
    assert x.shape == lead + (D,)
    return x, seed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operand=left_operands(), wseed=st.integers(0, 1000),
       wdtype=st.sampled_from([np.float32, np.float64]))
def test_matmul_matches_reference_bit_for_bit(operand, wseed, wdtype):
    x, _ = operand
    W, level = make_W(wseed, wdtype)
    expected = expected_product(x, W, level)
    for got in (x @ W, np.matmul(x, W), np.dot(x, W)):
        assert type(got) is np.ndarray and got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


@settings(max_examples=120, deadline=None)
@given(
    operand=left_operands(),
    wseed=st.integers(0, 1000),
    out_kind=st.sampled_from(["right", "float32", "float64", "strided", "wrong_shape",
                              "int", "readonly", "dtype32"]),
)
def test_out_buffers(operand, wseed, out_kind):
    x, _ = operand
    W, level = make_W(wseed)
    shape = x.shape[:-1] + (M,)
    result = np.result_type(x.dtype, W.dtype)
    dtype = None
    if out_kind == "wrong_shape":
        with pytest.raises(ValueError, match="out has shape"):
            np.matmul(x, W, out=np.empty(shape[:-1] + (M + 1,)))
        return
    if out_kind == "int":
        with pytest.raises(TypeError, match="Cannot cast ufunc 'matmul' output"):
            np.matmul(x, W, out=np.empty(shape, np.int64))
        return
    if out_kind == "readonly":
        buf = np.empty(shape)
        buf.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            np.matmul(x, W, out=buf)
        return
    if out_kind == "strided":
        big = np.full(shape[:-1] + (2 * M,), 7.0, dtype=result)
        buf = big[..., ::2]
    elif out_kind == "dtype32":
        dtype = np.float32
        buf = np.empty(shape, np.float32)
    else:
        buf = np.empty(shape, {"right": result, "float32": np.float32,
                               "float64": np.float64}[out_kind])
    assume(np.can_cast(result if dtype is None else dtype, buf.dtype, "same_kind"))
    expected = expected_product(x, W, level, dtype).astype(buf.dtype)
    got = np.matmul(x, W, out=buf, dtype=dtype)
    assert got is buf
    np.testing.assert_array_equal(buf, expected)
    if out_kind == "strided":
        assert (big[..., 1::2] == 7).all()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.sampled_from([0, 1, 5, 33]))
def test_in_place_square_product(seed, n):
    rng = np.random.default_rng(seed)
    C = int(rng.integers(1, 6))
    level = _testing.random_level(D, D, C, rng, saturated=0.0, offset_scale=1.0,
                                  scale_range=(0.01, 1.0))
    W = am.ApproxMatrix(rng.standard_normal((D, D)))._with_levels([level])
    x = rng.standard_normal((n, D))
    expected = _reference.approx_matmul(x, level, np.float64)
    x @= W  # out overlaps the input: computed into a temporary first
    np.testing.assert_array_equal(x, expected)


@settings(max_examples=60, deadline=None)
@given(wseed=st.integers(0, 1000), width=st.integers(0, 30).filter(lambda w: w != D))
def test_width_mismatch_is_a_clear_error(wseed, width):
    W, _ = make_W(wseed)
    with pytest.raises(ValueError, match="mismatch in its core dimension 0"):
        np.ones((3, width)) @ W
    with pytest.raises(ValueError, match="not aligned"):
        np.dot(np.ones((3, width)), W)


@settings(max_examples=60, deadline=None)
@given(weights=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6),
                          elements=st.floats(allow_nan=True, allow_infinity=True)))
def test_any_weights_are_accepted_or_rejected_clearly(weights):
    if np.isfinite(weights).all():
        W = am.ApproxMatrix(weights)
        x = np.ones((2, weights.shape[0]))
        # finite weights may still overflow to inf in the sum, as NumPy's own product does
        with np.errstate(over="ignore", invalid="ignore"):
            np.testing.assert_array_equal(x @ W, x @ weights)
    else:
        with pytest.raises(ValueError, match="non-finite value"):
            am.ApproxMatrix(weights)
