"""Speed of approximate products against NumPy's ``x @ weights``, and the memory floor.

Run: ``python benchmarks/speed.py [--reps 15] [--quick] [--json PATH]``

``--json PATH`` also writes both tables to ``PATH`` (columns with their units, rows, the
command line and the machine: CPU model, cores, kernel variant, NumPy version, date);
``docs/scripts/perf_tables.py`` renders ``docs/data/kernels-*.json`` into the
documentation.

Everything is measured in one process, interleaved (each repetition runs every
contender once, in a new random order), and reported as the **minimum** over repetitions (the machine
is shared; the minimum is the least disturbed sample). Levels are random (valid, with
calibration ranges) so no fitting is needed; the kernels' speed does not depend on the
parameter values.

Columns (milliseconds unless noted):

* ``numpy``: ``x @ weights`` (float32, row-major x), OpenBLAS, all threads it wants.
* ``api 1t`` / ``api 2t``: ``x @ W`` through the public API (row-major float32 x),
  ``approxmat.config(threads=...)``: includes every Python-level cost.
* ``C 1t``: the kernel alone (``_backend.product``: product + row flags + NaN
  rows) on row-major float32 x; ``C nofl``: the same without the flags
  (``flags=None``); ``fl%``: what the fused flags cost, ``C 1t / C nofl - 1`` from the
  minima; ``fl%med``: the median over repetitions of the same ratio taken within each
  repetition (the two calls run back to back), less sensitive to a single lucky sample.
* ``F 1t`` / ``F 2t``: the kernel on column-major float32 x (the paper's layout),
  product only, as the reference measures it; ``F+fl``: with the row flags (a full
  finiteness pass over X, which the reference does not do).
* ``ref F``: the paper's reference encode + scan (bolt's "mithral"), column-major x, one
  core, as measured once on the 2-vCPU Zen 4 machine of ``benchmarks/LOG.md`` (fixed
  figures in ``REFERENCE_MS``, not measured by this script); ``ref/F1t``: their ratio.
* ``F floor``: reading the distinct split columns once plus writing the float32 output
  once at the bandwidths measured in this run: the least a column-major call can take.
* ``floor``: reading x once plus writing the float32 output once, at the streaming
  bandwidth measured in the same run (``x.max()`` reads, ``out.fill`` writes).
* ``C/floor``: how close the row-major kernel call is to that floor.
* ``Glk/s``: table lookups per second (N * C * M / time) of ``F 1t``.

A second table, **latency**, times the plainest calls with the default settings:
``x @ W`` against NumPy's ``x @ weights`` for N = 1 and 32 (microseconds, median of
the repetitions, each repetition the mean of 2000 calls).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import numpy as np

import approxmat as am
from approxmat import _backend, _kernels
from approxmat._level import Level

CONFIGS = [
    # (N, D, M, C)
    (10_000, 512, 10, 16),
    (10_000, 512, 100, 16),
    (100_000, 512, 10, 16),
    (100_000, 512, 100, 16),
    (100_000, 512, 100, 32),
    (10_000, 512, 512, 32),
    (8192, 768, 3072, 64),
    (1, 512, 100, 16),
    (32, 512, 100, 16),
]

# Reference (bolt "mithral") encode + scan, column-major X, one core, as measured on the
# 2-vCPU Zen 4 machine of benchmarks/LOG.md; the goal there was 1.5x faster than these.
REFERENCE_MS = {
    (10_000, 512, 10, 16): 0.055,
    (10_000, 512, 100, 16): 0.17,
    (100_000, 512, 100, 16): 3.0,
    (100_000, 512, 100, 32): 4.9,
}


def random_level(D, M, C, rng, x):
    split_dims = rng.integers(0, D, size=(C, 4)).astype(np.int32)
    thresholds = rng.choice(x[: min(len(x), 256)].ravel(), size=(C, 15)).astype(np.float32)
    luts = rng.integers(0, 256, size=(C, 16, M), dtype=np.uint8)
    low = np.full((C, 4), -4.0, np.float32)
    high = np.full((C, 4), 4.0, np.float32)
    return Level(split_dims, thresholds, luts, rng.uniform(1e-3, 1e-1, M), rng.standard_normal(M),
                 split_low=low, split_high=high)


def timeit(fn, inner):
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def measure(config, reps, rng):
    N, D, M, C = config
    x = rng.standard_normal((N, D)).astype(np.float32)
    xf = np.asfortranarray(x)
    weights = rng.standard_normal((D, M)).astype(np.float32)
    level = random_level(D, M, C, rng, x)
    W = am.ApproxMatrix(weights)._with_levels([level])
    out = _backend.empty_output(N, M, np.float32)  # aligned, as the API allocates results
    packed = _backend.packed_level(level)
    prepared = _kernels.PreparedLevel(level.split_dims, level.thresholds, level.luts,
                                      level.scale, level.offset, packed)

    def api(threads):
        def run():
            with am.config(threads=threads):
                np.matmul(x, W, out=out)
        return run

    def fkernel(threads, with_flags=False):
        flags = np.empty(N, np.uint8) if with_flags else None
        return lambda: prepared.product(xf, out, threads, flags)

    nofl = lambda: prepared.product(x, out, 1)  # noqa: E731

    contenders = {
        "numpy": lambda: np.matmul(x, weights, out=out),
        "api 1t": api(1),
        "api 2t": api(2),
        "C 1t": lambda: _backend.product(x, level, out, 1),
        "C nofl": nofl,
        "F 1t": fkernel(1),
        "F+fl": fkernel(1, True),
        "F 2t": fkernel(2),
        "read x": lambda: x.max(),
        "write out": lambda: out.fill(0.0),
    }
    # Enough inner calls that each sample lasts >= ~2 ms (timer resolution, noise).
    inner = {}
    for name, fn in contenders.items():
        fn()
        t = timeit(fn, 1)
        inner[name] = max(1, min(2000, int(2e-3 / max(t, 1e-7))))
    samples = {name: [] for name in contenders}
    gc.collect()
    names = list(contenders)
    for _ in range(reps):
        # A new random order every repetition: a call right after a 2-thread one (OpenMP
        # and OpenBLAS threads still spinning) or after one that flushed the caches
        # would otherwise always be the same contender.
        for i in rng.permutation(len(names)):
            samples[names[i]].append(timeit(contenders[names[i]], inner[names[i]]))
    best = {name: min(v) * 1e3 for name, v in samples.items()}
    paired = [a / b - 1 for a, b in zip(samples["C 1t"], samples["C nofl"])]
    best["fl%med"] = 100 * float(np.median(paired))
    best["floor"] = best["read x"] + best["write out"]
    distinct = len(np.unique(level.split_dims))
    best["F floor"] = best["read x"] * distinct / D + best["write out"]
    best["Glk/s"] = N * C * M / (best["F 1t"] * 1e-3) / 1e9
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15, help="interleaved repetitions")
    parser.add_argument("--quick", action="store_true", help="smaller configurations only")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write the tables to PATH (for docs/data/kernels-*.json)")
    args = parser.parse_args(argv)
    tables = _json_tables() if args.json else None
    rng = np.random.default_rng(0)
    configs = [c for c in CONFIGS if not args.quick or c[0] * c[1] <= 10_000 * 512]
    print(f"approxmat kernel variant: {_kernels.selected_variant()}; numpy {np.__version__}; "
          f"minimum of {args.reps} interleaved repetitions; times in ms")
    head = (f"{'N':>7} {'D':>4} {'M':>5} {'C':>3} | {'numpy':>8} {'api 1t':>8} {'api 2t':>8} | "
            f"{'C 1t':>8} {'C nofl':>8} {'fl%':>5} {'fl%med':>6} | {'F 1t':>7} {'F+fl':>7} {'F 2t':>7} "
            f"{'2t gain':>7} {'ref F':>6} {'ref/F1t':>7} {'F floor':>7} {'Glk/s':>6} | "
            f"{'floor':>7} {'C/floor':>7}")
    print(head)
    print("-" * len(head))
    for config in configs:
        b = measure(config, args.reps, rng)
        N, D, M, C = config
        ref = REFERENCE_MS.get(config)
        ref_s = f"{ref:6.3f}" if ref else f"{'':>6}"
        ratio = f"{ref / b['F 1t']:7.2f}" if ref else f"{'':>7}"
        print(
            f"{N:>7} {D:>4} {M:>5} {C:>3} | {b['numpy']:8.3f} {b['api 1t']:8.3f} "
            f"{b['api 2t']:8.3f} | {b['C 1t']:8.3f} {b['C nofl']:8.3f} "
            f"{100 * (b['C 1t'] / b['C nofl'] - 1):5.1f} {b['fl%med']:6.1f} | {b['F 1t']:7.3f} {b['F+fl']:7.3f} "
            f"{b['F 2t']:7.3f} {b['F 1t'] / b['F 2t']:7.2f} {ref_s} {ratio} {b['F floor']:7.3f} "
            f"{b['Glk/s']:6.1f} | {b['floor']:7.3f} {b['C 1t'] / b['floor']:7.2f}",
            flush=True,
        )
        if tables is not None:
            tables["kernels"]["rows"].append(_kernel_row(config, b, ref))
    latency(args.reps, rng, None if tables is None else tables["latency"]["rows"])
    if tables is not None:
        _write_json(args.json, args, tables, sys.argv[1:] if argv is None else argv)
    return 0


def latency(reps, rng, rows=None):
    """``x @ W`` against ``x @ weights`` for tiny N, default settings, microseconds."""
    print(f"\nlatency: x @ W against NumPy's x @ weights, float32, default settings; "
          f"median of {reps} repetitions of 2000 calls; microseconds")
    print(f"{'N':>4} {'D':>4} {'M':>4} {'C':>3} | {'numpy':>7} {'approxmat':>9} {'diff':>6}")
    for N, D, M, C in ((1, 512, 10, 16), (1, 512, 100, 16), (32, 512, 100, 16)):
        x = rng.standard_normal((N, D), dtype=np.float32)
        weights = rng.standard_normal((D, M)).astype(np.float32)
        W = am.ApproxMatrix(weights)._with_levels([random_level(D, M, C, rng, x)])
        calls = {"numpy": lambda: x @ weights, "approxmat": lambda: x @ W}
        samples = {name: [] for name in calls}
        for fn in calls.values():
            fn()
        for _ in range(reps):
            for name, fn in calls.items():
                samples[name].append(timeit(fn, 2000) * 1e6)
        t = {name: float(np.median(v)) for name, v in samples.items()}
        print(f"{N:>4} {D:>4} {M:>4} {C:>3} | {t['numpy']:7.2f} {t['approxmat']:9.2f} "
              f"{t['approxmat'] - t['numpy']:6.2f}", flush=True)
        if rows is not None:
            rows.append([N, D, M, C, t["numpy"], t["approxmat"], t["approxmat"] - t["numpy"]])


# -- --json: the printed tables as data, for docs/scripts/perf_tables.py --------------

_SHAPE = [("N", "rows"), ("D", "columns"), ("M", "columns"), ("C", "codebooks")]


def _json_tables():
    """Empty tables with the printed columns, their units and groups (the ``|`` blocks)."""
    ms, pct, ratio = "ms", "%", "ratio"
    groups = [
        ("shape", _SHAPE),
        ("api", [("numpy", ms), ("api 1t", ms), ("api 2t", ms)]),
        ("row-major", [("C 1t", ms), ("C nofl", ms), ("fl%", pct), ("fl%med", pct)]),
        ("column-major", [("F 1t", ms), ("F+fl", ms), ("F 2t", ms), ("2t gain", ratio),
                          ("ref F", ms), ("ref/F1t", ratio), ("F floor", ms),
                          ("Glk/s", "G lookups/s")]),
        ("floor", [("floor", ms), ("C/floor", ratio)]),
    ]
    columns = [{"name": n, "unit": u, "group": g} for g, cols in groups for n, u in cols]
    latency_columns = [{"name": n, "unit": u, "group": "shape"} for n, u in _SHAPE] + [
        {"name": n, "unit": "us", "group": "latency"} for n in ("numpy", "approxmat", "diff")]
    return {
        "kernels": {"title": "float32, minimum over interleaved repetitions",
                    "columns": columns, "rows": []},
        "latency": {"title": "x @ W against NumPy's x @ weights, default settings, median of "
                             "the repetitions, each the mean of 2000 calls",
                    "columns": latency_columns, "rows": []},
    }


def _kernel_row(config, b, ref):
    """One row of the kernels table, the values the line printed above shows."""
    return list(config) + [
        b["numpy"], b["api 1t"], b["api 2t"],
        b["C 1t"], b["C nofl"], 100 * (b["C 1t"] / b["C nofl"] - 1), b["fl%med"],
        b["F 1t"], b["F+fl"], b["F 2t"], b["F 1t"] / b["F 2t"],
        ref, ref / b["F 1t"] if ref else None, b["F floor"], b["Glk/s"],
        b["floor"], b["C 1t"] / b["floor"],
    ]


def _write_json(path, args, tables, argv):
    import datetime
    import json
    import os
    import platform
    import shlex

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    forced = os.environ.get("APPROXMAT_FORCE_ISA")
    command = shlex.join(["python", "benchmarks/speed.py", *argv])
    facts = {
        "command": f"APPROXMAT_FORCE_ISA={forced} {command}" if forced else command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "platform": f"{platform.system()} {platform.machine()}",
        "kernel_variant": _kernels.selected_variant(),
        "forced_isa": forced,
        "numpy": np.__version__,
        "approxmat": am.__version__,
        "reps": args.reps,
        "quick": args.quick,
        "tables": tables,
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(facts, f, indent=1)
        f.write("\n")
    print(f"\ntables written to {path}")


if __name__ == "__main__":
    sys.exit(main())
