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

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from . import _budget, _call
from ._build_info import version as _version

__all__ = ["ApproxMatrix", "LevelInfo", "load"]

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

    __slots__ = ("_weights", "_levels", "_product", "__weakref__")

    def __init__(self, weights):
        self._weights = _validate_weights(weights)
        self._set_levels(())

    def _set_levels(self, levels):
        """Use ``levels`` from now on, with fresh per-fit caches and warnings.

        A product reads ``self._product`` once, so a call concurrent with a fit sees
        the old levels or the new ones, never a mix.
        """
        levels = tuple(levels)
        self._product = _call.Product(self._weights, levels)
        self._levels = levels

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
        self._set_levels(state["levels"])

    def __repr__(self):
        head = f"ApproxMatrix(shape={self.shape}, dtype={self.dtype}"
        if not self._levels:
            return head + ", not fitted: products are exact)"
        levels = ", ".join(f"C={lv.ncodebooks}: err {lv.error:.3g}" for lv in self._levels)
        return head + f", levels=[{levels}])"

    def _with_levels(self, levels):
        new = object.__new__(type(self))
        new._weights = self._weights
        new._set_levels(levels)
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
        from ._fit import fit_levels

        levels = fit_levels(
            X_cal, self._weights, ncodebooks, random_state=random_state, progress=progress
        )
        X_cal = np.asarray(X_cal)
        self._set_levels(_budget.with_calibrated_ranges(level, X_cal) for level in levels)
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
            product = self._product  # read once: a concurrent fit swaps it whole
            if (  # the common `x @ W` or `np.matmul(x, W, out=buf)`: try the fast path
                type(x) is np.ndarray and x.ndim == 2
                and (not kwargs or (len(kwargs) == 1 and "out" in kwargs))
            ):
                y = product.fast(x, kwargs.get("out"))
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

