"""Is a call under ``config(tolerance=t)`` ever slower than NumPy's product?

Run: ``python benchmarks/budget_sweep.py [--reps 7] [--quick] [--threads 1 2]``

The promise checked: whatever the budget, the call takes the point predicted fastest
among those within it, the exact product included, so it is never more than 5 % plus
1 us slower than NumPy's ``x @ weights`` on the same rows.

Shapes:

* a sweep of small shapes, ``D`` and ``M`` in {2, 4, 8, 16, 32, 64}, each fitted with
  the default ladder (lookup tables and low rank, pruned) on synthetic calibration rows
  (a rank-``D/2`` Gaussian signal plus noise, float32);
* the shapes of ``benchmarks/speed.py`` (D, M, C), with random lookup-table levels of
  C/2 and C codebooks (labelled with validated errors 0.2 and 0.1, so every budget
  from 0.2 up allows both) and their cost curves measured on the first call.

For every shape, row count ``N`` in {1, 10, 100, 1000, 10 000, 100 000} (fewer where
``x`` or the result would pass 200 MB), thread count and budget in {0.01, 0.02, 0.05,
0.1, 0.2, 0.5} (budgets that allow the same points are timed once), ``x @ W`` under the
budget and NumPy's product run interleaved (each repetition times a batch of each, in
a new random order); the minimum over repetitions is kept. BLAS and the kernels get the
same threads (``threadpoolctl`` and ``approxmat.config(threads=...)``).

Printed: per shape the worst ratio ``time / numpy`` over row counts and budgets, the
points the budgets chose, and every case that breaks the promise.

Interleaving and thread pools: with more than one thread, NumPy's BLAS and approxmat's
OpenMP kernels each keep a pool of threads that spin for a while after a call. On a
machine with as many cores as threads, the first call of one pool after a call of the
other waits for a core (up to a scheduler time slice, milliseconds), whichever it is.
Each timed batch therefore follows one untimed call of the same contender, as
:func:`approxmat._costs.measure` does, and measures calls in a run of calls of one
kind; ``--cold`` times the first call after a switch too.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import approxmat as am
from _timing import interleaved_minima
from approxmat import _testing

SMALL = [2, 4, 8, 16, 32, 64]
SPEED_SHAPES = [(512, 10, 16), (512, 100, 16), (512, 100, 32), (512, 512, 32),
                (768, 3072, 64)]
ROWS = [1, 10, 100, 1000, 10_000, 100_000]
BUDGETS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5]
MAX_BYTES = 200e6
SLACK_FRACTION, SLACK_SECONDS = 0.05, 1e-6


def _fitted_small(D, M, rng):
    rank = max(1, D // 2)
    X = (rng.standard_normal((3000, rank)) @ rng.standard_normal((rank, D))
         + 0.1 * rng.standard_normal((3000, D))).astype(np.float32)
    weights = rng.standard_normal((D, M)).astype(np.float32)
    return weights, am.ApproxMatrix(weights).fit(X, random_state=0), X


def _random_levels(D, M, C, rng):
    weights = rng.standard_normal((D, M)).astype(np.float32)
    X = rng.standard_normal((256, D)).astype(np.float32)
    levels = [_testing.random_level(D, M, max(1, C // 2), rng, x=X, error=0.2),
              _testing.random_level(D, M, C, rng, x=X, error=0.1)]
    return weights, am.ApproxMatrix(weights)._with_levels(levels), X


def _allowed_sets(W):
    """Budgets grouped by the points they allow: {frozenset of (kind, size): [t, ...]}."""
    groups = {}
    for t in BUDGETS:
        key = frozenset((p.kind, p.size) for p in W.levels if p.error <= t)
        groups.setdefault(key, []).append(t)
    return groups


def sweep_shape(name, weights, W, X, threads_list, reps, rows, rng, bad, counts=None,
                settle=True):
    D, M = weights.shape
    worst, chosen = 0.0, set()
    for threads in threads_list:
        for n in rows:
            if n * max(D, M) * 4 > MAX_BYTES:
                continue
            x = X[rng.integers(0, len(X), n)] if n <= len(X) else np.resize(X, (n, D))
            x = np.ascontiguousarray(x, dtype=np.float32)
            for allowed, budgets in _allowed_sets(W).items():
                t = budgets[0]
                with threadpool_limits(threads), am.config(tolerance=t, threads=threads):
                    t_np, t_us = interleaved_minima([lambda: x @ weights, lambda: x @ W], reps,
                                                    settle=settle, max_calls=5000)
                    x @ W
                    report = am.last_call()
                ratio = t_us / t_np
                worst = max(worst, ratio)
                if counts is not None:
                    counts[report.kind] = counts.get(report.kind, 0) + 1
                chosen.add(f"{report.kind}{report.size if report.size else ''}")
                if t_us > t_np * (1 + SLACK_FRACTION) + SLACK_SECONDS:
                    bad.append((name, threads, n, budgets, t_np, t_us, report.kind,
                                report.size))
    return worst, sorted(chosen)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true",
                        help="a few shapes and row counts, 3 repetitions")
    parser.add_argument("--cold", action="store_true",
                        help="no untimed call before each timed batch")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    reps = 3 if args.quick else args.reps
    rows = [1, 100, 10_000] if args.quick else ROWS
    small = [2, 16, 64] if args.quick else SMALL
    speed = SPEED_SHAPES[:1] if args.quick else SPEED_SHAPES
    print(f"approxmat {am.__version__}; threads {args.threads}; rows {rows}; budgets "
          f"{BUDGETS}; minimum of {reps} interleaved repetitions")
    print(f"{'shape':>22} {'points':>4} {'worst ratio':>11}  chosen")
    bad, counts = [], {}
    started = time.perf_counter()
    cases = [("fit", D, M, None) for D in small for M in small]
    cases += [("random", D, M, C) for D, M, C in speed]
    for how, D, M, C in cases:
        if how == "fit":
            weights, W, X = _fitted_small(D, M, rng)
            name = f"D={D} M={M}"
        else:
            weights, W, X = _random_levels(D, M, C, rng)
            name = f"D={D} M={M} C={C}"
        worst, chosen = sweep_shape(name, weights, W, X, args.threads, reps, rows, rng, bad,
                                    counts, settle=not args.cold)
        print(f"{name:>22} {len(W.levels):>4} {worst:>11.3f}  {' '.join(chosen)}")
        sys.stdout.flush()
    total = sum(counts.values())
    print(f"\n{total} cases timed; the budget chose " + ", ".join(
        f"{kind} in {n}" for kind, n in sorted(counts.items())))
    print(f"{len(bad)} case(s) more than {SLACK_FRACTION:.0%} + "
          f"{SLACK_SECONDS * 1e6:g} us slower than NumPy "
          f"({time.perf_counter() - started:.0f} s):")
    for name, threads, n, budgets, t_np, t_us, kind, size in bad:
        print(f"  {name}, {threads} thread(s), N={n}, budgets {budgets}: numpy "
              f"{t_np * 1e6:.2f} us, approxmat {t_us * 1e6:.2f} us ({kind} {size})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
