"""``ApproxMatrix``: a weight matrix whose products ``x @ W`` may be approximated.

How NumPy reaches us:

* ``x @ W`` and ``np.matmul(x, W, ...)`` call ``W.__array_ufunc__`` (NumPy prefers it
  over ``__rmatmul__`` once it exists). ``x @= W`` arrives the same way with
  ``out=(x,)``.
* ``np.dot(x, W)`` calls ``W.__array_function__``.
* ``[[...]] @ W`` (a list on the left) calls ``W.__rmatmul__``.

The product with ``W`` as the right operand is approximated once :meth:`fit` has
been called; ``W @ x``, ``np.matmul(W, x)`` and ``np.dot(W, x)`` once
``fit(..., side="left")`` has (through the transposed problem ``x.T @ W.T``, see
:class:`approxmat._call.TransposedProduct`). A dask array on the left of ``W`` gives
a lazy dask array computed block by block (:mod:`approxmat.dask`). Everything else
(``W + 1``, ``np.sum(W)``, ``W.T``, indexing) behaves exactly like the wrapped array
and returns plain ndarrays. ``W`` is read-only: operations that would
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
    side : {"right", "left"}
        The product the point approximates: ``x @ W`` (``"right"``, fitted by
        ``fit(X)``) or ``W @ x`` (``"left"``, fitted by ``fit(x, side="left")``).
    """

    kind: str
    size: int
    error: float
    nbytes: int
    speedup: float = float("nan")
    side: str = "right"

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
        sides = any(p.side != "right" for p in self)
        head = ("kind", "size", "validated error", "bytes", "speedup") + (
            ("side",) if sides else ())
        rows = [("exact", "-", "0", "0", "1.00x") + (("both",) if sides else ())] + [
            (p.kind, str(p.size), f"{p.error:.4g}", f"{p.nbytes:,}",
             "-" if p.speedup != p.speedup else f"{p.speedup:.2f}x")
            + ((p.side,) if sides else ())
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

    __slots__ = ("_weights", "_product", "_left", "_token", "__weakref__")

    def __init__(self, weights):
        self._weights = _validate_weights(weights)
        self._set_points(())
        self._left = None

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

    def __dask_tokenize__(self):
        # A name of this matrix's current points, for dask graphs (see approxmat.dask):
        # new after every fit, never the name of another matrix.
        token = getattr(self, "_token", None)
        if token is None or token[0] is not self._product or token[1] is not self._left:
            import uuid

            token = self._token = (self._product, self._left, uuid.uuid4().hex)
        return ("approxmat.ApproxMatrix", token[2])

    def to_dask_array(self):
        """``W`` as a one-chunk dask array that keeps its products (see
        :func:`approxmat.dask.to_dask_array`); what ``dask.array.asarray(W)`` and
        ``dask.array.matmul(x, W)`` use."""
        from . import dask as _dask_integration

        return _dask_integration.to_dask_array(self)

    def __copy__(self):
        return self._with_points(self._product)

    def __deepcopy__(self, memo):
        return self._with_points(self._product)

    def __getstate__(self):
        state = _product_state(self._product)
        state["weights"] = np.array(self._weights)
        if self._left is not None:
            state["left"] = _product_state(self._left)
        return state

    def __setstate__(self, state):
        self._weights = _validate_weights(state["weights"])
        points, costs, fitted = _product_args(state)
        self._set_points(points, costs, fitted)
        left = state.get("left")
        self._left = None if left is None else _call.TransposedProduct(
            self._weights.T, *_product_args(left))
        _UNPICKLED[0] += 1

    def __repr__(self):
        head = f"ApproxMatrix(shape={self.shape}, dtype={self.dtype}"
        left = self._left
        if not self._product.fitted and left is None:
            return head + ", not fitted: products are exact)"

        def listed(points):
            return ", ".join(["exact"] + [
                f"{'C' if p.kind == 'lut' else 'rank '}{p.size}: err {p.error:.3g}"
                for p in points[1:]])

        parts = [head]
        if self._product.fitted:
            parts.append(f"points=[{listed(self._product.points)}]")
        if left is not None:
            parts.append(f"left points=[{listed(left.points)}]")
        return ", ".join(parts) + ")"

    def _with_points(self, product):
        new = object.__new__(type(self))
        new._weights = self._weights
        new._set_points(product.points[1:], product.costs, product.fitted, product.rows)
        left = self._left
        new._left = None if left is None else _call.TransposedProduct(
            left.weights, left.points[1:], left.costs, left.fitted, left.rows)
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
        new._left = None
        return new

    # ------------------------------------------------------------------ fitting
    @property
    def levels(self) -> Levels:
        """Fitted operating points (empty before :meth:`fit`), as a table.

        Points of ``x @ W`` first, then those of ``W @ x`` (``fit(..., side="left")``;
        the table then has a ``side`` column); per side, lookup-table points first
        (fewest codebooks first), then low-rank points (lowest rank first). Each
        shows its kind, size, validated error, bytes read besides ``x`` and its
        measured speedup over NumPy's product for a call of 4096 rows (fewer when
        the curves stop earlier; columns of ``x`` for the left side) of the
        calibration dtype, row-major ``x``, with the kernel threads of the current
        settings.

        Returns
        -------
        Levels
            A tuple of :class:`LevelInfo`.
        """
        threads = _backend.kernel_threads(None)
        infos, notes = _level_infos(self._product, "right", "C", threads)
        if self._left is not None:
            more, left_notes = _level_infos(self._left, "left", "F", threads)
            infos += more
            notes += [f"for W @ x {n}" for n in left_notes]
        return Levels(infos, "; ".join(notes))

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has been called, for either side (products may then
        be approximated)."""
        return self._product.fitted or self._left is not None

    def fit(self, X_cal, ncodebooks=None, *, ranks=None, prune=None, random_state=None,
            progress=False, side="right"):
        """Learn approximations of ``x @ W`` (or ``W @ x``) from representative
        operands, and time them.

        Fits operating points of two kinds: lookup tables (MADDNESS, ``ncodebooks``)
        and low-rank factors (``ranks``, reduced-rank regression on the calibration
        rows); validates each one's error on held-out rows; then times every point
        and the exact product on this machine (a few row counts, both layouts, one
        and all kernel threads) so that each call can use the fastest point within
        its budget. Dominated points (another, exact included, is as accurate and
        as fast everywhere measured) are dropped when ``prune`` is true.

        Parameters
        ----------
        X_cal : array_like, shape (N, D), or (M, N) for ``side="left"``
            Calibration operands that look like future ones (at least 200 rows,
            or columns for the left side). Part of them is held out to measure
            each point's error.
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
        side : {"right", "left"}, optional
            ``"right"`` (default) fits ``x @ W`` from rows ``X_cal`` of shape
            ``(N, D)``. ``"left"`` fits ``W @ x`` from ``X_cal`` of shape
            ``(M, N)``, the ``x`` the products will have (its columns are the
            calibration samples), through the transposed problem
            ``x.T @ W.T``: ``W.levels`` lists those points with side ``"left"``.
            Each side keeps its points when the other is fitted; fitting a side
            again replaces its points.

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

        The known operand on the left: ``W @ x`` with ``x`` of shape ``(8, n)``.

        >>> x_cal = rng.standard_normal((8, 1000))
        >>> _ = W.fit(x_cal, [2], side="left")
        >>> [(p.side, p.kind, p.size) for p in W.levels][-1]
        ('left', 'lut', 2)
        >>> (W @ x_cal[:, :5]).shape
        (32, 5)
        """
        if side not in ("right", "left"):
            raise ValueError(f'side must be "right" or "left", got {side!r}')
        default = ncodebooks is None and ranks is None
        if prune is None:
            prune = default
        elif not isinstance(prune, (bool, np.bool_)):
            raise TypeError(f"prune must be True, False or None, got {prune!r}")
        if not default:
            ncodebooks = () if ncodebooks is None else ncodebooks
            ranks = () if ranks is None else ranks
        if side == "right":
            self._product = _fit_product(
                _call.Product, self._weights, X_cal, ncodebooks, ranks, prune,
                random_state, progress)
            return self
        X_cal = np.asarray(X_cal)
        M = self._weights.shape[1]
        if X_cal.ndim != 2 or X_cal.shape[0] != M:
            raise ValueError(
                f'fit(..., side="left") needs the x of W @ x, of shape (M, N) = ({M}, N) '
                f"for weights of shape {self.shape}; got an array of shape {X_cal.shape}. "
                f"Its N columns are the calibration samples."
            )
        self._left = _fit_product(
            _call.TransposedProduct, self._weights.T, X_cal.T, ncodebooks, ranks, prune,
            random_state, progress)
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

        product, left = self._product, self._left
        _io.save(path, np.asarray(self._weights), list(self._points), {"approxmat": _version},
                 costs=product.costs, fitted=product.fitted,
                 left=None if left is None else (list(left.points[1:]), left.costs,
                                                 left.fitted))

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
        if (ufunc is _MATMUL and len(inputs) == 2 and inputs[0] is self
                and method == "__call__" and inputs[1] is not self):
            return self._lmatmul(inputs[1], kwargs, name="matmul")
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
        if (func is np.dot and len(args) >= 2 and args[0] is self and args[1] is not self
                and self._left is not None):
            extra = dict(kwargs)
            if len(args) > 2:
                extra["out"] = args[2]
            if set(extra) <= {"out"} and np.ndim(args[1]) in (1, 2):
                return self._lmatmul(args[1], extra, name="dot")
        args = _replace_self(args, self, self._weights)
        kwargs = _replace_self(kwargs, self, self._weights)
        return func(*args, **kwargs)

    def __rmatmul__(self, other):
        # Reached for left operands NumPy does not handle itself, e.g. lists.
        return self._rmatmul(other, {}, name="matmul")

    def _rmatmul(self, x, kwargs, *, name, product=None):
        """``x @ W`` through the call-time decision (:class:`approxmat._call.Product`)."""
        if type(x) is not np.ndarray:
            if isinstance(x, ApproxMatrix):
                x = x._weights
            elif _is_dask_array(x):
                from . import dask as _dask_integration

                return _dask_integration.matmul(x, self, kwargs, name=name)
        return (product or self._product)(x, kwargs, name)

    def _lmatmul(self, x, kwargs, *, name):
        """``W @ x`` (``np.matmul(W, x)``, ``np.dot(W, x)``) through the transposed
        problem, when ``fit(..., side="left")`` was called; NumPy's own otherwise."""
        left = self._left
        if left is not None and type(x) is not np.ndarray and _is_dask_array(x):
            from . import dask as _dask_integration

            return _dask_integration.lmatmul(self, x, kwargs, name=name)
        numpy_own = left is None or not set(kwargs) <= {"out", "dtype"} or (
            name == "dot" and "dtype" in kwargs)
        if not numpy_own:
            if type(x) is not np.ndarray:
                x = x._weights if isinstance(x, ApproxMatrix) else np.asarray(x)
            D, M = self._weights.shape
            out = kwargs.get("out")
            if isinstance(out, tuple):
                out = out[0] if len(out) == 1 else out
            shape = (D,) + x.shape[1:] if x.ndim <= 2 else x.shape[:-2] + (D, x.shape[-1])
            numpy_own = x.ndim == 0 or x.shape[-2 if x.ndim >= 2 else 0] != M or (
                out is not None and not (isinstance(out, np.ndarray) and out.shape == shape))
            if not numpy_own and name == "dot" and out is not None:
                result = _call.result_dtype(x.dtype, self._weights.dtype)
                numpy_own = not (out.dtype == result and out.flags.c_contiguous)
        if numpy_own:  # NumPy's product (and NumPy's errors for bad operands)
            op = np.dot if name == "dot" else np.matmul
            if name == "dot" and "out" in kwargs:
                return np.dot(self._weights, x, kwargs["out"])
            return op(self._weights, x, **kwargs)
        transposed = dict(kwargs)
        if out is not None:
            transposed["out"] = _call._swap(out)
        y = left(_call._swap(x), transposed, "matmul")
        return out if out is not None else _call._swap(y)


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

    weights, points, _meta, costs, fitted, left = _io.load(path, with_costs=True)
    W = ApproxMatrix(weights)
    W._set_points(points, costs, fitted)
    if left is not None:
        W._left = _call.TransposedProduct(W._weights.T, *left)
    return W


#: How many matrices this process has rebuilt from a pickle (``__setstate__``): what a
#: dask worker received, for :mod:`approxmat.dask`'s tests and benchmark.
_UNPICKLED = [0]


def _is_dask_array(x) -> bool:
    """Whether ``x`` is a dask array (without importing dask)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(x, module.Array)


def _product_state(product):
    """The picklable state of one side's points (see ``__getstate__``)."""
    return {"levels": product.points[1:], "fitted": product.fitted,
            "costs": product.costs.to_json()}


def _product_args(state):
    """``(points, costs, fitted)`` of :func:`_product_state`'s state."""
    points = tuple(state["levels"])
    costs = state.get("costs")
    if costs is not None:
        costs = _costs.CostTable.from_json(costs, len(points) + 1)
    return points, costs, state.get("fitted")


def _level_infos(product, side, layout, threads):
    """:class:`LevelInfo` of one side's points, and where their speedups were measured."""
    points = product.points[1:]
    if not points:
        return [], []
    key = _costs.key_of(product.costs.reference_dtype, layout, threads)
    curve = product.costs.curves.get(key)
    what = "rows" if side == "right" else "columns"
    if curve is None:
        speedups = [float("nan")] * len(points)
        at = "(not measured on this machine yet: calls measure it on first use)"
    else:
        n = curve.rows[-1]
        exact = curve.predict(0, n)
        speedups = [exact / curve.predict(i + 1, n) for i in range(len(points))]
        at = (f"at N={n} {what} of {np.dtype(key[0]).name}, row-major, "
              f"{key[2]} kernel thread{'s' if key[2] > 1 else ''}")
    return [LevelInfo(p.kind, int(p.size), float(p.error), int(p.nbytes), s, side)
            for p, s in zip(points, speedups)], [at]


def _fit_product(cls, weights, X_cal, ncodebooks, ranks, prune, random_state, progress):
    """Fit, time and prune the points of one side: a :class:`approxmat._call.Product`
    (``cls``) for ``X_cal @ weights``."""
    from ._fit import fit_points

    points = fit_points(X_cal, weights, ncodebooks, ranks,
                        random_state=random_state, progress=progress)
    X_cal = np.asarray(X_cal)
    points = [_budget.with_calibrated_ranges(p, X_cal) if p.kind == "lut" else p
              for p in points]
    dtype = X_cal.dtype if X_cal.dtype.kind in "biuf" else np.dtype(np.float64)
    rows = np.ascontiguousarray(X_cal[:TIMING_ROWS])
    product = cls(weights, points, _costs.CostTable(dtype=dtype), True, rows)
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
        product = cls(weights, points, _costs.subset(product.costs, keep), True, rows)
    return product

