"""The accuracy budget at call time: drift, verification on sampled rows, reports, warnings.

:func:`account` is what a call does with the row flags of its kernel: counts rows with
NaN/inf and rows outside the calibrated range (:func:`with_calibrated_ranges`), warns
of drift, verifies sampled rows when ``config(verify=...)`` asks for it, applies
``on_violation``, and records the :class:`CallReport`.

A verified call computes the exact product for ``k`` rows drawn at random without
replacement and estimates the call's relative error
``||Y_hat - Y||_F / ||Y||_F`` with the ratio estimator
``R = sum(e_i) / sum(q_i)`` (``e_i`` the squared error of row ``i``, ``q_i`` its
squared exact norm). The upper bound is one-sided at :data:`CONFIDENCE` with
Student's t and the finite-population correction; it is ``sqrt`` of
``R + t * se(R)``. With every row verified the error is known exactly (no
uncertainty); with a single row of many no bound can be computed and it is
infinite (ask for 30 or more rows).
"""

from __future__ import annotations

import contextvars
import dataclasses
import math
import os
import sys
import threading
import warnings

import numpy as np
from scipy import stats

from ._points import describe

__all__ = [
    "ApproxAccuracyError",
    "ApproxMatrixWarning",
    "CallReport",
    "CONFIDENCE",
    "DriftWarning",
    "account",
    "estimate_error",
    "last_call",
    "sample_size",
    "with_calibrated_ranges",
]

#: One-sided confidence of the error bound of a verified call.
CONFIDENCE = 0.99


class ApproxMatrixWarning(UserWarning):
    """A product did not meet, or may not meet, the accuracy budget."""


class DriftWarning(ApproxMatrixWarning):
    """The inputs left the range of the calibration data."""


class ApproxAccuracyError(ArithmeticError):
    """A verified product exceeded the budget with ``on_violation="raise"``."""


@dataclasses.dataclass(frozen=True)
class CallReport:
    """What the last product ``x @ W`` of this thread (or task) did.

    Attributes
    ----------
    kind : str
        The operating point used: ``"exact"``, ``"lut"`` (lookup tables) or
        ``"lowrank"``.
    size : int
        Its size: codebooks of a ``"lut"`` point, rank of a ``"lowrank"`` one, 0
        for ``"exact"``.
    ncodebooks : int or None
        Codebooks of the lookup-table point used; ``None`` for other kinds.
    rows : int
        Rows in the call (all leading dimensions of ``x`` flattened).
    predicted_seconds : float
        The time the point's cost curve predicted for this call (NaN when the point
        was not chosen by cost: ``tolerance=None`` or ``0``, not fitted...).
    seconds : float
        The measured time of the product itself (without the decision, the
        accounting and any verification).
    rows_verified : int
        Rows checked against the exact product (0 without ``verify``).
    error_estimate, error_bound : float
        Estimated relative error of the call and its upper confidence bound
        (NaN when nothing was verified).
    fell_back : bool
        Whether the exact product was returned although an approximation was
        computed (verification failed with ``on_violation="exact"``).
    rows_out_of_range : int
        Rows with a split column outside the range seen at fit time (lookup-table
        points only; 0 with ``config(check_finite=False)``).
    rows_nonfinite : int
        Rows containing NaN or inf (their output row is NaN; counted by lookup-table
        points only, 0 with ``config(check_finite=False)``).
    reason : str
        Why the call used this point, in words.
    """

    kind: str
    size: int
    ncodebooks: int | None
    rows: int
    predicted_seconds: float = math.nan
    seconds: float = math.nan
    rows_verified: int = 0
    error_estimate: float = math.nan
    error_bound: float = math.nan
    fell_back: bool = False
    rows_out_of_range: int = 0
    rows_nonfinite: int = 0
    reason: str = ""


_last = contextvars.ContextVar("approxmat_last_call", default=None)
#: ``set_last((point, rows, seconds, pred, reason, ...))``: what :func:`record` stores,
#: for the fast path (one C call).
set_last = _last.set


def record(point, rows, seconds=math.nan, pred=None, reason=None, verified=0,
           estimate=math.nan, bound=math.nan, fell_back=False, outside=0,
           nonfinite=0) -> None:
    """Store what the call that just ended did (per thread and task).

    Cheap on purpose (it runs on every product): the :class:`CallReport` is built
    only when :func:`last_call` asks for it. ``pred`` is ``(curve, index)`` when the
    point was chosen by cost.
    """
    _last.set((point, rows, seconds, pred, reason, verified, estimate, bound, fell_back,
               outside, nonfinite))


def last_call() -> CallReport | None:
    """The report of the last ``x @ W`` made by this thread or task.

    Returns
    -------
    CallReport or None
        ``None`` before any product with an :class:`~approxmat.ApproxMatrix`.

    Examples
    --------
    >>> import numpy as np
    >>> import approxmat as am
    >>> W = am.ApproxMatrix(np.eye(3))
    >>> _ = np.ones((2, 3)) @ W
    >>> am.last_call().kind, am.last_call().reason
    ('exact', 'not fitted')
    """
    fields = _last.get()
    if fields is None:
        return None
    point, rows, seconds, pred, reason = fields[:5]
    if reason is None:
        if pred is not None:
            reason = describe(point) + " predicted fastest within the budget"
        else:  # tolerance=None
            reason = describe(point) + ": the most accurate fitted point"
    predicted = pred[0].predict(pred[1], rows) if pred is not None else math.nan
    ncodebooks = point.size if point.kind == "lut" else None
    # fields[5:]: verified, estimate, bound, fell_back, outside, nonfinite (or absent)
    return CallReport(point.kind, point.size, ncodebooks, rows, predicted, seconds,
                      *fields[5:], reason=reason)


def sample_size(verify, nrows: int) -> int:
    """Rows to verify in a call of ``nrows`` rows.

    Examples
    --------
    >>> sample_size(32, 1000), sample_size(0.1, 1000), sample_size(32, 5), sample_size(None, 9)
    (32, 100, 5, 0)
    """
    if verify is None or nrows == 0:
        return 0
    if isinstance(verify, float):
        return min(nrows, max(1, math.ceil(verify * nrows)))
    return min(nrows, verify)


_rngs = threading.local()


def _rng() -> np.random.Generator:
    rng = getattr(_rngs, "rng", None)
    if rng is None:
        rng = _rngs.rng = np.random.default_rng()
    return rng


def sample_rows(nrows: int, k: int) -> np.ndarray:
    """``k`` distinct row indices of ``nrows``, sorted (a per-thread generator)."""
    if k >= nrows:
        return np.arange(nrows)
    return np.sort(_rng().choice(nrows, size=k, replace=False))


def estimate_error(approx_rows, exact_rows, nrows: int):
    """Estimate and upper-bound the relative error of a call from verified rows.

    Parameters
    ----------
    approx_rows, exact_rows : ndarray, shape (k, M)
        Approximate and exact products of ``k`` rows drawn without replacement.
    nrows : int
        Rows in the whole call.

    Returns
    -------
    estimate, bound : float

    Examples
    --------
    >>> import numpy as np
    >>> exact = np.ones((4, 2)); approx = exact * 1.1
    >>> [round(v, 6) for v in estimate_error(approx, exact, 4)]   # every row verified
    [0.1, 0.1]
    """
    k = len(exact_rows)
    if k == 0:
        return math.nan, math.nan
    approx_rows = np.asarray(approx_rows, dtype=np.float64)
    exact_rows = np.asarray(exact_rows, dtype=np.float64)
    e = np.square(approx_rows - exact_rows).sum(axis=1)
    q = np.square(exact_rows).sum(axis=1)
    e_sum, q_sum = float(e.sum()), float(q.sum())
    if not (math.isfinite(e_sum) and math.isfinite(q_sum)):
        return math.inf, math.inf
    if q_sum == 0:
        value = 0.0 if e_sum == 0 else math.inf
        return value, (value if k >= nrows else math.inf)
    ratio = e_sum / q_sum
    estimate = math.sqrt(ratio)
    if k >= nrows:
        return estimate, estimate
    if k == 1:
        return estimate, math.inf
    residual = e - ratio * q
    variance = float(residual @ residual) / (k - 1) / (k * (q_sum / k) ** 2)
    variance *= 1.0 - k / nrows
    bound = ratio + float(stats.t.ppf(CONFIDENCE, k - 1)) * math.sqrt(variance)
    return estimate, math.sqrt(max(bound, 0.0))


def account(state, x2d, y2d, point, config, flags, seconds=math.nan, pred=None) -> bool:
    """Drift accounting, verification on sampled rows, and the call's report.

    Parameters
    ----------
    state : approxmat._call.Product
        Gives the float64 weights (``state.weights64()``) and one-time warnings
        (``state.warn_once(key, warning)``).
    x2d, y2d : ndarray, shape (N, D) and (N, M)
        The call's rows and the approximate product the kernel wrote.
    point : Level or LowRank
        The operating point used.
    config : Config
        The settings of the call.
    flags : ndarray of uint8, shape (N,), or None
        Bit 0 set for rows with NaN/inf and bit 1 for rows out of the calibrated
        range; None when no row is flagged.
    seconds : float
        The measured time of the product.
    pred : tuple or None
        ``(curve, index)`` when the point was chosen by cost.

    Returns
    -------
    bool
        True when the exact product must be returned instead.
    """
    nrows = x2d.shape[0]
    n_nonfinite = n_outside = 0
    if flags is not None:
        n_nonfinite = int(np.count_nonzero(flags & 1))
        n_outside = int(np.count_nonzero(flags & 2))
        fraction = config.drift_fraction
        if fraction is not None and n_outside > fraction * nrows:
            state.warn_once(
                "drift",
                DriftWarning(
                    f"{n_outside} of {nrows} rows ({n_outside / nrows:.1%}) have split "
                    f"columns outside the range of the calibration data (drift_fraction="
                    f"{fraction:g}); the validated error may not hold. Refit on current "
                    "data, or use approxmat.config(verify=...) to check calls."
                ),
            )
    k = sample_size(config.verify, nrows)
    if not k:
        record(point, nrows, seconds, pred, None, 0, math.nan, math.nan, False, n_outside,
               n_nonfinite)
        return False
    rows = sample_rows(nrows, k)
    if n_nonfinite:
        rows = rows[(flags[rows] & 1) == 0]  # NaN rows are NaN in both products
    verified = len(rows)
    exact = x2d[rows].astype(np.float64) @ state.weights64()
    estimate, bound = estimate_error(y2d[rows], exact, nrows - n_nonfinite)
    tolerance = config.tolerance
    if tolerance is None or bound <= tolerance:
        record(point, nrows, seconds, pred, None, verified, estimate, bound, False, n_outside,
               n_nonfinite)
        return False
    message = (
        f"approximate product exceeded the accuracy budget: estimated relative "
        f"error {estimate:.3g}, {CONFIDENCE:.0%} upper bound {bound:.3g} > "
        f"tolerance {tolerance:g} ({verified} of {nrows} rows verified, {describe(point)}, "
        f"validated error {point.error:.3g})"
    )
    outcome = {
        "raise": "verification failed: raised",
        "warn": f"{describe(point)}; verification failed: warned",
        "exact": "verification failed: exact product returned",
    }[config.on_violation]
    fell_back = config.on_violation == "exact"
    record(point, nrows, seconds, pred, outcome, verified, estimate, bound, fell_back,
           n_outside, n_nonfinite)
    if config.on_violation == "raise":
        raise ApproxAccuracyError(message)
    if config.on_violation == "warn":
        warn(ApproxMatrixWarning(message))
    else:
        state.warn_once(
            "violation",
            ApproxMatrixWarning(
                message + "; the exact product was returned instead (this warning "
                "is shown once per matrix)"
            ),
        )
    return fell_back


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def warn(warning: Warning) -> None:
    """``warnings.warn`` pointing at the first line of the caller outside approxmat.

    The depth of the call inside approxmat differs between the product paths.
    """
    frame, level = sys._getframe(0), 1  # stacklevel=1 is this function
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(warning, stacklevel=level)


#: Calibrated ranges are widened by this fraction of their width on each side, so
#: that fresh rows from the calibration distribution rarely leave them (the extremes
#: of a finite sample are exceeded by about 2 / N of new rows per column).
RANGE_MARGIN = 0.1


def with_calibrated_ranges(level, X_cal):
    """``level`` with the calibrated range of its split columns (float32, rounded outwards).

    Rows whose split columns leave these ranges are counted by the kernels' row
    flags (bit 1) and may raise a :class:`DriftWarning`.

    Examples
    --------
    >>> from approxmat._testing import random_level
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(0, 1, (100, 6))
    >>> lv = with_calibrated_ranges(random_level(6, 2, 1, rng), X)
    >>> bool((lv.split_low < 0).all() and (lv.split_high > 1).all())   # 10 % margin
    True
    """
    values = X_cal[:, level.split_dims].astype(np.float64)  # (N, C, 4)
    low, high = values.min(axis=0), values.max(axis=0)
    margin = RANGE_MARGIN * (high - low)
    low, high = low - margin, high + margin
    low32, high32 = low.astype(np.float32), high.astype(np.float32)
    low32 = np.where(low32 > low, np.nextafter(low32, np.float32(-np.inf)), low32)
    high32 = np.where(high32 < high, np.nextafter(high32, np.float32(np.inf)), high32)
    # A new, empty cache: the packed tables of the level without ranges lack them.
    return dataclasses.replace(level, split_low=low32, split_high=high32, cache={})
