"""Cost models of operating points: measured on this machine, used to pick the fastest.

A :class:`Curve` holds the measured time of one call of every operating point of a
matrix (the exact product first) at a few row counts, the *knots* (1, 16, 256, 4096
and 65536 rows; the larger ones only while their calls are predicted to take less than
:data:`SLOW_CALL_SECONDS`), for
one *key*: the dtype of ``x``, its layout (``"C"`` row-major or ``"F"``
column-major) and the kernel thread count. Between knots the time is interpolated
linearly in the row count; beyond the last knot it is proportional to the row count
(the time per row of the last knot), so that two points compare there as they do at
the last knot. Each time is the minimum over interleaved repetitions (every point once
per repetition, in a shuffled order), each repetition long enough
(:data:`SAMPLE_SECONDS`) for the clock; a measured series is made non-decreasing in
the row count (a larger call never takes less time: a dip is noise).

:class:`CostTable` is the set of curves of one matrix, tagged with the
:func:`fingerprint` of the machine, build and kernel variant that measured them. A
table read from a file made elsewhere is not trusted: its curves are dropped and each
key is measured again on first use (:meth:`CostTable.for_machine`).

:func:`schedule` turns a curve and the points allowed by an accuracy budget into the
intervals of row counts on which each point is predicted fastest; a call then finds
its point by bisection. A point other than the exact product wins only where it is
predicted at least :data:`MARGIN` faster than the exact product, so that the noise of
the measurement does not make a call slower than NumPy's own product.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import platform
import random
import time
from dataclasses import dataclass

import numpy as np

__all__ = [
    "KNOT_ROWS",
    "MARGIN",
    "CostTable",
    "Curve",
    "Schedule",
    "fingerprint",
    "measure",
    "schedule",
]

#: Row counts at which each point's call is timed.
KNOT_ROWS = (1, 16, 256, 4096, 65536)
#: A knot is timed only while the slowest call at the previous knot, scaled by the
#: ratio of their row counts, stays below this (seconds): fitting stays quick for
#: large shapes, whose curves then stop at fewer rows.
SLOW_CALL_SECONDS = 0.005
#: Each timed sample repeats the call until it lasts at least this long (seconds).
SAMPLE_SECONDS = 100e-6
#: A point other than the exact product is chosen only where it is predicted this
#: fraction faster than the exact product.
MARGIN = 0.05
#: Repetitions of each measurement at fit time and when a key is measured on first use.
FIT_REPEATS = 5
CALL_REPEATS = 3
#: Row counts of the decision grid (powers of 2**(1/8) up to 2**24), see :func:`schedule`.
_GRID = np.unique(np.round(2.0 ** (np.arange(0, 8 * 24 + 1) / 8.0)).astype(np.int64))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("model name", "Model", "CPU part")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


_FINGERPRINT = None


def fingerprint() -> str:
    """A short digest naming this machine, build, BLAS and kernel variant.

    Cost curves measured under one fingerprint are not used under another.

    Examples
    --------
    >>> len(fingerprint()), fingerprint() == fingerprint()
    (16, True)
    """
    global _FINGERPRINT
    if _FINGERPRINT is None:
        from . import _backend
        from ._build_info import version

        parts = [
            platform.machine(), _cpu_model(), str(_backend.available_cores()),
            _backend.DEFAULT_VARIANT, version, np.__version__,
        ]
        _FINGERPRINT = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return _FINGERPRINT


@dataclass(frozen=True)
class Curve:
    """Measured seconds per call of each point at each knot, for one key.

    Parameters
    ----------
    rows : tuple of int
        The knots, increasing, starting at 1.
    seconds : tuple of tuple of float
        ``seconds[i][k]``: point ``i`` (0 is the exact product) at ``rows[k]`` rows.

    Examples
    --------
    >>> c = Curve((1, 16), ((1e-6, 4e-6), (2e-6, 3e-6)))
    >>> c.predict(0, 1), c.predict(0, 8), c.predict(0, 32), c.predict(1, 0)
    (1e-06, 2.4e-06, 8e-06, 2e-06)
    """

    rows: tuple
    seconds: tuple

    def __post_init__(self):
        rows, seconds = self.rows, self.seconds
        ok = (
            len(rows) >= 1 and rows[0] == 1
            and all(type(n) is int for n in rows)
            and all(a < b for a, b in zip(rows, rows[1:]))
            and len(seconds) >= 1
            and all(len(s) == len(rows) for s in seconds)
            and all(isinstance(t, float) and math.isfinite(t) and t > 0
                    for s in seconds for t in s)
        )
        if not ok:
            raise ValueError(f"invalid cost curve: rows {rows!r}, seconds {seconds!r}")

    def predict(self, i, n) -> float:
        """Predicted seconds of point ``i`` for a call of ``n`` rows."""
        rows, s = self.rows, self.seconds[i]
        if n <= rows[0]:
            return s[0]
        if n >= rows[-1]:
            return s[-1] * n / rows[-1]
        k = bisect.bisect_right(rows, n)
        n0, n1, t0, t1 = rows[k - 1], rows[k], s[k - 1], s[k]
        return t0 + (t1 - t0) * (n - n0) / (n1 - n0)

    def predict_all(self, i, ns):
        """:meth:`predict` for an array of row counts."""
        rows = np.asarray(self.rows, dtype=np.float64)
        s = np.asarray(self.seconds[i])
        ns = np.asarray(ns, dtype=np.float64)
        inside = np.interp(ns, rows, s)
        return np.where(ns > rows[-1], s[-1] * ns / rows[-1], inside)

    def to_json(self):
        return {"rows": list(self.rows), "seconds": [list(s) for s in self.seconds]}

    @classmethod
    def from_json(cls, obj, npoints):
        """A curve from :meth:`to_json`'s form; ``ValueError`` if malformed."""
        if not isinstance(obj, dict) or set(obj) != {"rows", "seconds"}:
            raise ValueError("a cost curve must have exactly the keys rows and seconds")
        rows, seconds = obj["rows"], obj["seconds"]
        if not isinstance(rows, list) or not isinstance(seconds, list) or not all(
            isinstance(s, list) for s in seconds
        ):
            raise ValueError("cost curve rows and seconds must be lists")
        if len(seconds) != npoints:
            raise ValueError(f"a cost curve has {len(seconds)} points, the file {npoints}")
        return cls(tuple(rows), tuple(tuple(float(t) if type(t) in (int, float) else t
                                            for t in s) for s in seconds))


def key_of(dtype, layout, threads):
    """The key of a curve: ``(dtype string in native byte order, "C" or "F", threads)``."""
    return (np.dtype(dtype).newbyteorder("=").str, layout, int(threads))


class CostTable:
    """The cost curves of one matrix's points, per key, under one fingerprint.

    Curves for new keys are added as calls need them (adding a curve is one dict
    store). ``reference_dtype`` is the dtype of the calibration rows, the one
    :attr:`ApproxMatrix.levels` reports speedups for.
    """

    __slots__ = ("fingerprint", "curves", "reference_dtype")

    def __init__(self, fingerprint_=None, curves=None, dtype=None):
        self.fingerprint = fingerprint_ if fingerprint_ is not None else fingerprint()
        self.curves = dict(curves or {})
        self.reference_dtype = np.dtype(dtype if dtype is not None else np.float32).str

    def for_machine(self):
        """This table if it was measured here, else an empty one for this machine."""
        if self.fingerprint == fingerprint():
            return self
        return CostTable(dtype=self.reference_dtype)

    def to_json(self):
        return {
            "fingerprint": self.fingerprint,
            "dtype": self.reference_dtype,
            "curves": [
                {"dtype": k[0], "layout": k[1], "threads": k[2], **c.to_json()}
                for k, c in sorted(self.curves.items())
            ],
        }

    @classmethod
    def from_json(cls, obj, npoints):
        """A table from :meth:`to_json`'s form; ``ValueError`` if malformed."""
        if not isinstance(obj, dict) or set(obj) != {"fingerprint", "dtype", "curves"}:
            raise ValueError("costs must have exactly the keys fingerprint, dtype and curves")
        fp, dtype, entries = obj["fingerprint"], obj["dtype"], obj["curves"]
        if not isinstance(fp, str) or len(fp) > 64 or not isinstance(entries, list):
            raise ValueError("invalid cost table")
        if not isinstance(dtype, str) or dtype not in _KEY_DTYPES:
            raise ValueError(f"invalid cost dtype {dtype!r}")
        curves = {}
        for e in entries:
            if not isinstance(e, dict) or set(e) != {"dtype", "layout", "threads", "rows",
                                                     "seconds"}:
                raise ValueError("a cost entry must have keys dtype, layout, threads, "
                                 "rows and seconds")
            kdtype, layout, threads = e["dtype"], e["layout"], e["threads"]
            if not isinstance(kdtype, str) or kdtype not in _KEY_DTYPES:
                raise ValueError(f"invalid cost dtype {kdtype!r}")
            if layout not in ("C", "F") or type(threads) is not int or not 1 <= threads <= 4096:
                raise ValueError(f"invalid cost layout or threads {layout!r}, {threads!r}")
            curve = Curve.from_json({"rows": e["rows"], "seconds": e["seconds"]}, npoints)
            curves[(kdtype, layout, threads)] = curve
        return cls(fp, curves, dtype)


_KEY_DTYPES = {
    np.dtype(t).str
    for t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
              np.uint8, np.uint16, np.uint32, np.uint64, np.bool_)
}


def measure(runners, sample, repeats=FIT_REPEATS, seed=0) -> Curve:
    """Time each runner at each knot; the :class:`Curve` of one key.

    Parameters
    ----------
    runners : sequence of callable
        ``runner(x)`` computes one call on rows ``x`` (the exact product first).
    sample : callable
        ``sample(n)`` gives ``n`` rows of the key's dtype and layout.
    repeats : int
        Interleaved repetitions; the minimum is kept.
    seed : int
        Seeds the shuffled order of the runners in each repetition.

    Examples
    --------
    >>> w = np.ones((8, 2))
    >>> c = measure([lambda x: x @ w], lambda n: np.ones((n, 8)), repeats=1)
    >>> c.rows[0], len(c.seconds), c.seconds[0][0] > 0
    (1, 1, True)
    """
    order = list(range(len(runners)))
    shuffle = random.Random(seed).shuffle
    rows, seconds = [], [[] for _ in runners]
    clock = time.perf_counter
    for n in KNOT_ROWS:
        if rows and max(s[-1] for s in seconds) * n / rows[-1] > SLOW_CALL_SECONDS:
            break
        x = sample(n)
        calls = []
        for run in runners:  # warm-up call, which also sizes the samples
            t0 = clock()
            run(x)
            t = clock() - t0
            calls.append(max(1, min(1000, int(SAMPLE_SECONDS / max(t, 1e-7)))))
        best = [math.inf] * len(runners)
        for _ in range(repeats):
            shuffle(order)
            for i in order:
                run, k = runners[i], calls[i]
                # One untimed call first: the previous runner may have left other
                # threads spinning or asleep (OpenMP's and BLAS's pools share the cores),
                # and a call that wakes them is not what a run of calls of one point costs.
                run(x)
                t0 = clock()
                for _ in range(k):
                    run(x)
                t = (clock() - t0) / k
                if t < best[i]:
                    best[i] = t
        rows.append(n)
        for i, t in enumerate(best):
            previous = seconds[i][-1] if seconds[i] else 1e-9
            seconds[i].append(max(t, previous))  # non-decreasing in the rows
    return Curve(tuple(rows), tuple(tuple(s) for s in seconds))


@dataclass(frozen=True, slots=True)
class Schedule:
    """The point each row count uses: ``points[bisect_right(bounds, n) - 1]``.

    ``indices`` are the points' positions in ``curve`` (0 is exact).
    """

    bounds: tuple
    indices: tuple
    points: tuple
    curve: Curve

    def index(self, n) -> int:
        return self.indices[bisect.bisect_right(self.bounds, n) - 1]


def schedule(curve, allowed, points, margin=MARGIN) -> Schedule:
    """The fastest allowed point for every row count, as intervals.

    Parameters
    ----------
    curve : Curve
    allowed : sequence of int
        Indices into the curve of the points the budget allows; 0 (exact) is always
        allowed.
    points : sequence
        The points by index (``points[0]`` is the exact point).
    margin : float
        Points other than exact must be predicted this fraction faster than exact.

    Examples
    --------
    >>> c = Curve((1, 100), ((1e-6, 100e-6), (3e-6, 30e-6)))
    >>> s = schedule(c, [0, 1], ["exact", "fast"])
    >>> s.points[s.index(1)], s.points[s.index(1000)]
    ('exact', 'fast')
    """
    allowed = sorted(set(allowed) | {0})
    grid = _GRID
    times = np.stack([curve.predict_all(i, grid) for i in allowed])
    times[1:] *= 1.0 + margin
    best = np.asarray(allowed)[np.argmin(times, axis=0)]
    bounds, indices = [0], [int(best[0])]
    for n, i in zip(grid[1:], best[1:]):
        if i != indices[-1]:
            bounds.append(int(n))
            indices.append(int(i))
    return Schedule(tuple(bounds), tuple(indices), tuple(points[i] for i in indices), curve)


#: A point is dropped at fit time when a point at least as accurate is predicted at
#: most this fraction slower everywhere: differences that small are measurement noise.
PRUNE_SLACK = 0.03


def dominated(table, points, margin=MARGIN, slack=PRUNE_SLACK):
    """Indices of the points no budget would ever choose, for any call.

    Point ``i`` is never chosen when, at every row count of the schedule grid and
    for every curve of the table, some point at least as accurate (exact included)
    is predicted at least as fast, as :func:`schedule` compares them (points other
    than exact with the :data:`MARGIN`). Whatever the budget, that point is allowed
    whenever ``i`` is. Ties in error go to the earlier point. With ``slack``, "at
    least as fast" allows the other point to be that fraction slower (noise).

    Parameters
    ----------
    table : CostTable
    points : sequence
        ``points[0]`` is exact; each has an ``error``.

    Examples
    --------
    >>> from types import SimpleNamespace as P
    >>> pts = [P(error=0.0), P(error=0.2), P(error=0.1), P(error=0.3)]
    >>> c = Curve((1, 100), ((1e-6, 100e-6), (2e-6, 20e-6), (2e-6, 30e-6), (1e-6, 25e-6)))
    >>> dominated(CostTable(curves={("<f4", "C", 1): c}), pts)
    []
    >>> c = Curve((1, 100), ((1e-6, 100e-6), (2e-6, 20e-6), (1e-6, 10e-6), (1e-6, 25e-6)))
    >>> dominated(CostTable(curves={("<f4", "C", 1): c}), pts)
    [1, 3]
    """
    if not table.curves:
        return []
    factor = np.full((len(points), 1), 1.0 + margin)
    factor[0] = 1.0
    times = np.concatenate(
        [np.stack([curve.predict_all(i, _GRID) for i in range(len(points))]) * factor
         for curve in table.curves.values()],
        axis=1,
    )  # (points, grid of every curve): the times schedule() compares
    def rank(i):  # an unmeasured (NaN) error is allowed by no budget
        error = points[i].error
        return (error if error == error else math.inf, i)

    order = sorted(range(len(points)), key=rank)
    drop = []
    best = times[order[0]].copy()  # the fastest point at least as accurate, so far
    for i in order[1:]:
        if i != 0 and np.all(best <= times[i] * (1.0 + slack)):
            drop.append(i)
        np.minimum(best, times[i], out=best)
    return sorted(drop)


def subset(table, keep):
    """The table with only the points at indices ``keep`` (0 first) in each curve."""
    curves = {
        key: Curve(c.rows, tuple(c.seconds[i] for i in keep)) for key, c in table.curves.items()
    }
    return CostTable(table.fingerprint, curves, table.reference_dtype)
