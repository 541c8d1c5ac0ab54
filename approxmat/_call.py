"""The call-time decision: how one product ``x @ W`` is computed, and why.

:class:`Product` holds everything a call needs for one pair of weights and fitted
operating points (:mod:`approxmat._points`). For each call it decides, in the calling
thread:

* whether the product may be approximated at all: fitted, a real left operand, a
  float result, no argument NumPy has but the kernels do not (``axes``, ``casting``...);
* which points the accuracy budget allows (:func:`plan`) and, among them, the one
  predicted fastest for this call's row count, dtype, layout and threads by the cost
  curves measured on this machine (:mod:`approxmat._costs`; the curve of a key not yet
  measured is measured on first use);
* the result's shape and dtype and the rules for ``out=`` (NumPy's, for ``matmul``
  and for ``dot``), and the buffer the point writes into;

then runs the point (lookup tables through :func:`approxmat._backend.product`, low rank
as two BLAS products, exact by NumPy) and hands the row flags to the budget
(:func:`approxmat._budget.account`), which may ask for the exact product instead.
Every call leaves a report for :func:`approxmat.last_call`, with the predicted and the
measured time.

The common call, a 2-D float ``x`` with no keyword but ``out``, takes
:meth:`Product.fast`, which caches the decision per tolerance, dtype,
``check_finite``, layout and threads, so that one-row products cost little more than
NumPy's.
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_right

import numpy as np

from . import _backend, _budget, _costs
from ._config import _current
from ._points import EXACT

__all__ = ["APPROX_RESULT_DTYPES", "Product", "TransposedProduct", "plan"]

#: Result dtypes the approximate path produces; anything else is computed exactly.
APPROX_RESULT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

_DEFAULT_MATMUL_AXES = [(-2, -1), (-2, -1), (-2, -1)]
_F16 = np.dtype(np.float16)
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
# Read once here, not per call (the fast path counts its attribute lookups).
_KERNEL_DTYPES = _backend.KERNEL_DTYPES
_kernel_input = _backend.kernel_input
_SMALL_OUTPUT_BYTES = _backend.ALIGNED_OUTPUT_MIN_BYTES
_RESULT_DTYPES = {}
_config_now = _current.get
_set_last = _budget.set_last
_kernel_threads = _backend.kernel_threads
_clock = time.perf_counter
_MATMUL = np.matmul
# Tags of the fast path's cached entries.
_EXACT_ONLY, _GENERAL, _FIXED, _SCHEDULED = range(4)


def plan(points, tolerance, fitted=True):
    """What an accuracy budget allows among ``points`` (``points[0]`` is exact).

    Parameters
    ----------
    points : sequence
        The exact point, then the fitted points (each with an ``error``).
    tolerance : float or None
        ``None``: the most accurate fitted point, whatever it costs. ``0``: exact.
        ``t``: every point whose validated error is ``<= t``, exact included; the
        call then takes the one predicted fastest.
    fitted : bool
        Whether the matrix was fitted (it may have no point left but exact when
        every fitted point was slower than exact on the machine that fitted it).

    Returns
    -------
    tuple
        ``("exact", reason)``, ``("fixed", index)`` or ``("cost", indices)``.

    Examples
    --------
    >>> from types import SimpleNamespace as P
    >>> points = [P(error=0.0), P(error=0.3), P(error=0.1)]
    >>> plan(points, None), plan(points, 0.2), plan(points, 0.5)
    (('fixed', 2), ('cost', [0, 2]), ('cost', [0, 1, 2]))
    >>> plan(points, 0.05)[0], plan(points, 0)[1]
    ('exact', 'tolerance=0 asks for the exact product')
    """
    if len(points) == 1:
        if not fitted:
            return "exact", "not fitted"
        return "exact", "no fitted point was faster than the exact product where it was fitted"
    if tolerance is None:
        # an unmeasured (NaN) error counts as the largest
        return "fixed", min(range(1, len(points)), key=lambda i: (
            points[i].error if points[i].error == points[i].error else math.inf, i))
    if tolerance == 0:
        return "exact", "tolerance=0 asks for the exact product"
    allowed = [i for i in range(1, len(points)) if points[i].error <= tolerance]
    if not allowed:
        return "exact", f"no fitted point has validated error <= tolerance {tolerance:g}"
    return "cost", [0] + allowed


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
        if not _backend.is_real(x_dtype):
            return None
        result = _RESULT_DTYPES[key] = np.result_type(x_dtype, w_dtype)
    return result


def layout_of(x) -> str:
    """``"F"`` for a column-major 2-D ``x`` (not also row-major), else ``"C"``."""
    flags = x.flags
    return "F" if x.ndim == 2 and flags.f_contiguous and not flags.c_contiguous else "C"


class Product:
    """How ``x @ weights`` is computed with a fixed tuple of fitted operating points.

    Made anew whenever the points change (so a concurrent call sees the old or the
    new points whole, never a mix). Keeps the per-fit caches: the plan per tolerance,
    the schedules per tolerance and cost key, the fast path's entries, the converted
    weights, and the one-time warnings already given.

    Parameters
    ----------
    weights : ndarray, shape (D, M)
        The exact weights (read-only).
    points : tuple
        Fitted points (:class:`~approxmat._level.Level` or
        :class:`~approxmat._points.LowRank`); empty: every product is exact.
    costs : CostTable, optional
        Measured cost curves; curves measured on another machine are dropped, and
        missing ones are measured on first use.
    fitted : bool, optional
        Whether the matrix was fitted (default: whether ``points`` is non-empty).
    rows : ndarray, shape (n, D), optional
        Rows to time the points on when a curve is measured (synthetic rows inside
        the calibrated ranges when omitted).
    """

    __slots__ = ("weights", "points", "fitted", "costs", "rows", "plain", "_plans",
                 "_schedules", "_fast", "_hot", "_weights64", "_weights32", "_warned",
                 "_lock")

    def __init__(self, weights, points=(), costs=None, fitted=None, rows=None):
        self.weights = weights
        self.points = (EXACT,) + tuple(points)
        self.fitted = bool(points) if fitted is None else bool(fitted)
        self.costs = costs.for_machine() if costs is not None else _costs.CostTable()
        self.rows = rows
        # Not fitted, and no result can be float16 (computed in float32 by exact()):
        # every product is NumPy's own, whatever the settings.
        self.plain = not self.fitted and weights.dtype in (_F32, _F64)
        self._plans = {}  # tolerance -> plan()
        self._schedules = {}  # (tolerance, dtype, layout, threads) -> Schedule
        self._fast = {}  # (tolerance, x dtype, check_finite) -> fast-path entry
        # (config, x dtype, entry) of the last compiled-entry call: the same settings
        # object and dtype find their entry without building the key.
        self._hot = None
        self._weights64 = None  # float64 weights, made by the first verified call
        self._weights32 = None  # float32 weights, made by the first float16 exact product
        self._warned = set()  # one-time warnings already given
        self._lock = threading.Lock()  # one measurement at a time

    # ------------------------------------------------------------ decisions
    def plan(self, tolerance):
        """:func:`plan` for this matrix's points, cached per tolerance."""
        try:
            return self._plans[tolerance]
        except KeyError:
            result = self._plans[tolerance] = plan(self.points, tolerance, self.fitted)
            return result

    def schedule(self, tolerance, allowed, dtype, layout, threads):
        """The :class:`~approxmat._costs.Schedule` of a budget for one cost key."""
        skey = (tolerance, dtype, layout, threads)
        result = self._schedules.get(skey)
        if result is None:
            curve = self.curve(dtype, layout, threads)
            result = self._schedules[skey] = _costs.schedule(curve, allowed, self.points)
        return result

    def curve(self, dtype, layout, threads, repeats=_costs.CALL_REPEATS):
        """The cost curve of one key, measured now if this machine has none yet."""
        key = _costs.key_of(dtype, layout, threads)
        curve = self.costs.curves.get(key)
        if curve is None:
            with self._lock:
                curve = self.costs.curves.get(key)
                if curve is None:
                    curve = self.costs.curves[key] = self.measure(key, repeats)
        return curve

    def measure(self, key, repeats):
        """Time every point for one cost key on sample rows (see :mod:`approxmat._costs`)."""
        dtype, layout, threads = np.dtype(key[0]), key[1], key[2]
        runners = [self.runner(point, threads) for point in self.points]
        D = self.weights.shape[0]
        source = self.rows if self.rows is not None else synthetic_rows(self.points, D)

        def sample(n):
            x = np.resize(source, (n, D)).astype(dtype)
            return np.asfortranarray(x) if layout == "F" else x

        return _costs.measure(runners, sample, repeats)

    def runner(self, point, threads):
        """``run(x) -> y``: one call with ``point`` as the fast path makes it, without
        the dispatch and the report common to every point (for timing)."""
        weights = self.weights
        M = weights.shape[1]
        if point is EXACT:
            def exact(x):
                if result_dtype(x.dtype, weights.dtype) == _F16:
                    return self.exact(x, {}, None, "matmul")
                return _MATMUL(x, weights)

            return exact
        run = _fast_run(point, True)

        def approx(x):
            result = result_dtype(x.dtype, weights.dtype)
            x2d, written = operands(point, x, result)
            y = _new_result(x2d.shape[0], M, written)
            flags = run(x2d, y, threads)
            if flags is not None:
                np.count_nonzero(flags & 1)
            return y if result == written else y.astype(result)

        return approx

    def compute(self, point, x2d, y2d, threads, check_finite):
        """Write ``point``'s product of rows ``x2d`` into ``y2d``; the row flags or None.

        ``x2d`` and ``y2d`` are of the dtypes :func:`operands` gives; ``y2d`` is
        C-contiguous.
        """
        if point.kind == "lut":
            return _backend.product(x2d, point, y2d, threads, check_finite)
        left, right = point.factors(y2d.dtype)
        _MATMUL(_MATMUL(x2d, left), right, out=y2d)
        return None

    # ------------------------------------------------------------ the fast path
    def fast(self, x, out=None):
        """``x @ W`` for a 2-D ndarray ``x``, or None when the general path must decide.

        The same product as :meth:`__call__`, specialised so that small calls cost
        little more than NumPy's. Exact products go straight to NumPy; approximate
        ones run when ``x`` is float32/float64, verification is off, and any ``out=``
        is a plain C-contiguous buffer of the result dtype.
        """
        config = _config_now()
        key = (config.tolerance, x.dtype, config.check_finite)
        entry = self._fast.get(key)
        if entry is None:
            entry = self._fast[key] = self._fast_entry(x, config)
        tag = entry[0]
        if tag is _EXACT_ONLY:
            return self._fast_exact(x, out, None, entry[1])
        if tag is _GENERAL or config.verify is not None:
            return None
        nrows, width = x.shape
        D, M = self.weights.shape
        if width != D:
            return None  # the general path raises NumPy's error
        threads = _kernel_threads(config.threads)
        if tag is _SCHEDULED:
            flags = x.flags
            layout = "F" if flags.f_contiguous and not flags.c_contiguous else "C"
            schedules = entry[1]
            skey = 2 * threads + (layout == "F")  # an int: cheap for the compiled entry
            sched = schedules.get(skey)
            if sched is None:
                sched = schedules[skey] = self.schedule(
                    config.tolerance, entry[4], x.dtype.str, layout, threads)
            bounds = sched.bounds
            i = 0 if len(bounds) == 1 else bisect_right(bounds, nrows) - 1
            index = sched.indices[i]
            pred = (sched.curve, index)
            if index == 0:
                return self._fast_exact(x, out, pred, None)
        else:
            index, pred = entry[1], None
        result = entry[3]
        if out is None:
            out = _new_result(nrows, M, result)
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
        point = self.points[index]
        t0 = _clock()
        flags = entry[2][index](x, out, threads)
        seconds = _clock() - t0
        if flags is not None:
            _budget.account(self, x, out, point, config, flags, seconds, pred)
        else:
            _set_last((point, nrows, seconds, pred, None))
        return out

    def _fast_exact(self, x, out, pred, reason):
        """NumPy's ``x @ weights`` for :meth:`fast`, with its report; None for an
        ``out=`` other than a 1-tuple of ndarray (the general path checks it)."""
        if out is None:
            t0 = _clock()
            y = _MATMUL(x, self.weights)
        elif type(out) is tuple and len(out) == 1 and type(out[0]) is np.ndarray:
            t0 = _clock()
            y = _MATMUL(x, self.weights, out=out)
        else:
            return None
        _set_last((EXACT, x.shape[0], _clock() - t0, pred, reason))
        return y

    def _fast_entry(self, x, config):
        """What :meth:`fast` does for rows of this dtype under these settings.

        ``(_EXACT_ONLY, reason)``; ``(_GENERAL,)`` to leave the call to the general
        path; ``(_FIXED, index, runs, result)`` for one point whatever the call;
        ``(_SCHEDULED, schedules, runs, result, allowed)`` for the point predicted
        fastest, with ``schedules`` filled on first use, keyed by
        ``2 * threads + (layout == "F")``.
        """
        result = result_dtype(x.dtype, self.weights.dtype)
        if result == _F16:
            if not self.fitted or self.plan(config.tolerance)[0] == "exact":
                return (_GENERAL,)  # exact() computes float16 products in float32
        if not self.fitted:
            return _EXACT_ONLY, "not fitted"
        if result is None:
            return _EXACT_ONLY, f"{x.dtype} left operands are computed exactly"
        if result not in APPROX_RESULT_DTYPES:
            return _EXACT_ONLY, f"{result} results are computed exactly"
        how = self.plan(config.tolerance)
        if how[0] == "exact":
            return _EXACT_ONLY, how[1]
        if not _kernel_input(x.dtype):
            return (_GENERAL,)
        if result == _F16 and how[0] != "fixed":
            return (_GENERAL,)  # exact() computes float16 products in float32
        runs = tuple(_fast_run(p, config.check_finite) for p in self.points)
        if how[0] == "fixed":
            return _FIXED, how[1], runs, result
        return _SCHEDULED, {}, runs, result, how[1]

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
        config = _config_now()
        point, reason, pred = self.decide(x, kwargs, config)
        if point is EXACT:
            t0 = _clock()
            y = self.exact(x, kwargs, out, name)
            _budget.record(EXACT, _rows(x), _clock() - t0, pred, reason)
            return y
        return self._approximate(x, point, out, kwargs.get("dtype"), name, kwargs, config, pred)

    def decide(self, x, kwargs, config):
        """``(point, why it is exact or None, (curve, index) or None)`` for one call.

        The common call (no keyword arguments, a float left operand) takes the
        first branch only; the plan per tolerance is cached.
        """
        if not self.fitted:
            return EXACT, "not fitted", None
        if kwargs:
            unsupported = sorted(set(kwargs) - {"out", "dtype", "axes"})
            axes = kwargs.get("axes")
            if axes is not None and not (
                x.ndim >= 2 and [tuple(a) for a in axes] == _DEFAULT_MATMUL_AXES
            ):
                unsupported.append("axes")  # `x @= W` passes the default axes: those are fine
            if unsupported:
                return EXACT, f"arguments {', '.join(unsupported)} are computed exactly", None
        if x.ndim == 0:
            return EXACT, "0-d left operand", None
        dtype = kwargs.get("dtype") if kwargs else None
        if dtype is None:
            result = result_dtype(x.dtype, self.weights.dtype)
            if result is None:
                return EXACT, f"{x.dtype} left operands are computed exactly", None
            key_dtype = x.dtype
        else:
            result = key_dtype = np.dtype(dtype)
            if not _backend.is_real(x.dtype):
                return EXACT, f"{x.dtype} left operands are computed exactly", None
        if result not in APPROX_RESULT_DTYPES:
            return EXACT, f"{result} results are computed exactly", None
        how = self.plan(config.tolerance)
        if how[0] == "exact":
            return EXACT, how[1], None
        if how[0] == "fixed":
            return self.points[how[1]], None, None
        threads = _kernel_threads(config.threads)
        sched = self.schedule(config.tolerance, how[1], key_dtype.str, layout_of(x), threads)
        index = sched.index(_rows(x))
        return self.points[index], None, (sched.curve, index)

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
        """Give ``warning`` unless a warning of this ``key`` was given for these points."""
        if key in self._warned:
            return
        self._warned.add(key)
        _budget.warn(warning)

    def _approximate(self, x, point, out, dtype, name, kwargs, config, pred):
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
        x2d = x if x.ndim == 2 else x.reshape(-1, D)
        if dtype is not None:  # NumPy casts inputs to dtype= first
            x2d = x2d.astype(_F64 if result == _F64 else _F32, copy=False)
        x2d, written = operands(point, x2d, result)
        direct = (
            out is not None
            and out.dtype == written
            and (out.ndim == 2 or out.flags.c_contiguous)
            and (point.kind == "lut" or out.flags.c_contiguous)
            and not np.shares_memory(out, x)
        )
        if direct:
            y2d = out if out.ndim == 2 else out.reshape(-1, M)
        else:
            y2d = _backend.empty_output(x2d.shape[0], M, written)
        # The kernels write NaN rows for rows of x with NaN/inf (like NumPy) and flag them.
        t0 = _clock()
        flags = self.compute(point, x2d, y2d, config.threads, config.check_finite)
        seconds = _clock() - t0
        if _budget.account(self, x2d, y2d, point, config, flags, seconds, pred):
            return self.exact(x, kwargs, out, name)
        if direct:
            return out
        y = y2d if y2d.shape == out_shape else y2d.reshape(out_shape)
        if out is None:
            return y if result == written else y.astype(result)
        np.copyto(out, y, casting="same_kind")
        return out


class TransposedProduct(Product):
    """How ``W @ x`` is computed: the product ``x.T @ W.T`` of the transposed problem.

    ``weights`` is ``W.T`` (a view), the points are fitted for it from calibration
    columns, and every decision is :class:`Product`'s for ``x.T`` (a row-major ``x``
    is a column-major ``x.T``). Only the exact product differs: it is NumPy's own
    ``W @ x`` (float16 results still through float32 BLAS), so ``tolerance=0`` gives
    NumPy's bits. ``x`` and ``out`` arrive transposed (the last two axes swapped; 1-D
    as they are) and the result leaves transposed.
    """

    __slots__ = ()

    def exact(self, xt, kwargs, out_t, name):
        if xt.ndim >= 1 and set(kwargs) <= {"out"} and _F16_BLOCKS.usable(xt, self.weights, out_t):
            return self._exact_float16(xt, out_t, name)
        weights = self.weights.T
        x = _swap(xt)
        out = None if out_t is None else _swap(out_t)
        if name == "dot":
            y = np.dot(weights, x, out=out) if out is not None else np.dot(weights, x)
        else:
            rest = {k: v for k, v in kwargs.items() if k != "out"}
            y = np.matmul(weights, x, **rest) if out is None else np.matmul(
                weights, x, out=out, **rest)
        return _swap(y)


def _swap(a):
    """``a`` with its last two axes swapped (1-D and 0-D arrays as they are)."""
    return a.swapaxes(-1, -2) if a.ndim >= 2 else a


def _new_result(nrows, ncols, dtype):
    """A new C-contiguous result: small ones (itemsize <= 8) the ``np.empty`` that
    :func:`approxmat._backend.empty_output` would make, without the 0.2-0.4 us of that
    call (N = 1 latency); large ones 64-byte aligned by it."""
    if nrows * ncols * 8 < _SMALL_OUTPUT_BYTES:
        return np.empty((nrows, ncols), dtype=dtype)
    return _backend.empty_output(nrows, ncols, dtype)


def operands(point, x2d, result):
    """``(x2d, written)``: the rows as ``point`` reads them and the dtype it writes.

    The lookup-table kernels read float32, float64 and the narrow dtypes of
    :data:`approxmat._backend.NARROW_DTYPES` as they are, and write float16 results
    themselves (computed in float32, rounded once); other points convert narrow rows
    to float32 (float64 for float64 results) and compute float16 results in float32.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> x = np.zeros((2, 3), np.uint8)
    >>> operands(SimpleNamespace(kind="lut"), x, np.dtype(np.float16))[1]
    dtype('float16')
    >>> x2d, written = operands(SimpleNamespace(kind="lowrank"), x, np.dtype(np.float16))
    >>> x2d.dtype, written
    (dtype('float32'), dtype('float32'))
    """
    compute = _F64 if result == _F64 else _F32
    if point.kind == "lut" and _kernel_input(x2d.dtype):
        return x2d, (result if result == _F16 and x2d.dtype != _F64 else compute)
    if x2d.dtype not in _KERNEL_DTYPES:
        x2d = x2d.astype(compute)
    return x2d, compute


def _fast_run(point, check_finite):
    """``run(x2d, out2d, nthreads) -> flags or None`` of a point, for :meth:`Product.fast`.

    ``out2d`` has the result dtype; the run computes what the general path does
    (:func:`operands`)."""
    if point is EXACT:
        return None  # the fast path calls NumPy itself
    if point.kind == "lut":
        return _backend.kernel_entry(point, check_finite)
    factors = point.factors

    def lowrank(x2d, out2d, nthreads):
        x2d, compute = operands(point, x2d, out2d.dtype)
        left, right = factors(compute)
        if compute == out2d.dtype:
            _MATMUL(_MATMUL(x2d, left), right, out=out2d)
        else:  # float16 results, computed in float32
            out2d[...] = _MATMUL(_MATMUL(x2d, left), right)

    return lowrank


def synthetic_rows(points, D, n=64, seed=0):
    """Rows to time points on when no calibration rows are at hand (a loaded file).

    Each column split by a lookup-table point is drawn inside the calibrated range of
    its splits (so the rows are not flagged as drift); other columns are standard
    normal.

    Examples
    --------
    >>> synthetic_rows((), 3, n=2).shape
    (2, 3)
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, D))
    low = np.full(D, -np.inf)
    high = np.full(D, np.inf)
    for p in points:
        if getattr(p, "kind", None) == "lut" and p.split_low is not None:
            np.maximum.at(low, p.split_dims.ravel(), p.split_low.ravel().astype(np.float64))
            np.minimum.at(high, p.split_dims.ravel(), p.split_high.ravel().astype(np.float64))
    bounded = np.isfinite(low) & np.isfinite(high)
    lo, hi = np.minimum(low, high)[bounded], np.maximum(low, high)[bounded]
    x[:, bounded] = lo + (hi - lo) * rng.uniform(0.25, 0.75, (n, int(bounded.sum())))
    return x


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
