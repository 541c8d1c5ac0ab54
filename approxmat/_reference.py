"""Plain NumPy reference of the call path: the oracle every compiled kernel must match.

Nothing here is fast; everything here is obviously right. The semantics are those
documented in :mod:`approxmat._level`. The compiled kernels are tested bit for bit
against :func:`approx_matmul`, and it is the fallback where no kernel applies.
"""

from __future__ import annotations

import numpy as np

from ._level import TREE_DEPTH, Level

__all__ = ["encode", "table_sums", "dequantize", "approx_matmul", "row_flags"]


def encode(x, split_dims, thresholds):
    """Encode rows into one 4-bit code per codebook.

    Parameters
    ----------
    x : ndarray of real numbers, shape (N, D)
        float32 or float64, or narrower (float16, 8- and 16-bit integers): compared
        with the float32 thresholds as real numbers (NumPy promotes both to float32
        or float64, exactly).
    split_dims : ndarray of int, shape (C, 4)
    thresholds : ndarray of float32, shape (C, 15)

    Returns
    -------
    codes : ndarray of uint8, shape (N, C)
        Values in ``0..15``.

    Examples
    --------
    >>> import numpy as np
    >>> split_dims = np.array([[0, 1, 0, 1]], dtype=np.int32)
    >>> thresholds = np.zeros((1, 15), dtype=np.float32)
    >>> encode(np.array([[1.0, -1.0], [-1.0, 1.0]]), split_dims, thresholds)
    array([[10],
           [ 5]], dtype=uint8)
    """
    x = np.asarray(x)
    N, C = x.shape[0], split_dims.shape[0]
    node = np.zeros((N, C), dtype=np.intp)
    cols = np.arange(C)
    for level in range(TREE_DEPTH):
        values = x[:, split_dims[:, level]]
        limits = thresholds[cols, (1 << level) - 1 + node]
        node = 2 * node + (values > limits)
    return node.astype(np.uint8)


def table_sums(codes, luts):
    """Exact integer sums ``acc[n, m] = sum_c luts[c, codes[n, c], m]``.

    Parameters
    ----------
    codes : ndarray of uint8, shape (N, C)
    luts : ndarray of uint8, shape (C, 16, M)

    Returns
    -------
    acc : ndarray of int32, shape (N, M)

    Examples
    --------
    >>> import numpy as np
    >>> luts = np.arange(2 * 16 * 1, dtype=np.uint8).reshape(2, 16, 1)
    >>> table_sums(np.array([[3, 4]], dtype=np.uint8), luts)
    array([[23]], dtype=int32)
    """
    N, C = codes.shape
    acc = np.zeros((N, luts.shape[2]), dtype=np.int32)
    for c in range(C):
        acc += luts[c, codes[:, c], :]
    return acc


def dequantize(acc, scale, offset, dtype):
    """``dtype(acc) * dtype(scale) + dtype(offset)``, each operation rounded to ``dtype``.

    Examples
    --------
    >>> import numpy as np
    >>> dequantize(np.array([[2]], dtype=np.int32), np.array([0.5]), np.array([1.0]), np.float32)
    array([[2.]], dtype=float32)
    """
    dtype = np.dtype(dtype)
    return acc.astype(dtype) * scale.astype(dtype) + offset.astype(dtype)


def approx_matmul(x, level: Level, dtype):
    """The approximate product of 2-D rows ``x`` with a fitted level, in ``dtype``.

    Parameters
    ----------
    x : ndarray of real numbers, shape (N, D)
    level : Level
    dtype : float16, float32 or float64
        Output dtype. float16 outputs are dequantised in float32 and rounded once.

    Returns
    -------
    ndarray of ``dtype``, shape (N, M)
    """
    codes = encode(x, level.split_dims, level.thresholds)
    dtype = np.dtype(dtype)
    compute = np.float32 if dtype == np.float16 else dtype
    y = dequantize(table_sums(codes, level.luts), level.scale, level.offset, compute)
    with np.errstate(over="ignore"):  # beyond float16's range: infinity, as defined
        return y.astype(dtype, copy=False)


def row_flags(x, level: Level):
    """Rows with a NaN or inf anywhere, and rows with a split column out of range.

    Parameters
    ----------
    x : ndarray of real numbers, shape (N, D)
    level : Level

    Returns
    -------
    nonfinite : ndarray of bool, shape (N,)
        Rows whose product is NaN (NumPy would give NaN or inf there).
    out_of_range : ndarray of bool, shape (N,)
        Finite rows with some ``x[split_dims[c, l]]`` outside
        ``[split_low[c, l], split_high[c, l]]``; all False when the level has no
        ranges.

    Examples
    --------
    >>> import numpy as np
    >>> from approxmat._level import Level
    >>> level = Level(np.zeros((1, 4), np.int32), np.zeros((1, 15), np.float32),
    ...               np.zeros((1, 16, 1), np.uint8), np.ones(1), np.zeros(1),
    ...               split_low=np.full((1, 4), -1, np.float32),
    ...               split_high=np.full((1, 4), 1, np.float32))
    >>> row_flags(np.array([[0.5, 9.0], [2.0, 0.0], [0.0, np.nan]]), level)
    (array([False, False,  True]), array([False,  True, False]))
    """
    x = np.asarray(x)
    nonfinite = ~np.isfinite(x).all(axis=1)
    if level.split_low is None or x.shape[0] == 0:
        return nonfinite, np.zeros(x.shape[0], dtype=bool)
    values = x[:, level.split_dims.ravel()]
    low, high = level.split_low.ravel(), level.split_high.ravel()
    outside = ((values < low) | (values > high)).any(axis=1)
    return nonfinite, outside & ~nonfinite
