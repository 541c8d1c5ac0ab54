"""``ApproxMatrix``: a weight matrix whose products ``x @ W`` may be approximated.

How NumPy reaches us:

* ``x @ W`` and ``np.matmul(x, W, ...)`` call ``W.__array_ufunc__`` (NumPy prefers it
  over ``__rmatmul__`` once it exists). ``x @= W`` arrives the same way with
  ``out=(x,)``.
* ``np.dot(x, W)`` calls ``W.__array_function__``.
* ``[[...]] @ W`` (a list on the left) calls ``W.__rmatmul__``.

Only the product with ``W`` as the *right* operand is approximated. Everything else
(``W @ x``, ``W + 1``, ``np.sum(W)``, ``W.T``, indexing) behaves exactly like the
wrapped array and returns plain ndarrays. ``W`` is read-only: operations that would
write into it (``W += 1``, ``W[0] = 1``, ``np.add(a, b, out=W)``) raise ``TypeError``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from . import _budget, _dispatch
from ._build_info import version as _version
from ._config import get_config

__all__ = ["ApproxMatrix", "LevelInfo", "load"]

_DEFAULT_MATMUL_AXES = [(-2, -1), (-2, -1), (-2, -1)]
_MATMUL = np.matmul


@dataclasses.dataclass(frozen=True)
class LevelInfo:
    """Summary of one fitted operating point.

    Attributes
    ----------
    ncodebooks : int
        Number of codebooks (4-bit codes per row): cost grows with it, error falls.
    error : float
        Relative error ``||Y_hat - Y||_F / ||Y||_F`` measured on calibration rows
        held out from fitting.
    table_bytes : int
        Bytes of lookup tables the call reads.
    """

    ncodebooks: int
    error: float
    table_bytes: int


def _validate_weights(weights) -> np.ndarray:
    if isinstance(weights, ApproxMatrix):
        weights = weights._weights
    try:
        array = np.asarray(weights)
    except Exception as exc:  # noqa: BLE001 - re-raised with context
        raise TypeError(
            f"ApproxMatrix needs a 2-D array of real numbers; could not convert "
            f"{type(weights).__name__} to an array: {exc}"
        ) from exc
    if array.dtype.kind not in "iuf":
        raise TypeError(
            f"ApproxMatrix needs real numeric weights (integer or floating dtype), got "
            f"dtype {array.dtype}. Convert first, e.g. weights.astype(np.float32), or keep "
            f"complex/boolean/object products in NumPy."
        )
    if array.ndim != 2:
        raise ValueError(
            f"ApproxMatrix needs a 2-D weight array of shape (D, M), got a {array.ndim}-D "
            f"array of shape {array.shape}. Reshape it first, e.g. w.reshape(D, -1)."
        )
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            bad = np.argwhere(~finite)
            first = tuple(int(i) for i in bad[0])
            raise ValueError(
                f"weights contain {len(bad)} non-finite value(s) (NaN or inf), the first at "
                f"index {first}: {array[first]!r}. Replace them (e.g. np.nan_to_num) first."
            )
    # A private, read-only copy: later writes to the caller's array cannot make the
    # fitted tables stale. The view on top cannot be made writeable again.
    private = np.array(array, copy=True, order="C")
    private.flags.writeable = False
    view = private.view()
    view.flags.writeable = False
    return view


def _replace_self(obj, self, replacement):
    """``obj`` with every occurrence of ``self`` (also inside lists/tuples/dicts) replaced."""
    if obj is self:
        return replacement
    if isinstance(obj, (list, tuple)):
        items = [_replace_self(item, self, replacement) for item in obj]
        return type(obj)(items) if isinstance(obj, list) else tuple(items)
    if isinstance(obj, dict):
        return {key: _replace_self(value, self, replacement) for key, value in obj.items()}
    return obj


def _contains_self(obj, self) -> bool:
    if obj is self:
        return True
    if isinstance(obj, (list, tuple)):
        return any(_contains_self(item, self) for item in obj)
    return False


def _read_only_error(what: str) -> TypeError:
    return TypeError(
        f"ApproxMatrix is read-only ({what}): its fitted tables describe the weights as "
        f"they were. Work on a copy, np.asarray(W).copy(), and wrap it again."
    )


class ApproxMatrix(NDArrayOperatorsMixin):
    """A fixed ``(D, M)`` right operand whose products ``x @ W`` can be approximated.

    Until :meth:`fit` is called every product is exact. After fitting, ``x @ W``,
    ``np.matmul(x, W, out=...)`` and ``np.dot(x, W)`` use learned lookup tables
    (MADDNESS), subject to the accuracy budget of :func:`approxmat.config`.
    Everything else behaves like the wrapped array.

    Parameters
    ----------
    weights : array_like of real numbers, shape (D, M)
        The right operand. A private read-only copy is kept, so later changes to
        ``weights`` do not affect ``W``.

    Examples
    --------
    >>> import numpy as np
    >>> import approxmat as am
    >>> weights = np.arange(6.0).reshape(3, 2)
    >>> W = am.ApproxMatrix(weights)
    >>> W
    ApproxMatrix(shape=(3, 2), dtype=float64, not fitted: products are exact)
    >>> np.ones(3) @ W
    array([6., 9.])
    >>> (W + 1).sum()            # not a product with W on the right: plain NumPy
    np.float64(21.0)
    """

    __slots__ = ("_weights", "_levels", "_warned", "_choice", "_fast", "_weights64",
                 "__weakref__")

    def __init__(self, weights):
        self._weights = _validate_weights(weights)
        self._levels = ()
        self._reset_caches()

    def _reset_caches(self):
        """Start the per-matrix state derived from the weights and levels afresh."""
        self._warned = set()  # one-time warnings already given by this matrix
        self._choice = {}  # tolerance -> (levels, level chosen for it)
        self._fast = {}  # (tolerance, x dtype) -> cached arguments of _fast_call
        self._weights64 = None  # float64 weights, made by the first verified call

    # ------------------------------------------------------------------ the array
    @property
    def shape(self) -> tuple:
        """Shape ``(D, M)`` of the wrapped weights."""
        return self._weights.shape

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the wrapped weights."""
        return self._weights.dtype

    @property
    def ndim(self) -> int:
        """Always 2."""
        return 2

    @property
    def size(self) -> int:
        """Number of weights, ``D * M``."""
        return self._weights.size

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            if dtype is not None and np.dtype(dtype) != self._weights.dtype:
                raise ValueError(
                    "Unable to avoid copy while creating an array as requested: the "
                    f"weights are {self._weights.dtype}, not {np.dtype(dtype)}."
                )
            return self._weights
        if copy:
            return np.array(self._weights, dtype=dtype, copy=True)
        if dtype is None:
            return self._weights
        return self._weights.astype(dtype, copy=False)

    def __getattr__(self, name):
        # Everything else the wrapped (read-only) array has: W.T, W.sum(), W.astype...
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            weights = object.__getattribute__(self, "_weights")
        except AttributeError:
            raise AttributeError(name) from None
        try:
            return getattr(weights, name)
        except AttributeError:
            raise AttributeError(
                f"'ApproxMatrix' object has no attribute {name!r} (nor does its wrapped "
                f"ndarray)"
            ) from None

    def __dir__(self):
        return sorted(set(super().__dir__()) | {n for n in dir(self._weights) if n[0] != "_"})

    def __len__(self):
        return len(self._weights)

    def __iter__(self):
        return iter(self._weights)

    def __getitem__(self, index):
        return self._weights[index]

    def __setitem__(self, index, value):
        raise _read_only_error("item assignment")

    def __copy__(self):
        return self._with_levels(self._levels)

    def __deepcopy__(self, memo):
        return self._with_levels(self._levels)

    def __getstate__(self):
        return {"weights": np.array(self._weights), "levels": self._levels}

    def __setstate__(self, state):
        self._weights = _validate_weights(state["weights"])
        self._levels = tuple(state["levels"])
        self._reset_caches()

    def __repr__(self):
        head = f"ApproxMatrix(shape={self.shape}, dtype={self.dtype}"
        if not self._levels:
            return head + ", not fitted: products are exact)"
        levels = ", ".join(f"C={lv.ncodebooks}: err {lv.error:.3g}" for lv in self._levels)
        return head + f", levels=[{levels}])"

    def _with_levels(self, levels):
        new = object.__new__(type(self))
        new._weights = self._weights
        new._levels = tuple(levels)
        new._reset_caches()
        return new

    # ------------------------------------------------------------------ fitting
    @property
    def levels(self) -> tuple:
        """Fitted operating points, fewest codebooks first (empty before :meth:`fit`).

        Returns
        -------
        tuple of LevelInfo
        """
        return tuple(
            LevelInfo(lv.ncodebooks, float(lv.error), int(lv.table_bytes)) for lv in self._levels
        )

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has been called (products may then be approximated)."""
        return bool(self._levels)

    def fit(self, X_cal, ncodebooks=None, *, random_state=None, progress=False):
        """Learn lookup-table approximations of ``x @ W`` from representative rows.

        Parameters
        ----------
        X_cal : array_like, shape (N, D)
            Calibration rows that look like future left operands. Part of them is
            held out to measure each level's error.
        ncodebooks : int or sequence of int, optional
            Operating points to fit. Default: a ladder of powers of two that fit D.
        random_state : int, numpy.random.Generator or None, optional
            Seed of the train/held-out split, for reproducible fits.
        progress : bool, optional
            Report progress on stderr.

        Returns
        -------
        ApproxMatrix
            ``self``, fitted.
        """
        from ._learn import fit_levels

        levels = fit_levels(
            X_cal, self._weights, ncodebooks, random_state=random_state, progress=progress
        )
        X_cal = np.asarray(X_cal)
        levels = [_with_ranges(level, X_cal) for level in levels]
        self._levels = tuple(levels)  # one assignment: concurrent callers see old or new
        self._warned = set()
        return self

    def save(self, path):
        """Write weights and fitted levels to one file (no pickle).

        Parameters
        ----------
        path : str, os.PathLike or binary file object

        See Also
        --------
        approxmat.load
        """
        from . import _io

        _io.save(path, np.asarray(self._weights), list(self._levels), {"approxmat": _version})

    # ------------------------------------------------------------------ products
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        right_operand = (  # x @ W, np.matmul(x, W, ...): the product we approximate
            ufunc is _MATMUL and method == "__call__" and len(inputs) == 2
            and inputs[1] is self and inputs[0] is not self
        )
        if right_operand:
            x = inputs[0]
            if (  # the common `x @ W` or `np.matmul(x, W, out=buf)`: try the fast path
                type(x) is np.ndarray and x.ndim == 2 and self._levels
                and (not kwargs or (len(kwargs) == 1 and "out" in kwargs))
            ):
                y = self._fast_call(x, kwargs.get("out"))
                if y is not None:
                    return y
        if _contains_self(kwargs.get("out", ()), self):
            raise _read_only_error(f"{ufunc.__name__} with out=W")
        if right_operand:
            return self._rmatmul(inputs[0], kwargs, name="matmul")
        if method == "at" and inputs and inputs[0] is self:
            raise _read_only_error(f"{ufunc.__name__}.at")
        # Not a product we approximate: exactly what the wrapped array would do.
        inputs = _replace_self(inputs, self, self._weights)
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if func is np.dot and len(args) >= 2 and args[1] is self and args[0] is not self:
            extra = dict(kwargs)
            if len(args) > 2:
                extra["out"] = args[2]
            if np.ndim(args[0]) >= 1 and set(extra) <= {"out"}:
                return self._rmatmul(args[0], extra, name="dot")
        args = _replace_self(args, self, self._weights)
        kwargs = _replace_self(kwargs, self, self._weights)
        return func(*args, **kwargs)

    def __rmatmul__(self, other):
        # Reached for left operands NumPy does not handle itself, e.g. lists.
        return self._rmatmul(other, {}, name="matmul")

    def _fast_call(self, x, out=None):
        """``x @ W`` for a 2-D float ndarray without verification, or None.

        The same product as the general path (:meth:`_rmatmul`), specialised so
        that small calls cost little more than NumPy's: the level, result dtype
        and packed kernel arguments are cached per fit, tolerance and dtype.
        Returns None whenever the general path must decide.
        """
        config = _current_config()
        if config.verify is not None:
            return None
        levels = self._levels
        key = (config.tolerance, x.dtype)
        entry = self._fast.get(key)
        if entry is None or entry[0] is not levels:
            level, _ = self._level_for_call(x, None, config)
            result = _result_dtype(x.dtype, self._weights.dtype)
            kernel_dtypes = _dispatch.KERNEL_DTYPES
            if level is None or x.dtype not in kernel_dtypes or result not in kernel_dtypes:
                return None
            entry = (levels, level, result, _dispatch.prepared_level(level).checked_product)
            self._fast[key] = entry
        _, level, result, product = entry
        nrows, width = x.shape
        if width != self._weights.shape[0]:
            return None  # the general path raises NumPy's error
        if out is None:
            ncols = self._weights.shape[1]
            # Small results (itemsize <= 8): the np.empty that empty_output would make,
            # without the 0.2-0.4 us of the call (N = 1 latency).
            if nrows * ncols * 8 < _dispatch.ALIGNED_OUTPUT_MIN_BYTES:
                out = np.empty((nrows, ncols), dtype=result)
            else:
                out = _dispatch.empty_output(nrows, ncols, result)
        else:  # out=(buf,): only a plain, exact-dtype, C-contiguous, separate buffer
            buf = out[0] if type(out) is tuple and len(out) == 1 else None
            if (
                type(buf) is not np.ndarray
                or buf.dtype != result
                or buf.shape != (nrows, self._weights.shape[1])
                or not buf.flags.c_contiguous
                or not buf.flags.writeable
                or np.shares_memory(buf, x)
            ):
                return None
            out = buf
        flags = product(x, out, _dispatch.kernel_threads(config.threads))
        if flags is not None:
            self._check_budget(x, out, level, config, flags)  # drift and NaN accounting
        else:
            _budget.record(level.ncodebooks, nrows, 0, nan, nan, False, 0, 0)
        return out

    def _rmatmul(self, x, kwargs, *, name):
        """``x @ W``: approximate when fitted and within budget, else exact."""
        weights = self._weights
        if type(x) is not np.ndarray:
            x = x._weights if isinstance(x, ApproxMatrix) else np.asarray(x)
        out = kwargs.get("out")
        if isinstance(out, tuple):
            out = out[0] if len(out) == 1 else out
        dtype = kwargs.get("dtype")
        config = _current_config()
        level, reason = self._level_for_call(x, kwargs, config)
        if level is None:
            _budget.record(None, _rows(x), reason=reason)
            return _exact_call(x, weights, kwargs, out, name)
        return self._approx_call(x, level, out, dtype, name, kwargs, config)

    def _level_for_call(self, x, kwargs, config):
        """The level to use, or ``(None, why the product is exact)``.

        The common call (no keyword arguments, a float left operand) takes the
        first branch only; the choice per tolerance is cached per fit.
        """
        levels = self._levels
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
            result = _result_dtype(x.dtype, self._weights.dtype)
            if result is None:
                return None, f"{x.dtype} left operands are computed exactly"
        else:
            result = np.dtype(dtype)
            if x.dtype.kind not in "biuf":
                return None, f"{x.dtype} left operands are computed exactly"
        if result not in _dispatch.APPROX_RESULT_DTYPES:
            return None, f"{result} results are computed exactly"
        tolerance = config.tolerance
        cached = self._choice.get(tolerance)
        if cached is not None and cached[0] is levels:
            level = cached[1]
        else:
            level = _dispatch.choose_level(levels, tolerance)
            self._choice[tolerance] = (levels, level)
        if level is None:
            if tolerance == 0:
                return None, "tolerance=0 asks for the exact product"
            return None, f"no fitted level has validated error <= tolerance {tolerance:g}"
        return level, None

    def _approx_call(self, x, level, out, dtype, name, kwargs, config):
        """The approximate product, with NumPy's shape, dtype and ``out=`` rules."""
        weights = self._weights
        D, M = weights.shape
        if x.shape[-1] != D:
            raise _core_mismatch(name, x, weights)
        if dtype is None:
            result_dtype = _result_dtype(x.dtype, weights.dtype)
        else:
            result_dtype = np.dtype(dtype)
        out_shape = x.shape[:-1] + (M,)
        if out is not None:
            _check_out(out, out_shape, result_dtype, name, x, weights)
        # Compute in float32 or float64; float16 results are computed in float32.
        compute = _F64 if result_dtype == _F64 else _F32
        x2d = x if x.ndim == 2 else x.reshape(-1, D)
        if dtype is not None or x2d.dtype not in _dispatch.KERNEL_DTYPES:
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
            y2d = _dispatch.empty_output(x2d.shape[0], M, compute)
        # The kernels write NaN rows for rows of x with NaN/inf (like NumPy) and flag them.
        flags = _dispatch.approx_product(x2d, level, y2d, config.threads)
        if self._check_budget(x2d, y2d, level, config, flags):
            return _exact_call(x, weights, kwargs, out, name)
        if direct:
            return out
        y = y2d if y2d.shape == out_shape else y2d.reshape(out_shape)
        if out is None:
            return y if result_dtype == compute else y.astype(result_dtype)
        np.copyto(out, y, casting="same_kind")
        return out

    def _check_budget(self, x2d, y2d, level, config, flags):
        """Drift accounting, verification on sampled rows, and the call's report.

        ``flags`` has bit 0 set for rows with NaN/inf and bit 1 for rows out of the
        calibrated range (None: no row flagged). Returns True when the exact product
        must be returned.
        """
        nrows = x2d.shape[0]
        n_nonfinite = n_outside = 0
        if flags is not None:
            n_nonfinite = int(np.count_nonzero(flags & 1))
            n_outside = int(np.count_nonzero(flags & 2))
            fraction = config.drift_fraction
            if fraction is not None and n_outside > fraction * nrows:
                self._warn_once(
                    "drift",
                    _budget.DriftWarning(
                        f"{n_outside} of {nrows} rows ({n_outside / nrows:.1%}) have split "
                        f"columns outside the range of the calibration data (drift_fraction="
                        f"{fraction:g}); the validated error may not hold. Refit on current "
                        "data, or use approxmat.config(verify=...) to check calls."
                    ),
                )
        k = _budget.sample_size(config.verify, nrows)
        if not k:
            _budget.record(level.ncodebooks, nrows, 0, nan, nan, False, n_outside, n_nonfinite)
            return False
        rows = _budget.sample_rows(nrows, k)
        if n_nonfinite:
            rows = rows[(flags[rows] & 1) == 0]  # NaN rows are NaN in both products
        verified = len(rows)
        if self._weights64 is None:  # the weights never change: convert them once
            self._weights64 = np.asarray(self._weights, dtype=np.float64)
        exact = x2d[rows].astype(np.float64) @ self._weights64
        estimate, bound = _budget.estimate_error(y2d[rows], exact, nrows - n_nonfinite)
        tolerance = config.tolerance
        if tolerance is None or bound <= tolerance:
            _budget.record(
                level.ncodebooks, nrows, verified, estimate, bound, False, n_outside, n_nonfinite
            )
            return False
        message = (
            f"approximate product exceeded the accuracy budget: estimated relative "
            f"error {estimate:.3g}, {_budget.CONFIDENCE:.0%} upper bound {bound:.3g} > "
            f"tolerance {tolerance:g} ({verified} of {nrows} rows verified, level with "
            f"{level.ncodebooks} codebooks, validated error {level.error:.3g})"
        )
        outcome = {
            "raise": "verification failed: raised",
            "warn": f"level with {level.ncodebooks} codebooks; verification failed: warned",
            "exact": "verification failed: exact product returned",
        }[config.on_violation]
        fell_back = config.on_violation == "exact"
        _budget.record(
            level.ncodebooks, nrows, verified, estimate, bound, fell_back, n_outside,
            n_nonfinite, outcome,
        )
        if config.on_violation == "raise":
            raise _budget.ApproxAccuracyError(message)
        if config.on_violation == "warn":
            warnings.warn(message, _budget.ApproxMatrixWarning, stacklevel=_user_stacklevel())
        else:
            self._warn_once(
                "violation",
                _budget.ApproxMatrixWarning(
                    message + "; the exact product was returned instead (this warning "
                    "is shown once per matrix)"
                ),
            )
        return fell_back

    def _warn_once(self, key, warning):
        if key in self._warned:
            return
        self._warned.add(key)
        warnings.warn(warning, stacklevel=_user_stacklevel())


#: Calibrated ranges are widened by this fraction of their width on each side, so
#: that fresh rows from the calibration distribution rarely leave them (the extremes
#: of a finite sample are exceeded by about 2 / N of new rows per column).
RANGE_MARGIN = 0.1


def _with_ranges(level, X_cal):
    """``level`` with the calibrated range of its split columns (float32, rounded outwards)."""
    values = X_cal[:, level.split_dims].astype(np.float64)  # (N, C, 4)
    low, high = values.min(axis=0), values.max(axis=0)
    margin = RANGE_MARGIN * (high - low)
    low, high = low - margin, high + margin
    low32, high32 = low.astype(np.float32), high.astype(np.float32)
    low32 = np.where(low32 > low, np.nextafter(low32, np.float32(-np.inf)), low32)
    high32 = np.where(high32 < high, np.nextafter(high32, np.float32(np.inf)), high32)
    return dataclasses.replace(level, split_low=low32, split_high=high32)


_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_RESULT_DTYPES = {}
nan = float("nan")
_current_config = get_config


def _result_dtype(x_dtype, w_dtype):
    """``np.result_type`` of a product, cached; None for non-real left operands."""
    key = (x_dtype, w_dtype)
    result = _RESULT_DTYPES.get(key)
    if result is None:
        if x_dtype.kind not in "biuf":
            return None
        result = _RESULT_DTYPES[key] = np.result_type(x_dtype, w_dtype)
    return result


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _user_stacklevel() -> int:
    """``stacklevel`` for warnings.warn called here that points at the caller's line.

    The first frame outside approxmat: the depth differs between the product paths.
    """
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level


def _rows(x) -> int:
    return int(np.prod(x.shape[:-1])) if x.ndim >= 1 else 1


def _exact_call(x, weights, kwargs, out, name):
    if name == "dot":
        return np.dot(x, weights, out=out) if out is not None else np.dot(x, weights)
    return np.matmul(x, weights, **kwargs)


def _core_mismatch(name, x, weights):
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


def _check_out(out, out_shape, result_dtype, name, x, weights):
    """NumPy's rules for ``out=`` of matmul (same-kind casting) and dot (exact)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: out must be a numpy array, got {type(out).__name__}")
    if name == "dot":
        if out.shape != out_shape or out.dtype != result_dtype or not out.flags.c_contiguous:
            raise ValueError(
                "output array is not acceptable (must have the right datatype, number of "
                "dimensions, and be a C-Array)"
            )
    elif out.shape != out_shape:
        raise ValueError(
            f"matmul: out has shape {out.shape}, but the product of shapes {x.shape} and "
            f"{weights.shape} has shape {out_shape}"
        )
    if not np.can_cast(result_dtype, out.dtype, casting="same_kind"):
        raise TypeError(
            f"Cannot cast ufunc '{name}' output from {result_dtype!r} to {out.dtype!r} "
            "with casting rule 'same_kind'"
        )
    if not out.flags.writeable:
        raise ValueError("output array is read-only")


def load(path) -> ApproxMatrix:
    """Read an :class:`ApproxMatrix` written by :meth:`ApproxMatrix.save`.

    The file is parsed, never unpickled: untrusted files cannot run code. A
    truncated, corrupted or incompatible file raises ``ValueError``.

    Parameters
    ----------
    path : str, os.PathLike or binary file object

    Returns
    -------
    ApproxMatrix
    """
    from . import _io

    weights, levels, _meta = _io.load(path)
    W = ApproxMatrix(weights)
    if levels:
        D, M = W.shape
        for lv in levels:
            if lv.noutputs != M or int(np.max(lv.split_dims, initial=0)) >= D:
                raise ValueError(
                    "corrupt approxmat file: fitted levels do not match the stored weights"
                )
    return W._with_levels(levels)

