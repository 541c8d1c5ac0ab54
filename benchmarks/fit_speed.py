"""Fit time and peak memory of ``ApproxMatrix(weights).fit(X)`` at the shapes of real layers.

Run: ``python benchmarks/fit_speed.py [--quick] [--rows ...]``

Each row is one fit in this process, of the points the row names, on the synthetic
low-rank recipe of ``benchmarks/accuracy.py`` (``X = Z @ basis + 0.1 * noise`` with
``Z`` and ``basis`` standard normal of rank 32, float32; ``weights`` standard normal
float32): the fit time does not depend on what the numbers are, only on the shapes
and the points. Columns:

* ``learn s``: :func:`approxmat._fit.fit_points` (the split of the rows, the trees,
  tables and low-rank factors, and their validated errors);
* ``total s``: the whole ``W.fit(X, ...)``: ``learn`` plus the timing of every point
  on this machine (both layouts, one and all kernel threads) and the pruning;
* ``peak MiB``: the largest resident size during the fit minus the resident size
  before it (Linux: ``/proc/self/clear_refs`` resets the peak, ``VmHWM`` reads it), so
  the inputs ``X`` and ``weights`` are not counted;
* ``points``: the points kept, with their validated errors.

Shapes: a transformer feed-forward layer's first product (``(20 000 x 384) -> 1536``,
the default ladder), a classifier head (``(20 000 x 512) -> 10``, the default ladder)
and one level of 16 codebooks on many rows (``(200 000 x 512) -> 100``).
``--quick`` divides the rows by 10 (a smoke test, not the figures).
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time

import numpy as np

import approxmat as am
from approxmat._fit import fit_points

#: name: (N, D, M, fit arguments)
ROWS = {
    "ffn": (20_000, 384, 1536, {}),
    "head": (20_000, 512, 10, {}),
    "one-level": (200_000, 512, 100, {"ncodebooks": [16]}),
}


def _status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak():
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak resident size becomes the current one
    return _status("VmRSS")


def problem(N, D, M, seed=0, rank=32):
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((rank, D)).astype(np.float32)
    X = rng.standard_normal((N, rank), dtype=np.float32) @ basis
    X += 0.1 * rng.standard_normal((N, D), dtype=np.float32)
    return X, rng.standard_normal((D, M)).astype(np.float32)


def measure(name, N, D, M, kwargs, seed=0):
    X, weights = problem(N, D, M, seed)
    points_kw = {"ncodebooks": kwargs.get("ncodebooks"), "ranks": kwargs.get("ranks")}
    if "ncodebooks" in kwargs and "ranks" not in kwargs:
        points_kw["ranks"] = ()
    before = _reset_peak()
    t0 = time.perf_counter()
    fit_points(X, weights, points_kw["ncodebooks"], points_kw["ranks"], random_state=seed)
    learn = time.perf_counter() - t0
    learn_peak = _status("VmHWM") - before
    before = _reset_peak()
    t0 = time.perf_counter()
    W = am.ApproxMatrix(weights).fit(X, random_state=seed, **kwargs)
    total = time.perf_counter() - t0
    peak = _status("VmHWM") - before
    points = ", ".join(f"{'C' if p.kind == 'lut' else 'r'}{p.size} {p.error:.3f}"
                       for p in W.levels)
    return {"name": name, "shape": f"({N} x {D}) -> {M}", "learn": learn, "total": total,
            "learn_peak": learn_peak, "peak": peak, "points": points}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="rows / 10 (smoke test)")
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    args = parser.parse_args(argv)
    print(f"# {platform.processor() or platform.machine()}, approxmat {am.__version__}, "
          f"python {platform.python_version()}, numpy {np.__version__}")
    print("# " + " ".join([sys.executable.rsplit("/", 1)[-1], "benchmarks/fit_speed.py"]
                          + (argv if argv is not None else sys.argv[1:])))
    head = (f"{'row':<10} {'shape':<24} {'learn s':>8} {'total s':>8} {'learn MiB':>10} "
            f"{'peak MiB':>9}  points (validated error)")
    print(head)
    for name in args.rows:
        N, D, M, kwargs = ROWS[name]
        if args.quick:
            N //= 10
        r = measure(name, N, D, M, kwargs)
        print(f"{r['name']:<10} {r['shape']:<24} {r['learn']:8.1f} {r['total']:8.1f} "
              f"{r['learn_peak'] / 2**20:10.0f} {r['peak'] / 2**20:9.0f}  {r['points']}",
              flush=True)


if __name__ == "__main__":
    main()
