"""Exact float16 products: approxmat's float32-BLAS blocks against NumPy's float16 loop.

Run: ``python benchmarks/float16_exact.py [--reps 3]``

An unfitted ``ApproxMatrix`` of float16 weights computes ``x @ W`` exactly; with a
float16 result it widens blocks of rows to float32 and calls BLAS. Prints the minimum
over interleaved repetitions of both, and whether the results agree bit for bit.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import approxmat as am


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--shape", type=int, nargs=3, default=(100_000, 192, 64),
                        metavar=("N", "D", "M"))
    args = parser.parse_args(argv)
    N, D, M = args.shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D)).astype(np.float16)
    w = rng.standard_normal((D, M)).astype(np.float16)
    W = am.ApproxMatrix(w)
    x @ W  # converts the weights once
    ours, theirs = [], []
    for _ in range(args.reps):
        t = time.perf_counter()
        y = x @ W
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        z = x @ w
        theirs.append(time.perf_counter() - t)
    differ = int(np.count_nonzero(y != z))
    print(f"({N} x {D}) @ ({D} x {M}) float16, minimum of {args.reps}: NumPy "
          f"{min(theirs) * 1e3:.1f} ms, approxmat (exact) {min(ours) * 1e3:.1f} ms; "
          f"{differ} of {y.size} values differ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
