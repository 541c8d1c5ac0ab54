"""Exact products with a float16 result: float32 BLAS a block of rows at a time."""

import numpy as np
import pytest

import approxmat as am
from approxmat import _call


def _want(x, w):
    """The definition: float32 product of the (exactly widened) operands, rounded once."""
    return (np.asarray(x, np.float32) @ np.asarray(w, np.float32)).astype(np.float16)


@pytest.fixture
def operands():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1000, 24)).astype(np.float16)
    w = rng.standard_normal((24, 7)).astype(np.float16)
    return x, w


@pytest.mark.parametrize("shape", [(1000, 24), (24,), (4, 250, 24), (0, 24)])
def test_unfitted_float16_products(operands, shape, monkeypatch):
    x, w = operands
    x = x.reshape(-1)[: int(np.prod(shape))].reshape(shape)
    monkeypatch.setattr(_call._F16_BLOCKS, "BLOCK_BYTES", 4 * 24 * 7)  # 7-row blocks
    W = am.ApproxMatrix(w)
    for y in (x @ W, np.matmul(x, W), np.dot(x, W)):
        assert y.dtype == np.float16 and y.shape == shape[:-1] + (7,)
        np.testing.assert_array_equal(y, _want(x, w))
        # NumPy's own float16 loop agrees to within one unit in the last place.
        np.testing.assert_allclose(y.astype(np.float32), (x @ w).astype(np.float32),
                                   rtol=2e-3, atol=2e-3)


def test_out_buffer_and_narrow_integer_rows(operands):
    x, w = operands
    W = am.ApproxMatrix(w)
    out = np.empty((1000, 7), np.float16)
    assert np.matmul(x, W, out=out) is out
    np.testing.assert_array_equal(out, _want(x, w))
    xi = np.arange(-12, 12, dtype=np.int8)[None, :].repeat(3, axis=0)
    np.testing.assert_array_equal(xi @ W, _want(xi, w))
    # Any other out= is NumPy's own business (casting rules included).
    out32 = np.empty((1000, 7), np.float32)
    np.matmul(x, W, out=out32)
    np.testing.assert_array_equal(out32, np.matmul(x, w, out=np.empty((1000, 7), np.float32)))


def test_fallback_of_a_fitted_matrix(operands, make_level):
    x, w = operands
    W = am.ApproxMatrix(w)._with_levels([make_level(24, 7, 4, np.random.default_rng(0))])
    with am.config(tolerance=0):
        y = x @ W
        assert am.last_call().reason == "tolerance=0 asks for the exact product"
    np.testing.assert_array_equal(y, _want(x, w))


def test_width_mismatch_is_numpys_error(operands):
    x, w = operands
    with pytest.raises(ValueError, match="mismatch in its core dimension"):
        x[:, :5] @ am.ApproxMatrix(w)
    with pytest.raises(ValueError, match=r"shapes \(1000, 5\) and \(24, 7\) not aligned"):
        np.dot(x[:, :5], am.ApproxMatrix(w))


def test_float16_results_take_the_blas_path(operands, monkeypatch):
    x, w = operands
    seen = []
    original = _call.Product._exact_float16

    def spy(self, x, out, name):
        seen.append(x.shape)
        return original(self, x, out, name)

    monkeypatch.setattr(_call.Product, "_exact_float16", spy)
    W = am.ApproxMatrix(w)
    x @ W
    np.dot(x[0], W)
    x.astype(np.float32) @ W  # float32 result: NumPy's BLAS call as it is
    assert seen == [(1000, 24), (24,)]
