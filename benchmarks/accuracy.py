"""Accuracy of the learner on the synthetic low-rank recipe.

X = Z @ basis + 0.1 * noise (Z, basis, noise standard normal, rank 32, D = 512),
20 000 calibration rows, 10 000 test rows, W standard normal (D, 10). Fits the
default ladder and prints, per number of codebooks C: the validated error
(held-out calibration rows), the test error, the table bytes and the fit time,
plus the quantisation comparison on the fitting rows (real tables, per-column
scheme, the reference's global scheme, each after the least-squares
scale/offset correction).

Usage::

    python benchmarks/accuracy.py [--block] [--reference] [--skewed] [--seed S]

``--block`` also fits with each tree's split columns restricted to its
contiguous block of D / C columns (as in the paper; the default lets every tree
split on any column), everything else unchanged; ``--reference`` also fits
with the paper's tree criterion (SSE of the block's own columns, 4 candidates,
no backfitting) for comparison; ``--skewed`` scales the columns of W by
10**linspace(-2, 2) so that quantisation schemes differ.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from approxmat._fit import FitOptions, fit_levels
from approxmat._reference import approx_matmul


def make_problem(seed=0, n_cal=20_000, n_test=10_000, D=512, M=10, rank=32, skewed=False):
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((rank, D))

    def draw(n):
        z = rng.standard_normal((n, rank))
        return (z @ basis + 0.1 * rng.standard_normal((n, D))).astype(np.float32)

    X_cal, X_test = draw(n_cal), draw(n_test)
    W = rng.standard_normal((D, M))
    if skewed:
        W *= 10.0 ** np.linspace(-2, 2, M)
    return X_cal, X_test, W


def relative_error(X, W, level):
    Y = X.astype(np.float64) @ W
    return float(np.linalg.norm(approx_matmul(X, level, np.float64) - Y) / np.linalg.norm(Y))


def run(X_cal, X_test, W, options=None, seed=0):
    options = FitOptions() if options is None else options
    stats = []
    t0 = time.perf_counter()
    levels = fit_levels(X_cal, W, random_state=seed, _stats=stats, options=options)
    total = time.perf_counter() - t0
    default = FitOptions()

    def shown(value, default_value):
        return f"{value} (default)" if value == default_value else value

    print(
        f"tree mode: {shown(options.tree_mode, default.tree_mode)}; split columns: "
        f"{shown(options.tree_columns, default.tree_columns)}; total fit time {total:.1f} s"
    )
    head = (
        f"{'C':>4} {'val err':>8} {'test err':>8} {'bytes':>7} {'fit s':>6} "
        f"{'lambda':>7} | {'real':>7} {'column':>7} {'global':>7} {'col+ls':>7} "
        f"{'glob+ls':>7} pick"
    )
    print(head)
    print("-" * len(head))
    for lv, s in zip(levels, stats):
        lam = "none" if s["lambda"] is None else f"{s['lambda']:.0e}"
        print(
            f"{lv.ncodebooks:>4} {lv.error:>8.4f} {relative_error(X_test, W, lv):>8.4f} "
            f"{lv.table_bytes:>7} {s['time']:>6.1f} {lam:>7} | "
            f"{s['fit_err_real']:>7.4f} {s['fit_err_column']:>7.4f} "
            f"{s['fit_err_global']:>7.4f} {s['fit_err_column_corrected']:>7.4f} "
            f"{s['fit_err_global_corrected']:>7.4f} {s['scheme']}"
        )
    return levels, total


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--block", action="store_true", help="also fit with split columns kept in their block"
    )
    ap.add_argument("--reference", action="store_true", help="also fit the paper's criterion")
    ap.add_argument("--skewed", action="store_true", help="columns of W of very different norms")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    X_cal, X_test, W = make_problem(args.seed, skewed=args.skewed)
    print(
        f"X_cal {X_cal.shape} float32, X_test {X_test.shape}, W {W.shape}; errors are "
        "||Y_hat - Y||_F / ||Y||_F; quantisation columns: error on the fitting rows"
    )
    run(X_cal, X_test, W, seed=args.seed)
    if args.block:
        print()
        run(X_cal, X_test, W, FitOptions(split_columns="block"), seed=args.seed)
    if args.reference:
        print()
        run(X_cal, X_test, W, FitOptions(tree_mode="reference"), seed=args.seed)


if __name__ == "__main__":
    main()
