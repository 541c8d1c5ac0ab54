"""A dask array larger than the workers' memory, on a local cluster: ``x @ W`` against
dask's own ``x @ weights``.

Run: ``python benchmarks/dask_cluster.py [--gib 8] [--block-rows 131072] [--workers 2]
[--memory-limit 2GiB] [--tolerance 0.1] [--sink sum|npy] [--dir DIR] [--keep] [--reps 1]
[--quick] [--no-per-block]``

What it measures: ``x`` is an ``(N, 192)`` float32 dask array of ``--gib`` GiB (8 by
default: twice the memory of the two workers together), stored on disk as one ``.npy``
file per block of ``--block-rows`` rows and read with ``np.load`` by the tasks
(``da.from_delayed`` per block, ``da.concatenate``). Each method computes the same sink
of its ``(N, 64)`` result on the workers (itself larger than their memory):
``y.sum(axis=0).compute()`` (``--sink sum``), or ``da.to_npy_stack`` into a temporary
directory (``--sink npy``). The methods:

* ``dask exact``: ``x @ weights`` with the plain ndarray weights (dask's own matmul);
* ``approxmat``: ``x @ W``, ``W = ApproxMatrix(weights).fit(X_cal)`` (default ladder),
  under the default settings (``tolerance=None``: the most accurate fitted point);
* ``approxmat tol t``: ``x @ W`` built under ``approxmat.config(tolerance=t)``
  (``--tolerance``, default 0.1): per block, the point predicted fastest within ``t``.

Each (method, repetition) runs on a fresh ``distributed.LocalCluster(processes=True)``
of ``--workers`` workers with one thread each and ``--memory-limit`` per worker (dask's
own defaults otherwise, so each worker's BLAS and OpenMP are limited to one thread), so
that the peak resident size of the worker processes belongs to that method. The workers
are forked from a fork server started before any data is loaded (with distributed's
environment for spawned workers): Linux keeps ``ru_maxrss`` across exec, and workers
spawned by this process would start at its peak. On each
cluster: a warm-up pass of the same sink over the first few blocks (imports, ``W`` sent
once, page cache of those files), then the timed computation. Columns:

* ``s``: wall seconds of the timed computation (minimum over ``--reps``; the order of
  the methods rotates between repetitions); ``GB/s``: bytes of ``x`` read (GB = 1e9
  bytes) per second; ``Mrow/s``: rows of ``x`` per second.
* ``peak MiB``: the largest peak RSS of the worker processes (``ru_maxrss`` of
  ``getrusage(RUSAGE_SELF)``, gathered with ``client.run`` after the timed computation;
  maximum over repetitions); ``idle MiB``: the same, read before the warm-up.
* ``rel err``: ``||Y_hat - Y||_F / ||Y||_F`` over a sample of blocks (the method's own
  result blocks, computed on the cluster after the timed run; ``Y`` in float64,
  computed in this process).
* ``picked``, ``threads``: the point one task chose for a sample block, and the kernel
  (or BLAS) threads of a task, both read in a task on a worker.
* ``pickle KiB``: ``len(pickle.dumps(W))`` (for ``dask exact``, of the weights array);
  ``unpickles``: how many matrices each worker rebuilt from a pickle during the timed
  computation (``approxmat._matrix._UNPICKLED[0]`` before and after; ``W`` is one key of
  the graph, so 1 per worker that ran a block).

Data (real, nothing is downloaded): every 8x8x3 patch (D = 192) of the two photographs
scikit-learn ships (``approxmat._demo._patches``), varied cheaply and deterministically
row by row (random horizontal/vertical flips of the patch, brightness scale in
[0.8, 1.2] and shift in [-0.1, 0.1], Gaussian noise of sd 0.01, clipped to [0, 1];
seeded per block) to fill the blocks. The weights are the demo's: the top 64 principal
components of the patches of ``china.jpg`` (``approxmat._demo.load_patch_problem``,
192 x 64 float32). ``W`` is fitted once, in this process, on 20 000 rows drawn like the
blocks. The blocks go to ``--dir`` (default: a new directory under the system's
temporary directory), removed at the end unless ``--keep``. They were just written, so
with more free RAM than ``x`` they are read from the page cache: the figures are of the
cluster's compute and ``np.load``, not of a disk.

Before the cluster runs (``--no-per-block`` skips it), one block (the first) is timed in
this process with one thread (``threadpool_limits(1)``, ``approxmat.config(threads=1)``;
minimum of interleaved repetitions, ``_timing.interleaved_minima``): its ``np.load``,
each method's product of the loaded block (``block @ weights``; ``block @ W`` under the
method's tolerance and ``approxmat.dask._block(block, W, settings)``, the task function,
with the settings the method's graph stores), and each method's graph of that block
alone (load, product, column sums) on dask's synchronous scheduler: a task that costs
more than its steps on a worker shows there first.

Figures also go to ``benchmarks/out/dask_cluster.json``. ``--quick``: 0.25 GiB and 5 000
calibration rows, a smoke test.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import pickle
import platform
import resource
import shlex
import shutil
import sys
import tempfile
import time

import numpy as np

import approxmat as am
from approxmat._demo import PATCH, _cpu_name, _patches, _point_name, load_patch_problem
from approxmat._show import build_facts

D = PATCH * PATCH * 3
CALIBRATION_ROWS = 20_000
#: Blocks of the warm-up pass on each cluster, and blocks the error is measured on.
WARM_BLOCKS = 4
SAMPLE_BLOCKS = 4
SEED = 0
JSON_PATH = os.path.join("benchmarks", "out", "dask_cluster.json")
#: Interleaved repetitions of the single-process timings of one block.
PER_BLOCK_REPS = 7


# ----------------------------------------------------------------------------- data
def patch_pool():
    """Every 8x8x3 patch of both sample photographs, float32 in [0, 1]."""
    from sklearn.datasets import load_sample_images

    images = load_sample_images().images
    return np.vstack([_patches(np.asarray(image, np.float32) / np.float32(255))
                      for image in images])


def varied_rows(pool, n, rng):
    """``n`` patches of ``pool``, flipped, rescaled, shifted and noised at random."""
    rows = pool[rng.integers(0, len(pool), n)]
    patches = rows.reshape(n, PATCH, PATCH, 3)
    flips = rng.integers(0, 4, n)
    across = (flips & 1).astype(bool)
    patches[across] = patches[across, :, ::-1]
    down = (flips & 2).astype(bool)
    patches[down] = patches[down, ::-1]
    rows *= rng.uniform(0.8, 1.2, (n, 1)).astype(np.float32)
    rows += rng.uniform(-0.1, 0.1, (n, 1)).astype(np.float32)
    rows += np.float32(0.01) * rng.standard_normal((n, D), dtype=np.float32)
    return np.clip(rows, 0, 1, out=rows)


def write_blocks(directory, pool, N, block_rows):
    """One ``block_NNNNN.npy`` per block of rows; returns ``[(path, rows), ...]``."""
    blocks = []
    for i, start in enumerate(range(0, N, block_rows)):
        n = min(block_rows, N - start)
        path = os.path.join(directory, f"block_{i:05d}.npy")
        np.save(path, varied_rows(pool, n, np.random.default_rng([SEED, 2, i])))
        blocks.append((path, n))
    return blocks


def dask_blocks(blocks):
    """One dask array per ``.npy`` block, read by its task with ``np.load``."""
    import dask
    import dask.array as da

    meta = np.empty((0, D), np.float32)
    return [da.from_delayed(dask.delayed(np.load, pure=True)(path), (n, D), np.float32,
                            meta=meta) for path, n in blocks]


# ----------------------------------------------------------------------------- methods
def methods(weights, W, tolerance):
    """``(name, build, matrix, tolerance)`` per method: ``build(x)`` is its lazy product;
    ``matrix`` and ``tolerance`` are what :func:`_probe` needs."""

    def exact(x):
        return x @ weights

    def default(x):
        return x @ W

    def budget(x):
        with am.config(tolerance=tolerance):  # stored in the graph when it is built
            return x @ W

    return [("dask exact", exact, None, None), ("approxmat", default, W, None),
            (f"approxmat tol {tolerance:g}", budget, W, tolerance)]


def sink(y, kind):
    """Reduce ``y`` on the workers: its column sums, or ``.npy`` files (removed)."""
    import dask.array as da

    if kind == "sum":
        return y.sum(axis=0).compute()
    out = tempfile.mkdtemp(prefix="dask_cluster_y_")
    try:
        da.to_npy_stack(out, y, axis=0)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return None


# ----------------------------------------------------------------------------- one block
def per_block(path, parts0, weights, W, contenders, reps=PER_BLOCK_REPS):
    """What one block costs in this process with one thread: ``[(step, picked, s)]``.

    Under ``threadpool_limits(1)`` and ``approxmat.config(threads=1)``, the minimum
    over ``reps`` interleaved repetitions (``_timing.interleaved_minima``) of:
    ``np.load`` of the block; each method's product of the loaded block (NumPy's
    ``block @ weights``; ``block @ W`` under the method's tolerance, and
    ``approxmat.dask._block(block, W, settings)`` with the settings its graph stores);
    and each method's whole graph of that one block (``parts0``: load, product, column
    sums) computed by dask's synchronous scheduler, which adds what dask does around
    the task function (graph optimisation, argument handling) to the steps above.
    """
    import dask
    from threadpoolctl import threadpool_limits

    from _timing import interleaved_minima  # the benchmarks directory (this script's)
    from approxmat.dask import _block

    block = np.load(path)
    steps = [("np.load", lambda: np.load(path), None)]
    for name, build, matrix, tolerance in contenders:
        with am.config(tolerance=tolerance):
            settings = am.get_config()  # what the graph built under it stores
        if matrix is None:
            steps.append((f"{name}: block @ weights", lambda: block @ weights, False))
        else:
            def product(tolerance=tolerance):
                with am.config(tolerance=tolerance):
                    return block @ W

            steps.append((f"{name}: block @ W", product, True))
            steps.append((f"{name}: _block(block, W, settings)",
                          lambda settings=settings: _block(block, W, settings), True))
        graph = build(parts0).sum(axis=0)
        steps.append((f"{name}: graph of the block, sync", graph.compute, matrix is not None))
    with threadpool_limits(limits=1), am.config(threads=1), \
            dask.config.set(scheduler="sync"):
        seconds = interleaved_minima([fn for _, fn, _ in steps], reps)
        rows = []
        for (step, fn, approx), t in zip(steps, seconds):
            picked = "-"
            if approx is not None:
                fn()
                picked = _point_name(am.last_call()) if approx else "numpy"
            rows.append((step, picked, t))
    return rows


def print_per_block(rows, path, reps, file=sys.stdout):
    block = np.load(path, mmap_mode="r")
    print(f"\none block in this process, 1 thread (threadpool_limits(1), config(threads=1)): "
          f"{os.path.basename(path)}, {block.shape[0]} x {block.shape[1]} {block.dtype}; "
          f"minimum of {reps} interleaved repetitions", file=file)
    width = max(len(step) for step, _, _ in rows)
    print(f"{'step':<{width}} {'picked':>8} {'ms':>7}", file=file)
    for step, picked, t in rows:
        print(f"{step:<{width}} {picked:>8} {t * 1e3:7.1f}", file=file)


# ----------------------------------------------------------------------------- workers
# Run on the workers (by client.run or as tasks): defined here, pickled by value.
def _max_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _vm_hwm():
    """The peak RSS of this process's address space (``VmHWM``), a cross-check."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _unpickled():
    from approxmat import _matrix

    return _matrix._UNPICKLED[0]


def _spill_writes(dask_worker):
    metrics = getattr(dask_worker.data, "cumulative_metrics", {})
    return int(metrics.get(("disk-write", "count"), 0))


def _probe(path, W, tolerance):
    """The point a task picks for one block, and a task's kernel (or BLAS) threads."""
    if W is None:
        from threadpoolctl import threadpool_info

        blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        return "numpy", max(blas, default=0)
    from approxmat.dask import task_threads

    threads = task_threads()
    with am.config(tolerance=tolerance, threads=threads):
        np.load(path) @ W
        return _point_name(am.last_call()), threads


def start_fork_server(dask):
    """Have distributed fork its workers from a fork server started now; returns the
    ``distributed`` module.

    Linux keeps a process's peak RSS (``ru_maxrss``) across exec: workers spawned by
    this process once it holds the data would start at its peak. The fork server
    starts while this process is small, with the environment distributed gives the
    workers it spawns (``distributed.nanny.pre-spawn-environ``: one BLAS and OpenMP
    thread), since the libraries it preloads read it when they load.
    """
    import multiprocessing.forkserver

    dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"})
    import distributed
    import distributed.utils

    distributed.utils.get_mp_context()  # sets the modules the fork server preloads
    saved = dict(os.environ)
    os.environ.update({key: str(value) for key, value in
                       dask.config.get("distributed.nanny.pre-spawn-environ").items()})
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return distributed


def _warnings(client):
    """WARNING-or-worse log records of the workers and their nannies."""
    found = []
    for nanny in (False, True):
        for address, records in client.get_worker_logs(nanny=nanny).items():
            found += [f"{'nanny' if nanny else 'worker'} {address}: {level} {message}"
                      for level, message in reversed(records)
                      if level in ("WARNING", "ERROR", "CRITICAL")]
    return found


def run_method(build, x, x_head, args, probe, error_sample=None):
    """One timed computation of a method's sink on a fresh cluster: a dict of figures.

    ``probe``: the arguments of :func:`_probe`; ``error_sample``: ``(block indices,
    their exact float64 products)`` to measure the error on, or None.
    """
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      memory_limit=args.memory_limit, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        idle = max(client.run(_max_rss).values())
        before = client.run(_unpickled)
        sink(build(x_head), args.sink)  # warm-up
        warm = client.run(_unpickled)
        start = time.perf_counter()
        value = sink(build(x), args.sink)
        seconds = time.perf_counter() - start
        peaks = client.run(_max_rss)
        hwm = client.run(_vm_hwm)
        after = client.run(_unpickled)
        spills = client.run(_spill_writes)
        warnings = _warnings(client)
        workers = len(client.scheduler_info()["workers"])
        # Not timed, after the figures above: the error and the probe.
        error = None
        if error_sample is not None:
            sample, exact = error_sample
            y = build(x)
            parts = client.gather(client.compute([y.blocks[i] for i in sample]))
            num = sum(float(np.sum((p.astype(np.float64) - e) ** 2))
                      for p, e in zip(parts, exact))
            error = float(np.sqrt(num / sum(float(np.sum(e * e)) for e in exact)))
        picked, threads = client.submit(_probe, *probe, pure=False).result()
    return {
        "seconds": seconds, "peak_rss": max(peaks.values()),
        "peak_rss_per_worker": sorted(peaks.values()), "vm_hwm": max(hwm.values()),
        "idle_rss": idle,
        "unpickled_warmup": sorted(warm[a] - before[a] for a in warm),
        "unpickled": sorted(after[a] - warm[a] for a in after),
        "spill_writes": sum(spills.values()), "warnings": warnings,
        "workers_at_end": workers, "picked": picked, "threads": threads,
        "rel_err": error, "sum": None if value is None else [float(v) for v in value],
    }


# ----------------------------------------------------------------------------- output
def print_table(rows, x_bytes, N, file=sys.stdout):
    print(f"\n{'method':<20} {'picked':>9} {'threads':>7} {'s':>7} {'GB/s':>6} "
          f"{'Mrow/s':>6} {'peak MiB':>8} {'idle MiB':>8} {'rel err':>9} "
          f"{'pickle KiB':>10} {'unpickles':>9}", file=file)
    for r in rows:
        unpickles = "-" if r["method"] == "dask exact" else ",".join(map(str, r["unpickled"]))
        print(f"{r['method']:<20} {r['picked']:>9} {r['threads']:>7} {r['seconds']:7.2f} "
              f"{x_bytes / 1e9 / r['seconds']:6.3f} {N / 1e6 / r['seconds']:6.2f} "
              f"{r['peak_rss'] / 2**20:8.0f} {r['idle_rss'] / 2**20:8.0f} "
              f"{r['rel_err']:9.2e} {r['pickle_bytes'] / 1024:10.1f} {unpickles:>9}",
              file=file)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=None,
                        help="size of x in GiB (default 8, 0.25 with --quick)")
    parser.add_argument("--block-rows", type=int, default=131_072,
                        help="rows per .npy block (default 131072, ~100 MB)")
    parser.add_argument("--workers", type=int, default=2, help="workers (default 2)")
    parser.add_argument("--memory-limit", default="2GiB",
                        help="memory limit per worker (default 2GiB)")
    parser.add_argument("--tolerance", type=float, default=0.1,
                        help="tolerance of the budgeted method (default 0.1)")
    parser.add_argument("--sink", choices=("sum", "npy"), default="sum",
                        help="what is done with the result: column sums on the workers, "
                             "or da.to_npy_stack into a temporary directory (default sum)")
    parser.add_argument("--dir", default=None,
                        help="where the blocks go (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the blocks at the end")
    parser.add_argument("--reps", type=int, default=1,
                        help="timed computations per method, in rotated order (default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="0.25 GiB and 5000 calibration rows: a smoke test")
    parser.add_argument("--no-per-block", action="store_true",
                        help="skip the single-process timings of one block")
    args = parser.parse_args(argv)
    args.gib = args.gib or (0.25 if args.quick else 8.0)
    if args.reps < 1 or args.block_rows < 1 or args.workers < 1:
        parser.error("--reps, --block-rows and --workers must be at least 1")
    command = " ".join(["python benchmarks/dask_cluster.py", *map(shlex.quote, sys.argv[1:])])

    import dask
    import dask.array as da

    distributed = start_fork_server(dask)

    print(f"command: {command}")
    print(f"machine: {_cpu_name()}, {os.cpu_count()} CPUs, {platform.system()} "
          f"{platform.machine()}; dask {dask.__version__}, distributed "
          f"{distributed.__version__}")
    am.show_config()

    start = time.perf_counter()
    problem = load_patch_problem(calibration_rows=1, test_rows=1)
    weights = problem.weights
    pool = patch_pool()
    W = am.ApproxMatrix(weights)
    t0 = time.perf_counter()
    n_cal = CALIBRATION_ROWS // 4 if args.quick else CALIBRATION_ROWS
    W.fit(varied_rows(pool, n_cal, np.random.default_rng([SEED, 1])))
    print(f"\nweights: the demo's {weights.shape[0]}x{weights.shape[1]} {weights.dtype} "
          f"(top principal components of {problem.names[0]}); W fitted on "
          f"{n_cal} varied patches in {time.perf_counter() - t0:.1f} s:")
    print(W.levels)

    N = int(round(args.gib * 2**30 / (D * 4)))
    directory = args.dir or tempfile.mkdtemp(prefix="dask_cluster_x_")
    os.makedirs(directory, exist_ok=True)
    try:
        t0 = time.perf_counter()
        blocks = write_blocks(directory, pool, N, args.block_rows)
        del pool
        x_bytes = N * D * 4
        print(f"\nx: {N} x {D} float32 = {x_bytes / 2**30:.2f} GiB in {len(blocks)} .npy "
              f"blocks of {args.block_rows} rows in {directory} (written in "
              f"{time.perf_counter() - t0:.1f} s); workers: {args.workers} x 1 thread, "
              f"memory_limit {args.memory_limit} each; sink: {args.sink}")
        parts = dask_blocks(blocks)
        x = da.concatenate(parts)
        x_head = da.concatenate(parts[:WARM_BLOCKS])
        rng = np.random.default_rng([SEED, 3])
        sample = sorted(rng.choice(len(blocks), min(SAMPLE_BLOCKS, len(blocks)),
                                   replace=False).tolist())
        weights64 = weights.astype(np.float64)
        exact = [np.load(blocks[i][0]).astype(np.float64) @ weights64 for i in sample]

        contenders = methods(weights, W, args.tolerance)
        one_block = None
        if not args.no_per_block:
            one_block = per_block(blocks[0][0], parts[0], weights, W, contenders)
            print_per_block(one_block, blocks[0][0], PER_BLOCK_REPS)
        runs = {name: [] for name, *_ in contenders}
        for rep in range(args.reps):
            shift = rep % len(contenders)
            for name, build, matrix, budget in contenders[shift:] + contenders[:shift]:
                run = run_method(build, x, x_head, args,
                                 probe=(blocks[sample[0]][0], matrix, budget),
                                 error_sample=(sample, exact) if rep == 0 else None)
                runs[name].append(run)
                print(f"  rep {rep + 1}/{args.reps}: {name}: {run['seconds']:.2f} s",
                      flush=True)
    finally:
        if args.keep:
            print(f"blocks kept in {directory}")
        else:
            for path in glob.glob(os.path.join(directory, "block_*.npy")):
                os.remove(path)
            if not os.listdir(directory):
                os.rmdir(directory)

    rows = []
    for name, _, matrix, _ in contenders:
        first = runs[name][0]
        rows.append({
            "method": name, "picked": first["picked"], "threads": first["threads"],
            "seconds": min(r["seconds"] for r in runs[name]),
            "peak_rss": max(r["peak_rss"] for r in runs[name]),
            "idle_rss": max(r["idle_rss"] for r in runs[name]),
            "rel_err": first["rel_err"],
            "pickle_bytes": len(pickle.dumps(weights if matrix is None else matrix)),
            "unpickled": first["unpickled"], "runs": runs[name],
        })
    print_table(rows, x_bytes, N)
    print(f"\n{args.workers} workers x 1 thread, memory_limit {args.memory_limit} each; "
          f"x {x_bytes / 2**30:.2f} GiB, result {N * weights.shape[1] * 4 / 2**30:.2f} GiB "
          f"(float32), sink {args.sink}.\n"
          f"s: minimum of {args.reps} run(s), each on a fresh cluster after a warm-up pass "
          f"over {WARM_BLOCKS} blocks; GB = 1e9 bytes of x.\n"
          f"peak / idle MiB: max over workers of ru_maxrss after the run / before the "
          f"warm-up.\n"
          f"rel err: on blocks {sample} of {len(blocks)}, against float64.\n"
          f"unpickles: matrices each worker rebuilt from a pickle during the timed run; "
          f"pickle KiB of dask exact: the weights array.")
    for row in rows:
        for run in row["runs"]:
            notes = []
            if run["spill_writes"]:
                notes.append(f"{run['spill_writes']} keys spilled to disk")
            if run["peak_rss"] > 1.1 * run["vm_hwm"]:
                notes.append(f"ru_maxrss {run['peak_rss'] / 2**20:.0f} MiB but VmHWM "
                             f"{run['vm_hwm'] / 2**20:.0f} MiB (inherited peak?)")
            if run["workers_at_end"] != args.workers:
                notes.append(f"{run['workers_at_end']} workers at the end")
            notes += run["warnings"]
            for note in notes:
                print(f"  {row['method']}: {note}")
    if all(not r["spill_writes"] and not r["warnings"] for row in rows for r in row["runs"]):
        print("no worker spilled to disk or logged a warning")
    if args.sink == "sum":
        reference = np.asarray(rows[0]["runs"][0]["sum"])
        for row in rows[1:]:
            diff = np.linalg.norm(np.asarray(row["runs"][0]["sum"]) - reference)
            print(f"column sums of {row['method']} vs dask exact: relative difference "
                  f"{diff / np.linalg.norm(reference):.2e}")
    print(f"total {time.perf_counter() - start:.1f} s")

    facts = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": _cpu_name(), "cores": os.cpu_count(),
        "platform": f"{platform.system()} {platform.machine()}",
        "approxmat": am.__version__, "numpy": np.__version__,
        "dask": dask.__version__, "distributed": distributed.__version__,
        "kernel_variant": build_facts()["simd_in_use"],
        "options": dict(vars(args)),
        "shape": {"N": N, "D": D, "M": int(weights.shape[1])}, "x_bytes": x_bytes,
        "blocks": len(blocks), "error_blocks": sample,
        "levels": [dataclasses.asdict(info) for info in W.levels],
        "methods": rows,
        "per_block": None if one_block is None else [
            {"step": step, "picked": picked, "seconds": t} for step, picked, t in one_block],
    }
    os.makedirs(os.path.dirname(JSON_PATH), exist_ok=True)
    with open(JSON_PATH, "w", encoding="utf-8") as f:
        json.dump(facts, f, indent=1)
        f.write("\n")
    print(f"figures written to {JSON_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
