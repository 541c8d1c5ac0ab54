"""Low-rank operating points: reduced-rank regression on the calibration rows.

For rows ``X`` and weights ``W`` the rank-``r`` factors ``left (D x r)``,
``right (r x M)`` that minimise ``||X @ left @ right - X @ W||_F`` are
``left = W @ V_r`` and ``right = V_r.T``, with ``V_r`` the leading ``r`` right
singular vectors of the product ``X @ W`` (the Eckart-Young theorem applied to the
fitted values, which is reduced-rank regression with ``W`` as the full-rank
solution). Unlike the truncated SVD of ``W`` alone they weigh each output direction
by how much of it the calibration rows excite.

``V`` comes from the SVD of ``R @ W``, where ``R`` is the triangular factor of ``X``
(``X.T @ X = R.T @ R``): the same right singular vectors as ``X @ W``, from a
``D x M`` matrix instead of an ``N x M`` one.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from .._points import LowRank
from ._tables import relative_error

__all__ = ["default_ranks", "fit_lowrank"]


def default_ranks(D, M):
    """The default ladder of ranks: powers of two whose two products need fewer
    multiply-adds than the exact product (``r * (D + M) < D * M``), below
    ``min(D, M)``.

    Examples
    --------
    >>> default_ranks(512, 10), default_ranks(27, 2), default_ranks(2, 2)
    ([1, 2, 4, 8], [1], [])
    """
    ranks, r = [], 1
    while r < min(D, M) and r * (D + M) < D * M:
        ranks.append(r)
        r *= 2
    return ranks


def fit_lowrank(cal, ranks):
    """One validated :class:`~approxmat._points.LowRank` per rank in ``ranks``.

    Parameters
    ----------
    cal : approxmat._fit._driver._Calibration
        The split calibration rows: the factors are fitted on the *fit* rows (train
        and selection), the error measured on the validation rows.
    ranks : sequence of int
        Ranks, each in ``[1, min(D, M)]``.

    Returns
    -------
    list of LowRank
    """
    if not ranks:
        return []
    X_fit = np.asarray(cal.X[cal.idx_fit], dtype=np.float64)
    R = scipy.linalg.qr(X_fit, mode="r", check_finite=False)[0][: X_fit.shape[1]]
    _, _, Vt = scipy.linalg.svd(R @ cal.W, full_matrices=False, check_finite=False)
    X_val = np.asarray(cal.X[cal.idx_val], dtype=np.float64)
    points = []
    for r in ranks:
        V = Vt[:r].T  # (M, r)
        left = np.ascontiguousarray(cal.W @ V)
        right = np.ascontiguousarray(V.T)
        error = relative_error(X_val @ left @ right, cal.Y_val)
        points.append(LowRank(left, right, error=float(error)))
    return points
