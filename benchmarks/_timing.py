"""Interleaved timing shared by the benchmark scripts (not part of the package).

Each repetition times a batch of calls of every function, in a new random order; a
function's figure is the minimum over repetitions of the mean time per call of its
batch. Batches last about ``target`` seconds (at most ``max_calls`` calls), sized after
a first call that is not timed (it may measure cost curves or pack tables).
"""

from __future__ import annotations

import random
import time

__all__ = ["interleaved_minima"]


def _batch_size(fn, target, max_calls):
    fn()
    t0 = time.perf_counter()
    for _ in range(10):
        fn()
    one = max((time.perf_counter() - t0) / 10, 1e-7)
    return max(1, min(max_calls, int(target / one)))


def interleaved_minima(fns, reps, *, settle=False, target=2e-3, max_calls=20_000):
    """Minimum seconds per call of each function in ``fns``.

    With ``settle``, each timed batch follows one untimed call of the same function:
    thread pools left spinning (or asleep) by the previous function then do not weigh
    on the first call of the batch.
    """
    sizes = [_batch_size(f, target, max_calls) for f in fns]
    best = [float("inf")] * len(fns)
    order = list(range(len(fns)))
    for _ in range(reps):
        random.shuffle(order)
        for i in order:
            f, k = fns[i], sizes[i]
            if settle:
                f()
            t0 = time.perf_counter()
            for _ in range(k):
                f()
            best[i] = min(best[i], (time.perf_counter() - t0) / k)
    return best
