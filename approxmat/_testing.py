"""Random levels, inputs, memory layouts and oracle results for tests and benchmarks.

Private: the one factory the test suite and the benchmarks share, so that a random
level means the same thing everywhere. Everything is deterministic given the
``numpy.random.Generator`` passed in (the same calls on the same generator state
give the same arrays).

The kernels are called through :class:`approxmat._kernels.PreparedLevel`
(:func:`prepared`); the expected results come from :mod:`approxmat._reference`
(:func:`oracle`), with NaN rows and row flags as the kernels define them.
"""

from __future__ import annotations

import numpy as np

from . import _costs, _kernels, _reference
from ._level import Level

__all__ = [
    "DTYPES",
    "LAYOUTS",
    "NARROW_DTYPES",
    "VALUE_KINDS",
    "assert_bits_equal",
    "flagged_product",
    "layout",
    "layouts",
    "modified",
    "narrow_level",
    "narrow_x",
    "offset_rows",
    "oracle",
    "oracle_flags",
    "pack",
    "prepared",
    "random_level",
    "random_values",
    "random_x",
    "strided_output",
    "with_bounds",
    "with_costs",
    "with_ranges",
]

#: The dtypes the kernels take for rows and results.
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: The narrow row dtypes the kernels read as they are.
NARROW_DTYPES = tuple(np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.float16))
#: Names of the memory layouts of :func:`layout`, in the order of :func:`layouts`.
LAYOUTS = ("C", "F", "neg-strided", "F-strided")
#: Kinds of values of :func:`random_values`.
VALUE_KINDS = ("normal", "nonfinite", "tiny", "subnormal", "huge", "constant", "integers",
               "with_nonfinite")


def random_level(D, M, C, rng, *, x=None, error=0.1, saturated=0.05, offset_scale=10.0,
                 scale_range=(1e-3, 1e-1), ranges=None):
    """A valid random :class:`~approxmat._level.Level` (no learner needed).

    Parameters
    ----------
    D, M, C : int
        Row width, output columns and codebooks (``1 <= C <= 256``, ``M >= 1``).
    rng : numpy.random.Generator
    x : array_like, optional
        Data the thresholds are drawn from (its finite values), so that codes spread
        over the leaves; standard normal thresholds without it (or when it has no
        finite value).
    error : float
        The level's recorded error.
    saturated : float
        Fraction of table entries set to 255 (the largest sums); 0 draws nothing for it.
    offset_scale : float
        Standard deviation of the dequantisation offsets.
    scale_range : (float, float)
        Bounds of the uniform dequantisation scales.
    ranges : None, "data" or (low, high)
        Calibration ranges: none; drawn from ``x`` by :func:`with_ranges`; or the
        given bounds (scalars or (C, 4) arrays) by :func:`with_bounds`.

    Returns
    -------
    Level

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> level = random_level(10, 3, 4, rng, ranges=(-1.0, 1.0))
    >>> level.ncodebooks, level.noutputs, level.split_low.shape
    (4, 3, (4, 4))
    >>> int(level.split_dims.max()) < 10
    True
    """
    split_dims = rng.integers(0, D, size=(C, 4)).astype(np.int32)
    pool = None
    if x is not None:
        x = np.asarray(x)
        pool = x[np.isfinite(x)]
    if pool is not None and pool.size:
        thresholds = rng.choice(pool, size=(C, 15)).astype(np.float32)
    else:
        thresholds = rng.standard_normal((C, 15)).astype(np.float32)
    luts = rng.integers(0, 256, size=(C, 16, M), dtype=np.uint8)
    if saturated:
        luts[rng.random(luts.shape) < saturated] = 255
    scale = rng.uniform(scale_range[0], scale_range[1], size=M)
    offset = rng.standard_normal(M)
    if offset_scale != 1:
        offset = offset * offset_scale
    level = Level(split_dims, thresholds, luts, scale, offset, error=error)
    if ranges is None:
        return level
    if isinstance(ranges, str):
        if ranges != "data":
            raise ValueError(f"ranges must be None, 'data' or (low, high), got {ranges!r}")
        return with_ranges(level, x, rng)
    low, high = ranges
    return with_bounds(level, low, high)


def modified(level, **changes):
    """A new Level with some parameters replaced and an empty kernel cache.

    (:func:`dataclasses.replace` would share the old level's cache of packed
    tables, which then no longer match.) Passing ``split_low=None`` and
    ``split_high=None`` drops the ranges.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> level = random_level(6, 2, 3, rng)
    >>> ones = modified(level, scale=np.ones(2), offset=np.zeros(2))
    >>> ones.scale.tolist(), ones.luts is level.luts, ones.cache == {}
    ([1.0, 1.0], True, True)
    """
    names = ("split_dims", "thresholds", "luts", "scale", "offset", "error", "split_low",
             "split_high")
    unknown = set(changes) - set(names)
    if unknown:
        raise TypeError(f"unknown Level parameters {sorted(unknown)}")
    params = {name: changes.get(name, getattr(level, name)) for name in names}
    return Level(**params)


def with_bounds(level, low, high):
    """The level with calibration ranges ``[low, high]`` (scalars or (C, 4) arrays).

    Examples
    --------
    >>> level = with_bounds(random_level(6, 2, 3, np.random.default_rng(0)), 1.0, 2.0)
    >>> level.split_low[0].tolist(), level.split_high[0].tolist()
    ([1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0])
    """
    shape = (level.ncodebooks, 4)
    low = np.array(np.broadcast_to(np.asarray(low, np.float32), shape))
    high = np.array(np.broadcast_to(np.asarray(high, np.float32), shape))
    return modified(level, split_low=low, split_high=high)


def with_ranges(level, x, rng):
    """The level with calibration ranges drawn from the columns of ``x``.

    Each bound is, with probability 0.8, a quantile near its end of the split column's
    finite values (``q`` uniform in ``[0, 0.3 / C)``), else infinite, so that a
    fraction of the rows is out of range. Columns without finite values (and an
    empty or absent ``x``) keep infinite bounds.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x = random_x(200, 8, rng, kind="normal")
    >>> level = with_ranges(random_level(8, 3, 2, rng, x=x), x, rng)
    >>> bool((level.split_low <= level.split_high).all())
    True
    >>> bool(0 < (oracle_flags(x, level) == 2).sum() < 200)  # some rows out, not all
    True
    """
    C = level.ncodebooks
    low = np.full((C, 4), -np.inf, np.float32)
    high = np.full((C, 4), np.inf, np.float32)
    if x is not None and np.size(x):
        x = np.asarray(x)
        for c in range(C):
            for lev in range(4):
                col = x[:, level.split_dims[c, lev]]
                col = col[np.isfinite(col)]
                if col.size == 0:
                    continue
                q = rng.uniform(0, 0.3 / C)
                if rng.random() < 0.8:
                    low[c, lev] = np.float32(np.quantile(col, q))
                if rng.random() < 0.8:
                    high[c, lev] = np.float32(np.quantile(col, 1 - q))
    return modified(level, split_low=low, split_high=high)


def random_values(shape, rng, kind="normal"):
    """float64 values of the given shape and kind (one of :data:`VALUE_KINDS`).

    ``normal``: standard normal. ``nonfinite``: normal, with ``max(1, size // 50)``
    entries each (drawn with replacement) set to NaN, +inf and -inf.
    ``with_nonfinite``: each entry NaN, +inf or -inf with probability 0.05.
    ``tiny`` (~1e-40, float32 subnormals), ``subnormal`` (~1e-310, float64
    subnormals), ``huge`` (~1e30), ``constant`` (0.5), ``integers`` (-3..3).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> v = random_values((20, 5), rng, "nonfinite")
    >>> v.shape, v.dtype, bool(np.isnan(v).any() and np.isposinf(v).any())
    ((20, 5), dtype('float64'), True)
    >>> random_values((2,), rng, "constant").tolist()
    [0.5, 0.5]
    """
    if kind == "normal":
        return rng.standard_normal(shape)
    if kind == "nonfinite":
        x = rng.standard_normal(shape)
        if x.size:
            flat = x.reshape(-1)
            k = max(1, flat.size // 50)
            for value in (np.nan, np.inf, -np.inf):
                flat[rng.integers(0, flat.size, k)] = value
        return x
    if kind == "with_nonfinite":
        return np.where(rng.random(shape) < 0.05,
                        rng.choice([np.nan, np.inf, -np.inf], size=shape),
                        rng.standard_normal(shape))
    if kind == "tiny":
        return rng.standard_normal(shape) * 1e-40
    if kind == "subnormal":
        return rng.standard_normal(shape) * 1e-310
    if kind == "huge":
        return rng.standard_normal(shape) * 1e30
    if kind == "constant":
        return np.full(shape, 0.5)
    if kind == "integers":
        return rng.integers(-3, 4, size=shape).astype(float)
    raise ValueError(f"kind must be one of {VALUE_KINDS}, got {kind!r}")


def random_x(N, D, rng, dtype=np.float64, *, kind="nonfinite", nonfinite_every=None):
    """Random rows ``x`` (N, D) for the kernels, C-contiguous, of ``dtype``.

    Parameters
    ----------
    N, D : int
    rng : numpy.random.Generator
    dtype : dtype
        Values are drawn in float64, then converted.
    kind : str
        See :func:`random_values`; the default puts a few NaN and +-inf anywhere.
    nonfinite_every : int, optional
        Keep the non-finite values only in every ``nonfinite_every``-th row (from row
        0); elsewhere they are replaced by standard normal values, so that finite rows
        remain even when D is large.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = random_x(30, 100, rng, np.float32, nonfinite_every=3)
    >>> x.dtype, x.shape, bool(np.isfinite(x[1::3]).all()), bool(np.isnan(x[::3]).any())
    (dtype('float32'), (30, 100), True, True)
    """
    x = random_values((N, D), rng, kind)
    if nonfinite_every:
        fix = ~np.isfinite(x)
        fix[::nonfinite_every] = False
        x[fix] = rng.standard_normal(np.count_nonzero(fix))
    return x.astype(dtype, copy=False)


def _edges(dtype):
    """Values at the edges of a narrow dtype's range, as float64."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = int(info.min), int(info.max)
        return np.array([lo, lo + 1, -1, 0, 1, hi - 1, hi], dtype=np.float64)
    if dtype.kind == "V":  # ml_dtypes' bfloat16, loaded by whoever made the array
        import ml_dtypes

        info = ml_dtypes.finfo(dtype)
    else:
        info = np.finfo(dtype)
    tiny, normal, big = (float(v) for v in (info.smallest_subnormal, info.smallest_normal,
                                            info.max))
    return np.array([-big, -normal, -tiny, -0.0, 0.0, tiny, normal, big, 1.0, -1.0])


def narrow_x(N, D, rng, dtype, *, nonfinite_every=3):
    """Random rows (N, D) of a narrow dtype, C-contiguous, that reach its edges.

    Integers: uniform over the type's whole range, with about one value in ten at an
    edge (the smallest and largest values and their neighbours, -1, 0, 1). float16:
    normal values times 4 with about one in ten at an edge (the largest value, the
    smallest normal and subnormal values, +-0, +-1) and, in every
    ``nonfinite_every``-th row, a NaN, +inf or -inf (none when 0 or None). bfloat16
    (ml_dtypes) like float16.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = narrow_x(40, 30, rng, np.uint8)
    >>> x.dtype, int(x.min()), int(x.max())
    (dtype('uint8'), 0, 255)
    >>> h = narrow_x(30, 8, rng, np.float16)
    >>> bool(np.isfinite(h[1::3]).all()), bool((~np.isfinite(h[::3])).any(axis=1).all())
    (True, True)
    """
    dtype = np.dtype(dtype)
    edges = _edges(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        x = rng.integers(int(info.min), int(info.max), (N, D), endpoint=True).astype(np.float64)
    else:
        x = 4 * rng.standard_normal((N, D))
    at = rng.random((N, D)) < 0.1
    x[at] = rng.choice(edges, size=int(at.sum()))
    if dtype.kind in "fV" and nonfinite_every and N and D:
        rows = np.arange(0, N, nonfinite_every)
        x[rows, rng.integers(0, D, rows.size)] = rng.choice([np.nan, np.inf, -np.inf], rows.size)
    return x.astype(dtype)


def narrow_level(level, dtype, rng):
    """The level with thresholds where a narrow dtype's decisions are delicate.

    Each threshold is, with equal chances: an integer of the type's range (a tie for
    rows equal to it), that integer plus or minus half, the float32 neighbours of an
    integer, a value beyond the type's range (every row goes the same way), or an edge
    value of :func:`narrow_x` (float16: its float32 neighbours too). Its calibration
    ranges, when it has them, are set from the same kinds of values.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> level = narrow_level(random_level(8, 2, 3, rng), np.int8, rng)
    >>> level.thresholds.dtype, level.thresholds.shape
    (dtype('float32'), (3, 15))
    """
    dtype = np.dtype(dtype)
    edges = _edges(dtype).astype(np.float32)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = float(info.min), float(info.max)
    else:
        lo, hi = -70000.0, 70000.0

    def values(shape):
        n = int(np.prod(shape))
        base = np.round(rng.uniform(lo, hi, n)).astype(np.float32)
        if dtype.kind in "fV":
            base = base / 1000
        kind = rng.integers(0, 7, n)
        v = base.copy()
        v[kind == 1] += 0.5
        v[kind == 2] -= 0.5
        v[kind == 3] = np.nextafter(base[kind == 3], np.float32(np.inf))
        v[kind == 4] = np.nextafter(base[kind == 4], np.float32(-np.inf))
        beyond = np.array([lo - 1, hi + 1, lo - 1e6, hi + 1e6, -np.inf, np.inf], np.float32)
        v[kind == 5] = rng.choice(beyond, int((kind == 5).sum()))
        e = rng.choice(edges, int((kind == 6).sum()))
        if dtype.kind in "fV":
            step = rng.choice([-np.inf, np.inf], e.size).astype(np.float32)
            e = np.where(rng.random(e.size) < 0.5, e, np.nextafter(e, step))
        v[kind == 6] = e
        return v.astype(np.float32).reshape(shape)

    changes = {"thresholds": values(level.thresholds.shape)}
    if level.split_low is not None:
        a, b = values(level.split_low.shape), values(level.split_low.shape)
        changes["split_low"] = np.minimum(a, b)
        changes["split_high"] = np.maximum(a, b)
    return modified(level, **changes)


def layout(x, name):
    """The rows of ``x`` (2-D) copied into the memory layout ``name`` of :data:`LAYOUTS`.

    ``C`` and ``F``: contiguous row- and column-major. ``neg-strided``: every other row
    backwards and every third column backwards of a larger row-major buffer.
    ``F-strided``: every other column of a larger column-major buffer, rows offset by 1.

    Examples
    --------
    >>> x = np.arange(6.0).reshape(2, 3)
    >>> v = layout(x, "neg-strided")
    >>> bool((v == x).all()), v.strides[0] < 0, v.strides[1] < 0
    (True, True, True)
    >>> layout(x, "F-strided").flags.f_contiguous
    False
    """
    N, D = x.shape
    if name == "C":
        return np.ascontiguousarray(x)
    if name == "F":
        return np.asfortranarray(x)
    if name == "neg-strided":
        big = np.empty((2 * N + 1, 3 * D), dtype=x.dtype)
        view = big[2 * N - 1 :: -2, ::-3] if N else big[:0, ::-3]
    elif name == "F-strided":
        bigf = np.asfortranarray(np.empty((N + 3, 2 * D), dtype=x.dtype))
        view = bigf[1 : N + 1, ::2]
    else:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {name!r}")
    view[...] = x
    assert view.shape == x.shape
    return view


def layouts(x):
    """``(name, view)`` for every layout of :data:`LAYOUTS`.

    Examples
    --------
    >>> [name for name, _ in layouts(np.zeros((3, 2)))]
    ['C', 'F', 'neg-strided', 'F-strided']
    """
    for name in LAYOUTS:
        yield name, layout(x, name)


def offset_rows(x, k):
    """Row-major float32 rows starting ``4 * k`` bytes after a 64-byte boundary.

    Examples
    --------
    >>> v = offset_rows(np.ones((3, 5), np.float32), 5)
    >>> v.ctypes.data % 64, v.flags.c_contiguous
    (20, True)
    """
    N, D = x.shape
    buf = np.empty(N * D + 32, np.float32)
    start = (-buf.ctypes.data % 64) // 4 + k
    view = buf[start : start + N * D].reshape(N, D)
    view[...] = x
    return view


def strided_output(N, M, dtype, fill=0):
    """An (N, M) output view of every other row of a wider buffer, columns reversed.

    Examples
    --------
    >>> out = strided_output(4, 3, np.float32)
    >>> out.shape, out.strides
    ((4, 3), (40, -4))
    """
    big = np.full((2 * N, M + 2), fill, dtype=dtype)
    return big[::2, M - 1 :: -1] if M > 1 else big[::2, :1]


def pack(level, variant=None):
    """The level's packed tables (with its ranges) for a kernel variant.

    Examples
    --------
    >>> level = random_level(6, 2, 3, np.random.default_rng(0))
    >>> p = pack(level, "portable")
    >>> p.dtype, p.nbytes == _kernels.packed_bytes(3, 2, "portable"), p.ctypes.data % 64
    (dtype('uint8'), True, 0)
    """
    return _kernels.pack(level.split_dims, level.thresholds, level.luts, level.scale,
                         level.offset, variant, level.split_low, level.split_high)


def prepared(level, variant=None):
    """A :class:`~approxmat._kernels.PreparedLevel` of the level for a kernel variant.

    ``variant=None``: the variant selected at import. Not cached: every call packs.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> level = random_level(6, 2, 3, rng)
    >>> x = random_x(5, 6, rng, np.float32, kind="normal")
    >>> out = np.empty((5, 2), np.float32)
    >>> prepared(level, "portable").product(x, out)
    0
    >>> assert_bits_equal(out, oracle(x, level, np.float32)[0])
    """
    return _kernels.PreparedLevel(level.split_dims, level.thresholds, level.luts,
                                  level.scale, level.offset, pack(level, variant), variant)


def flagged_product(kernel, x, out, nthreads=1):
    """``kernel.product(x, out, nthreads, flags)`` with a fresh flags array; the flags.

    The array is filled with 0xAA first, so rows the kernel does not write show up.
    The returned count of flagged rows is checked against the flags.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> level = random_level(6, 2, 3, rng)
    >>> x = np.zeros((3, 6)); x[1, 4] = np.nan
    >>> flagged_product(prepared(level), x, np.empty((3, 2)))
    array([0, 1, 0], dtype=uint8)
    """
    flags = np.full(x.shape[0], 0xAA, np.uint8)
    count = kernel.product(x, out, nthreads, flags)
    assert count == np.count_nonzero(flags), (count, np.count_nonzero(flags))
    return flags


def oracle_flags(x, level):
    """The row flags the kernels must give: bit 0 non-finite row, bit 1 out of range.

    Examples
    --------
    >>> level = with_bounds(random_level(2, 1, 1, np.random.default_rng(0)), -1, 1)
    >>> oracle_flags(np.array([[0.0, 0.0], [np.inf, 0.0], [5.0, 5.0]]), level)
    array([0, 1, 2], dtype=uint8)
    """
    nonfinite, outside = _reference.row_flags(x, level)
    return nonfinite.astype(np.uint8) | (outside.astype(np.uint8) << 1)


def oracle(x, level, dtype, nan_rows=True):
    """The product the kernels must give, bit for bit, and its row flags.

    Parameters
    ----------
    x : ndarray of float32 or float64, shape (N, D)
    level : Level
    dtype : dtype of the result
    nan_rows : bool
        Set the rows of ``x`` holding a NaN or an infinity to NaN, as a product with
        flags does (a product without flags leaves them as the reference computes them).

    Returns
    -------
    out : ndarray of ``dtype``, shape (N, M)
    flags : ndarray of uint8, shape (N,)
        :func:`oracle_flags`.

    Examples
    --------
    >>> level = random_level(2, 3, 1, np.random.default_rng(0))
    >>> out, flags = oracle(np.array([[0.0, 1.0], [np.nan, 0.0]]), level, np.float32)
    >>> out.dtype, bool(np.isnan(out[1]).all()), bool(np.isfinite(out[0]).all()), flags
    (dtype('float32'), True, True, array([0, 1], dtype=uint8))
    """
    want = _reference.approx_matmul(x, level, dtype)
    nonfinite, _ = _reference.row_flags(x, level)
    if nan_rows:
        want[nonfinite] = np.nan
    return want, oracle_flags(x, level)


def assert_bits_equal(got, want, err_msg=""):
    """Assert same dtype, shape and bytes (NaN payloads and signed zeros included).

    Examples
    --------
    >>> assert_bits_equal(np.zeros(2), np.zeros(2))
    >>> assert_bits_equal(np.zeros(2), -np.zeros(2))
    Traceback (most recent call last):
    ...
    AssertionError: ...
    """
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (
        f"{err_msg}: {got.dtype} {got.shape} != {want.dtype} {want.shape}")
    np.testing.assert_array_equal(np.ascontiguousarray(got).view(np.uint8),
                                  np.ascontiguousarray(want).view(np.uint8), err_msg=err_msg)


class _AnyKey(dict):
    """A curves dict that has one curve for every key (never measures)."""

    def __init__(self, curve):
        super().__init__()
        self.curve = curve

    def get(self, key, default=None):
        return self.curve


def with_costs(W, seconds=None):
    """A copy of the fitted ``W`` whose calls choose by ``seconds``, not by timing.

    ``seconds[i]`` is the cost of one row with point ``i`` (0 is exact), for every
    dtype, layout and thread count; a call of ``n`` rows costs ``n`` times that.
    ``seconds`` may also be a :class:`~approxmat._costs.Curve`, used for every key.
    Default: ``D * M`` for exact and the point's size (codebooks or rank) for the
    others, so a budget takes the smallest point within it, as tests expect.
    """
    points = W._points
    if isinstance(seconds, _costs.Curve):
        curve = seconds
    else:
        if seconds is None:
            D, M = W.shape
            seconds = [float(D * M)] + [float(p.size) for p in points]
        curve = _costs.Curve((1, 4096), tuple((1e-6 * s, 4096e-6 * s) for s in seconds))
    if len(curve.seconds) != len(points) + 1:
        raise ValueError(f"need {len(points) + 1} costs, got {len(curve.seconds)}")
    new = W.__copy__()
    new._product.costs.curves = _AnyKey(curve)
    return new


def with_left(W, points, seconds=None):
    """A copy of ``W`` whose ``W @ x`` uses exactly ``points`` (fitted for ``W.T``).

    ``seconds`` as for :func:`with_costs` (default: by size, so a budget takes the
    smallest point within it); the right side is kept as it is.
    """
    from ._call import TransposedProduct

    new = W.__copy__()
    left = TransposedProduct(new._weights.T, tuple(points), None, True)
    if seconds is None:
        D, M = W.shape
        seconds = [float(D * M)] + [float(p.size) for p in points]
    left.costs.curves = _AnyKey(
        _costs.Curve((1, 4096), tuple((1e-6 * s, 4096e-6 * s) for s in seconds)))
    new._left = left
    return new
