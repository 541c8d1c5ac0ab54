"""Narrow rows (uint8, int8, uint16, int16, float16) read as they are, against NumPy.

Run: ``python benchmarks/narrow.py [--reps 15] [--threads 1] [--quick]``

For each shape ``(N, D) -> M`` with ``C`` codebooks and each row dtype, one process
times, interleaved (minimum over ``--reps`` repetitions, :mod:`_timing`):

* ``numpy``: NumPy's ``x @ weights`` on the same array (float32 weights; float16
  weights for float16 rows, NumPy's float16 loop, which takes seconds: timed apart,
  the minimum of 2 calls), BLAS limited to ``--threads``;
* ``convert``: what approxmat did before it read narrow rows: ``x.astype(float32)``
  then the float32 kernel;
* ``kernel``: the lookup-table kernel on the rows as they are, with row flags
  (``_backend.product``, ``--threads`` threads), into the result dtype (float16 for
  float16 rows and weights, else float32);
* ``floor``: reading ``x`` once and writing the result once, at the bandwidths
  measured in the same run (``x.max()`` on a float32 array of the same bytes, and
  ``out.fill`` on the result);
* ``np/kern``: NumPy's time over the kernel's; ``kern/floor``: the kernel over the floor.

Levels are random (valid, with calibration ranges): the kernels' speed does not depend
on the parameter values. Rows are uniform over the type (float16: normal).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(__file__))
from _timing import interleaved_minima  # noqa: E402

from approxmat import _backend, _kernels  # noqa: E402
from approxmat._testing import random_level, with_ranges  # noqa: E402

SHAPES = [
    # (N, D, M, C)
    (200_000, 27, 16, 16),
    (101_831, 27, 2, 16),
    (100_000, 192, 64, 16),
    (265_860, 192, 64, 16),
]
DTYPES = ["float32", "uint8", "int8", "uint16", "int16", "float16"]


def rows(N, D, dtype, rng):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, (N, D), endpoint=True, dtype=dtype)
    return rng.standard_normal((N, D)).astype(dtype)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="first two shapes, 3 dtypes, 5 reps")
    args = ap.parse_args(argv)
    shapes, dtypes, reps = SHAPES, DTYPES, args.reps
    if args.quick:
        shapes, dtypes, reps = SHAPES[:2], ["float32", "uint8", "float16"], 5
    rng = np.random.default_rng(0)
    t = args.threads
    print(f"kernel variant {_kernels.selected_variant()}, {t} thread(s), min of {reps} "
          "interleaved repetitions; milliseconds")
    head = (f"{'N':>7} {'D':>4} {'M':>4} {'C':>3} {'dtype':>8} {'numpy':>8} {'convert':>8} "
            f"{'kernel':>8} {'floor':>7} {'np/kern':>8} {'kern/floor':>10}")
    print(head)
    for N, D, M, C in shapes:
        weights = rng.standard_normal((D, M)).astype(np.float32)
        for name in dtypes:
            x = rows(N, D, name, rng)
            level = with_ranges(random_level(D, M, C, rng), x[:2000].astype(np.float64), rng)
            w = weights.astype(np.float16) if name == "float16" else weights
            odt = np.dtype(np.float16) if name == "float16" else np.dtype(np.float32)
            out = np.empty((N, M), odt)
            out32 = np.empty((N, M), np.float32)
            xr = np.empty(x.nbytes // 4, np.float32)  # the bytes of x, for the read floor
            xr[:] = 1.0
            fns = {
                "numpy": lambda: x @ w,
                "convert": lambda: _backend.product(x.astype(np.float32), level, out32, t),
                "kernel": lambda: _backend.product(x, level, out, t),
                "read": lambda: xr.max(),
                "write": lambda: out.fill(0),
            }
            if name == "float32":
                del fns["convert"]
            slow = fns.pop("numpy") if name == "float16" else None
            with threadpool_limits(limits=t):
                got = dict(zip(fns, interleaved_minima(list(fns.values()), reps)))
                if slow is not None:
                    got["numpy"] = interleaved_minima([slow], 2, target=0)[0]
            floor = got["read"] + got["write"]
            conv = got.get("convert", float("nan"))
            print(f"{N:>7} {D:>4} {M:>4} {C:>3} {name:>8} {1e3 * got['numpy']:>8.2f} "
                  f"{1e3 * conv:>8.2f} {1e3 * got['kernel']:>8.2f} {1e3 * floor:>7.2f} "
                  f"{got['numpy'] / got['kernel']:>8.1f} {got['kernel'] / floor:>10.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
