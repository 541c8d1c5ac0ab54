"""What the call path adds to NumPy's own product: exact fallbacks, unfitted matrices,
the approximate path and the per-call choice by cost.

Run: ``python benchmarks/overhead.py [--reps 30] [--quick]``

For each shape and row count, every contender computes the same call, interleaved
(each repetition runs every contender once, in a new random order); a contender's
figure is the **minimum** over repetitions of the mean time of a batch of calls
(enough calls for about 2 ms). One process, float32 row-major ``x``, one BLAS and one
kernel thread unless ``--threads`` says otherwise.

Contenders:

* ``numpy``: ``x @ weights``.
* ``unfitted``: ``x @ W`` with ``W = ApproxMatrix(weights)`` (never fitted).
* ``tol=0``: ``x @ W`` of a fitted ``W`` under ``config(tolerance=0)`` (exact).
* ``approx``: ``x @ W`` of a fitted ``W`` with the default ``tolerance=None`` (the
  most accurate lookup-table point, whatever it costs).
* ``tol=t``: ``config(tolerance=t)`` with ``t`` above every point's validated error,
  so the call takes whatever its cost curve predicts fastest (exact included).
* ``dot``: ``np.dot(x, W)`` of the unfitted ``W`` (``__array_function__``); its excess
  is over NumPy's ``np.dot(x, weights)`` (timed too, not printed), which is itself
  slower than ``x @ weights`` at some shapes.

Printed: microseconds per call and each contender's excess over ``numpy`` (``dot``:
over ``np.dot``), in microseconds and in percent; ``chosen``: the point the ``tol=t``
call took.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from threadpoolctl import threadpool_limits

import approxmat as am
from _timing import interleaved_minima
from approxmat import _testing

SHAPES = [(64, 16, 8), (512, 10, 16), (192, 64, 16)]  # (D, M, C)
ROWS = [1, 16, 10_000, 100_000]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="fewer rows and reps")
    args = parser.parse_args(argv)
    reps = 5 if args.quick else args.reps
    rows = ROWS[:3] if args.quick else ROWS
    rng = np.random.default_rng(0)
    names = ["numpy", "unfitted", "tol=0", "approx", "tol=t", "dot"]
    print(f"approxmat {am.__version__}, kernel threads {args.threads}, BLAS threads "
          f"{args.threads}, float32 row-major x; us per call (excess over numpy)")
    head = f"{'D':>4} {'M':>4} {'N':>7} " + " ".join(f"{n:>18}" for n in names) + "  chosen"
    print(head)
    with threadpool_limits(args.threads), am.config(threads=args.threads):
        for D, M, C in SHAPES:
            weights = rng.standard_normal((D, M)).astype(np.float32)
            unfitted = am.ApproxMatrix(weights)
            level = _testing.random_level(D, M, C, rng)
            fitted = unfitted._with_levels([level])
            top = level.error if level.error == level.error else 0.5
            for n in rows:
                x = rng.standard_normal((n, D)).astype(np.float32)
                plain = {
                    "numpy": lambda: x @ weights,
                    "unfitted": lambda: x @ unfitted,
                    "approx": lambda: x @ fitted,
                    "dot": lambda: np.dot(x, unfitted),
                    "np.dot": lambda: np.dot(x, weights),
                }
                results = dict(zip(plain, interleaved_minima(list(plain.values()), reps)))
                # Entering config() costs more than a one-row product, so the budgeted
                # contenders run inside their block, against NumPy timed in the same block.
                for name, t in (("tol=0", 0), ("tol=t", top + 1)):
                    with am.config(tolerance=t):
                        numpy_t, ours = interleaved_minima([plain["numpy"], plain["approx"]], reps)
                        x @ fitted
                        chosen = am.last_call()
                    results[name] = results["numpy"] + ours - numpy_t
                base = results["numpy"]
                cells = []
                for name in names:
                    t = results[name]
                    base = results["np.dot" if name == "dot" else "numpy"]
                    extra = t - base
                    if n <= 16:
                        cells.append(f"{t * 1e6:7.2f} ({extra * 1e6:+6.2f}us)")
                    else:
                        cells.append(f"{t * 1e6:7.0f} ({100 * extra / base:+6.1f}%)")
                print(f"{D:>4} {M:>4} {n:>7} " + " ".join(f"{c:>18}" for c in cells)
                      + f"  {chosen.kind} {chosen.size}")
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
