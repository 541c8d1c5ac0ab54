"""The learner: fit MADDNESS hash trees, prototypes and 8-bit lookup tables.

Everything here runs once, at fit time, in NumPy/SciPy. The output is a list of
:class:`~approxmat._level.Level` objects whose call-time semantics are defined in
:mod:`approxmat._level` and implemented by :mod:`approxmat._reference`.

Outline of :func:`fit_levels` (see ``design/algorithm.md``):

1. The calibration rows are split at random (seeded by ``random_state``) into
   three disjoint parts: 60 % *train* rows (trees, leaf means, ridge refit,
   quantisation), 20 % *selection* rows (choice of the ridge penalty only) and
   20 % *validation* rows, which take part in no fitting decision and only
   measure :attr:`Level.error`.
2. For each number of codebooks ``C``: one depth-4 hash tree per codebook
   learnt on the train rows with the SSE criterion (one split column per
   level, a threshold per node at the midpoint of the best O(n log n)
   cumulative-sum split), thresholds rounded to float32 and the rows
   re-bucketed with exactly the call-time encoding rule. By default
   (``TREE_MODE = "residual"``) the SSE is that of the current residual of
   ``X @ W`` rather than of a block's own columns: trees are learnt one after
   the other on what the previous ones left unexplained (boosting), then
   ``BACKFIT_SWEEPS = 2`` sweeps relearn every tree against the others' jointly
   refit tables. ``TREE_MODE = "reference"`` is the paper's criterion (SSE over
   the block's columns, 4 highest-SSE candidates, contiguous blocks).

   **Measured deviation from design/algorithm.md (split columns).** The paper
   restricts codebook ``c`` to a contiguous block of ``D / C`` columns. The
   call-time contract (:mod:`approxmat._level`) allows any column, and in
   residual mode nothing ties a tree to its block (the refit prototypes are
   dense anyway), so by default (``SPLIT_COLUMNS = "all"``) every tree may
   split on any of the ``D`` columns: per level, all ``D`` columns are ranked
   by a cheap proxy (the residual variance explained by a per-bucket linear
   fit on the column, :class:`_AllColumnsProxy`, one GEMM on 4096 sampled
   train rows) and the exact SSE search runs on the best 8. ``SPLIT_COLUMNS =
   "block"`` keeps the contiguous blocks (proxy over the block's columns).
   On ``benchmarks/accuracy.py`` (rank-32 data, D = 512, M = 10, seed 0) the
   test error went from 0.437 / 0.333 / 0.239 (C = 16 / 32 / 64; blocks, one
   backfitting sweep) to 0.415 / 0.265 / 0.151 ("all", two sweeps; "block"
   with two sweeps: 0.436 / 0.313 / 0.187), for about 1.1x the CPU time of
   the default ladder (the exact split search was also made faster).
3. Prototypes: leaf means (of each codebook's contiguous-block partial
   product ``X[:, block] @ W[block]``, also in "all" mode, where it is only
   the centre of the ridge penalty), then the joint ridge refit of all ``C * 16``
   prototypes on the one-hot codes. Since the tables are ``T = P @ W`` and both
   the refit and the table product are linear, the refit is computed directly
   on the tables (target ``X @ W``, ``M`` right-hand sides instead of ``D``);
   this is algebraically the same ridge solution. The penalty is chosen on the
   selection rows from a small grid, then the refit is repeated on train plus
   selection rows.
4. 8-bit quantisation with a per-output-column scale and a per-(codebook,
   column) offset folded into ``offset[m]``, followed by a per-column
   least-squares correction of ``scale``/``offset`` (the sums are exact, so the
   only error is the rounding of the tables). The reference scheme (one global
   scale, per-codebook offsets) is also computed and the more accurate of the
   two on the fitting rows is kept.
"""

from __future__ import annotations

import numbers
import sys
import time

import numpy as np
import scipy.linalg
import scipy.sparse

from ._level import MAX_CODEBOOKS, NLEAVES, TREE_DEPTH, Level
from ._reference import approx_matmul, encode

__all__ = ["fit_levels", "default_ncodebooks", "MIN_CALIBRATION_ROWS"]

#: Fewest calibration rows :func:`fit_levels` accepts: 60 % of them (120 rows,
#: 7.5 per leaf) learn the trees, 20 % (40) choose the ridge penalty and 20 % (40)
#: validate the error.
MIN_CALIBRATION_ROWS = 200

#: Fractions of the calibration rows used for penalty selection and validation;
#: the rest (60 %) are train rows.
SELECT_FRACTION = 0.2
VALIDATE_FRACTION = 0.2

#: The default ladder of operating points, capped by ``D``.
DEFAULT_LADDER = (4, 8, 16, 32, 64)

#: Candidate split columns per tree level (the reference uses 4).
NCANDIDATES = 4

#: Ridge penalties tried, in units of the mean number of train rows per leaf;
#: the best one is then refined by factors of sqrt(10) either side.
_LAMBDA_GRID = (1e-4, 1e-3, 1e-2, 0.1, 1.0)


# --------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------


def default_ncodebooks(D):
    """The default ladder of codebook counts for ``D`` input columns.

    Powers of two 4, 8, 16, 32 and 64 that do not exceed ``D`` (each codebook
    needs at least one column); ``[D]`` when ``D < 4``.

    Examples
    --------
    >>> default_ncodebooks(512)
    [4, 8, 16, 32, 64]
    >>> default_ncodebooks(20)
    [4, 8, 16]
    >>> default_ncodebooks(3)
    [3]
    """
    ladder = [c for c in DEFAULT_LADDER if c <= min(D, MAX_CODEBOOKS)]
    return ladder or [min(D, MAX_CODEBOOKS)]


def _check_ncodebooks(ncodebooks, D):
    if ncodebooks is None:
        return default_ncodebooks(D)
    if isinstance(ncodebooks, (numbers.Integral, np.integer)) and not isinstance(
        ncodebooks, (bool, np.bool_)
    ):
        values = [ncodebooks]
    elif isinstance(ncodebooks, (str, bytes)) or not np.iterable(ncodebooks):
        raise TypeError(
            "ncodebooks must be None, an int or a sequence of ints, "
            f"got {type(ncodebooks).__name__}"
        )
    else:
        values = list(ncodebooks)
        if not values:
            raise ValueError(
                "ncodebooks is empty; pass at least one number of codebooks "
                "or None for the default ladder"
            )
    out = set()
    for c in values:
        if isinstance(c, (bool, np.bool_)) or not isinstance(
            c, (numbers.Integral, np.integer)
        ):
            raise TypeError(
                f"ncodebooks must contain ints, got {c!r} of type {type(c).__name__}"
            )
        c = int(c)
        if not 1 <= c <= MAX_CODEBOOKS:
            raise ValueError(
                f"ncodebooks={c} is out of range: each number of codebooks must be "
                f"in [1, {MAX_CODEBOOKS}]"
            )
        if c > D:
            raise ValueError(
                f"ncodebooks={c} exceeds the number of columns D={D}; each codebook "
                f"needs at least one column, so use at most {D} codebooks"
            )
        out.add(c)
    return sorted(out)


def _check_calibration(X_cal, D):
    X = np.asarray(X_cal)
    if X.dtype.kind not in "fiu":
        raise TypeError(
            f"X_cal must be a real numeric array, got dtype {X.dtype}; "
            "convert it with np.asarray(X_cal, dtype=np.float32) (or float64)"
        )
    if X.ndim != 2:
        hint = " (for a single row use X_cal.reshape(1, -1))" if X.ndim == 1 else ""
        raise ValueError(
            f"X_cal must be a 2-D array of shape (N, {D}), got a {X.ndim}-D array "
            f"of shape {X.shape}{hint}"
        )
    if X.shape[1] != D:
        raise ValueError(
            f"X_cal has the wrong width: expected shape (N, {D}) to match weights "
            f"of shape ({D}, M), got {X.shape[1]} columns (shape {X.shape})"
        )
    N = X.shape[0]
    if N < MIN_CALIBRATION_ROWS:
        raise ValueError(
            f"too few calibration rows: got {N}, need at least "
            f"{MIN_CALIBRATION_ROWS} (60% learn the 16-leaf hash trees, 20% choose "
            "the ridge penalty and 20% are held out to validate the error); "
            "pass more representative rows"
        )
    if X.dtype.kind == "f":
        if X.dtype.itemsize < 4:
            X = X.astype(np.float32)
        finite = np.isfinite(X)
        if not finite.all():
            bad = np.argwhere(~finite)
            r, c = bad[0]
            raise ValueError(
                f"X_cal contains {len(bad)} non-finite value(s) (NaN or inf), the "
                f"first at row {r}, column {c} (value {X[r, c]}); remove or impute "
                "them before fitting"
            )
    else:
        X = X.astype(np.float64)
    return X


# --------------------------------------------------------------------------
# Trees
# --------------------------------------------------------------------------


def _block_bounds(D, C):
    """Column bounds of the C contiguous blocks; the first D % C get one extra."""
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

    Row-major per column so that each candidate's data is contiguous.
    """
    order = np.argsort(raw, axis=0, kind="stable").T
    idx = np.int32 if raw.shape[0] < 2**31 else np.intp
    order = np.ascontiguousarray(order, dtype=idx)
    values = np.take_along_axis(raw.T, order, axis=1)
    return order, np.ascontiguousarray(values)


def _split_candidates(presorted, cand, bucket, counts, feats, tot):
    """Best SSE split of every bucket, for each candidate column.

    Rows are sorted by (bucket, value) and cumulative feature sums give, for
    every split position, ``gain = |S_L|^2 / n_L + |S_R|^2 / n_R``; the SSE of
    the split is the bucket's sum of squares minus this gain, so maximising the
    gain minimises SSE(left) + SSE(right). Only positions between two distinct
    values are valid; the threshold is their midpoint. With ``S_R = S - S_L``,
    ``|S_R|^2 = |S|^2 - 2 S.S_L + |S_L|^2``, so only ``S_L`` is accumulated.

    Parameters
    ----------
    presorted : ((d, n) int, (d, n) float64), :func:`_presort` of the raw values
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
    n = order.shape[1]
    nb = counts.shape[0]
    k = cand.shape[0]
    f = feats.shape[1]
    starts = np.zeros(nb, dtype=np.intp)
    starts[1:] = np.cumsum(counts)[:-1]
    bs = np.repeat(np.arange(nb), counts)  # bucket of each sorted position
    nl = np.arange(1, n + 1, dtype=np.float64) - starts[bs]
    nr = counts[bs] - nl
    inv_nl = 1.0 / nl
    inv_nr = 1.0 / np.maximum(nr, 1.0)
    totb = np.take(tot.astype(feats.dtype), bs, axis=0)  # (n, f)
    tt = np.einsum("bf,bf->b", tot, tot)
    ttb = tt[bs]
    ne = counts > 0
    st = starts[ne]
    last = st + counts[ne] - 1
    seg = (np.cumsum(ne) - 1)[bs]
    inner = np.flatnonzero(starts > 0)  # buckets whose prefix sums need a base
    notlast = nr[:-1] > 0
    nosplit_gain = tt[ne] / counts[ne]
    positions = np.arange(n)

    score = np.zeros(k)
    lo = np.zeros((k, nb))
    hi = np.zeros((k, nb))
    split = np.zeros((k, nb), dtype=bool)
    vmax = np.zeros((k, nb))
    for i, j in enumerate(cand):
        o = order[j]
        v = values[j]
        if nb > 1:
            # Stable sort of the value-sorted rows by bucket: rows end up sorted
            # by (bucket, value). bucket is uint8 so NumPy uses a radix sort.
            # (np.take is much faster than fancy indexing here.)
            perm = np.argsort(np.take(bucket, o), kind="stable")
            o = np.take(o, perm)
            v = np.take(v, perm)
        left = np.cumsum(np.take(feats, o, axis=0), axis=0)  # (n, f)
        if inner.size:
            base = np.zeros((nb, f), dtype=left.dtype)
            base[inner] = left[starts[inner] - 1]
            left -= np.take(base, bs, axis=0)
        ll = np.einsum("if,if->i", left, left).astype(np.float64)
        tl = np.einsum("if,if->i", left, totb).astype(np.float64)
        gain = ll * inv_nl + (ttb - 2.0 * tl + ll) * inv_nr
        valid = np.zeros(n, dtype=bool)
        valid[:-1] = (v[:-1] < v[1:]) & notlast
        gain[~valid] = -np.inf
        segmax = np.maximum.reduceat(gain, st)
        first = np.where(gain == segmax[seg], positions, n)
        pos = np.minimum(np.minimum.reduceat(first, st), n - 2)
        has = segmax > -np.inf
        score[i] = np.where(has, segmax, nosplit_gain).sum()
        lo[i, ne] = v[pos]
        hi[i, ne] = v[pos + 1]
        split[i, ne] = has
        vmax[i, ne] = v[last]
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
    """

    def __init__(self, X, sample):
        self.sample = sample
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
        F = np.asarray(feats[:, :PROXY_DIMS], dtype=np.float64)
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
    f = feats.shape[1]
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
    cnt = np.bincount(bucket, minlength=nleaves)
    sums = np.zeros((nleaves, R.shape[1]))
    for m in range(R.shape[1]):
        sums[:, m] = np.bincount(bucket, weights=R[:, m], minlength=nleaves)
    return sums / np.maximum(cnt, 1)[:, None]


#: Tree criterion. "residual": each tree minimises the SSE of the current
#: residual of ``X @ W`` (boosting), then ``BACKFIT_SWEEPS`` sweeps relearn each
#: tree against the residual of the others (2 sweeps instead of 1: C = 32 test
#: error 0.273 -> 0.265 on the benchmark, seeds 0-3 all improve, ~1.4x tree time).
#: "reference": the paper's criterion, SSE of the block's own columns, with the
#: ``NCANDIDATES`` highest-SSE columns as candidates.
TREE_MODE = "residual"
BACKFIT_SWEEPS = 2
#: Residual features are projected on at most this many principal directions.
MAX_RESIDUAL_DIMS = 64
#: Candidate columns evaluated exactly per tree level in "residual" mode with
#: "block" split columns, chosen by a linear-fit proxy (None: every column of
#: the block).
NCANDIDATES_RESIDUAL = 8
#: Which columns a codebook's tree may split on: "block" (its contiguous block,
#: as in the paper) or "all" (any of the D columns; "residual" mode only).
SPLIT_COLUMNS = "all"
#: In "all" mode: candidates evaluated exactly per level, chosen by the
#: linear-fit proxy computed on at most PROXY_SAMPLE_ROWS train rows. (On the
#: benchmark 4, 6 or 12 candidates and 2048 or 8192 proxy rows all measured
#: worse at C = 32 than 8 and 4096 on seed 0; the differences are of the
#: order of the seed-to-seed spread, about 0.01-0.02. Only 4 candidates in the
#: first, boosting sweep to save time: C = 32 0.265 -> 0.292.)
NCANDIDATES_ALL = 8
PROXY_SAMPLE_ROWS = 4096
#: The proxy scores the fit of at most this many leading principal directions
#: of the residual (its cost grows with their number; the exact search uses all).
PROXY_DIMS = 16
#: In "all" mode the tree search may run on at most this many evenly spaced
#: train rows (None: all of them); the buckets of every train row then come
#: from the exact encoding. Measured to cost accuracy on the rank-32 benchmark
#: (C = 32: 0.273 -> 0.287 with 6000 of 12000 rows), so off by default.
TREE_SAMPLE_ROWS = None


def _learn_trees(X, Y, bounds, log, mode=None, columns=None, shared=None):
    """Trees for all codebooks. Returns split_dims (C,4) int32, thresholds (C,15).

    ``columns`` (default :data:`SPLIT_COLUMNS`) is ``"block"`` (each tree splits
    on columns of its own block) or ``"all"`` (any column; "residual" mode
    only). ``shared`` caches what does not depend on ``C`` between calls.
    """
    mode = mode or TREE_MODE
    columns = columns or SPLIT_COLUMNS
    if columns not in ("block", "all"):
        raise ValueError(f"unknown split-column mode {columns!r}")
    if mode == "reference":
        columns = "block"
    if shared is None:
        shared = {}
    C = len(bounds) - 1
    n = X.shape[0]
    split_dims = np.zeros((C, TREE_DEPTH), dtype=np.int32)
    thresholds = np.zeros((C, NLEAVES - 1), dtype=np.float32)
    if columns == "all":
        if "raw" not in shared:
            raw_all = np.asarray(X, dtype=np.float64)
            # The tree search runs on at most TREE_SAMPLE_ROWS evenly spaced
            # train rows (the train rows are already a random subset); the
            # buckets of all train rows then come from the exact encoding.
            nt = n if TREE_SAMPLE_ROWS is None else min(n, TREE_SAMPLE_ROWS)
            sub = np.unique(np.linspace(0, n - 1, nt).astype(np.intp))
            raw = raw_all[sub] if len(sub) < n else raw_all
            ns = min(len(sub), PROXY_SAMPLE_ROWS)
            sample = np.unique(np.linspace(0, len(sub) - 1, ns).astype(np.intp))
            shared.update(
                raw=raw, sub=sub, raw_all=raw_all, presorted=_presort(raw),
                proxy=_AllColumnsProxy(raw, sample),
            )
        raw, sub, raw_all = shared["raw"], shared["sub"], shared["raw_all"]
        presorted, proxy_all = shared["presorted"], shared["proxy"]
        blocks = None
    else:
        blocks = [
            np.asarray(X[:, bounds[c] : bounds[c + 1]], dtype=np.float64) for c in range(C)
        ]
    orders = [None] * C

    def learn(c, feats, ncand, proxy=False):
        if blocks is None:
            dims, thr, bucket = _learn_tree(
                raw, feats[sub], NCANDIDATES_ALL, proxy_all, presorted
            )
            split_dims[c] = dims
            thresholds[c] = thr
            if len(sub) < n:
                bucket = encode(raw_all, split_dims[c : c + 1], thr[None])[:, 0]
            return bucket
        if orders[c] is None:
            orders[c] = _presort(blocks[c])
        dims, thr, bucket = _learn_tree(blocks[c], feats, ncand, proxy, orders[c])
        split_dims[c] = dims + bounds[c]
        thresholds[c] = thr
        return bucket

    if mode == "reference":
        for c in range(C):
            learn(c, blocks[c] - blocks[c].mean(axis=0), NCANDIDATES)
            log(f"trees {c + 1}/{C}", end="\r" if c + 1 < C else "\n")
        return split_dims, thresholds
    if mode != "residual":
        raise ValueError(f"unknown tree mode {mode!r}")

    R = Y - Y.mean(axis=0)
    if R.shape[1] > (MAX_RESIDUAL_DIMS if blocks is not None else PROXY_DIMS):
        # Principal directions first. Keeping all of them is a rotation, which
        # leaves every SSE unchanged; the proxy of "all" mode then only looks
        # at the PROXY_DIMS leading ones.
        _, _, Vt = np.linalg.svd(R[: min(n, 4096)], full_matrices=False)
        R = R @ Vt[:MAX_RESIDUAL_DIMS].T
    Rc = R.copy()
    codes = np.zeros((n, C), dtype=np.uint8)
    tabs = np.zeros((C, NLEAVES, R.shape[1]))
    nsweeps = 1 + BACKFIT_SWEEPS
    for sweep in range(nsweeps):
        for c in range(C):
            if sweep:
                R += tabs[c][codes[:, c]]
            codes[:, c] = learn(c, R, NCANDIDATES_RESIDUAL, True)
            tabs[c] = _group_means(codes[:, c], R)
            R -= tabs[c][codes[:, c]]
            log(f"trees {c + 1}/{C} (sweep {sweep + 1}/{nsweeps})", end="\r")
        if sweep + 1 < nsweeps:
            # Joint least-squares tables before relearning, so that each tree
            # sees the residual of the others at their best.
            G = _onehot(codes)
            dT = _solve((G.T @ G).toarray(), G.T @ R, 1e-3 * n / NLEAVES)
            tabs += dT.reshape(tabs.shape)
            R = Rc - G @ tabs.reshape(C * NLEAVES, -1)
    log("")
    return split_dims, thresholds


# --------------------------------------------------------------------------
# Prototypes / tables
# --------------------------------------------------------------------------


def _onehot(codes):
    """Sparse (N, C*16) indicator matrix of the codes."""
    N, C = codes.shape
    cols = (np.arange(C, dtype=np.intp) * NLEAVES + codes).ravel()
    indptr = np.arange(0, N * C + 1, C, dtype=np.intp)
    data = np.ones(N * C, dtype=np.float64)
    return scipy.sparse.csr_matrix((data, cols, indptr), shape=(N, C * NLEAVES))


def _leaf_means(codes, partial, bounds_of_c=None):
    """Leaf means of each codebook's partial product, (C, 16, M).

    ``partial[c]`` is ``X[:, block_c] @ W[block_c]`` (N, M). Empty leaves take the
    mean of their nearest non-empty ancestor bucket.
    """
    C = codes.shape[1]
    M = partial[0].shape[1]
    T0 = np.zeros((C, NLEAVES, M))
    for c in range(C):
        code = codes[:, c].astype(np.intp)
        cnt = np.bincount(code, minlength=NLEAVES)
        sums = np.zeros((NLEAVES, M))
        for m in range(M):
            sums[:, m] = np.bincount(code, weights=partial[c][:, m], minlength=NLEAVES)
        for k in range(NLEAVES):
            if cnt[k] > 0:
                T0[c, k] = sums[k] / cnt[k]
                continue
            for shift in range(1, TREE_DEPTH + 1):
                sel = (np.arange(NLEAVES) >> shift) == (k >> shift)
                n_anc = cnt[sel].sum()
                if n_anc > 0:
                    T0[c, k] = sums[sel].sum(axis=0) / n_anc
                    break
    return T0


def _partials(X, W, bounds):
    return [
        np.asarray(X[:, bounds[c] : bounds[c + 1]], dtype=np.float64)
        @ W[bounds[c] : bounds[c + 1]]
        for c in range(len(bounds) - 1)
    ]


def _ridge_tables(codes, Y, partial, lam):
    """Leaf means then the joint ridge refit; returns tables (C, 16, M)."""
    C = codes.shape[1]
    M = Y.shape[1]
    T0 = _leaf_means(codes, partial)
    G = _onehot(codes)
    R = Y - G @ T0.reshape(C * NLEAVES, M)
    GtG = (G.T @ G).toarray()
    GtR = G.T @ R
    return T0, GtG, GtR


def _solve(GtG, GtR, lam):
    A = GtG.copy()
    A[np.diag_indices_from(A)] += lam
    cf = scipy.linalg.cho_factor(A, lower=True, check_finite=False)
    return scipy.linalg.cho_solve(cf, GtR, check_finite=False)


def _predict(codes, T):
    C, K, M = T.shape
    return _onehot(codes) @ T.reshape(C * K, M)


def _relerr(Yhat, Y):
    den = np.linalg.norm(Y)
    num = np.linalg.norm(Yhat - Y)
    if den == 0:
        return 0.0 if num == 0 else float("inf")
    return float(num / den)


# --------------------------------------------------------------------------
# Quantisation
# --------------------------------------------------------------------------


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


def _affine_correct(acc, Y, scale, offset):
    """Per-column least squares of ``Y ~ a * acc + b``; falls back to the given pair."""
    acc = acc.astype(np.float64)
    am = acc.mean(axis=0)
    ym = Y.mean(axis=0)
    da = acc - am
    var = np.einsum("ij,ij->j", da, da)
    cov = np.einsum("ij,ij->j", da, Y - ym)
    ok = var > 0
    a = np.where(ok, cov / np.where(ok, var, 1.0), scale)
    b = np.where(ok, ym - a * am, ym - scale * am)
    return a, b


def _table_sums(codes, luts):
    C = codes.shape[1]
    return _onehot(codes) @ luts.reshape(C * NLEAVES, -1).astype(np.float64)


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------


def _fit_one(
    C, X, W, idx_tr, idx_sel, idx_fit, Y_tr, Y_sel, Y_fit, log, stats, mode, columns=None,
    shared=None,
):
    D = X.shape[1]
    bounds = _block_bounds(D, C)
    X_tr = X[idx_tr]
    t0 = time.perf_counter()
    split_dims, thresholds = _learn_trees(X_tr, Y_tr, bounds, log, mode, columns, shared)
    stats["time_trees"] = time.perf_counter() - t0

    # Codes under exactly the call-time rule.
    codes_tr = encode(X_tr, split_dims, thresholds)
    codes_sel = encode(X[idx_sel], split_dims, thresholds)
    codes_fit = np.concatenate([codes_tr, codes_sel])
    n_tr = len(idx_tr)

    # Penalty selection on the selection rows.
    T0, GtG, GtR = _ridge_tables(codes_tr, Y_tr, _partials(X_tr, W, bounds), None)
    unit = n_tr / NLEAVES
    G_sel = _onehot(codes_sel)
    best = (_relerr(G_sel @ T0.reshape(C * NLEAVES, -1), Y_sel), None)
    stats["sel_err_leafmeans"] = best[0]
    tried = {}

    def try_penalty(g):
        if g in tried:
            return
        T = T0 + _solve(GtG, GtR, g * unit).reshape(T0.shape)
        tried[g] = _relerr(G_sel @ T.reshape(C * NLEAVES, -1), Y_sel)

    for g in _LAMBDA_GRID:
        try_penalty(g)
    g = min(tried, key=tried.get)
    for h in (g / 10**0.5, g * 10**0.5):
        try_penalty(h)
    g = min(tried, key=tried.get)
    if tried[g] < best[0]:
        best = (tried[g], g)
    stats["sel_err"] = best[0]
    stats["lambda"] = best[1]
    log(f"ridge penalty {best[1]} x rows/leaf (selection error {best[0]:.4f})")

    # Final tables on train + selection rows.
    X_fit = X[idx_fit]
    T0, GtG, GtR = _ridge_tables(codes_fit, Y_fit, _partials(X_fit, W, bounds), None)
    if best[1] is None:
        T = T0
    else:
        T = T0 + _solve(GtG, GtR, best[1] * len(idx_fit) / NLEAVES).reshape(T0.shape)

    # Quantisation: pick the scheme with the lower error on the fitting rows.
    Yhat_real = _predict(codes_fit, T)
    stats["fit_err_real"] = _relerr(Yhat_real, Y_fit)
    choice = None
    for scheme in ("column", "global"):
        luts, scale, offset = quantize_tables(T, scheme)
        acc = _table_sums(codes_fit, luts)
        err_plain = _relerr(acc * scale + offset, Y_fit)
        a, b = _affine_correct(acc, Y_fit, scale, offset)
        err = _relerr(acc * a + b, Y_fit)
        stats[f"fit_err_{scheme}"] = err_plain
        stats[f"fit_err_{scheme}_corrected"] = err
        if choice is None or err < choice[0]:
            choice = (err, scheme, luts, a, b)
    stats["scheme"] = choice[1]
    _, _, luts, scale, offset = choice
    return Level(
        split_dims=split_dims,
        thresholds=thresholds,
        luts=np.ascontiguousarray(luts),
        scale=np.ascontiguousarray(scale, dtype=np.float64),
        offset=np.ascontiguousarray(offset, dtype=np.float64),
    )


def fit_levels(
    X_cal, weights, ncodebooks=None, *, random_state=None, progress=False, _stats=None,
    _mode=None, _columns=None,
):
    """Learn lookup-table approximations of ``x @ weights``, one per codebook count.

    Parameters
    ----------
    X_cal : array_like, shape (N, D)
        Calibration rows resembling the future left operands. Real, finite, with
        at least :data:`MIN_CALIBRATION_ROWS` (200) rows. float32 rows are used
        as float32 for the threshold comparisons (so fit and call agree bit for
        bit); integers are converted to float64.
    weights : ndarray, shape (D, M)
        The right operand (real, finite).
    ncodebooks : int or sequence of int, optional
        Numbers of codebooks ``C`` to fit, each in ``[1, min(D, 256)]``;
        duplicates are ignored. The default is :func:`default_ncodebooks`:
        4, 8, 16, 32, 64 capped by ``D``.
    random_state : None, int or numpy.random.Generator, optional
        Seeds the random split of the calibration rows into 60 % train, 20 %
        penalty-selection and 20 % validation rows. The result is
        deterministic for a given integer seed.
    progress : bool, optional
        Print progress to standard error.

    Returns
    -------
    list of Level
        Sorted by ``ncodebooks``. Each ``error`` is the relative Frobenius error
        ``||Y_hat - Y||_F / ||Y||_F`` of :func:`approxmat._reference.approx_matmul`
        in float64 on the validation rows, which take part in no fitting decision.

    Raises
    ------
    TypeError
        If ``X_cal`` is not real or ``ncodebooks`` is not int(s).
    ValueError
        If ``X_cal`` has the wrong shape, non-finite values or too few rows, or a
        number of codebooks is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((400, 8)) @ rng.standard_normal((8, 16))
    >>> weights = rng.standard_normal((16, 3))
    >>> levels = fit_levels(X, weights, [2, 4], random_state=0)
    >>> [lv.ncodebooks for lv in levels]
    [2, 4]
    >>> levels[1].luts.shape, levels[1].error < levels[0].error < 1
    ((4, 16, 3), True)
    """
    W = np.asarray(weights)
    if W.ndim != 2:
        raise ValueError(f"weights must be 2-D (D, M), got shape {W.shape}")
    D, M = W.shape
    Cs = _check_ncodebooks(ncodebooks, D)
    X = _check_calibration(X_cal, D)
    W = W.astype(np.float64)
    N = X.shape[0]

    rng = np.random.default_rng(random_state)
    perm = rng.permutation(N)
    n_val = int(round(N * VALIDATE_FRACTION))
    n_sel = int(round(N * SELECT_FRACTION))
    idx_val = np.sort(perm[:n_val])
    idx_sel = np.sort(perm[n_val : n_val + n_sel])
    idx_tr = np.sort(perm[n_val + n_sel :])
    idx_fit = np.concatenate([idx_tr, idx_sel])

    # BLAS work here is small (Gram matrices up to 4096 x 4096, thin GEMMs); with
    # several BLAS threads on a busy machine their spin-waits can cost more than
    # the work, so run it single-threaded.
    with _single_threaded_blas():
        return _fit_all(
            Cs, X, W, idx_tr, idx_sel, idx_fit, idx_val, progress, _stats, _mode, _columns
        )


class _single_threaded_blas:
    def __enter__(self):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            self._limits = None
        else:
            self._limits = threadpool_limits(1, user_api="blas")
        return self

    def __exit__(self, *exc):
        if self._limits is not None:
            self._limits.restore_original_limits()


def _fit_all(Cs, X, W, idx_tr, idx_sel, idx_fit, idx_val, progress, _stats, _mode,
             _columns=None):
    def matmul(idx):
        return np.asarray(X[idx], dtype=np.float64) @ W

    Y_tr, Y_sel, Y_val = matmul(idx_tr), matmul(idx_sel), matmul(idx_val)
    Y_fit = np.concatenate([Y_tr, Y_sel])
    X_val = X[idx_val]

    levels = []
    shared = {}  # C-independent tree-search data (sorted train columns, ...)
    for i, C in enumerate(Cs):
        t0 = time.perf_counter()
        prefix = f"approxmat fit [{i + 1}/{len(Cs)}] C={C}: "

        def log(msg, end="\n", _prefix=prefix):
            if progress:
                print(_prefix + msg, end=end, file=sys.stderr, flush=True)

        stats = {}
        level = _fit_one(
            C, X, W, idx_tr, idx_sel, idx_fit, Y_tr, Y_sel, Y_fit, log, stats, _mode,
            _columns, shared,
        )
        err = _relerr(approx_matmul(X_val, level, np.float64), Y_val)
        level = Level(
            split_dims=level.split_dims,
            thresholds=level.thresholds,
            luts=level.luts,
            scale=level.scale,
            offset=level.offset,
            error=err,
        )
        stats["time"] = time.perf_counter() - t0
        stats["val_err"] = err
        log(f"validated error {err:.4f} ({stats['time']:.1f} s)")
        if _stats is not None:
            _stats.append(dict(ncodebooks=C, **stats))
        levels.append(level)
    return levels
