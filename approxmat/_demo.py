"""``python -m approxmat demo``: fit on real photographs, then compare with NumPy.

The problem
-----------
Data: the two colour photographs that scikit-learn ships inside its package
(``sklearn.datasets.load_sample_images()``: ``china.jpg`` and ``flower.jpg``,
427 x 640 x 3 each, read offline; decoding the JPEGs needs Pillow).
Every 8 x 8 x 3 patch is one row of ``D = 192`` values in ``[0, 1]``.

Weights: a real learned linear map, the filter bank of the top ``M = 64``
principal components of the patches of ``china.jpg`` (``D x M = 192 x 64``).
``x @ weights`` is what a PCA-based compressor or the first layer of an image
model computes for every patch.

Calibration: a random subset of the patches of ``china.jpg``.

Error is reported three ways:

* ``val err``: the error ``fit`` measured on calibration rows it held out;
* ``test err``: on patches of ``china.jpg`` that ``fit`` never saw (same photo);
* ``new-photo err``: on every patch of ``flower.jpg``, a photograph the weights
  and the tables have never seen. The gap between this column and the others is
  what a shift of the input distribution costs.

Timing: ``x @ W`` against NumPy's ``x @ weights`` on all 265 860 patches of
``flower.jpg`` (stride 1), float32, medians of interleaved calls, each after untimed
calls of the same product (thread pools of NumPy's BLAS and of the kernels spin for a
while after a call; see :func:`_interleaved_medians`). A second table shows, for a few accuracy budgets, the point
each call chose (for all rows, and for one row) and its time.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

__all__ = ["PatchProblem", "load_patch_problem", "run_demo", "add_arguments", "main"]

#: Side of the square patches (pixels).
PATCH = 8

#: Defaults of the command-line options (also those of :func:`run_demo`).
_DEFAULTS = {
    "--threads": None, "--repeat": 7, "--seed": 0, "--calibration-rows": 5000,
    "--test-rows": 50_000, "--new-rows": None, "--components": 64, "--codebooks": None,
    "--ranks": None,
}


class PatchProblem:
    """Rows and weights of the demo problem (attributes only).

    Attributes
    ----------
    weights : ndarray of float32, shape (192, ncomponents)
        Principal directions of the patches of ``china.jpg``, one per column.
    X_cal : ndarray of float32, shape (calibration_rows, 192)
        Calibration rows: random patches of ``china.jpg``.
    X_test : ndarray of float32, shape (n, 192)
        Other patches of ``china.jpg``, disjoint from ``X_cal``.
    X_new : ndarray of float32, shape (n_new, 192)
        Patches of ``flower.jpg`` (all of them unless ``new_rows`` was given).
    names : tuple of str
        File names of the two photographs.
    """

    def __init__(self, weights, X_cal, X_test, X_new, names):
        self.weights = weights
        self.X_cal = X_cal
        self.X_test = X_test
        self.X_new = X_new
        self.names = names


def _patches(image, patch=PATCH):
    """Every ``patch x patch`` window of an ``(H, W, 3)`` image as a row, C order."""
    from numpy.lib.stride_tricks import sliding_window_view

    windows = sliding_window_view(image, (patch, patch, image.shape[2]))[:, :, 0]
    return np.ascontiguousarray(windows.reshape(-1, patch * patch * image.shape[2]))


def load_patch_problem(
    calibration_rows=5000, test_rows=50_000, new_rows=None, ncomponents=64, seed=0
):
    """Build the demo problem from scikit-learn's two sample photographs.

    Parameters
    ----------
    calibration_rows : int
        Random patches of ``china.jpg`` to calibrate on.
    test_rows : int
        Patches of ``china.jpg`` not among the calibration rows, for the test error.
    new_rows : int or None
        Patches of ``flower.jpg`` (timing and the new-photo error). ``None``: all
        265 860 of them, in image order; otherwise a random subset.
    ncomponents : int
        Number of principal components, the ``M`` of the weights (at most 192).
    seed : int
        Seed of the random choices.

    Returns
    -------
    PatchProblem

    Raises
    ------
    ImportError
        When scikit-learn (which carries the photographs) or Pillow (which
        decodes them) is not installed.
    """
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()  # raises ImportError without Pillow
    names = tuple(str(name).replace("\\", "/").rsplit("/", 1)[-1] for name in bunch.filenames)
    first, second = (np.asarray(img, dtype=np.float32) / np.float32(255) for img in bunch.images)
    rng = np.random.default_rng(seed)

    P1 = _patches(first)
    D = P1.shape[1]
    if not 1 <= ncomponents <= D:
        raise ValueError(f"ncomponents must be in [1, {D}], got {ncomponents}")
    if calibration_rows + test_rows > len(P1):
        raise ValueError(
            f"calibration_rows + test_rows must be at most {len(P1)} (the patches of "
            f"{names[0]}), got {calibration_rows} + {test_rows}"
        )
    # The filter bank: principal directions of the first photo's patches (a subsample
    # is plenty to estimate a 192 x 192 covariance).
    sample = P1[rng.choice(len(P1), size=min(len(P1), 40_000), replace=False)].astype(np.float64)
    sample -= sample.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(sample.T @ sample)  # ascending order
    components = eigenvectors[:, ::-1][:, :ncomponents].T
    # Fix the sign of each direction (SVD leaves it arbitrary): largest entry positive.
    signs = np.sign(components[np.arange(ncomponents), np.abs(components).argmax(axis=1)])
    weights = np.ascontiguousarray((components * signs[:, None]).T, dtype=np.float32)

    order = rng.permutation(len(P1))
    X_cal = P1[np.sort(order[:calibration_rows])]
    X_test = P1[np.sort(order[calibration_rows : calibration_rows + test_rows])]
    del P1
    X_new = _patches(second)
    if new_rows is not None and new_rows < len(X_new):
        X_new = X_new[np.sort(rng.choice(len(X_new), size=new_rows, replace=False))]
    return PatchProblem(weights, X_cal, X_test, X_new, names)


def _point_name(report):
    """``"exact"``, ``"lut 16"`` or ``"rank 8"`` for a :class:`CallReport`."""
    if report.kind == "exact":
        return "exact"
    return f"{'lut' if report.kind == 'lut' else 'rank'} {report.size}"


def _relative_error(approx, exact):
    exact64 = exact.astype(np.float64)
    return float(np.linalg.norm(approx - exact64) / np.linalg.norm(exact64))


#: Untimed calls of the same product before each timed one: for at least this long
#: (seconds), at most :data:`_SETTLE_CALLS` calls.
_SETTLE_SECONDS = 0.12
_SETTLE_CALLS = 5


def _interleaved_medians(functions, repeat):
    """Median wall time of each function, calling them in turn ``repeat`` times.

    Each timed call follows untimed calls of the same function (:data:`_SETTLE_SECONDS`):
    NumPy's BLAS and approxmat's kernels each keep a pool of threads that spin for a
    while after a call (OpenBLAS's for up to about 0.1 s), and on a machine with no
    spare core the first calls of one after the other wait for cores. The times are
    those of a call in a run of calls of one kind, as a program that uses one of the
    two products sees them.
    """
    times = [[] for _ in functions]
    for _ in range(repeat):
        for fn, bucket in zip(functions, times):
            start = time.perf_counter()
            for _ in range(_SETTLE_CALLS):
                fn()
                if time.perf_counter() - start >= _SETTLE_SECONDS:
                    break
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [float(np.median(bucket)) for bucket in times]


def _blas_threads():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - a runtime dependency
        return None
    counts = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    return max(counts) if counts else None


def _missing_data_message(exc):
    what = "Pillow" if "PIL" in str(exc) or getattr(exc, "name", "") == "PIL" else "scikit-learn"
    return (
        "The demo reads the two sample photographs that scikit-learn ships (china.jpg, "
        f"flower.jpg), and {what} is not installed"
        f"{' (it decodes the JPEG files)' if what == 'Pillow' else ''}.\n"
        "Install what the demo needs with:  pip install 'approxmat[demo]'  "
        "(or: pip install scikit-learn pillow)"
    )


def _plot(path, rows, t_numpy, title):
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    speed = [t_numpy / row["time"] for row in rows]
    ax.plot([row["test_err"] for row in rows], speed, "o--", color="C1",
            label="approxmat, error on unseen patches of the same photo")
    errs = [row["new_err"] for row in rows]
    ax.plot(errs, speed, "o-", color="C0", label="approxmat, error on the new photo")
    for row, err, s in zip(rows, errs, speed):
        label = f"C={row['size']}" if row["kind"] == "lut" else f"r={row['size']}"
        ax.annotate(label, (err, s), textcoords="offset points",
                    xytext=(5, 5), fontsize=8)
    ax.plot([0], [1.0], "s", color="C3", label="NumPy x @ weights (exact)")
    ax.axhline(1.0, color="0.7", lw=0.8, zorder=0)
    ax.set_xlabel("relative error of x @ W")
    ax.set_ylabel("speedup over NumPy (x)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_title(title, fontsize=9)
    fig.legend(fontsize=8, loc="outside lower center", ncols=3)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_demo(
    threads=None,
    repeat=7,
    seed=0,
    file=None,
    *,
    calibration_rows=5000,
    test_rows=50_000,
    new_rows=None,
    ncomponents=64,
    ncodebooks=None,
    ranks=None,
    plot=None,
    json_path=None,
    budgets=(0.02, 0.05, 0.1, 0.2, 0.3),
) -> int:
    """Fit on patches of a photograph; print error and speed per point against NumPy,
    then what a few accuracy budgets choose.

    Parameters
    ----------
    threads : int or None
        Threads for both sides: approxmat's kernels and NumPy's BLAS are limited
        to this many with ``threadpoolctl``. ``None``: their defaults.
    repeat : int
        Timed calls of each product (medians, interleaved).
    seed : int
        Seed of the data choices and of the fit's split.
    file : file-like, optional
        Where to print the table (default ``sys.stdout``).
    calibration_rows, test_rows, new_rows, ncomponents
        Sizes, see :func:`load_patch_problem`.
    ncodebooks, ranks : sequence of int or None
        Lookup-table and low-rank points to fit (see :meth:`ApproxMatrix.fit`); both
        ``None``: the fit's default ladder, pruned.
    plot : str or path-like, optional
        Write a PNG of speedup against error there (needs matplotlib).
    json_path : str or path-like, optional
        Write the table and the run's facts there as JSON (read by the docs'
        performance page).
    budgets : sequence of float
        Tolerances whose choice (for all rows of the new photo, and for one row) the
        second table shows.

    Returns
    -------
    int
        Exit status: 0 on success, 2 when an optional dependency is missing.
    """
    import approxmat as am

    from . import _backend, _kernels

    file = file if file is not None else sys.stdout
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    am.config(threads=threads)  # validates threads before any work
    if plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(
                "--plot needs matplotlib, which is not installed.\n"
                "Install it with:  pip install matplotlib   (or run the demo without --plot)",
                file=sys.stderr,
            )
            return 2
    start = time.perf_counter()
    try:
        problem = load_patch_problem(
            calibration_rows, test_rows, new_rows, ncomponents=ncomponents, seed=seed
        )
    except ImportError as exc:
        print(_missing_data_message(exc), file=sys.stderr)
        return 2
    weights = problem.weights
    D, M = weights.shape
    print(
        f"data: {PATCH}x{PATCH}x3 patches (D={D}) of scikit-learn's sample photographs, "
        f"{problem.names[0]} and {problem.names[1]} (loaded in "
        f"{time.perf_counter() - start:.1f} s)",
        file=file,
    )
    print(
        f"weights: top {M} principal components of the patches of {problem.names[0]} "
        f"({D}x{M} float32)",
        file=file,
    )
    print(
        f"rows: {len(problem.X_cal)} calibration + {len(problem.X_test)} test patches of "
        f"{problem.names[0]} (disjoint); {len(problem.X_new)} patches of "
        f"{problem.names[1]} (new photo: error and timing)",
        file=file,
    )

    W = am.ApproxMatrix(weights)
    start = time.perf_counter()
    with _thread_limits(threads), am.config(threads=threads):
        W.fit(problem.X_cal, ncodebooks, ranks=ranks, random_state=seed)
    print(f"fit: {len(W.levels)} operating points in {time.perf_counter() - start:.1f} s "
          f"(learning, validation, and timing every point on this machine)", file=file)

    limits = _thread_limits(threads)
    with limits:
        x = problem.X_new
        exact_new = x @ weights
        exact_test = problem.X_test @ weights
        rows = []
        calls = [lambda: x @ weights]
        for info, level in zip(W.levels, W._levels):
            # One matrix per point (same weights, only this point), so each row of the
            # table is exactly that point whatever the budget would choose.
            W_level = W._with_levels([level])
            cfg = am.config(threads=threads)
            with cfg:
                approx_test = problem.X_test @ W_level
                approx_new = x @ W_level  # also the warm-up call
            rows.append(
                {
                    "kind": info.kind,
                    "size": info.size,
                    "ncodebooks": info.ncodebooks,
                    "table_bytes": info.nbytes,
                    "val_err": info.error,
                    "test_err": _relative_error(approx_test, exact_test),
                    "new_err": _relative_error(approx_new, exact_new),
                }
            )
            del approx_test, approx_new

            def call(cfg=cfg, W_level=W_level):
                with cfg:
                    return x @ W_level

            calls.append(call)
        for t in budgets:
            def budgeted(t=t):
                with am.config(tolerance=t, threads=threads):
                    return x @ W
            calls.append(budgeted)
        medians = _interleaved_medians(calls, repeat)
        choices = []
        one = x[:1]
        for t in budgets:
            with am.config(tolerance=t, threads=threads):
                y = x @ W
                big = am.last_call()
                one @ W
                small = am.last_call()
            choices.append((t, big, _relative_error(y, exact_new), small))
            del y
        with am.config(threads=threads):
            kthreads = _backend.kernel_threads()
        blas = _blas_threads()
    t_numpy = medians[0]
    for row, t in zip(rows, medians[1:]):
        row["time"] = t
    t_budgets = medians[1 + len(rows):]

    print(
        f"\n{'point':>7} {'size':>4} {'KiB':>6} {'val err':>8} {'test err':>8} "
        f"{'new-photo err':>13} {'ms':>8} {'numpy ms':>8} {'speedup':>7}",
        file=file,
    )
    for row in rows:
        print(
            f"{row['kind']:>7} {row['size']:>4} {row['table_bytes'] / 1024:>6.1f} "
            f"{row['val_err']:8.4f} {row['test_err']:8.4f} {row['new_err']:13.4f} "
            f"{row['time'] * 1e3:8.3f} {t_numpy * 1e3:8.3f} {t_numpy / row['time']:7.2f}",
            file=file,
        )
    print(
        f"\n{'budget':>7} {'chosen for all rows':>19} {'new-photo err':>13} {'ms':>8} "
        f"{'speedup':>7} {'chosen for 1 row':>16}",
        file=file,
    )
    for (t, big, err, small), seconds in zip(choices, t_budgets):
        print(
            f"{t:>7g} {_point_name(big):>19} {err:13.4f} {seconds * 1e3:8.3f} "
            f"{t_numpy / seconds:7.2f} {_point_name(small):>16}",
            file=file,
        )
    print(
        f"\nrelative error = ||x@W - x@weights||_F / ||x@weights||_F; val err: measured by "
        f"fit on held-out calibration rows; test err: unseen patches of {problem.names[0]}; "
        f"new-photo err: {problem.names[1]}.",
        file=file,
    )
    print(
        f"time: x @ W vs NumPy x @ weights on the {len(x)} x {D} float32 patches of "
        f"{problem.names[1]}; medians of {repeat} interleaved calls (each after untimed "
        f"calls of the same product); speedup = NumPy time / "
        f"approxmat time. A budget takes, per call, the point predicted fastest among "
        f"those validated within it, the exact product included.",
        file=file,
    )
    print(
        f"kernel variant: {_kernels.selected_variant()}; kernel threads: {kthreads}; "
        f"NumPy BLAS threads: {blas if blas is not None else 'unknown'}",
        file=file,
    )
    if json_path is not None:
        options = {
            "--threads": threads, "--repeat": repeat, "--seed": seed,
            "--calibration-rows": calibration_rows, "--test-rows": test_rows,
            "--new-rows": new_rows, "--components": ncomponents,
            "--codebooks": ",".join(map(str, ncodebooks)) if ncodebooks else None,
            "--ranks": ",".join(map(str, ranks)) if ranks else None,
        }
        command = " ".join(
            ["python -m approxmat demo"]
            + [f"{k} {v}" for k, v in options.items() if v is not None and v != _DEFAULTS[k]]
            + [f"--json {json_path}"]
        )
        budget_rows = [
            {"tolerance": t, "chosen": _point_name(big), "new_err": err, "seconds": seconds,
             "chosen_one_row": _point_name(small)}
            for (t, big, err, small), seconds in zip(choices, t_budgets)
        ]
        _write_json(json_path, rows, t_numpy, problem, repeat, kthreads, blas,
                    _kernels.selected_variant(), command, budget_rows)
        print(f"results written to {json_path}", file=file)
    if plot is not None:
        _plot(
            plot,
            rows,
            t_numpy,
            f"{len(x)} x {D} @ {D} x {M} float32, {_kernels.selected_variant()}, "
            f"{kthreads} kernel thread(s)",
        )
        print(f"plot written to {plot}", file=file)
    return 0


def _write_json(path, rows, t_numpy, problem, repeat, kthreads, blas, variant, command,
                budgets=()):
    import datetime
    import json
    import os
    import platform

    import approxmat

    D, M = problem.weights.shape
    facts = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "approxmat": approxmat.__version__,
        "numpy": np.__version__,
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "kernel_variant": variant,
        "kernel_threads": kthreads,
        "blas_threads": blas,
        "repeat": repeat,
        "shape": {"N": len(problem.X_new), "D": D, "M": M},
        "calibration_rows": len(problem.X_cal),
        "test_rows": len(problem.X_test),
        "numpy_seconds": t_numpy,
        "levels": [dict(row, seconds=row.pop("time")) for row in (dict(r) for r in rows)],
        "budgets": list(budgets),
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(facts, f, indent=1)
        f.write("\n")


def _cpu_name():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def _thread_limits(threads):
    """A context that limits BLAS and OpenMP to ``threads`` (no-op for None)."""
    import contextlib

    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)


def _codebook_list(text):
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 8,16,32, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def add_arguments(parser):
    """Add the demo's options to an :class:`argparse.ArgumentParser` (or subparser)."""
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for approxmat's kernels and for NumPy's BLAS "
                             "(default: their own defaults)")
    parser.add_argument("--repeat", type=int, default=7,
                        help="timed calls of each product; medians are shown (default 7)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the data choices and of the fit's split (default 0)")
    parser.add_argument("--calibration-rows", type=int, default=5000, metavar="N",
                        help="patches of the first photo to calibrate on (default 5000)")
    parser.add_argument("--test-rows", type=int, default=50_000, metavar="N",
                        help="unseen patches of the first photo for the test error "
                             "(default 50000)")
    parser.add_argument("--new-rows", type=int, default=None, metavar="N",
                        help="patches of the second photo to time on (default: all 265860)")
    parser.add_argument("--components", type=int, default=64, metavar="M",
                        help="principal components, i.e. columns of the weights (default 64)")
    parser.add_argument("--codebooks", type=_codebook_list, default=None, metavar="C,C,...",
                        help="lookup-table points to fit, e.g. 8,16,32 (default: fit's "
                             "default ladder)")
    parser.add_argument("--ranks", type=_codebook_list, default=None, metavar="R,R,...",
                        help="low-rank points to fit, e.g. 4,8 (default: fit's default "
                             "ladder; none when --codebooks is given)")
    parser.add_argument("--plot", default=None, metavar="PATH",
                        help="write a PNG of speedup against error (needs matplotlib)")
    parser.add_argument("--json", default=None, metavar="PATH", dest="json_path",
                        help="write the table and the run's facts as JSON")
    return parser


def run_from_args(args, file=None) -> int:
    """Run the demo with options parsed by a parser set up by :func:`add_arguments`."""
    return run_demo(
        threads=args.threads,
        repeat=args.repeat,
        seed=args.seed,
        file=file,
        calibration_rows=args.calibration_rows,
        test_rows=args.test_rows,
        new_rows=args.new_rows,
        ncomponents=args.components,
        ncodebooks=args.codebooks,
        ranks=args.ranks,
        plot=args.plot,
        json_path=args.json_path,
    )


def main(argv=None) -> int:
    """``python -m approxmat._demo [options]`` (the same as ``python -m approxmat demo``)."""
    parser = argparse.ArgumentParser(
        prog="python -m approxmat demo",
        description="fit on real photographs, then compare speed and error against NumPy",
    )
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
