"""Hash trees: split search, candidate proxies and the learning of all trees.

Each codebook has a depth-4 binary tree that sends a row right at level ``l``
when ``x[split_dims[l]] > threshold`` of its node (float32 thresholds, the exact
call-time rule of :mod:`approxmat._level`). A tree is learnt greedily, level by
level: one split column per level, shared by the level's nodes, and per node
the threshold of the best SSE split on that column. The features whose SSE is
minimised are either the block's own centred columns (the paper's criterion)
or the residual of ``X @ W`` that the other trees leave unexplained
(:func:`learn_trees`, ``tree_mode="residual"``).
"""

from __future__ import annotations

import numpy as np

from .._level import NLEAVES, TREE_DEPTH
from .._reference import encode
from .._split_search import best_splits
from ._options import FitOptions
from ._tables import onehot, solve

__all__ = ["block_bounds", "learn_trees"]

#: The principal directions of the residual are computed on at most this many
#: of its first rows.
_SVD_ROWS = 4096

#: Threads of the split search. One: a call scans about a millisecond of work, and on
#: this project's 2-core machine two threads made the fit twice as slow whenever
#: another process kept a core busy (each call's join then waits for the descheduled
#: thread).
_SPLIT_THREADS = 1

#: Penalty of the joint least-squares tables between backfitting sweeps, in
#: units of the mean number of train rows per leaf.
_BACKFIT_PENALTY = 1e-3


def block_bounds(D, C):
    """Column bounds of the ``C`` contiguous blocks of ``D`` columns.

    Parameters
    ----------
    D, C : int
        Number of columns and of blocks, ``1 <= C <= D``.

    Returns
    -------
    ndarray of intp, shape (C + 1,)
        Block ``c`` is ``bounds[c]:bounds[c + 1]``; the first ``D % C`` blocks
        have one column more than the others.

    Examples
    --------
    >>> block_bounds(10, 4).tolist()
    [0, 3, 6, 8, 10]
    """
    q, r = divmod(D, C)
    sizes = np.full(C, q, dtype=np.intp)
    sizes[:r] += 1
    return np.concatenate(([0], np.cumsum(sizes)))


def _to_f32_between(lo, hi):
    """float32 thresholds t with lo <= t < hi where one exists (lo < hi, float64)."""
    with np.errstate(over="ignore"):
        t = ((lo + hi) * 0.5).astype(np.float32)
        up = t.astype(np.float64) < lo
        t[up] = np.nextafter(t[up], np.float32(np.inf))
        down = t.astype(np.float64) >= hi
        t[down] = np.nextafter(t[down], np.float32(-np.inf))
    return t


def _to_f32_at_least(v):
    """A float32 t with t >= v (float64), so that ``v > t`` is false."""
    with np.errstate(over="ignore"):
        t = np.asarray(v, dtype=np.float64).astype(np.float32)
        up = t.astype(np.float64) < v
        t[up] = np.nextafter(t[up], np.float32(np.inf))
    return t


def _presort(raw):
    """Per column: the row order sorting it and the sorted values, both (d, n).

    Row-major per column so that each candidate's data is contiguous. Each column
    is sorted as a contiguous row by NumPy's default sort (SIMD where NumPy has it;
    4.6x faster than a stable sort down the columns at 120 000 x 512): rows of equal
    values come in an order of its choosing, which changes no split (splits fall
    between distinct values) and, for a given machine, no result.
    """
    if raw.shape[0] >= 2**31:
        raise ValueError(f"the tree search takes fewer than 2**31 rows, got {raw.shape[0]}")
    columns = np.ascontiguousarray(raw.T)
    order = np.argsort(columns, axis=1).astype(np.int32)
    return order, np.take_along_axis(columns, order, axis=1)


def _split_candidates(presorted, cand, bucket, counts, feats, tot):
    """Best SSE split of every bucket, for each candidate column.

    For every split position of a bucket's rows sorted by value,
    ``gain = |S_L|^2 / n_L + |S_R|^2 / n_R`` with ``S_L`` the feature sums of the
    rows up to it and ``S_R = S - S_L``; the SSE of the split is the bucket's sum
    of squares minus this gain, so maximising the gain minimises SSE(left) +
    SSE(right). Only positions between two distinct values are valid; the
    threshold is their midpoint. The scan over the positions runs in C
    (:func:`approxmat._split_search.best_splits`, features summed in float32).

    Parameters
    ----------
    presorted : ((d, n) int32, (d, n) float64), :func:`_presort` of the raw values
    cand : (k,) intp, candidate columns
    bucket : (n,) uint8, current bucket of each row
    counts : (nb,) bucket sizes
    feats : (n, f) float32, features whose SSE is minimised
    tot : (nb, f) float64, per-bucket feature sums

    Returns
    -------
    score : (k,) total gain over buckets (higher is better)
    lo, hi : (k, nb) the neighbouring values of the chosen split
    split : (k, nb) bool, whether the bucket has a valid split
    vmax : (k, nb) the largest value of each bucket (for buckets without split)
    """
    order, values = presorted
    feats = np.ascontiguousarray(feats, dtype=np.float32)
    tot32 = np.ascontiguousarray(tot, dtype=np.float32)
    tt = np.ascontiguousarray(np.einsum("bf,bf->b", tot, tot), dtype=np.float64)
    ne = counts > 0
    nosplit_gain = np.where(ne, tt / np.maximum(counts, 1), 0.0)
    gain, lo, hi, vmax = best_splits(feats, order, values, cand, bucket, tot32, tt,
                                     _SPLIT_THREADS)
    split = gain > -np.inf
    score = np.where(split, gain, nosplit_gain)[:, ne].sum(axis=1)
    return score, lo, hi, split, vmax


def _proxy_candidates(raw, bucket, counts, feats, k):
    """The k columns whose within-bucket linear fit of ``feats`` explains most.

    For column j, ``sum_b |cov_b(x_j, feats)|^2 / var_b(x_j)``: the SSE reduction
    of a per-bucket linear regression on ``x_j``, a cheap stand-in for the gain
    of a split on ``x_j``.
    """
    order = np.argsort(bucket, kind="stable")
    xs = raw[order]
    fs = feats[order]
    score = np.zeros(raw.shape[1])
    start = 0
    for cnt in counts:
        if cnt > 1:
            xb = xs[start : start + cnt]
            fb = fs[start : start + cnt]
            xb = xb - xb.mean(axis=0)
            cov = xb.T @ (fb - fb.mean(axis=0))
            var = np.einsum("ij,ij->j", xb, xb)
            ok = var > 0
            score[ok] += np.einsum("jf,jf->j", cov[ok], cov[ok]) / var[ok]
        start += cnt
    return np.sort(np.argsort(-score, kind="stable")[:k])


def _exponent(a, axis=None):
    """Binary exponent of ``max |a|`` (0 where that is 0 or not finite)."""
    m = np.max(np.abs(a), axis=axis) if np.size(a) else 0.0
    m = np.where(np.isfinite(m), m, 0.0)
    return np.frexp(m)[1]


class _AllColumnsProxy:
    """The :func:`_proxy_candidates` score of every column of ``X``, on a row sample.

    Scores all ``D`` columns at once with one GEMM per tree level:
    ``cov_b = X_s^T (F_s - mean_b(F_s))`` restricted to the rows of bucket
    ``b`` (the centring of ``F`` within the bucket makes centring ``X``
    unnecessary), ``var_b`` from per-bucket sums of ``x`` and ``x**2``. Cost
    ``O(n_s * D * nb * f)`` per level, on ``n_s`` sampled train rows.

    Parameters
    ----------
    X : (n, D) array, the train rows
    sample : (n_s,) intp, the sampled rows (indices into ``X``)
    ndims : int or None
        Score the fit of the first ``ndims`` feature columns only (the leading
        principal directions of the residual); ``None``: all of them.
    """

    def __init__(self, X, sample, ndims=None):
        self.sample = sample
        self.ndims = ndims
        Xs = np.asarray(X[sample], dtype=np.float64)
        Xs -= Xs.mean(axis=0)
        # The score of a column does not change when the column is scaled:
        # scale each by a power of two (exactly) so that float32 neither
        # overflows nor underflows, whatever the magnitude of the data.
        Xs = np.ldexp(Xs, -_exponent(Xs, axis=0))
        self.XsT = np.ascontiguousarray(Xs.T, dtype=np.float32)  # (D, n_s)
        self.Xs2T = np.ascontiguousarray((Xs * Xs).T, dtype=np.float32)

    def __call__(self, bucket, feats, k):
        b = np.take(bucket, self.sample).astype(np.intp)
        F = np.asarray(feats[:, : self.ndims], dtype=np.float64)
        F = np.take(F, self.sample, axis=0)
        F = np.ldexp(F, -_exponent(F))  # same ranking, safe in float32
        ns, f = F.shape
        rows = np.arange(ns)
        nb = int(b.max()) + 1
        cnt = np.bincount(b, minlength=nb).astype(np.float64)
        ind = np.zeros((ns, nb), dtype=np.float32)
        ind[rows, b] = 1.0
        Fm = (ind.T.astype(np.float64) @ F) / np.maximum(cnt, 1.0)[:, None]
        Fc = (F - np.take(Fm, b, axis=0)).astype(np.float32)
        # cov[j, b] = sum over the rows of bucket b of x_j * (F - mean_b F)
        # (centring F within the bucket makes centring x unnecessary) and the
        # per-bucket sums of x_j, as one GEMM against per-bucket column blocks.
        A = np.zeros((ns, nb, f + 1), dtype=np.float32)
        A[rows, b, :f] = Fc
        A[rows, b, f] = 1.0
        XA = (self.XsT @ A.reshape(ns, -1)).reshape(-1, nb, f + 1)
        cov2 = np.einsum("jbf,jbf->jb", XA[:, :, :f], XA[:, :, :f]).astype(np.float64)
        sums = XA[:, :, f].astype(np.float64)  # (D, nb)
        sq = (self.Xs2T @ ind).astype(np.float64)  # (D, nb)
        var = sq - sums**2 / np.maximum(cnt, 1.0)
        ok = var > 1e-5 * sq
        score = np.where(ok, cov2 / np.where(ok, var, 1.0), 0.0).sum(axis=1)
        return np.sort(np.argsort(-score, kind="stable")[:k])


def _learn_tree(raw, feats, ncandidates=None, proxy=False, presorted=None):
    """Learn one depth-4 hash tree by the SSE criterion.

    Parameters
    ----------
    raw : (n, d) float64
        The block's raw values, compared with the thresholds.
    feats : (n, f) float64
        The values whose within-bucket SSE is minimised (the centred block
        itself for the reference criterion, or a regression residual).
    ncandidates : int or None
        Evaluate only ``ncandidates`` columns exactly; ``None`` evaluates every
        column of ``raw``. Without ``proxy`` they are the columns with the
        largest within-bucket SSE (this requires ``feats`` to be the centred
        block, ``f == d``).
    proxy : bool or callable
        ``True``: choose the candidates by :func:`_proxy_candidates`; a
        callable ``proxy(bucket, feats, ncandidates)`` returns them.
    presorted : tuple, optional
        :func:`_presort` of ``raw``, computed when not given.

    Returns
    -------
    split_dims : (4,) intp, indices into the columns of ``raw``
    thresholds : (15,) float32, heap order
    bucket : (n,) uint8, the leaf of each row under the exact encoding rule
    """
    n, d = raw.shape
    if presorted is None:
        presorted = _presort(raw)
    # Split search in float32 (it only ranks candidate splits; the thresholds
    # come from the raw values and the buckets from the exact comparison).
    # Scaling feats by a power of two changes no ranking and no rounding, and
    # keeps float32 (and squared sums) finite for data of any magnitude.
    feats = np.ldexp(np.asarray(feats, dtype=np.float64), -_exponent(feats))
    feats32 = feats.astype(np.float32)
    bucket = np.zeros(n, dtype=np.uint8)
    split_dims = np.zeros(TREE_DEPTH, dtype=np.intp)
    thresholds = np.zeros(NLEAVES - 1, dtype=np.float32)
    for level in range(TREE_DEPTH):
        nb = 1 << level
        counts = np.bincount(bucket, minlength=nb)
        onehot = (bucket[None, :] == np.arange(nb, dtype=np.uint8)[:, None]).astype(
            np.float64
        )
        tot = onehot @ feats
        if ncandidates is None or ncandidates >= d:
            cand = np.arange(d)
        elif callable(proxy):
            cand = proxy(bucket, feats, ncandidates)
        elif proxy:
            cand = _proxy_candidates(raw, bucket, counts, feats, ncandidates)
        else:
            s2 = onehot @ (feats * feats)
            col_sse = (s2 - tot * tot / np.maximum(counts, 1)[:, None]).sum(axis=0)
            cand = np.sort(np.argsort(-col_sse, kind="stable")[:ncandidates])
        score, lo, hi, split, vmax = _split_candidates(
            presorted, cand, bucket, counts, feats32, tot
        )
        i = int(np.argmax(score))
        j, lo, hi, split, vmax = int(cand[i]), lo[i], hi[i], split[i], vmax[i]
        thr = np.zeros(nb, dtype=np.float32)
        thr[split] = _to_f32_between(lo[split], hi[split])
        nosplit = ~split & (counts > 0)
        thr[nosplit] = _to_f32_at_least(vmax[nosplit])
        split_dims[level] = j
        thresholds[nb - 1 : 2 * nb - 1] = thr
        # Exactly the call-time rule: go right when x > threshold (float32).
        right = raw[:, j] > thr[bucket].astype(np.float64)
        bucket = (2 * bucket + right).astype(np.uint8)
    return split_dims, thresholds, bucket


def _group_means(bucket, R, nleaves=NLEAVES):
    """Mean of the rows of ``R`` in each bucket, (nleaves, f); 0 for an empty bucket."""
    cnt = np.bincount(bucket, minlength=nleaves)
    sums = onehot(bucket[:, None]).T @ R
    return sums / np.maximum(cnt, 1)[:, None]


class _AllColumnsSearch:
    """What the tree search over all ``D`` columns needs, independent of ``C``.

    Built once per :func:`~approxmat._fit.fit_levels` call and reused for every
    number of codebooks: the rows the search runs on, their presorted columns
    and the proxy that ranks the columns.

    Parameters
    ----------
    X : (n, D) array, the train rows
    options : FitOptions
        Uses ``tree_sample_rows``, ``proxy_sample_rows`` and ``proxy_dims``.
    """

    def __init__(self, X, options):
        n = X.shape[0]
        self.raw_all = np.asarray(X, dtype=np.float64)
        # The tree search runs on at most tree_sample_rows evenly spaced train
        # rows (the train rows are already a random subset); the buckets of all
        # train rows then come from the exact encoding.
        rows = options.tree_sample_rows
        nt = n if rows is None else min(n, rows)
        self.sub = np.unique(np.linspace(0, n - 1, nt).astype(np.intp))
        self.raw = self.raw_all[self.sub] if len(self.sub) < n else self.raw_all
        ns = min(len(self.sub), options.proxy_sample_rows)
        sample = np.unique(np.linspace(0, len(self.sub) - 1, ns).astype(np.intp))
        self.presorted = _presort(self.raw)
        self.proxy = _AllColumnsProxy(self.raw, sample, options.proxy_dims)
        self.ncandidates = options.ncandidates_all

    def learn(self, feats):
        """One tree on the residual ``feats`` (n, f) of all train rows.

        Returns split_dims (4,), thresholds (15,) float32 and the bucket (n,)
        of every train row under the exact encoding rule.
        """
        dims, thr, bucket = _learn_tree(
            self.raw, feats[self.sub], self.ncandidates, self.proxy, self.presorted
        )
        if len(self.sub) < self.raw_all.shape[0]:
            sd = np.asarray(dims, dtype=np.int32)[None]
            bucket = encode(self.raw_all, sd, thr[None])[:, 0]
        return dims, thr, bucket


def learn_trees(X, Y, bounds, options=None, log=None, shared=None):
    """Learn the hash trees of all ``C`` codebooks on the train rows.

    Parameters
    ----------
    X : ndarray, shape (n, D)
        Train rows (float32 or float64), compared with the thresholds.
    Y : ndarray of float64, shape (n, M)
        Their exact products ``X @ W``, whose residual the trees explain in
        ``"residual"`` mode.
    bounds : ndarray of intp, shape (C + 1,)
        :func:`block_bounds` of the codebooks' contiguous blocks.
    options : FitOptions, optional
        The tree criterion and search settings; the defaults when omitted.
    log : callable, optional
        ``log(message, end="\\n")`` receives progress messages.
    shared : dict, optional
        Cache of what does not depend on ``C`` (the search over all columns),
        filled on the first call and reused by later calls on the same rows
        and options.

    Returns
    -------
    split_dims : ndarray of int32, shape (C, 4)
    thresholds : ndarray of float32, shape (C, 15)

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((300, 6))
    >>> dims, thr = learn_trees(X, X @ rng.standard_normal((6, 2)), block_bounds(6, 3))
    >>> dims.shape, thr.shape, thr.dtype
    ((3, 4), (3, 15), dtype('float32'))
    """
    if options is None:
        options = FitOptions()
    if log is None:
        log = _quiet
    if shared is None:
        shared = {}
    C = len(bounds) - 1
    split_dims = np.zeros((C, TREE_DEPTH), dtype=np.int32)
    thresholds = np.zeros((C, NLEAVES - 1), dtype=np.float32)
    if options.tree_columns == "all":
        if "all_columns" not in shared:
            shared["all_columns"] = _AllColumnsSearch(X, options)
        search = shared["all_columns"]
        blocks = None
    else:
        search = None
        blocks = [
            np.asarray(X[:, bounds[c] : bounds[c + 1]], dtype=np.float64) for c in range(C)
        ]
    orders = [None] * C

    def learn(c, feats, ncand, proxy=False):
        if search is not None:
            dims, thr, bucket = search.learn(feats)
            split_dims[c] = dims
        else:
            if orders[c] is None:
                orders[c] = _presort(blocks[c])
            dims, thr, bucket = _learn_tree(blocks[c], feats, ncand, proxy, orders[c])
            split_dims[c] = dims + bounds[c]
        thresholds[c] = thr
        return bucket

    if options.tree_mode == "reference":
        for c in range(C):
            learn(c, blocks[c] - blocks[c].mean(axis=0), options.ncandidates)
            log(f"trees {c + 1}/{C}", end="\r" if c + 1 < C else "\n")
        return split_dims, thresholds
    if "residual" not in shared or shared["residual"][0] is not Y:
        shared["residual"] = (Y, _centred_residual(Y, blocks is not None, options))
    _backfit(shared["residual"][1], learn, C, options, log)
    return split_dims, thresholds


def _centred_residual(Y, blocks, options):
    """``Y`` centred, on its leading principal directions: what the first tree fits.

    The same for every number of codebooks (:func:`learn_trees` keeps it in
    ``shared``). Principal directions first: keeping all of them is a rotation,
    which leaves every SSE unchanged; the proxy of "all" mode then only looks at
    the ``proxy_dims`` leading ones, and at most ``max_residual_dims`` are kept.
    """
    n = Y.shape[0]
    R = Y - Y.mean(axis=0)
    if R.shape[1] > (options.max_residual_dims if blocks else options.proxy_dims):
        _, _, Vt = np.linalg.svd(R[: min(n, _SVD_ROWS)], full_matrices=False)
        R = R @ Vt[: options.max_residual_dims].T
    return R


def _backfit(R, learn, C, options, log):
    """Residual mode: boosting then backfitting sweeps over the ``C`` trees.

    ``R`` is the centred residual of no tree (:func:`_centred_residual`, not
    modified); ``learn(c, feats, ncandidates, proxy)`` relearns tree ``c`` on the
    residual ``feats`` and returns the buckets of the train rows.
    """
    n = R.shape[0]
    Rc = R  # not modified
    R = R.copy()
    codes = np.zeros((n, C), dtype=np.uint8)
    tabs = np.zeros((C, NLEAVES, R.shape[1]))
    nsweeps = 1 + options.backfit_sweeps
    for sweep in range(nsweeps):
        for c in range(C):
            if sweep:
                R += tabs[c][codes[:, c]]
            codes[:, c] = learn(c, R, options.ncandidates_block, True)
            tabs[c] = _group_means(codes[:, c], R)
            R -= tabs[c][codes[:, c]]
            log(f"trees {c + 1}/{C} (sweep {sweep + 1}/{nsweeps})", end="\r")
        if sweep + 1 < nsweeps:
            # Joint least-squares tables before relearning, so that each tree
            # sees the residual of the others at their best.
            G = onehot(codes)
            dT = solve((G.T @ G).toarray(), G.T @ R, _BACKFIT_PENALTY * n / NLEAVES)
            tabs += dT.reshape(tabs.shape)
            R = Rc - G @ tabs.reshape(C * NLEAVES, -1)
    log("")


def _quiet(msg, end="\n"):
    pass
