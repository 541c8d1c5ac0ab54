"""Peak memory of one ``x @ W`` call, against the size of its output.

Linux only: resets the process's peak resident set size (``/proc/self/clear_refs``)
before each call and reads ``VmHWM`` after it. The extra memory of a call is its
peak minus the resident size before it; a call needs its output and a bounded
working buffer, so ``extra - output`` must not grow with N.

Run: ``python benchmarks/memory.py``
"""

from __future__ import annotations

import gc

import numpy as np

import approxmat as am
from approxmat._level import Level


def _status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_extra(fn):
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS to the current RSS
    before = _status("VmRSS")
    result = fn()
    extra = _status("VmHWM") - before
    del result
    return extra


def main():
    rng = np.random.default_rng(0)
    D = 512
    print(f"{'N':>8} {'M':>5} {'C':>4} {'layout':>6} {'output MiB':>10} {'extra MiB':>9} "
          f"{'extra-output MiB':>16} {'numpy extra MiB':>15}")
    for N, M, C in [(10_000, 100, 16), (100_000, 100, 16), (100_000, 10, 32), (200_000, 100, 16)]:
        weights = rng.standard_normal((D, M)).astype(np.float32)
        level = Level(
            rng.integers(0, D, (C, 4)).astype(np.int32),
            rng.standard_normal((C, 15)).astype(np.float32),
            rng.integers(0, 256, (C, 16, M), dtype=np.uint8),
            rng.uniform(0.01, 0.1, M), rng.standard_normal(M), error=0.1,
        )
        W = am.ApproxMatrix(weights)._with_levels([level])
        for layout in ("C", "F"):
            x = np.asarray(rng.standard_normal((N, D), dtype=np.float32), order=layout)
            x @ W  # warm up: packed tables, thread pool
            extra = peak_extra(lambda: x @ W)
            numpy_extra = peak_extra(lambda: x @ weights)
            out = N * M * 4
            print(f"{N:>8} {M:>5} {C:>4} {layout:>6} {out / 2**20:10.1f} {extra / 2**20:9.1f} "
                  f"{(extra - out) / 2**20:16.2f} {numpy_extra / 2**20:15.1f}")
            del x


if __name__ == "__main__":
    main()
