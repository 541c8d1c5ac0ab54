"""The call-time decision: how one product ``x @ W`` is computed, and why.

:class:`Product` holds everything a call needs for one pair of weights and fitted
levels. For each call it decides, in the calling thread:

* whether the product is approximated at all: fitted, a real left operand, a float
  result, no argument NumPy has but the kernels do not (``axes``, ``casting``...);
* which fitted level serves the accuracy budget (:func:`choose_level`), or exact;
* the result's shape and dtype and the rules for ``out=`` (NumPy's, for ``matmul``
  and for ``dot``), and the buffer the kernel writes into;

then runs the level through the one kernel entry (:func:`approxmat._backend.product`)
and hands the row flags to the budget (:func:`approxmat._budget.account`), which may
ask for the exact product instead. Every call leaves a report for
:func:`approxmat.last_call`.

The common call, a 2-D float ``x`` with no keyword but ``out``, takes
:meth:`Product.fast`, which caches the level, result dtype and kernel entry per
tolerance, dtype and ``check_finite`` so that one-row products cost little more than
NumPy's.
"""

from __future__ import annotations

import math

import numpy as np

from . import _backend, _budget
from ._config import get_config

__all__ = ["APPROX_RESULT_DTYPES", "Product", "choose_level"]

#: Result dtypes the approximate path produces; anything else is computed exactly.
APPROX_RESULT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

_DEFAULT_MATMUL_AXES = [(-2, -1), (-2, -1), (-2, -1)]
_F16 = np.dtype(np.float16)
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
# Read once here, not per call (the fast path counts its attribute lookups).
_KERNEL_DTYPES = _backend.KERNEL_DTYPES
_SMALL_OUTPUT_BYTES = _backend.ALIGNED_OUTPUT_MIN_BYTES
_RESULT_DTYPES = {}
_nan = float("nan")
_current_config = get_config
_MATMUL = np.matmul


def choose_level(levels, tolerance):
    """The level a call with this accuracy budget uses, or None for the exact product.

    Parameters
    ----------
    levels : sequence of Level
        Fitted levels, cheapest (fewest codebooks) first.
    tolerance : float or None
        ``None``: the most accurate level. ``t``: the cheapest level whose
        validated error is ``<= t``; None if no level qualifies.

    Examples
    --------
    >>> from types import SimpleNamespace as L
    >>> levels = [L(ncodebooks=4, error=0.3), L(ncodebooks=8, error=0.1)]
    >>> choose_level(levels, 0.2).ncodebooks, choose_level(levels, None).ncodebooks
    (8, 8)
    >>> choose_level(levels, 0.5).ncodebooks, choose_level(levels, 0.05)
    (4, None)
    """
    if not levels:
        return None
    if tolerance is None:
        return min(levels, key=lambda level: (level.error, level.ncodebooks))
    for level in levels:
        if level.error <= tolerance:
            return level
    return None


def result_dtype(x_dtype, w_dtype):
    """``np.result_type`` of a product, cached; None for non-real left operands.

    Examples
    --------
    >>> result_dtype(np.dtype(np.uint8), np.dtype(np.float32))
    dtype('float32')
    >>> result_dtype(np.dtype(complex), np.dtype(np.float32)) is None
    True
    """
    key = (x_dtype, w_dtype)
    result = _RESULT_DTYPES.get(key)
    if result is None:
        if x_dtype.kind not in "biuf":
            return None
        result = _RESULT_DTYPES[key] = np.result_type(x_dtype, w_dtype)
    return result


class Product:
    """How ``x @ weights`` is computed with a fixed tuple of fitted levels.

    Made anew whenever the levels change (so a concurrent call sees the old or the
    new levels whole, never a mix). Keeps the per-fit caches: the level chosen per
    tolerance, the fast path's arguments per tolerance and dtype, the float64
    weights of verified calls, and the one-time warnings already given.

    Parameters
    ----------
    weights : ndarray, shape (D, M)
        The exact weights (read-only).
    levels : tuple of Level
        Fitted levels, fewest codebooks first; empty: every product is exact.
    """

    __slots__ = ("weights", "levels", "_choice", "_fast", "_weights64", "_weights32", "_warned")

    def __init__(self, weights, levels=()):
        self.weights = weights
        self.levels = tuple(levels)
        self._choice = {}  # tolerance -> level chosen for it (None: exact)
        self._fast = {}  # (tolerance, x dtype, check_finite) -> (level, result, kernel entry)
        self._weights64 = None  # float64 weights, made by the first verified call
        self._weights32 = None  # float32 weights, made by the first float16 exact product
        self._warned = set()  # one-time warnings already given

    # ------------------------------------------------------------ the fast path
    def fast(self, x, out=None):
        """``x @ W`` for a 2-D ndarray ``x``, or None when the general path must decide.

        The same product as :meth:`__call__`, specialised so that small calls cost
        little more than NumPy's: the decision per tolerance, dtype and
        ``check_finite`` is cached. Exact products (not fitted, ``tolerance=0``, no
        qualifying level, non-float results) go straight to NumPy; approximate ones
        take the kernel when ``x`` is float32/float64, verification is off, and any
        ``out=`` is a plain C-contiguous buffer of the result dtype.
        """
        config = _current_config()
        key = (config.tolerance, x.dtype, config.check_finite)
        entry = self._fast.get(key)
        if entry is None:
            entry = self._fast[key] = self._fast_entry(x, config)
        level, result, kernel = entry
        if level is None:
            if kernel is None:
                return None  # approximated, but not by the fast path
            if out is not None and not (type(out) is tuple and len(out) == 1
                                        and type(out[0]) is np.ndarray):
                return None
            _budget.record(None, x.shape[0], reason=result)
            if out is None:
                return _MATMUL(x, self.weights)
            return _MATMUL(x, self.weights, out=out)
        if config.verify is not None:
            return None
        nrows, width = x.shape
        D, M = self.weights.shape
        if width != D:
            return None  # the general path raises NumPy's error
        if out is None:
            # Small results (itemsize <= 8): the np.empty that empty_output would make,
            # without the 0.2-0.4 us of the call (N = 1 latency).
            if nrows * M * 8 < _SMALL_OUTPUT_BYTES:
                out = np.empty((nrows, M), dtype=result)
            else:
                out = _backend.empty_output(nrows, M, result)
        else:  # out=(buf,): only a plain, exact-dtype, C-contiguous, separate buffer
            buf = out[0] if type(out) is tuple and len(out) == 1 else None
            if (
                type(buf) is not np.ndarray
                or buf.dtype != result
                or buf.shape != (nrows, M)
                or not buf.flags.c_contiguous
                or not buf.flags.writeable
                or np.shares_memory(buf, x)
            ):
                return None
            out = buf
        flags = kernel(x, out, _backend.kernel_threads(config.threads))
        if flags is not None:
            _budget.account(self, x, out, level, config, flags)  # drift and NaN accounting
        else:
            _budget.record(level.ncodebooks, nrows, 0, _nan, _nan, False, 0, 0)
        return out

    def _fast_entry(self, x, config):
        """What :meth:`fast` does for rows of this dtype under these settings.

        ``(level, result dtype, kernel entry)`` for the kernel; ``(None, reason,
        True)`` for the exact product; ``(None, None, None)`` to leave the call to
        the general path.
        """
        level, reason = self.decide(x, None, config)
        result = result_dtype(x.dtype, self.weights.dtype)
        if level is None:
            if result == _F16:
                return None, None, None  # exact() computes float16 products in float32
            return None, reason, True
        if x.dtype not in _KERNEL_DTYPES or result not in _KERNEL_DTYPES:
            return None, None, None
        return level, result, _backend.kernel_entry(level, config.check_finite)

    # ------------------------------------------------------------ the general path
    def __call__(self, x, kwargs, name):
        """``x @ W`` (``name="matmul"``) or ``np.dot(x, W)`` (``name="dot"``).

        Approximate when fitted and within budget, else exact; ``kwargs`` are the
        ufunc's keyword arguments (``out``, ``dtype``, ``axes``...).
        """
        if type(x) is not np.ndarray:
            x = np.asarray(x)
        out = kwargs.get("out")
        if isinstance(out, tuple):
            out = out[0] if len(out) == 1 else out
        config = _current_config()
        level, reason = self.decide(x, kwargs, config)
        if level is None:
            _budget.record(None, _rows(x), reason=reason)
            return self.exact(x, kwargs, out, name)
        return self._approximate(x, level, out, kwargs.get("dtype"), name, kwargs, config)

    def decide(self, x, kwargs, config):
        """The level a call uses, or ``(None, why the product is exact)``.

        The common call (no keyword arguments, a float left operand) takes the
        first branch only; the choice per tolerance is cached.
        """
        levels = self.levels
        if not levels:
            return None, "not fitted"
        if kwargs:
            unsupported = sorted(set(kwargs) - {"out", "dtype", "axes"})
            axes = kwargs.get("axes")
            if axes is not None and not (
                x.ndim >= 2 and [tuple(a) for a in axes] == _DEFAULT_MATMUL_AXES
            ):
                unsupported.append("axes")  # `x @= W` passes the default axes: those are fine
            if unsupported:
                return None, f"arguments {', '.join(unsupported)} are computed exactly"
        if x.ndim == 0:
            return None, "0-d left operand"
        dtype = kwargs.get("dtype") if kwargs else None
        if dtype is None:
            result = result_dtype(x.dtype, self.weights.dtype)
            if result is None:
                return None, f"{x.dtype} left operands are computed exactly"
        else:
            result = np.dtype(dtype)
            if x.dtype.kind not in "biuf":
                return None, f"{x.dtype} left operands are computed exactly"
        if result not in APPROX_RESULT_DTYPES:
            return None, f"{result} results are computed exactly"
        tolerance = config.tolerance
        try:
            level = self._choice[tolerance]
        except KeyError:
            level = self._choice[tolerance] = choose_level(levels, tolerance)
        if level is None:
            if tolerance == 0:
                return None, "tolerance=0 asks for the exact product"
            return None, f"no fitted level has validated error <= tolerance {tolerance:g}"
        return level, None

    def exact(self, x, kwargs, out, name):
        """The exact product, by NumPy (float16 results through float32 BLAS)."""
        if x.ndim >= 1 and set(kwargs) <= {"out"} and _F16_BLOCKS.usable(x, self.weights, out):
            return self._exact_float16(x, out, name)
        if name == "dot":
            return np.dot(x, self.weights, out=out) if out is not None else np.dot(x, self.weights)
        return np.matmul(x, self.weights, **kwargs)

    def _exact_float16(self, x, out, name):
        """``x @ weights`` with a float16 result, in float32 BLAS a block of rows at a time.

        NumPy's own float16 product runs a loop without BLAS (about 100 times slower
        than float32 on this project's machine). Each block's rows are converted to
        float32 (exactly: float16 and 8-bit integers are float32 values), multiplied by
        the float32 weights and rounded once to float16; the sums may be added in
        another order than NumPy's loop adds them, so a result can differ from
        NumPy's in its last place.
        """
        D, M = self.weights.shape
        if x.shape[-1] != D:
            raise core_mismatch(name, x, self.weights)
        if self._weights32 is None:
            self._weights32 = self.weights.astype(np.float32)
        shape = x.shape[:-1] + (M,)
        y = np.empty(shape, np.float16) if out is None else out
        x2d = x.reshape(-1, D)
        y2d = y.reshape(-1, M)
        step = _F16_BLOCKS.rows(D, M)
        for r0 in range(0, x2d.shape[0], step):
            block = x2d[r0 : r0 + step].astype(np.float32)
            y2d[r0 : r0 + step] = np.matmul(block, self._weights32)
        return y

    def weights64(self):
        """The weights as float64 (converted once: they never change)."""
        if self._weights64 is None:
            self._weights64 = np.asarray(self.weights, dtype=np.float64)
        return self._weights64

    def warn_once(self, key, warning):
        """Give ``warning`` unless a warning of this ``key`` was given for these levels."""
        if key in self._warned:
            return
        self._warned.add(key)
        _budget.warn(warning)

    def _approximate(self, x, level, out, dtype, name, kwargs, config):
        """The approximate product, with NumPy's shape, dtype and ``out=`` rules."""
        D, M = self.weights.shape
        if x.shape[-1] != D:
            raise core_mismatch(name, x, self.weights)
        if dtype is None:
            result = result_dtype(x.dtype, self.weights.dtype)
        else:
            result = np.dtype(dtype)
        out_shape = x.shape[:-1] + (M,)
        if out is not None:
            check_out(out, out_shape, result, name, x, self.weights)
        # Compute in float32 or float64; float16 results are computed in float32.
        compute = _F64 if result == _F64 else _F32
        x2d = x if x.ndim == 2 else x.reshape(-1, D)
        if dtype is not None or x2d.dtype not in _KERNEL_DTYPES:
            x2d = x2d.astype(compute, copy=False)  # NumPy casts inputs to dtype= first
        direct = (
            out is not None
            and out.dtype == compute
            and (out.ndim == 2 or out.flags.c_contiguous)
            and not np.shares_memory(out, x)
        )
        if direct:
            y2d = out if out.ndim == 2 else out.reshape(-1, M)
        else:
            y2d = _backend.empty_output(x2d.shape[0], M, compute)
        # The kernels write NaN rows for rows of x with NaN/inf (like NumPy) and flag them.
        flags = _backend.product(x2d, level, y2d, config.threads, config.check_finite)
        if _budget.account(self, x2d, y2d, level, config, flags):
            return self.exact(x, kwargs, out, name)
        if direct:
            return out
        y = y2d if y2d.shape == out_shape else y2d.reshape(out_shape)
        if out is None:
            return y if result == compute else y.astype(result)
        np.copyto(out, y, casting="same_kind")
        return out


class _F16_BLOCKS:
    """When and how :meth:`Product.exact` computes a float16 product in float32."""

    #: Bytes of the float32 copy of one block of rows (it and the block's float32
    #: result stay in L2 while BLAS multiplies them).
    BLOCK_BYTES = 1 << 20

    @staticmethod
    def usable(x, weights, out):
        """A float16 result of real operands, into a new array or a C-contiguous
        float16 ``out`` of the right shape (any other ``out`` is NumPy's business)."""
        if x.dtype.kind not in "biuf" or result_dtype(x.dtype, weights.dtype) != _F16:
            return False
        if out is None:
            return True
        return (type(out) is np.ndarray and out.dtype == _F16 and out.flags.c_contiguous
                and out.flags.writeable and out.shape == x.shape[:-1] + weights.shape[1:]
                and not np.shares_memory(out, x))

    @classmethod
    def rows(cls, D, M):
        return max(1, cls.BLOCK_BYTES // (4 * max(D, M)))


def _rows(x) -> int:
    return math.prod(x.shape[:-1]) if x.ndim >= 1 else 1


def core_mismatch(name, x, weights):
    """NumPy's error for a left operand whose last axis does not match ``weights``."""
    if name == "dot":
        xs, ws = x.shape, weights.shape
        return ValueError(
            f"shapes {xs} and {ws} not aligned: {xs[-1]} (dim {x.ndim - 1}) != {ws[0]} (dim 0)"
        )
    return ValueError(
        "matmul: Input operand 1 has a mismatch in its core dimension 0, with gufunc "
        f"signature (n?,k),(k,m?)->(n?,m?) (size {weights.shape[0]} is different from "
        f"{x.shape[-1]})"
    )


def check_out(out, out_shape, result, name, x, weights):
    """NumPy's rules for ``out=`` of matmul (same-kind casting) and dot (exact)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: out must be a numpy array, got {type(out).__name__}")
    if name == "dot":
        if out.shape != out_shape or out.dtype != result or not out.flags.c_contiguous:
            raise ValueError(
                "output array is not acceptable (must have the right datatype, number of "
                "dimensions, and be a C-Array)"
            )
    elif out.shape != out_shape:
        raise ValueError(
            f"matmul: out has shape {out.shape}, but the product of shapes {x.shape} and "
            f"{weights.shape} has shape {out_shape}"
        )
    if not np.can_cast(result, out.dtype, casting="same_kind"):
        raise TypeError(
            f"Cannot cast ufunc '{name}' output from {result!r} to {out.dtype!r} "
            "with casting rule 'same_kind'"
        )
    if not out.flags.writeable:
        raise ValueError("output array is read-only")
