"""Does the accuracy budget hold when the inputs drift away from the calibration data?

Fits once on synthetic low-rank rows, then calls ``x @ W`` with ``verify`` on inputs
that move step by step away from the calibration distribution: scaled, offset, and
finally drawn from a different source (full-rank noise). For every call it prints
the true relative error, the verified estimate and its upper bound, and what the
call did. It ends with the share of calls whose bound held and the number of calls
that broke the budget silently (returned an approximation whose true error exceeds
the tolerance without a warning, an error or a fallback).

Run: ``python benchmarks/drift.py [--rows 4000] [--verify 64] [--repeats 20]``
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

import approxmat as am


def make_source(rng, D, rank):
    basis = rng.standard_normal((rank, D))

    def rows(n):
        return rng.standard_normal((n, rank)) @ basis + 0.1 * rng.standard_normal((n, D))

    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000, help="rows per call")
    parser.add_argument("--verify", type=int, default=64, help="rows verified per call")
    parser.add_argument("--repeats", type=int, default=20, help="calls per step")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    D, M, rank = 128, 16, 16
    source = make_source(rng, D, rank)
    weights = rng.standard_normal((D, M))
    W = am.ApproxMatrix(weights).fit(source(8000), ncodebooks=[16], random_state=args.seed)
    level = W.levels[0]
    tolerance = round(level.error * 1.25, 3)
    print(
        f"fit: C={level.ncodebooks}, validated error {level.error:.3f}; "
        f"tolerance {tolerance}, verify={args.verify} rows of {args.rows}, "
        f"on_violation='exact', confidence {am._budget.CONFIDENCE:.0%}"
    )
    other = make_source(np.random.default_rng(args.seed + 1), D, D)
    steps = [("scale", s, lambda n, s=s: source(n) * s) for s in (1.0, 1.1, 1.25, 1.5, 2.0)]
    steps += [("offset", o, lambda n, o=o: source(n) + o) for o in (0.25, 0.5, 1.0)]
    steps += [("other source", 1.0, lambda n: other(n))]

    header = (
        f"{'shift':>13} {'value':>6} {'true err':>9} {'estimate':>9} {'bound':>7} "
        f"{'held':>5} {'fallback':>8} {'drift rows':>10} {'silent':>6}"
    )
    print(header)
    total = held = silent = 0
    for name, value, draw in steps:
        true_errs, estimates, bounds, fallbacks, drift, step_held, step_silent = (
            [], [], [], 0, 0, 0, 0
        )
        for _ in range(args.repeats):
            x = draw(args.rows)
            exact = x @ weights
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with am.config(verify=args.verify, tolerance=tolerance):
                    y = x @ W
            report = am.last_call()
            if report.ncodebooks is None:  # nothing approximated
                continue
            approx = am._reference.approx_matmul(x, W._levels[0], np.float64)
            err = np.linalg.norm(approx - exact) / np.linalg.norm(exact)
            true_errs.append(err)
            estimates.append(report.error_estimate)
            bounds.append(report.error_bound)
            step_held += report.error_bound >= err
            fallbacks += report.fell_back
            drift += report.rows_out_of_range
            returned_err = np.linalg.norm(y - exact) / np.linalg.norm(exact)
            flagged = report.fell_back or any(
                issubclass(w.category, am.ApproxMatrixWarning) for w in caught
            )
            step_silent += returned_err > tolerance and not flagged
        n = len(true_errs)
        total += n
        held += step_held
        silent += step_silent
        print(
            f"{name:>13} {value:6.2f} {np.mean(true_errs):9.3f} {np.mean(estimates):9.3f} "
            f"{np.mean(bounds):7.3f} {step_held:>2}/{n:<2} {fallbacks:>5}/{n:<2} "
            f"{drift / n / args.rows:10.1%} {step_silent:>6}"
        )
    print(
        f"bound held in {held}/{total} calls ({held / total:.1%}); "
        f"budget broken silently in {silent} calls"
    )
    return 0 if held >= 0.95 * total and silent == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
