"""Lookup tables in real numbers: leaf means, the joint ridge refit, its penalty.

Given the codes of the rows (one leaf per codebook), the tables ``T`` (C, 16, M)
predict ``X @ W`` by ``sum_c T[c, code_c]``. They start as leaf means of each
codebook's contiguous-block partial product ``X[:, block] @ W[block]``, computed as
the leaf means of the block's columns (the prototypes) times ``W[block]``, never as
the ``C`` partial products of ``N x M`` values themselves, and are then refit jointly by ridge regression of ``X @ W`` on the one-hot codes,
centred on the leaf means. Since the tables are ``T = P @ W`` for prototypes
``P`` and both the refit and the table product are linear, the refit is
computed directly on the tables (``M`` right-hand sides instead of ``D``): this
is algebraically the ridge solution for the prototypes, times ``W``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg
import scipy.sparse

from .._level import NLEAVES, TREE_DEPTH

__all__ = [
    "Blocks",
    "PenaltyChoice",
    "choose_penalty",
    "onehot",
    "predict",
    "relative_error",
    "ridge_refit",
    "solve",
]


def onehot(codes):
    """Sparse one-hot indicator matrix of the codes.

    Parameters
    ----------
    codes : ndarray of uint8, shape (N, C)

    Returns
    -------
    scipy.sparse.csr_matrix, shape (N, C * 16)
        Row ``n`` has a 1 in column ``16 * c + codes[n, c]`` for each ``c``.

    Examples
    --------
    >>> import numpy as np
    >>> onehot(np.array([[1, 0]], dtype=np.uint8)).indices.tolist()
    [1, 16]
    """
    N, C = codes.shape
    cols = (np.arange(C, dtype=np.intp) * NLEAVES + codes).ravel()
    indptr = np.arange(0, N * C + 1, C, dtype=np.intp)
    data = np.ones(N * C, dtype=np.float64)
    return scipy.sparse.csr_matrix((data, cols, indptr), shape=(N, C * NLEAVES))


class Blocks(NamedTuple):
    """Rows and weights whose contiguous-block partial products centre the tables.

    Codebook ``c``'s partial product is ``X[:, b0:b1] @ W[b0:b1]`` with ``b0, b1 =
    bounds[c], bounds[c + 1]`` (:func:`~approxmat._fit._trees.block_bounds`); the
    partial products sum to ``X @ W``. They are never formed: their leaf means are
    the leaf means of ``X[:, b0:b1]`` times ``W[b0:b1]``.
    """

    #: (N, D) rows, float32 or float64.
    X: np.ndarray
    #: (D, M) float64 weights.
    W: np.ndarray
    #: (C + 1,) intp block bounds.
    bounds: np.ndarray


def _leaf_means(codes, blocks):
    """Leaf means of each codebook's partial product, (C, 16, M).

    ``blocks`` (:class:`Blocks`) holds the rows the codes are of. Empty leaves take
    the mean of their nearest non-empty ancestor bucket.
    """
    X, W, bounds = blocks
    C = codes.shape[1]
    T0 = np.zeros((C, NLEAVES, W.shape[1]))
    for c in range(C):
        b0, b1 = bounds[c], bounds[c + 1]
        cnt = np.bincount(codes[:, c], minlength=NLEAVES)
        sums = onehot(codes[:, c : c + 1]).T @ np.asarray(X[:, b0:b1], dtype=np.float64)
        T0[c] = _ancestor_means(sums, cnt) @ W[b0:b1]
    return T0


def _ancestor_means(sums, cnt):
    """Per leaf, ``sums / cnt``; an empty leaf the mean of its nearest non-empty
    ancestor bucket (the leaves sharing its leading code bits)."""
    means = np.zeros_like(sums)
    leaves = np.arange(NLEAVES)
    for k in range(NLEAVES):
        if cnt[k] > 0:
            means[k] = sums[k] / cnt[k]
            continue
        for shift in range(1, TREE_DEPTH + 1):
            sel = (leaves >> shift) == (k >> shift)
            n_anc = cnt[sel].sum()
            if n_anc > 0:
                means[k] = sums[sel].sum(axis=0) / n_anc
                break
    return means


def _ridge_tables(codes, Y, blocks):
    """The leaf means ``T0`` and the normal equations of the refit around them.

    Returns ``T0`` (C, 16, M), ``G^T G`` (C*16, C*16) dense and ``G^T (Y - G T0)``
    (C*16, M) for the one-hot matrix ``G`` of the codes, so that the tables
    refit with penalty ``lam`` are ``T0 + solve(GtG, GtR, lam)``.
    """
    C = codes.shape[1]
    M = Y.shape[1]
    T0 = _leaf_means(codes, blocks)
    G = onehot(codes)
    R = Y - G @ T0.reshape(C * NLEAVES, M)
    GtG = (G.T @ G).toarray()
    GtR = G.T @ R
    return T0, GtG, GtR


def solve(GtG, GtR, lam):
    """Solve ``(GtG + lam * I) x = GtR`` by Cholesky factorisation.

    Parameters
    ----------
    GtG : ndarray, shape (K, K)
        Symmetric positive semi-definite (a Gram matrix); not modified.
    GtR : ndarray, shape (K, M)
    lam : float
        Ridge penalty, ``> 0`` unless ``GtG`` is definite.

    Returns
    -------
    ndarray, shape (K, M)

    Examples
    --------
    >>> import numpy as np
    >>> solve(np.eye(2), np.array([[2.0], [4.0]]), 1.0).ravel().tolist()
    [1.0, 2.0]
    """
    A = GtG.copy()
    A[np.diag_indices_from(A)] += lam
    cf = scipy.linalg.cho_factor(A, lower=True, check_finite=False)
    return scipy.linalg.cho_solve(cf, GtR, check_finite=False)


def predict(codes, T):
    """The prediction of real tables, ``sum_c T[c, codes[:, c]]``.

    Parameters
    ----------
    codes : ndarray of uint8, shape (N, C)
    T : ndarray, shape (C, 16, M)

    Returns
    -------
    ndarray of float64, shape (N, M)

    Examples
    --------
    >>> import numpy as np
    >>> T = np.arange(2 * 16, dtype=float).reshape(2, 16, 1)
    >>> predict(np.array([[1, 2]], dtype=np.uint8), T).tolist()
    [[19.0]]
    """
    C, K, M = T.shape
    return onehot(codes) @ T.reshape(C * K, M)


def relative_error(Yhat, Y):
    """Relative Frobenius error ``||Yhat - Y||_F / ||Y||_F``.

    Parameters
    ----------
    Yhat, Y : ndarray of the same shape

    Returns
    -------
    float
        0 when both are zero, ``inf`` when ``Y`` is zero and ``Yhat`` is not.

    Examples
    --------
    >>> import numpy as np
    >>> relative_error(np.array([3.0, 0.0]), np.array([3.0, 4.0]))
    0.8
    """
    den = np.linalg.norm(Y)
    num = np.linalg.norm(Yhat - Y)
    if den == 0:
        return 0.0 if num == 0 else float("inf")
    return float(num / den)


class PenaltyChoice(NamedTuple):
    """The outcome of :func:`choose_penalty`."""

    #: Ridge penalty in units of the mean number of rows per leaf, or None when
    #: the plain leaf means did best.
    penalty: float | None
    #: Selection error of the chosen tables.
    error: float
    #: Selection error of the plain leaf means.
    error_leaf_means: float


def choose_penalty(codes_tr, Y_tr, blocks_tr, codes_sel, Y_sel, grid):
    """Choose the ridge penalty of the refit on held-out selection rows.

    The tables are fit on the train rows with each penalty of ``grid``; the
    best one is refined by factors of ``sqrt(10)`` either side, and it is kept
    only if it beats the plain leaf means on the selection rows.

    Parameters
    ----------
    codes_tr : ndarray of uint8, shape (n, C)
        Codes of the train rows.
    Y_tr : ndarray of float64, shape (n, M)
        Their exact products.
    blocks_tr : Blocks
        The train rows and the weights.
    codes_sel, Y_sel : ndarray
        Codes and exact products of the selection rows.
    grid : sequence of float
        Penalties to try, in units of the mean number of train rows per leaf
        (``n / 16``).

    Returns
    -------
    PenaltyChoice
        The chosen penalty (``None``: no refit) and the selection errors.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> codes = rng.integers(0, 16, size=(400, 2)).astype(np.uint8)
    >>> Y = predict(codes, rng.standard_normal((2, 16, 1)))
    >>> blocks = Blocks(np.zeros((300, 2)), np.zeros((2, 1)), np.array([0, 1, 2]))
    >>> ch = choose_penalty(codes[:300], Y[:300], blocks, codes[300:], Y[300:], [1e-3, 1.0])
    >>> ch.penalty is not None and ch.error < ch.error_leaf_means
    True
    """
    C = codes_tr.shape[1]
    T0, GtG, GtR = _ridge_tables(codes_tr, Y_tr, blocks_tr)
    unit = codes_tr.shape[0] / NLEAVES
    G_sel = onehot(codes_sel)
    err_leaf_means = relative_error(G_sel @ T0.reshape(C * NLEAVES, -1), Y_sel)
    tried = {}

    def try_penalty(g):
        if g in tried:
            return
        T = T0 + solve(GtG, GtR, g * unit).reshape(T0.shape)
        tried[g] = relative_error(G_sel @ T.reshape(C * NLEAVES, -1), Y_sel)

    for g in grid:
        try_penalty(g)
    g = min(tried, key=tried.get)
    for h in (g / 10**0.5, g * 10**0.5):
        try_penalty(h)
    g = min(tried, key=tried.get)
    if tried[g] < err_leaf_means:
        return PenaltyChoice(g, tried[g], err_leaf_means)
    return PenaltyChoice(None, err_leaf_means, err_leaf_means)


def ridge_refit(codes, Y, blocks, penalty):
    """Leaf means, then the joint ridge refit of all ``C * 16`` table rows.

    Parameters
    ----------
    codes : ndarray of uint8, shape (n, C)
    Y : ndarray of float64, shape (n, M)
        Exact products of the rows.
    blocks : Blocks
        The rows and the weights: the leaf means are those of their partial
        products.
    penalty : float or None
        In units of the mean number of rows per leaf (``n / 16``), as chosen
        by :func:`choose_penalty`; ``None`` returns the leaf means.

    Returns
    -------
    ndarray of float64, shape (C, 16, M)

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> codes = rng.integers(0, 16, size=(2000, 3)).astype(np.uint8)
    >>> truth = rng.standard_normal((3, 16, 2))
    >>> Y = predict(codes, truth)
    >>> T = ridge_refit(codes, Y, Blocks(np.zeros((2000, 3)), np.zeros((3, 2)),
    ...                                  np.arange(4)), 1e-9)
    >>> bool(np.allclose(predict(codes, T), Y))
    True
    """
    if penalty is None:
        return _leaf_means(codes, blocks)
    T0, GtG, GtR = _ridge_tables(codes, Y, blocks)
    return T0 + solve(GtG, GtR, penalty * codes.shape[0] / NLEAVES).reshape(T0.shape)
