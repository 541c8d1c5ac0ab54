"""The accuracy budget at call time: verification on sampled rows, reports, warnings.

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
import threading

import numpy as np
from scipy import stats

__all__ = [
    "ApproxAccuracyError",
    "ApproxMatrixWarning",
    "CallReport",
    "CONFIDENCE",
    "DriftWarning",
    "estimate_error",
    "last_call",
    "sample_size",
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
    ncodebooks : int or None
        Codebooks of the level used; ``None`` when the product was exact.
    rows : int
        Rows in the call (all leading dimensions of ``x`` flattened).
    rows_verified : int
        Rows checked against the exact product (0 without ``verify``).
    error_estimate, error_bound : float
        Estimated relative error of the call and its upper confidence bound
        (NaN when nothing was verified).
    fell_back : bool
        Whether the exact product was returned although an approximation was
        computed (verification failed with ``on_violation="exact"``).
    rows_out_of_range : int
        Rows with a split column outside the range seen at fit time.
    rows_nonfinite : int
        Rows containing NaN or inf (their output row is NaN).
    reason : str
        Why the call was exact or approximate, in words.
    """

    ncodebooks: int | None
    rows: int
    rows_verified: int = 0
    error_estimate: float = math.nan
    error_bound: float = math.nan
    fell_back: bool = False
    rows_out_of_range: int = 0
    rows_nonfinite: int = 0
    reason: str = ""


_last = contextvars.ContextVar("approxmat_last_call", default=None)


def record(ncodebooks, rows, verified=0, estimate=math.nan, bound=math.nan, fell_back=False,
           outside=0, nonfinite=0, reason=None) -> None:
    """Store what the call that just ended did (per thread and task).

    Cheap on purpose (it runs on every product): the :class:`CallReport` is built
    only when :func:`last_call` asks for it.
    """
    _last.set((ncodebooks, rows, verified, estimate, bound, fell_back, outside, nonfinite,
               reason))


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
    >>> am.last_call().reason
    'not fitted'
    """
    fields = _last.get()
    if fields is None:
        return None
    if fields[-1] is None:  # an approximate call that needed no explanation
        fields = fields[:-1] + (f"level with {fields[0]} codebooks",)
    return CallReport(*fields)


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
