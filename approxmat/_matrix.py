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
import sys

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from . import _backend, _budget, _call, _costs, _dispatch
from ._build_info import version as _version

__all__ = ["ApproxMatrix", "LevelInfo", "Levels", "load"]

_MATMUL = np.matmul
#: Calibration rows kept to time the points on (tiled to each measured row count).
TIMING_ROWS = 256


@dataclasses.dataclass(frozen=True)
class LevelInfo:
    """Summary of one fitted operating point.

    Attributes
    ----------
    kind : str
        ``"lut"`` (MADDNESS lookup tables) or ``"lowrank"`` (two thin BLAS
        products).
    size : int
        Codebooks of a ``"lut"`` point (4-bit codes per row), rank of a
        ``"lowrank"`` one: cost grows with it, error falls.
    error : float
        Relative error ``||Y_hat - Y||_F / ||Y||_F`` measured on calibration rows
        held out from fitting.
    nbytes : int
        Bytes of tables (or float32 factors) the call reads besides ``x``.
    speedup : float
        Measured time of NumPy's product over this point's, at the rows, dtype,
        layout and threads of :attr:`Levels.measured_at` (NaN when this machine has
        not measured it yet).
    """

    kind: str
    size: int
    error: float
    nbytes: int
    speedup: float = float("nan")

    @property
    def ncodebooks(self):
        """Codebooks of a ``"lut"`` point; None for other kinds."""
        return self.size if self.kind == "lut" else None

    @property
    def table_bytes(self) -> int:
        """Same as :attr:`nbytes`."""
        return self.nbytes


class Levels(tuple):
    """The fitted operating points of a matrix (a tuple of :class:`LevelInfo`),
    shown as a table.

    Attributes
    ----------
    measured_at : str
        The call the speedups are measured for, in words (rows, dtype, layout and
        kernel threads), or why there are none.
    """

    measured_at: str = ""

    def __new__(cls, infos, measured_at=""):
        self = super().__new__(cls, infos)
        self.measured_at = measured_at
        return self

    def __repr__(self):
        if not self:
            return "Levels([])  (not fitted: products are exact)"
        head = ("kind", "size", "validated error", "bytes", "speedup")
        rows = [("exact", "-", "0", "0", "1.00x")] + [
            (p.kind, str(p.size), f"{p.error:.4g}", f"{p.nbytes:,}",
             "-" if p.speedup != p.speedup else f"{p.speedup:.2f}x")
            for p in self
        ]
        widths = [max(len(r[k]) for r in rows + [head]) for k in range(len(head))]
        lines = ["  ".join(h.rjust(w) if k else h.ljust(w)
                           for k, (h, w) in enumerate(zip(r, widths))) for r in [head] + rows]
        return "\n".join(lines + [f"speedup over NumPy {self.measured_at}"])


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
    private = _copy_placed_like(array)
    base = private
    while isinstance(base, np.ndarray):  # read-only down to the owner: no way back
        base.flags.writeable = False
        base = base.base
    view = private.view()
    view.flags.writeable = False
    return view


#: The copy of the weights starts at the same offset within a page as the caller's.
_PAGE = 4096


def _copy_placed_like(array) -> np.ndarray:
    """A C-contiguous copy of ``array`` starting at the same offset within a 4 KiB page.

    BLAS speed depends on where the weights start: on this project's machine a copy
    64-byte aligned ran (16, 192) @ (192, 64) float32 15 % faster than the caller's
    16-byte aligned array, and (10, 768) @ (768, 3072) 8 % slower. Placed like the
    caller's array, the exact product reads its weights as NumPy's ``x @ weights``
    would (on a C-contiguous caller's array; other orders are copied to C order).

    Examples
    --------
    >>> a = np.arange(12.0).reshape(3, 4)[:, 1:]
    >>> b = _copy_placed_like(a)
    >>> bool((b == a).all()), b.flags.c_contiguous, b.ctypes.data % 4096 == a.ctypes.data % 4096
    (True, True, True)
    """
    nbytes = array.size * array.dtype.itemsize
    buf = np.empty(nbytes + _PAGE, dtype=np.uint8)
    shift = (array.ctypes.data - buf.ctypes.data) % _PAGE
    copy = buf[shift : shift + nbytes].view(array.dtype).reshape(array.shape)
    copy[...] = array
    return copy


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

    __slots__ = ("_weights", "_product", "__weakref__")

    def __init__(self, weights):
        self._weights = _validate_weights(weights)
        self._set_points(())

    def _set_points(self, points, costs=None, fitted=None, rows=None):
        """Use ``points`` (and their cost curves) from now on, with fresh per-fit
        caches and warnings.

        A product reads ``self._product`` once, so a call concurrent with a fit sees
        the old points or the new ones, never a mix.
        """
        self._product = _call.Product(self._weights, tuple(points), costs, fitted, rows)

    @property
    def _points(self):
        return self._product.points[1:]

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
        return self._with_points(self._product)

    def __deepcopy__(self, memo):
        return self._with_points(self._product)

    def __getstate__(self):
        product = self._product
        return {"weights": np.array(self._weights), "levels": self._points,
                "fitted": product.fitted, "costs": product.costs.to_json()}

    def __setstate__(self, state):
        self._weights = _validate_weights(state["weights"])
        points = tuple(state["levels"])
        costs = state.get("costs")
        if costs is not None:
            costs = _costs.CostTable.from_json(costs, len(points) + 1)
        self._set_points(points, costs, state.get("fitted"))

    def __repr__(self):
        head = f"ApproxMatrix(shape={self.shape}, dtype={self.dtype}"
        if not self._product.fitted:
            return head + ", not fitted: products are exact)"
        points = ", ".join(
            f"{'C' if p.kind == 'lut' else 'rank '}{p.size}: err {p.error:.3g}"
            for p in self._points
        )
        return head + f", points=[exact, {points}])" if points else head + ", points=[exact])"

    def _with_points(self, product):
        new = object.__new__(type(self))
        new._weights = self._weights
        new._set_points(product.points[1:], product.costs, product.fitted, product.rows)
        return new

    @property
    def _levels(self):
        """The fitted points (:class:`Level` / :class:`LowRank` objects), exact excluded."""
        return self._points

    def _with_levels(self, points):
        """A copy of ``self`` fitted with exactly ``points`` (benchmarks and tests).

        No point is dropped; the cost curves are measured on the first call that
        needs them.
        """
        new = object.__new__(type(self))
        new._weights = self._weights
        new._set_points(tuple(points), None, True)
        return new

    # ------------------------------------------------------------------ fitting
    @property
    def levels(self) -> Levels:
        """Fitted operating points (empty before :meth:`fit`), as a table.

        Lookup-table points first (fewest codebooks first), then low-rank points
        (lowest rank first). Each shows its kind, size, validated error, bytes read
        besides ``x`` and its measured speedup over NumPy's product for a call of
        4096 rows (fewer when the curves stop earlier) of the calibration dtype,
        row-major, with the kernel threads of the current settings.

        Returns
        -------
        Levels
            A tuple of :class:`LevelInfo`.
        """
        product = self._product
        points = self._points
        if not points:
            return Levels((), "")
        key = _costs.key_of(product.costs.reference_dtype, "C",
                            _backend.kernel_threads(None))
        curve = product.costs.curves.get(key)
        if curve is None:
            speedups = [float("nan")] * len(points)
            at = "(not measured on this machine yet: calls measure it on first use)"
        else:
            n = curve.rows[-1]
            exact = curve.predict(0, n)
            speedups = [exact / curve.predict(i + 1, n) for i in range(len(points))]
            at = (f"at N={n} rows of {np.dtype(key[0]).name}, row-major, "
                  f"{key[2]} kernel thread{'s' if key[2] > 1 else ''}")
        return Levels(
            [LevelInfo(p.kind, int(p.size), float(p.error), int(p.nbytes), s)
             for p, s in zip(points, speedups)],
            at,
        )

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has been called (products may then be approximated)."""
        return self._product.fitted

    def fit(self, X_cal, ncodebooks=None, *, ranks=None, prune=None, random_state=None,
            progress=False):
        """Learn approximations of ``x @ W`` from representative rows, and time them.

        Fits operating points of two kinds: lookup tables (MADDNESS, ``ncodebooks``)
        and low-rank factors (``ranks``, reduced-rank regression on the calibration
        rows); validates each one's error on held-out rows; then times every point
        and the exact product on this machine (a few row counts, both layouts, one
        and all kernel threads) so that each call can use the fastest point within
        its budget. Dominated points (another, exact included, is as accurate and
        as fast everywhere measured) are dropped when ``prune`` is true.

        Parameters
        ----------
        X_cal : array_like, shape (N, D)
            Calibration rows that look like future left operands (at least 200).
            Part of them is held out to measure each point's error.
        ncodebooks : int or sequence of int, optional
            Lookup-table points to fit. Default: a ladder of powers of two that fit
            D. Given alone (``ranks`` omitted), only lookup-table points are fitted.
        ranks : int or sequence of int, optional
            Low-rank points to fit, each in ``[1, min(D, M)]``. Default: the powers
            of two cheaper than the exact product, when ``ncodebooks`` is omitted
            too; none when ``ncodebooks`` is given.
        prune : bool, optional
            Drop dominated points. Default: true for the default ladder, false when
            ``ncodebooks`` or ``ranks`` fix the points.
        random_state : int, numpy.random.Generator or None, optional
            Seed of the train/held-out split, for reproducible points (the timings
            vary from run to run, so pruning may too).
        progress : bool, optional
            Report progress on stderr.

        Returns
        -------
        ApproxMatrix
            ``self``, fitted.

        Examples
        --------
        >>> import numpy as np
        >>> import approxmat as am
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((1000, 32)) @ rng.standard_normal((32, 32))
        >>> W = am.ApproxMatrix(rng.standard_normal((32, 8))).fit(X, [4, 8], ranks=[2])
        >>> [(p.kind, p.size) for p in W.levels]
        [('lut', 4), ('lut', 8), ('lowrank', 2)]
        """
        from ._fit import fit_points

        default = ncodebooks is None and ranks is None
        if prune is None:
            prune = default
        elif not isinstance(prune, (bool, np.bool_)):
            raise TypeError(f"prune must be True, False or None, got {prune!r}")
        if not default:
            ncodebooks = () if ncodebooks is None else ncodebooks
            ranks = () if ranks is None else ranks
        points = fit_points(X_cal, self._weights, ncodebooks, ranks,
                            random_state=random_state, progress=progress)
        X_cal = np.asarray(X_cal)
        points = [_budget.with_calibrated_ranges(p, X_cal) if p.kind == "lut" else p
                  for p in points]
        dtype = X_cal.dtype if X_cal.dtype.kind in "biuf" else np.dtype(np.float64)
        rows = np.ascontiguousarray(X_cal[:TIMING_ROWS])
        product = _call.Product(self._weights, points, _costs.CostTable(dtype=dtype),
                                True, rows)
        if progress:
            print(f"approxmat fit: timing {len(points) + 1} points on this machine",
                  file=sys.stderr, flush=True)
        for layout in ("C", "F"):
            for threads in sorted({1, _backend.kernel_threads(None)}):
                product.curve(dtype, layout, threads, repeats=_costs.FIT_REPEATS)
        if prune:
            drop = set(_costs.dominated(product.costs, product.points))
            keep = [i for i in range(len(product.points)) if i not in drop]
            points = [product.points[i] for i in keep[1:]]
            product = _call.Product(self._weights, points,
                                    _costs.subset(product.costs, keep), True, rows)
        self._product = product
        return self

    def save(self, path):
        """Write weights, fitted points and their measured costs to one file (no pickle).

        Parameters
        ----------
        path : str, os.PathLike or binary file object

        See Also
        --------
        approxmat.load
        """
        from . import _io

        product = self._product
        _io.save(path, np.asarray(self._weights), list(self._points), {"approxmat": _version},
                 costs=product.costs, fitted=product.fitted)

    # ------------------------------------------------------------------ products
    #: ``x @ W``, ``np.matmul(x, W, ...)`` and every other ufunc with ``W`` as an
    #: operand. Compiled (:mod:`approxmat._dispatch`): it answers one-row products
    #: that are NumPy's own in C and hands every other call to
    #: :meth:`_array_ufunc_python`.
    __array_ufunc__ = _dispatch.array_ufunc

    def _array_ufunc_python(self, ufunc, method, inputs, kwargs):
        """``__array_ufunc__`` for the calls :mod:`approxmat._dispatch` does not answer."""
        right_operand = (  # x @ W, np.matmul(x, W, ...): the product we approximate
            ufunc is _MATMUL and len(inputs) == 2 and inputs[1] is self
            and method == "__call__" and inputs[0] is not self
        )
        if right_operand:
            x = inputs[0]
            product = self._product  # read once: a concurrent fit swaps it whole
            if type(x) is np.ndarray and x.ndim == 2:
                # the common `x @ W` or `np.matmul(x, W, out=buf)`: try the fast path
                if not kwargs:
                    y = product.fast(x)
                elif len(kwargs) == 1 and "out" in kwargs:
                    y = product.fast(x, kwargs["out"])
                else:
                    y = None
                if y is not None:
                    return y
        if _contains_self(kwargs.get("out", ()), self):
            raise _read_only_error(f"{ufunc.__name__} with out=W")
        if right_operand:
            return self._rmatmul(inputs[0], kwargs, name="matmul", product=product)
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

    def _rmatmul(self, x, kwargs, *, name, product=None):
        """``x @ W`` through the call-time decision (:class:`approxmat._call.Product`)."""
        if type(x) is not np.ndarray and isinstance(x, ApproxMatrix):
            x = x._weights
        return (product or self._product)(x, kwargs, name)


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

    weights, points, _meta, costs, fitted = _io.load(path, with_costs=True)
    W = ApproxMatrix(weights)
    W._set_points(points, costs, fitted)
    return W

