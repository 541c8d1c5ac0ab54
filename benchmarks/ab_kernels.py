"""Two builds of the kernels side by side: a saved ``_kernels`` extension against the
installed one, in one process, interleaved in a new random order each repetition, minimum of the repetitions, one thread.

Run::

    python benchmarks/ab_kernels.py OLD_KERNELS_SO [--reps 15] [--variant avx512] [--flags]

``OLD_KERNELS_SO`` is the ``_kernels*.so`` of an earlier build, for example taken from a
wheel of an older commit::

    git worktree add /tmp/old <commit> && python -m pip wheel --no-build-isolation \\
        --no-deps -w /tmp/old-wheel /tmp/old
    python -m zipfile -e /tmp/old-wheel/approxmat-*.whl /tmp/old-files

Both builds get the same random level, input and output buffer; each is packed by its
own ``pack`` (layouts may differ between builds) and called through its own
``PreparedLevel(...).product(x, out, nthreads, flags)``. Prints, per configuration and
layout of x (C = row-major, F = column-major), the times before and after and their
ratio (below 1: the installed build is faster).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time

import numpy as np

from approxmat import _kernels as installed
from approxmat._backend import empty_output
from speed import random_level  # this folder's speed.py: the same random levels

CONFIGS = [
    # (N, D, M, C): both sum paths of the AVX-512 variant, both vpermb tile orders
    (10_000, 512, 10, 16),
    (100_000, 512, 10, 16),
    (10_000, 512, 33, 16),
    (10_000, 512, 100, 16),
    (100_000, 512, 100, 16),
    (100_000, 512, 100, 32),
    (10_000, 512, 512, 32),
    (10_000, 512, 1024, 32),
    (8192, 768, 3072, 64),
]


def load_build(path):
    """Import a ``_kernels`` extension from a file under another package name."""
    spec = importlib.util.spec_from_file_location("approxmat_ab_old._kernels", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="path of the earlier build's _kernels extension")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--variant", default=None, help="kernel variant (default: best)")
    parser.add_argument("--flags", action="store_true",
                        help="also compute row flags, as the package's calls do")
    args = parser.parse_args(argv)
    old = load_build(args.old)
    rng = np.random.default_rng(0)
    order_rng = np.random.default_rng(1)
    print(f"variant {args.variant or installed.selected_variant()}; minimum of {args.reps} "
          f"interleaved repetitions; 1 thread; {'with' if args.flags else 'no'} row flags; ms")
    print(f"{'N':>7} {'D':>4} {'M':>5} {'C':>3} {'x':>2} | {'before':>8} {'after':>8} {'ratio':>6}")
    for N, D, M, C in CONFIGS:
        xc = rng.standard_normal((N, D)).astype(np.float32)
        layouts = {"C": xc, "F": np.asfortranarray(xc)}
        level = random_level(D, M, C, rng, xc)
        out = empty_output(N, M, np.float32)  # as the API allocates results (aligned)
        flags = np.empty(N, np.uint8) if args.flags else None
        calls = {}
        for name, build in (("before", old), ("after", installed)):
            packed = build.pack(level.split_dims, level.thresholds, level.luts, level.scale,
                                level.offset, args.variant, level.split_low, level.split_high)
            prepared = build.PreparedLevel(level.split_dims, level.thresholds, level.luts,
                                           level.scale, level.offset, packed, args.variant)
            for lay, x in layouts.items():
                calls[lay, name] = lambda p=prepared, x=x: p.product(x, out, 1, flags)
        samples = {key: [] for key in calls}
        for fn in calls.values():
            fn()
        keys = list(calls)
        for _ in range(args.reps):
            # A new order every repetition: a fixed order gives whichever call follows
            # another a systematic edge or handicap (measured: the same build timed 4-12 %
            # apart in the two slots at (100 000, 512, 100, 16), AVX2, row-major x).
            for i in order_rng.permutation(len(keys)):
                key = keys[i]
                fn = calls[key]
                t0 = time.perf_counter()
                fn()
                fn()
                samples[key].append((time.perf_counter() - t0) / 2 * 1e3)
        for lay in layouts:
            before, after = min(samples[lay, "before"]), min(samples[lay, "after"])
            print(f"{N:>7} {D:>4} {M:>5} {C:>3} {lay:>2} | {before:8.3f} {after:8.3f} "
                  f"{after / before:6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
