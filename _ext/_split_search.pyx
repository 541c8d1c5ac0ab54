# cython: language_level=3
"""Binding of the learner's split search (``_ext/src/am_split_search.c``).

:mod:`approxmat._fit._trees` decides which columns to try; this computes, for each
of them, the best split of every bucket of a tree level. Threads are passed in.
"""

import numpy as np

cimport numpy as cnp
from libc.stdint cimport int32_t, intptr_t, uint8_t

cnp.import_array()

cdef extern from "am_split_search.h":
    int am_best_splits(const float *feats, Py_ssize_t n, Py_ssize_t f,
                       const int32_t *order, const double *values, const intptr_t *cand,
                       int k, const uint8_t *bucket, int nb, const float *tot,
                       const double *tt, double *gain, double *lo, double *hi,
                       double *vmax, int nthreads) nogil


def best_splits(const float[:, ::1] feats, const int32_t[:, ::1] order,
                const double[:, ::1] values, cand, const uint8_t[::1] bucket,
                const float[:, ::1] tot, const double[::1] tt, int nthreads=1):
    """The best split of candidate columns in each bucket of a tree level.

    Parameters
    ----------
    feats : ndarray of float32, shape (n, f), C-contiguous
        The features whose within-bucket sum of squares a split reduces.
    order : ndarray of int32, shape (d, n)
        Per column, the rows sorted by the column's value.
    values : ndarray of float64, shape (d, n)
        Per column, its values in that order.
    cand : sequence of int, length k
        The candidate columns, each in ``[0, d)``.
    bucket : ndarray of uint8, shape (n,)
        Each row's bucket, ``< nb``.
    tot : ndarray of float32, shape (nb, f)
        Per-bucket sums of ``feats``.
    tt : ndarray of float64, shape (nb,)
        ``|tot[b]|^2`` (from the float64 sums).
    nthreads : int
        OpenMP threads over the candidates.

    Returns
    -------
    gain, lo, hi, vmax : ndarray of float64, shape (k, nb)
        Per candidate and bucket: ``|S_L|^2 / n_L + |S_R|^2 / n_R`` of the best
        split (``-inf`` when the bucket has none: fewer than two distinct values),
        the values either side of it (0 without a split), and the bucket's largest
        value (0 for an empty bucket). The first of equal gains wins.

    Examples
    --------
    >>> import numpy as np
    >>> feats = np.array([[1.0], [1.0], [-1.0], [-1.0]], np.float32)
    >>> values = np.array([[0.0, 1.0, 2.0, 3.0]])
    >>> order = np.arange(4, dtype=np.int32)[None]
    >>> bucket = np.zeros(4, np.uint8)
    >>> tot = feats.sum(axis=0, keepdims=True)
    >>> gain, lo, hi, vmax = best_splits(feats, order, values, [0], bucket, tot,
    ...                                  np.zeros(1))
    >>> float(gain[0, 0]), float(lo[0, 0]), float(hi[0, 0]), float(vmax[0, 0])
    (4.0, 1.0, 2.0, 3.0)
    """
    cdef Py_ssize_t n = feats.shape[0], f = feats.shape[1], d = order.shape[0]
    cdef int nb = tot.shape[0]
    cdef cnp.ndarray cand_arr = np.ascontiguousarray(cand, dtype=np.intp)
    cdef int k = cand_arr.shape[0]
    if order.shape[1] != n or values.shape[0] != d or values.shape[1] != n \
            or bucket.shape[0] != n:
        raise ValueError("order and values must be (d, n) and bucket (n,) for feats (n, f)")
    if tot.shape[1] != f or tt.shape[0] != nb or not 1 <= nb <= 256:
        raise ValueError("tot must be (nb, f) and tt (nb,), with 1 <= nb <= 256")
    if f < 1:
        raise ValueError("feats needs at least one column")
    if k and (cand_arr.min() < 0 or cand_arr.max() >= d):
        raise ValueError(f"a candidate column is outside [0, {d})")
    if n and int(np.max(bucket)) >= nb:
        raise ValueError("a bucket is >= nb")
    if n and k:  # the rows the scan reads: those of the candidates only
        rows = np.asarray(order)[cand_arr]
        if int(rows.min()) < 0 or int(rows.max()) >= n:
            raise ValueError("order holds a row outside [0, n)")
    gain = np.full((k, nb), -np.inf)
    lo = np.zeros((k, nb))
    hi = np.zeros((k, nb))
    vmax = np.zeros((k, nb))
    if n == 0 or k == 0:
        return gain, lo, hi, vmax
    cdef double[:, ::1] g = gain, l = lo, h = hi, v = vmax
    cdef const intptr_t *cp = <const intptr_t *>cnp.PyArray_DATA(cand_arr)
    cdef int status
    with nogil:
        status = am_best_splits(&feats[0, 0], n, f, &order[0, 0], &values[0, 0], cp, k,
                                &bucket[0], nb, &tot[0, 0], &tt[0], &g[0, 0], &l[0, 0],
                                &h[0, 0], &v[0, 0], nthreads)
    if status != 0:
        raise MemoryError("best_splits: out of memory")
    return gain, lo, hi, vmax
