"""The whole ``x @ W`` call of an earlier build against this one, in one process.

Run::

    git worktree add /tmp/oldsrc REV
    pip install --no-build-isolation --no-deps --target /tmp/oldpkg /tmp/oldsrc
    mv /tmp/oldpkg/approxmat /tmp/oldpkg/approxmat_old
    python benchmarks/ab_call.py /tmp/oldpkg [--reps 30]

The earlier build is imported as ``approxmat_old`` (its compiled modules are its own).
Both get the same weights and the same random lookup-table level; each contender is
``x @ W`` with float32 row-major ``x``, one BLAS and one kernel thread, unfitted, under
``tolerance=0`` and with the level (``tolerance=None``), against NumPy's
``x @ weights``. Microseconds per call, minimum of interleaved repetitions
(``_timing.interleaved_minima``); the ``tolerance=0`` contenders run inside their block
against NumPy timed in the same block.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from threadpoolctl import threadpool_limits

import approxmat as new
from _timing import interleaved_minima
from approxmat import _testing


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="folder holding the earlier build as approxmat_old")
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args(argv)
    sys.path.insert(0, args.old)
    import approxmat_old as old

    rng = np.random.default_rng(0)
    print(f"us per call, minimum of {args.reps} interleaved repetitions, 1 thread, float32 "
          "row-major x")
    print(f"{'D':>4} {'M':>4} {'N':>6} | {'numpy':>8} | {'unfitted old':>12} {'new':>8} | "
          f"{'tol=0 old':>10} {'new':>8} | {'level old':>10} {'new':>8}")
    with threadpool_limits(1), new.config(threads=1), old.config(threads=1):
        for D, M, C in [(64, 16, 8), (512, 10, 16), (192, 64, 16)]:
            w = rng.standard_normal((D, M)).astype(np.float32)
            level = _testing.random_level(D, M, C, rng)
            u_new, u_old = new.ApproxMatrix(w), old.ApproxMatrix(w)
            f_new, f_old = u_new._with_levels([level]), u_old._with_levels([level])
            for n in (1, 16, 10_000):
                x = rng.standard_normal((n, D)).astype(np.float32)
                t = interleaved_minima([lambda: x @ w, lambda: x @ u_old, lambda: x @ u_new,
                                        lambda: x @ f_old, lambda: x @ f_new], args.reps)
                with new.config(tolerance=0), old.config(tolerance=0):
                    z = interleaved_minima([lambda: x @ w, lambda: x @ f_old,
                                            lambda: x @ f_new], args.reps)
                tol0 = [t[0] + z[1] - z[0], t[0] + z[2] - z[0]]

                def cell(s, width=8):
                    return f"{s * 1e6:{width}.2f}" if n <= 16 else f"{s * 1e6:{width}.0f}"

                print(f"{D:>4} {M:>4} {n:>6} | {cell(t[0])} | {cell(t[1], 12)} {cell(t[2])} | "
                      f"{cell(tol0[0], 10)} {cell(tol0[1])} | {cell(t[3], 10)} {cell(t[4])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
