"""The learner's driver: input checks, the split of the calibration rows, each level.

:func:`fit_levels` checks its inputs, splits the calibration rows at random
into train, selection and validation rows (:class:`_Calibration`), then for
each number of codebooks learns the trees (:mod:`._trees`), the real tables
and their ridge penalty (:mod:`._tables`) and the 8-bit tables
(:mod:`._quantise`), and measures the error on the validation rows.
"""

from __future__ import annotations

import numbers
import sys
import time
from dataclasses import dataclass

import numpy as np

from .._level import MAX_CODEBOOKS, Level
from .._reference import approx_matmul, encode
from ._options import FitOptions
from ._quantise import quantize_for_codes
from ._tables import Blocks, choose_penalty, predict, relative_error, ridge_refit
from ._lowrank import default_ranks, fit_lowrank
from ._trees import block_bounds, learn_trees

__all__ = [
    "DEFAULT_LADDER",
    "MIN_CALIBRATION_ROWS",
    "SELECT_FRACTION",
    "VALIDATE_FRACTION",
    "default_ncodebooks",
    "fit_levels",
    "fit_points",
]

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


def default_ncodebooks(D):
    """The default ladder of codebook counts for ``D`` input columns.

    Parameters
    ----------
    D : int
        Number of input columns, ``>= 1``.

    Returns
    -------
    list of int
        The powers of two of :data:`DEFAULT_LADDER` (4, 8, 16, 32 and 64) that
        do not exceed ``D`` (each codebook needs at least one column); ``[D]``
        when ``D < 4``.

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
    """The sorted distinct numbers of codebooks to fit; raises on bad input."""
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
    """``X_cal`` as a float32 or float64 array of shape (N, D); raises on bad input.

    Floats narrower than float32 become float32 and integers float64.
    """
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


@dataclass(frozen=True, eq=False)
class _Calibration:
    """The calibration rows split into disjoint parts, with their exact products.

    ``idx_*`` are sorted row indices into ``X``: *train* rows learn the trees,
    the leaf means and the refit; *selection* rows choose the ridge penalty;
    *fit* rows (train then selection) refit the final tables and correct the
    quantisation; *validation* rows take part in no fitting decision and only
    measure the error. ``Y_*`` are the float64 products ``X[idx] @ W``.

    ``Z_*`` are the same products in coordinates of the row space of ``W``: when
    ``W`` has more columns than rows (``M > D``), ``V`` (M, D) holds orthonormal
    right singular vectors of ``W``, ``W_z = W @ V`` and ``Z = X @ W_z = Y @ V``;
    since ``Y = Z @ V.T``, every sum of squares of the trees, the tables and the
    ridge penalty is the same in ``Z`` as in ``Y`` (with ``D`` instead of ``M``
    columns), and tables ``T_z`` fitted to ``Z`` are ``T = T_z @ V.T``. Otherwise
    ``V`` is None and ``Z_*`` are ``Y_*``.
    """

    X: np.ndarray
    W: np.ndarray
    idx_tr: np.ndarray
    idx_sel: np.ndarray
    idx_fit: np.ndarray
    idx_val: np.ndarray
    Y_tr: np.ndarray
    Y_sel: np.ndarray
    Y_fit: np.ndarray
    Y_val: np.ndarray
    V: np.ndarray | None
    W_z: np.ndarray
    Z_tr: np.ndarray
    Z_sel: np.ndarray
    Z_fit: np.ndarray

    def full_tables(self, T_z):
        """Tables ``(C, 16, M)`` of ``Y`` from tables fitted to ``Z``."""
        return T_z if self.V is None else T_z @ self.V.T

    @classmethod
    def split(cls, X, W, random_state):
        """Split the rows of ``X`` at random (seeded by ``random_state``)."""
        N = X.shape[0]
        rng = np.random.default_rng(random_state)
        perm = rng.permutation(N)
        n_val = int(round(N * VALIDATE_FRACTION))
        n_sel = int(round(N * SELECT_FRACTION))
        idx_val = np.sort(perm[:n_val])
        idx_sel = np.sort(perm[n_val : n_val + n_sel])
        idx_tr = np.sort(perm[n_val + n_sel :])
        idx_fit = np.concatenate([idx_tr, idx_sel])

        def matmul(idx, weights=W):
            return np.asarray(X[idx], dtype=np.float64) @ weights

        Y_tr, Y_sel, Y_val = matmul(idx_tr), matmul(idx_sel), matmul(idx_val)
        Y_fit = np.concatenate([Y_tr, Y_sel])
        D, M = W.shape
        if M > D:
            _, _, Vt = np.linalg.svd(W, full_matrices=False)
            V = np.ascontiguousarray(Vt.T)
            W_z = W @ V
            Z_tr, Z_sel = matmul(idx_tr, W_z), matmul(idx_sel, W_z)
            Z_fit = np.concatenate([Z_tr, Z_sel])
        else:
            V, W_z, Z_tr, Z_sel, Z_fit = None, W, Y_tr, Y_sel, Y_fit
        return cls(X, W, idx_tr, idx_sel, idx_fit, idx_val, Y_tr, Y_sel, Y_fit, Y_val,
                   V, W_z, Z_tr, Z_sel, Z_fit)


def fit_levels(
    X_cal, weights, ncodebooks=None, *, random_state=None, progress=False, options=None,
    _stats=None,
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
    options : FitOptions, optional
        Tree criterion and search settings; the measured defaults when omitted.
    _stats : list, optional
        Diagnostics: one dict per level is appended (selection and fitting
        errors, the penalty, the quantisation scheme, times), for benchmarks.

    Returns
    -------
    list of Level
        Sorted by ``ncodebooks``. Each ``error`` is the relative Frobenius error
        ``||Y_hat - Y||_F / ||Y||_F`` of :func:`approxmat._reference.approx_matmul`
        in float64 on the validation rows, which take part in no fitting decision.

    Raises
    ------
    TypeError
        If ``X_cal`` is not real, ``ncodebooks`` is not int(s) or ``options``
        is not a :class:`FitOptions`.
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

    The paper's tree criterion, for comparison:

    >>> from approxmat._fit import FitOptions
    >>> ref = fit_levels(X, weights, 4, random_state=0,
    ...                  options=FitOptions(tree_mode="reference"))
    >>> ref[0].error < 1
    True
    """
    if _is_empty(ncodebooks):
        _check_ncodebooks(ncodebooks, 1)  # raises: an empty ladder fits nothing
    return fit_points(X_cal, weights, ncodebooks, (), random_state=random_state,
                      progress=progress, options=options, _stats=_stats)


def fit_points(
    X_cal, weights, ncodebooks=None, ranks=None, *, random_state=None, progress=False,
    options=None, _stats=None,
):
    """Learn lookup-table levels and low-rank points from one split of the rows.

    Parameters
    ----------
    X_cal, weights, random_state, progress, options
        As for :func:`fit_levels`.
    ncodebooks : int, sequence of int or None
        Lookup-table levels to fit (:func:`fit_levels`'s default ladder when
        None); an empty sequence fits none.
    ranks : int, sequence of int or None
        Ranks of low-rank points, each in ``[1, min(D, M)]``
        (:func:`~approxmat._fit._lowrank.default_ranks` when None); an empty
        sequence fits none.

    Returns
    -------
    list
        The levels sorted by ``ncodebooks``, then the low-rank points sorted by
        rank, each with its error validated on the same held-out rows.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((400, 16))
    >>> points = fit_points(X, rng.standard_normal((16, 6)), [4], [1, 2], random_state=0)
    >>> [(p.kind, p.size) for p in points]
    [('lut', 4), ('lowrank', 1), ('lowrank', 2)]
    """
    if options is None:
        options = FitOptions()
    elif not isinstance(options, FitOptions):
        raise TypeError(f"options must be a FitOptions, got {type(options).__name__}")
    W = np.asarray(weights)
    if W.ndim != 2:
        raise ValueError(f"weights must be 2-D (D, M), got shape {W.shape}")
    D, M = W.shape
    Cs = [] if _is_empty(ncodebooks) else _check_ncodebooks(ncodebooks, D)
    rs = default_ranks(D, M) if ranks is None else _check_ranks(ranks, D, M)
    if not Cs and not rs and not (ncodebooks is None and ranks is None):
        raise ValueError(
            "nothing to fit: ncodebooks is empty and there are no ranks; pass at least "
            "one number of codebooks or one rank, or neither for the default ladder"
        )
    X = _check_calibration(X_cal, D)
    W = W.astype(np.float64)

    # BLAS work here is small (Gram matrices up to 4096 x 4096, thin GEMMs); with
    # several BLAS threads on a busy machine their spin-waits can cost more than
    # the work, so run it single-threaded.
    with _single_threaded_blas():
        cal = _Calibration.split(X, W, random_state)
        levels = _fit_all(Cs, cal, options, progress, _stats)
        lowrank = fit_lowrank(cal, rs)
    for p in lowrank:
        _progress_log(progress, f"approxmat fit rank {p.size}: ")(
            f"validated error {p.error:.4f}")
    return levels + lowrank


def _is_empty(values):
    return values is not None and np.iterable(values) and not isinstance(
        values, (str, bytes)) and len(values) == 0


def _check_ranks(ranks, D, M):
    """The sorted distinct ranks to fit; raises on bad input."""
    if isinstance(ranks, (numbers.Integral, np.integer)) and not isinstance(
        ranks, (bool, np.bool_)
    ):
        ranks = [ranks]
    elif isinstance(ranks, (str, bytes)) or not np.iterable(ranks):
        raise TypeError(
            f"ranks must be None, an int or a sequence of ints, got {type(ranks).__name__}"
        )
    out = set()
    for r in ranks:
        if isinstance(r, (bool, np.bool_)) or not isinstance(r, (numbers.Integral, np.integer)):
            raise TypeError(f"ranks must contain ints, got {r!r} of type {type(r).__name__}")
        r = int(r)
        if not 1 <= r <= min(D, M):
            raise ValueError(
                f"rank {r} is out of range: a rank must be in [1, min(D, M)] = "
                f"[1, {min(D, M)}] for weights of shape ({D}, {M})"
            )
        out.add(r)
    return sorted(out)


class _single_threaded_blas:
    """Context manager limiting BLAS to one thread (if threadpoolctl is present)."""

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


def _progress_log(progress, prefix):
    """``log(message, end)`` printing ``prefix + message`` to stderr, or nothing."""

    def log(msg, end="\n"):
        if progress:
            print(prefix + msg, end=end, file=sys.stderr, flush=True)

    return log


def _fit_all(Cs, cal, options, progress, stats_out):
    """Fit one validated :class:`Level` per number of codebooks in ``Cs``."""
    X_val = cal.X[cal.idx_val]
    levels = []
    shared = {}  # C-independent tree-search data (sorted train columns, ...)
    spent = 0.0
    for i, C in enumerate(Cs):
        t0 = time.perf_counter()
        log = _progress_log(progress, f"approxmat fit [{i + 1}/{len(Cs)}] C={C}: ")
        level, stats = _fit_one(C, cal, options, log, shared)
        err = relative_error(approx_matmul(X_val, level, np.float64), cal.Y_val)
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
        spent += stats["time"]
        log(f"validated error {err:.4f} ({stats['time']:.1f} s"
            + _time_left(spent, Cs[: i + 1], Cs[i + 1 :]) + ")")
        if stats_out is not None:
            stats_out.append(dict(ncodebooks=C, **stats))
        levels.append(level)
    return levels


def _time_left(spent, done, todo):
    """``"; about N s left"``: the levels still to fit, at the seconds per codebook
    of those fitted (a level's time grows with its number of trees)."""
    if not todo:
        return ""
    left = spent / sum(done) * sum(todo)
    return f"; about {left:.0f} s left" if left >= 1 else "; under a second left"


def _fit_one(C, cal, options, log, shared):
    """One level with ``C`` codebooks (its ``error`` not yet measured).

    Returns the :class:`Level` and a dict of diagnostics.
    """
    X, W = cal.X, cal.W_z
    bounds = block_bounds(X.shape[1], C)
    X_tr = X[cal.idx_tr]
    stats = {}
    t0 = time.perf_counter()
    split_dims, thresholds = learn_trees(X_tr, cal.Z_tr, bounds, options, log, shared)
    stats["time_trees"] = time.perf_counter() - t0

    # Codes under exactly the call-time rule.
    codes_tr = encode(X_tr, split_dims, thresholds)
    codes_sel = encode(X[cal.idx_sel], split_dims, thresholds)
    codes_fit = np.concatenate([codes_tr, codes_sel])

    # Penalty selection on the selection rows.
    choice = choose_penalty(
        codes_tr, cal.Z_tr, Blocks(X_tr, W, bounds), codes_sel, cal.Z_sel,
        options.lambda_grid,
    )
    stats["sel_err_leafmeans"] = choice.error_leaf_means
    stats["sel_err"] = choice.error
    stats["lambda"] = choice.penalty
    log(f"ridge penalty {choice.penalty} x rows/leaf (selection error {choice.error:.4f})")

    # Final tables on train + selection rows.
    X_fit = X[cal.idx_fit]
    T_z = ridge_refit(codes_fit, cal.Z_fit, Blocks(X_fit, W, bounds), choice.penalty)

    # Quantisation: the scheme with the lower error on the fitting rows.
    stats["fit_err_real"] = relative_error(predict(codes_fit, T_z), cal.Z_fit)
    q = quantize_for_codes(cal.full_tables(T_z), codes_fit, cal.Y_fit)
    stats.update(q.errors)
    stats["scheme"] = q.scheme
    level = Level(
        split_dims=split_dims,
        thresholds=thresholds,
        luts=q.luts,
        scale=q.scale,
        offset=q.offset,
    )
    return level, stats
