"""Low-rank operating points: reduced-rank regression on the calibration rows.

For rows ``X`` and weights ``W`` the rank-``r`` factors ``left (D x r)``,
``right (r x M)`` that minimise ``||X @ left @ right - X @ W||_F`` are
``left = W @ V_r`` and ``right = V_r.T``, with ``V_r`` the leading ``r`` right
singular vectors of the product ``X @ W`` (the Eckart-Young theorem applied to the
fitted values, which is reduced-rank regression with ``W`` as the full-rank
solution). Unlike the truncated SVD of ``W`` alone they weigh each output direction
by how much of it the calibration rows excite.

``V`` comes from the SVD of ``R @ W``, where ``R`` is a square root of the Gram
matrix (``R.T @ R = X.T @ X``): the same right singular vectors as ``X @ W``, from a
``D x M`` matrix instead of an ``N x M`` one.

Calibration rows are a sample: directions they barely excite get little weight, and
rows met later may excite them more. So the Gram matrix is shrunk toward the
identity, ``X.T @ X + lam * I`` (``lam`` relative to the mean eigenvalue; as ``lam``
grows the factors become the truncated SVD of ``W`` itself), and ``lam`` is chosen per
rank on the *selection* rows from :data:`SHRINK`: the factors are fitted on the train
rows for each ``lam``, the one with the lowest selection error is refitted on all fit
rows, and its error is measured on the validation rows, which took part in no choice.
For each ``lam`` the selection errors of every rank come from one SVD (``V`` is
orthonormal, so the squared error of rank ``r`` is ``||Y||^2 - ||Y V_r||^2``).
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


#: Shrinkage of the Gram matrix toward the identity, relative to its mean eigenvalue
#: (``inf``: the truncated SVD of the weights).
SHRINK = (0.0, 1e-3, 1e-2, 1e-1, 1.0, float("inf"))


def _directions(X, W, lam):
    """Right singular vectors ``V`` (M x k) for the shrinkage ``lam``, leading first."""
    G = X.T @ X
    scale = float(np.trace(G)) / G.shape[0]
    if np.isinf(lam) or not (np.isfinite(scale) and scale > 1e-300):
        _, _, Vt = scipy.linalg.svd(W, full_matrices=False, check_finite=False)
        return Vt.T
    G[np.diag_indices_from(G)] += (lam + 1e-12) * scale  # the jitter keeps G definite
    R = scipy.linalg.cholesky(G, lower=False, check_finite=False)
    _, _, Vt = scipy.linalg.svd(R @ W, full_matrices=False, check_finite=False)
    return Vt.T


def _errors_by_rank(Y, V, ranks):
    """Relative errors of ``Y @ V_r @ V_r.T`` against ``Y`` for each rank ``r``."""
    total = float(np.sum(Y * Y))
    captured = np.cumsum(np.sum((Y @ V) ** 2, axis=0))
    out = []
    for r in ranks:
        kept = captured[min(r, len(captured)) - 1]
        out.append(np.sqrt(max(total - kept, 0.0) / total) if total > 0 else 0.0)
    return np.array(out)


def fit_lowrank(cal, ranks):
    """One validated :class:`~approxmat._points.LowRank` per rank in ``ranks``.

    Parameters
    ----------
    cal : approxmat._fit._driver._Calibration
        The split calibration rows: the shrinkage is chosen on the selection rows,
        the factors fitted on the *fit* rows (train and selection), the error
        measured on the validation rows.
    ranks : sequence of int
        Ranks, each in ``[1, min(D, M)]``.

    Returns
    -------
    list of LowRank
    """
    if not ranks:
        return []
    W = cal.W
    X_tr = np.asarray(cal.X[cal.idx_tr], dtype=np.float64)
    X_fit = np.asarray(cal.X[cal.idx_fit], dtype=np.float64)
    X_val = np.asarray(cal.X[cal.idx_val], dtype=np.float64)
    ranks = list(ranks)
    if len(cal.idx_sel):
        errors = np.stack([_errors_by_rank(cal.Y_sel, _directions(X_tr, W, lam), ranks)
                           for lam in SHRINK])  # (shrinkages, ranks)
        best = np.argmin(errors, axis=0)  # the first (least shrunk) of equal errors
    else:
        best = np.zeros(len(ranks), dtype=np.intp)
    directions = {}
    points = []
    for r, k in zip(ranks, best):
        lam = SHRINK[k]
        if lam not in directions:
            directions[lam] = _directions(X_fit, W, lam)
        V = directions[lam][:, :r]  # (M, r)
        left = np.ascontiguousarray(W @ V)
        right = np.ascontiguousarray(V.T)
        error = relative_error(X_val @ left @ right, cal.Y_val)
        points.append(LowRank(left, right, error=float(error)))
    return points
