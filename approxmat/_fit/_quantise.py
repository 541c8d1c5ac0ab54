"""8-bit quantisation of the lookup tables and the least-squares correction.

The call computes ``y = scale * sum_c luts[c, code_c] + offset`` with exact
integer sums (:mod:`approxmat._level`), so the only error added here is the
rounding of each table entry to a step of ``scale``. Two schemes are computed,
both followed by a per-column least-squares correction of ``scale`` and
``offset`` on the fitting rows, and the more accurate is kept
(:func:`quantize_for_codes`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._level import NLEAVES
from ._tables import onehot

__all__ = ["QuantizedTables", "quantize_for_codes", "quantize_tables"]

#: Quantisation schemes, in the order they are tried (the first wins ties).
SCHEMES = ("column", "global")


def quantize_tables(T, scheme="column"):
    """Quantise real tables to bytes so that ``sum_c T[c, code_c]`` is preserved.

    Parameters
    ----------
    T : ndarray, shape (C, 16, M)
        Real lookup tables.
    scheme : {"column", "global"}
        ``"column"``: one scale per output column ``m`` and one offset per
        ``(c, m)``. ``"global"`` (the reference's scheme): one scale for the
        whole matrix and one offset per codebook.

    Returns
    -------
    luts : ndarray of uint8, shape (C, 16, M)
    scale, offset : ndarray of float64, shape (M,)
        With ``sum_c T[c, code_c, m] ~= scale[m] * sum_c luts[c, code_c, m] + offset[m]``.
        Each table entry is rounded to the nearest step, so the error of one
        entry is at most ``scale[m] / 2``.

    Examples
    --------
    >>> import numpy as np
    >>> T = np.array([[[0.0], [1.0], [2.0]] + [[0.0]] * 13])   # C=1, M=1
    >>> luts, scale, offset = quantize_tables(T)
    >>> luts[0, :3, 0], scale, offset
    (array([  0, 128, 255], dtype=uint8), array([0.00784314]), array([0.]))
    """
    C, K, M = T.shape
    if scheme == "column":
        lo = T.min(axis=1, keepdims=True)  # (C, 1, M)
        span = (T - lo).max(axis=(0, 1))  # (M,)
    elif scheme == "global":
        lo = T.min(axis=(1, 2), keepdims=True)  # (C, 1, 1)
        span = np.full(M, (T - lo).max())
    else:
        raise ValueError(f"unknown quantisation scheme {scheme!r}")
    scale = span / 255.0
    scale[scale == 0] = 1.0
    q = np.rint((T - lo) / scale)
    luts = np.clip(q, 0, 255).astype(np.uint8)
    offset = np.broadcast_to(lo, (C, 1, M)).sum(axis=(0, 1))
    return luts, scale.astype(np.float64), offset.astype(np.float64)


class _Moments(NamedTuple):
    """Per-column sums of the table sums ``acc`` and of ``Y`` (N, M): what the
    affine correction and its error need, without another (N, M) array."""

    n: int
    acc: np.ndarray  # sum of acc
    acc2: np.ndarray  # sum of acc ** 2
    acc_y: np.ndarray  # sum of acc * Y
    y: np.ndarray  # sum of Y
    y2: np.ndarray  # sum of Y ** 2

    @classmethod
    def of(cls, acc, Y, y=None, y2=None):
        return cls(
            Y.shape[0], acc.sum(axis=0), np.einsum("ij,ij->j", acc, acc),
            np.einsum("ij,ij->j", acc, Y),
            Y.sum(axis=0) if y is None else y,
            np.einsum("ij,ij->j", Y, Y) if y2 is None else y2,
        )

    def error(self, a, b):
        """``||a * acc + b - Y||_F / ||Y||_F`` (a, b per column)."""
        sq = (a * a * self.acc2 + 2 * a * b * self.acc + self.n * b * b
              - 2 * a * self.acc_y - 2 * b * self.y + self.y2)
        total = float(self.y2.sum())
        err = float(max(sq.sum(), 0.0))
        if total == 0:
            return 0.0 if err == 0 else float("inf")
        return float(np.sqrt(err / total))


def _affine_correct(m, scale):
    """Per-column least squares of ``Y ~ a * acc + b`` from the moments ``m``.

    Where a column of ``acc`` is constant, ``a`` stays ``scale`` and ``b`` is
    the least-squares offset for it.
    """
    am = m.acc / m.n
    ym = m.y / m.n
    var = m.acc2 - m.n * am * am
    cov = m.acc_y - m.n * am * ym
    ok = var > 1e-12 * np.maximum(m.acc2, 1e-300)
    a = np.where(ok, cov / np.where(ok, var, 1.0), scale)
    b = ym - a * am
    return a, b


def _table_sums(codes, luts):
    """The exact integer sums ``sum_c luts[c, codes[:, c]]`` as float64, (N, M)."""
    C = codes.shape[1]
    return onehot(codes) @ luts.reshape(C * NLEAVES, -1).astype(np.float64)


class QuantizedTables(NamedTuple):
    """The outcome of :func:`quantize_for_codes`."""

    luts: np.ndarray
    scale: np.ndarray
    offset: np.ndarray
    #: The scheme kept, one of :data:`SCHEMES`.
    scheme: str
    #: Errors on the fitting rows per scheme, before (``fit_err_<scheme>``)
    #: and after (``fit_err_<scheme>_corrected``) the correction.
    errors: dict


def quantize_for_codes(T, codes, Y):
    """Quantise ``T`` with the scheme and correction most accurate on given rows.

    Each scheme of :data:`SCHEMES` is quantised by :func:`quantize_tables`,
    then ``scale`` and ``offset`` are refit per output column by least squares
    of ``Y`` on the exact table sums of the rows' codes.

    Parameters
    ----------
    T : ndarray of float64, shape (C, 16, M)
        Real tables.
    codes : ndarray of uint8, shape (N, C)
        Codes of the fitting rows.
    Y : ndarray of float64, shape (N, M)
        Their exact products.

    Returns
    -------
    QuantizedTables
        ``luts`` uint8 (C, 16, M), contiguous ``scale`` and ``offset`` float64
        (M,), the scheme kept and the errors of every scheme.

    Examples
    --------
    >>> import numpy as np
    >>> from approxmat._fit._tables import predict
    >>> rng = np.random.default_rng(0)
    >>> T = rng.standard_normal((3, 16, 2)) * np.array([1.0, 100.0])
    >>> codes = rng.integers(0, 16, size=(500, 3)).astype(np.uint8)
    >>> q = quantize_for_codes(T, codes, predict(codes, T))
    >>> q.luts.dtype, q.scheme, q.errors["fit_err_column_corrected"] < 0.01
    (dtype('uint8'), 'column', True)
    """
    errors = {}
    choice = None
    y, y2 = Y.sum(axis=0), np.einsum("ij,ij->j", Y, Y)
    for scheme in SCHEMES:
        luts, scale, offset = quantize_tables(T, scheme)
        moments = _Moments.of(_table_sums(codes, luts), Y, y, y2)
        err_plain = moments.error(scale, offset)
        a, b = _affine_correct(moments, scale)
        err = moments.error(a, b)
        errors[f"fit_err_{scheme}"] = err_plain
        errors[f"fit_err_{scheme}_corrected"] = err
        if choice is None or err < choice[0]:
            choice = (err, scheme, luts, a, b)
    _, scheme, luts, scale, offset = choice
    return QuantizedTables(
        luts=np.ascontiguousarray(luts),
        scale=np.ascontiguousarray(scale, dtype=np.float64),
        offset=np.ascontiguousarray(offset, dtype=np.float64),
        scheme=scheme,
        errors=errors,
    )
