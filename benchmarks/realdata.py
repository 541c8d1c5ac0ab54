"""Error against time on real tasks: approxmat's points, its tolerance picks, truncated SVD.

Run: ``python benchmarks/realdata.py [--threads 1] [--rounds 7] [--rows 100000] [--alloc]
[--quick] [--tasks sobel,digits,doc2vec] [--plot-dir benchmarks/out] [--no-plot]``

What it measures, for each task (real data that installed packages carry; nothing is
downloaded at run time):

* ``numpy``: NumPy's ``x @ weights`` (float32), the exact product.
* ``lut C`` / ``lowrank r``: every operating point of the default
  ``ApproxMatrix(weights).fit(X_cal, random_state=0)``, each timed alone through
  ``W._with_levels([point])`` (with ``tolerance=None`` such a matrix computes exactly
  that point).
* ``tol t``: ``x @ W`` on the fitted matrix under ``approxmat.config(tolerance=t)`` for
  t in 0.01, 0.02, 0.05, 0.1, 0.2, 0.5; ``picked`` is the point ``approxmat.last_call()``
  reported (every round), its error is that point's test error.
* ``svd r``: truncated SVD of the weights, ``(x @ (U_r * s_r)) @ Vt_r`` in float32, for
  r in 1, 2, 4, ..., 128 with r < min(D, M).

Columns: ``test err`` is the relative Frobenius error ``||Y_hat - Y||_F / ||Y||_F`` on
test rows that ``fit`` never saw (``Y`` in float64), ``val err`` the error ``fit``
validated on held-out calibration rows, ``ms`` the time of one call on ``N`` float32
rows (the test rows tiled to ``N``; errors use the untiled test rows), ``speedup`` NumPy's
time over the row's. ``top1`` (classifier-like tasks only): the fraction of test rows
whose argmax of ``Y_hat + bias`` equals that of ``Y + bias``. Times are the minimum over
``--rounds`` interleaved rounds (each round calls every contender once, in a new random
order; each sample is the mean of enough back-to-back calls to last >= ~2 ms), all in one
process, with ``--threads`` kernel threads (``approxmat.config(threads=...)``) and the same
BLAS limit (``threadpoolctl``), for the fit as well. Outputs go into preallocated
buffers (``np.matmul(x, W, out=out)``) for every contender; ``--alloc`` times plain
allocating calls (``x @ W``) instead, which is what the cost curves that ``fit``
measures (and so ``pred ms``) describe: for wide outputs the page faults of a fresh
output are a large part of an approximate call.

After each table: every approxmat point dominated by an SVD rank (SVD as fast or faster
and with lower or equal test error), and tolerance picks that were slower than NumPy or
whose test error exceeded their tolerance. A PNG of error against time per task goes to
``--plot-dir`` (matplotlib, Agg backend).

The tasks:

* ``sobel``: every 3x3 RGB patch (D = 27) of scikit-learn's sample photographs
  (``load_sample_images()``, needs Pillow), through the Sobel x and y filters of the
  luminance (M = 2), the filter task of the MADDNESS paper. Calibration: 20 000 random
  patches, test: 100 000 other random patches (half of each from ``china.jpg``, half
  from ``flower.jpg``).
* ``digits``: a ``MLPClassifier`` (one hidden layer of 256 ReLU units, trained here, in
  a few seconds, on 75 % of scikit-learn's bundled ``load_digits()``): hidden activations
  (D = 256) times the output layer's weights ``coefs_[-1]`` (M = 10). Calibration: the
  training rows; test: the 25 % held-out digits, tiled.
* ``doc2vec``: a pretrained model shipped inside gensim's wheel
  (``gensim/test/test_data/doc2vec_old_sep``, a PV-DM Doc2Vec model, 100 dimensions,
  3 955 words, trained by gensim's authors on the 300 news articles of
  ``lee_background.cor``, which gensim ships too). Rows: the PV-DM hidden layer at every
  word of the corpus (mean of the document vector and the word vectors of the 5 words on
  each side, D = 100); weights: the output layer ``syn1neg.T`` (M = 3 955), i.e. the
  scores of every vocabulary word for the missing word. Calibration: 3 000 random
  positions in articles 0-199 (fitting lookup tables for 3 955 columns is slow: about
  40 s for 2 000 rows, 160 s for 5 000, on one core); test: all 18 033 positions in
  articles 200-299. The model is an old pickle; classes
  that gensim 4 no longer has are replaced by plain stubs while reading it (only arrays
  and the vocabulary are used). **gensim is an optional extra needed by this task**
  (``pip install gensim``); without it the task prints a skip line. Its output has 3 955
  columns, so ``N`` is capped for it (at most 2.5e7 output values, ~100 MB).
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import sys
import time

import numpy as np

import approxmat as am

TOLERANCES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
SVD_RANKS = (1, 2, 4, 8, 16, 32, 64, 128)
#: Largest output (rows x columns) of one timed call: caps N for wide weights.
MAX_OUTPUT = 25_000_000


class Task:
    """One benchmark problem (attributes only)."""

    def __init__(self, name, about, weights, X_cal, X_test, bias=None):
        self.name = name
        self.about = about
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)
        self.X_cal = np.ascontiguousarray(X_cal, dtype=np.float32)
        self.X_test = np.ascontiguousarray(X_test, dtype=np.float32)
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float64)


class Skip(Exception):
    """A task cannot run here (a missing optional package); the message says why."""


# ----------------------------------------------------------------------------- tasks
def _photo_patches(k):
    try:
        from sklearn.datasets import load_sample_images

        bunch = load_sample_images()
    except ImportError as exc:
        raise Skip(f"needs scikit-learn and Pillow ({exc})") from None
    from numpy.lib.stride_tricks import sliding_window_view

    out = []
    for image in bunch.images:
        image = np.asarray(image, dtype=np.float32) / np.float32(255)
        windows = sliding_window_view(image, (k, k, 3))[:, :, 0]
        out.append(np.ascontiguousarray(windows.reshape(-1, k * k * 3)))
    return out


def task_sobel(quick, rng):
    china, flower = _photo_patches(3)
    luminance = np.array([0.299, 0.587, 0.114], np.float32)
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
    # Patch rows are (row, column, channel) in C order, like the filters below.
    weights = np.stack([(sobel_x[:, :, None] * luminance).ravel(),
                        (sobel_x.T[:, :, None] * luminance).ravel()], axis=1)
    n_cal, n_test = (5000, 20_000) if quick else (20_000, 100_000)
    # Calibration and test: disjoint random patches, half from each photograph.
    X_cal, X_test = [], []
    for patches in (china, flower):
        order = rng.permutation(len(patches))
        X_cal.append(patches[np.sort(order[: n_cal // 2])])
        X_test.append(patches[np.sort(order[n_cal // 2 : (n_cal + n_test) // 2])])
    X_cal, X_test = np.vstack(X_cal), np.vstack(X_test)
    about = (f"3x3 RGB patches of sklearn's sample photos (D=27) through Sobel x/y of the "
             f"luminance (M=2); calibration: {n_cal} random patches, test: {n_test} other "
             f"random patches (half of each from china.jpg and flower.jpg)")
    return Task("sobel", about, weights, X_cal, X_test)


def task_digits(quick, rng):
    import warnings

    try:
        from sklearn.datasets import load_digits
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.model_selection import train_test_split
        from sklearn.neural_network import MLPClassifier
    except ImportError as exc:
        raise Skip(f"needs scikit-learn ({exc})") from None
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    clf = MLPClassifier(hidden_layer_sizes=(256,), max_iter=100 if quick else 300,
                        random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_tr, y_tr)

    def hidden(A):
        return np.maximum(A @ clf.coefs_[0] + clf.intercepts_[0], 0.0)

    about = (f"MLPClassifier(256 ReLU) trained on sklearn digits ({len(X_tr)} train rows, "
             f"test accuracy {clf.score(X_te, y_te):.3f}): hidden activations (D=256) @ "
             f"coefs_[-1] (M=10); calibration: the {len(X_tr)} training rows, test: the "
             f"{len(X_te)} held-out rows")
    return Task("digits", about, clf.coefs_[-1], hidden(X_tr), hidden(X_te),
                bias=clf.intercepts_[-1])


class _Stub:
    """Stands in for classes an old pickle names that gensim no longer has."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {"state": state})


class _LenientUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (AttributeError, ImportError):
            return _Stub


def task_doc2vec(quick, rng):
    try:
        from gensim.test.utils import datapath
        from gensim.utils import simple_preprocess
    except ImportError:
        raise Skip("needs gensim, an optional extra of this benchmark "
                   "(pip install gensim): it ships the pretrained model") from None
    with open(datapath("doc2vec_old_sep"), "rb") as f:
        model = _LenientUnpickler(f, encoding="latin1").load()
    # Read the attributes as pickled (gensim 4's properties of the same names expect
    # its own layout).
    state, wv = vars(model), vars(vars(model)["wv"])
    word_vectors = np.asarray(wv["syn0"], dtype=np.float32)  # (V, 100)
    doc_vectors = np.asarray(vars(state["docvecs"])["doctag_syn0"], np.float32)  # (300, 100)
    output = np.load(datapath("doc2vec_old_sep.syn1neg.npy"))  # (V, 100)
    index = {word: vars(entry)["index"] for word, entry in wv["vocab"].items()}
    window = int(state["window"])
    with open(datapath("lee_background.cor"), encoding="utf-8") as f:
        docs = [simple_preprocess(line) for line in f]
    rows = ([], [])
    for d, words in enumerate(docs):
        ids = np.array([index[w] for w in words if w in index], dtype=np.int64)
        n = len(ids)
        if n < 2:
            continue
        prefix = np.vstack([np.zeros((1, word_vectors.shape[1])),
                            np.cumsum(word_vectors[ids].astype(np.float64), axis=0)])
        pos = np.arange(n)
        lo, hi = np.maximum(pos - window, 0), np.minimum(pos + window + 1, n)
        context = prefix[hi] - prefix[lo] - word_vectors[ids]  # window sum minus the word
        count = (hi - lo - 1)[:, None] + 1.0  # context words + the document vector
        rows[d >= 200].append((context + doc_vectors[d]) / count)
    X_cal, X_test = (np.vstack(r).astype(np.float32) for r in rows)
    # A subset calibrates: fitting lookup tables for M = 3955 columns costs time
    # roughly quadratic in the calibration rows (~40 s for 2000 rows here).
    n_cal = 1000 if quick else 3000
    X_cal = X_cal[np.sort(rng.choice(len(X_cal), n_cal, replace=False))]
    if quick:
        X_test = X_test[:5000]
    V = output.shape[0]
    about = (f"gensim's bundled PV-DM Doc2Vec (lee_background, 300 articles): hidden layer "
             f"(D={output.shape[1]}, mean of doc vector and +-{window} context words) @ "
             f"syn1neg.T (M={V}, scores of every word); calibration: {len(X_cal)} random "
             f"positions in articles 0-199, test: {len(X_test)} positions in articles 200-299")
    return Task("doc2vec", about, output.T, X_cal, X_test, bias=np.zeros(V))


TASKS = {"sobel": task_sobel, "digits": task_digits, "doc2vec": task_doc2vec}


# ----------------------------------------------------------------------------- timing
def _sample(fn, inner):
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def interleaved_minima(calls, rounds, rng, after=None):
    """Minimum seconds per call of each function; every round runs each once, shuffled.

    ``after(name)`` runs right after each sample of ``name`` (outside the timing).
    """
    names = list(calls)
    inner = {}
    for name in names:
        calls[name]()  # warm-up (first calls measure cost curves, touch buffers)
        t = _sample(calls[name], 1)
        inner[name] = max(1, min(200, int(2e-3 / max(t, 1e-7))))
    samples = {name: [] for name in names}
    gc.collect()
    for _ in range(rounds):
        for i in rng.permutation(len(names)):
            name = names[i]
            samples[name].append(_sample(calls[name], inner[name]))
            if after is not None:
                after(name)
    return {name: min(v) for name, v in samples.items()}


def relative_error(approx, exact64):
    return float(np.linalg.norm(approx.astype(np.float64) - exact64) / np.linalg.norm(exact64))


def top1(approx, exact64, bias):
    return float(np.mean(np.argmax(approx + bias, axis=1) == np.argmax(exact64 + bias, axis=1)))


def run_task(task, args, rng):
    threads = args.threads
    weights = task.weights
    D, M = weights.shape
    n_rows = max(1000, min(args.rows, MAX_OUTPUT // M // 1000 * 1000))
    reps = -(-n_rows // len(task.X_test))
    x = np.ascontiguousarray(np.tile(task.X_test, (reps, 1))[:n_rows])
    X_test = task.X_test
    exact = X_test.astype(np.float64) @ weights.astype(np.float64)
    out = np.empty((n_rows, M), np.float32)
    out.fill(0.0)  # touch the pages once

    def target():
        return None if args.alloc else out
    cfg = am.config(threads=threads)

    from threadpoolctl import threadpool_limits

    with cfg, threadpool_limits(limits=threads):  # fit times the points: same threads
        t0 = time.perf_counter()
        W = am.ApproxMatrix(weights).fit(task.X_cal, random_state=0)
        fit_seconds = time.perf_counter() - t0

    rows = []  # dicts: label, family, kind, size, val, err, top1, call

    def add(label, family, call, err=None, approx=None, val=float("nan"), kind="", size=0):
        row = {"label": label, "family": family, "call": call, "val": val, "kind": kind,
               "size": size, "err": err, "top1": None}
        if approx is not None:
            row["err"] = relative_error(approx, exact)
            if task.bias is not None:
                row["top1"] = top1(approx, exact, task.bias)
        rows.append(row)
        return row

    def numpy_call():
        np.matmul(x, weights, out=target())

    add("numpy", "numpy", numpy_call, approx=X_test @ weights, val=0.0, kind="exact")

    point_rows = {}
    for info, point in zip(W.levels, W._levels):
        single = W._with_levels([point])
        with cfg:
            approx = X_test @ single
            report = am.last_call()
        if (report.kind, report.size) != (info.kind, info.size):
            print(f"  note: _with_levels([{info.kind} {info.size}]) computed {report.kind} "
                  f"{report.size}")

        def call(single=single):
            with cfg:
                np.matmul(x, single, out=target())

        label = f"{info.kind} {info.size}"
        point_rows[(info.kind, info.size)] = add(label, "approxmat", call, approx=approx,
                                                 val=info.error, kind=info.kind,
                                                 size=info.size)

    picks = {}
    for t in TOLERANCES:
        tol_cfg = am.config(threads=threads, tolerance=t)

        def call(tol_cfg=tol_cfg):
            with tol_cfg:
                np.matmul(x, W, out=target())

        add(f"tol {t:g}", "tolerance", call, kind="tol", size=t)
        picks[f"tol {t:g}"] = []

    U, s, Vt = np.linalg.svd(weights.astype(np.float64), full_matrices=False)
    for r in SVD_RANKS:
        if r >= min(D, M):
            break
        left = np.ascontiguousarray(U[:, :r] * s[:r], dtype=np.float32)
        right = np.ascontiguousarray(Vt[:r], dtype=np.float32)
        tmp = np.empty((n_rows, r), np.float32)

        def call(left=left, right=right, tmp=tmp):
            np.matmul(np.matmul(x, left, out=None if args.alloc else tmp), right,
                      out=target())

        add(f"svd {r}", "svd", call, approx=(X_test @ left) @ right, kind="svd", size=r)

    def after(name):
        if name in picks:
            report = am.last_call()
            picks[name].append((report.kind, report.size, report.predicted_seconds))

    calls = {row["label"]: row["call"] for row in rows}
    with threadpool_limits(limits=threads):
        best = interleaved_minima(calls, args.rounds, rng, after=after)
    for row in rows:
        row["sec"] = best[row["label"]]

    # What each tolerance picked (the timed calls), and that point's test error.
    for row in rows:
        if row["family"] != "tolerance":
            continue
        seen = sorted({(k, s) for k, s, _ in picks[row["label"]]})
        row["picked"] = ", ".join("exact" if k == "exact" else f"{k} {s}" for k, s in seen)
        row["pred"] = float(np.median([p for _, _, p in picks[row["label"]]]))
        errs = []
        for k, s in seen:
            if k == "exact":
                errs.append((0.0, None if task.bias is None else 1.0, 0.0))
            else:
                pr = point_rows[(k, s)]
                errs.append((pr["err"], pr["top1"], pr["val"]))
        row["err"] = max(e for e, _, _ in errs)
        row["top1"] = None if task.bias is None else min(a for _, a, _ in errs)
        row["val"] = max(v for _, _, v in errs)
    return {"task": task, "rows": rows, "N": n_rows, "fit_seconds": fit_seconds,
            "levels": W.levels}


# ----------------------------------------------------------------------------- output
def print_table(result, file=sys.stdout):
    task = result["task"]
    rows = result["rows"]
    D, M = task.weights.shape
    t_np = next(r["sec"] for r in rows if r["family"] == "numpy")
    print(f"\n== {task.name}: {task.about}", file=file)
    print(f"   shape: N={result['N']} timed rows (test rows tiled) x D={D} @ D x M={M}; "
          f"fit {result['fit_seconds']:.1f} s, {len(result['levels'])} points", file=file)
    head = (f"{'contender':<12} {'picked':<12} {'val err':>8} {'test err':>8} {'top1':>6} "
            f"{'ms':>9} {'pred ms':>8} {'speedup':>7}")
    print(head, file=file)
    print("-" * len(head), file=file)
    for r in rows:
        top = f"{r['top1']:6.3f}" if r["top1"] is not None else f"{'':>6}"
        val = f"{r['val']:8.4f}" if r["val"] == r["val"] else f"{'':>8}"
        picked = r.get("picked", "")
        pred = f"{r['pred'] * 1e3:8.3f}" if r.get("pred", float("nan")) == r.get("pred") \
            else f"{'':>8}"
        print(f"{r['label']:<12} {picked:<12} {val} {r['err']:8.4f} {top} "
              f"{r['sec'] * 1e3:9.3f} {pred} {t_np / r['sec']:7.2f}", file=file)
    # Findings
    svd = [r for r in rows if r["family"] == "svd"]
    points = [r for r in rows if r["family"] == "approxmat"]
    dominated = []
    for p in points:
        better = [s for s in svd if s["sec"] <= p["sec"] and s["err"] <= p["err"]]
        if better:
            dominated.append(f"{p['label']} by " + ", ".join(s["label"] for s in better))
    if not svd:
        print(f"SVD dominance: no SVD rank below min(D, M) = {min(D, M)}", file=file)
    elif dominated:
        print("SVD dominance: DOMINATED (SVD as fast or faster, test error <=): "
              + "; ".join(dominated), file=file)
    else:
        print("SVD dominance: no approxmat point is dominated by an SVD rank", file=file)
    print("   pred ms: the time approxmat predicted for its pick (median over rounds); "
          "speedup: NumPy's ms / the row's ms", file=file)
    for r in rows:
        if r["family"] != "tolerance":
            continue
        notes = []
        if r["sec"] > t_np and r["picked"] != "exact":
            notes.append(f"slower than NumPy ({r['sec'] * 1e3:.3f} ms vs {t_np * 1e3:.3f} ms)")
        if r["err"] > r["size"]:
            notes.append(f"test error {r['err']:.4f} > tolerance (validated "
                         f"{r['val']:.4f})")
        if "," in r["picked"]:
            notes.append("picked different points in different rounds")
        # The fastest contender, as measured here, among those the budget allows.
        allowed = [q for q in rows if q["family"] in ("numpy", "approxmat")
                   and q["val"] <= r["size"]]
        fastest = min(allowed, key=lambda q: q["sec"])
        chosen = "numpy" if r["picked"] == "exact" else r["picked"]
        if fastest["label"] != chosen and r["sec"] > 1.1 * fastest["sec"]:
            notes.append(f"{fastest['label']} (validated {fastest['val']:.4f}) measured "
                         f"{fastest['sec'] * 1e3:.3f} ms alone, "
                         f"{r['sec'] / fastest['sec']:.2f}x faster than this pick")
        if notes:
            print(f"{r['label']}: picked {r['picked']}: " + "; ".join(notes), file=file)


def plot(result, path, threads):
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    task = result["task"]
    rows = result["rows"]
    D, M = task.weights.shape
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    t_np = next(r["sec"] for r in rows if r["family"] == "numpy") * 1e3
    ax.axvline(t_np, color="C3", lw=1.2, label=f"NumPy x @ weights (exact), {t_np:.2f} ms")
    styles = {"approxmat": ("o", "C0", "approxmat point (alone)"),
              "svd": ("s", "C2", "truncated SVD of weights"),
              "tolerance": ("x", "k", "tolerance=t (its pick)")}
    # Exact picks of tolerance=t (error 0) are drawn on a floor below every other point.
    floor = min([r["err"] for r in rows if r["family"] in ("approxmat", "svd")
                 and r["err"] > 1e-6] + [1e-3]) / 3
    if any(r["family"] == "tolerance" and r["picked"] == "exact" for r in rows):
        ax.axhline(floor, color="0.75", lw=0.8, ls=":", zorder=0)
        ax.annotate("tolerance=t picked exact (error 0, drawn here)", (t_np, floor),
                    textcoords="offset points", xytext=(-6, 5), ha="right", fontsize=7)
    for family, (marker, color, label) in styles.items():
        sel = [r for r in rows if r["family"] == family]
        if not sel:
            continue
        ts = [r["sec"] * 1e3 for r in sel]
        es = [max(r["err"], floor) for r in sel]
        ax.plot(ts, es, marker, color=color, label=label, ms=7 if marker == "x" else 6,
                ls="-" if family == "svd" else "none", lw=0.8)
        if family != "tolerance":
            for r, t, e in zip(sel, ts, es):
                ax.annotate(r["label"].replace("lowrank ", "r").replace("lut ", "C")
                            .replace("svd ", "s"), (t, e), textcoords="offset points",
                            xytext=(4, 3), fontsize=7, color=color)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(f"time per call, ms (N={result['N']} float32 rows, {threads} thread(s))")
    ax.set_ylabel("relative error on test rows")
    ax.set_title(f"{task.name}: D={D}, M={M}", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="kernel and BLAS threads (default 1)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved rounds (default 7, 3 with --quick)")
    parser.add_argument("--rows", type=int, default=None,
                        help="timed rows N (default 100000, 20000 with --quick; capped for "
                             "wide weights)")
    parser.add_argument("--tasks", default=",".join(TASKS),
                        help=f"comma-separated subset of {','.join(TASKS)}")
    parser.add_argument("--plot-dir", default=os.path.join("benchmarks", "out"),
                        help="where the PNGs go (default benchmarks/out/)")
    parser.add_argument("--alloc", action="store_true",
                        help="time allocating calls (x @ W) instead of out= buffers")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNGs")
    parser.add_argument("--quick", action="store_true", help="smaller, faster smoke run")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 7)
    args.rows = args.rows or (20_000 if args.quick else 100_000)
    names = [n.strip() for n in args.tasks.split(",") if n.strip()]
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; choose from {list(TASKS)}")
    am.config(threads=args.threads)  # validates
    from approxmat import _kernels

    try:
        import threadpoolctl

        blas = [i.get("internal_api") for i in threadpoolctl.threadpool_info()
                if i["user_api"] == "blas"]
    except ImportError:
        blas = ["?"]
    print(f"approxmat {am.__version__}, kernel variant {_kernels.selected_variant()}; "
          f"numpy {np.__version__} ({', '.join(map(str, blas))}); threads {args.threads}; "
          f"minimum of {args.rounds} interleaved rounds; "
          f"{'allocating calls' if args.alloc else 'outputs into preallocated buffers'}")
    have_plot = not args.no_plot
    if have_plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("matplotlib is not installed: no plots")
            have_plot = False
        else:
            os.makedirs(args.plot_dir, exist_ok=True)
    start = time.perf_counter()
    for name in names:
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        try:
            task = TASKS[name](args.quick, rng)
        except Skip as exc:
            print(f"\n== {name}: SKIPPED: {exc}")
            continue
        load_seconds = time.perf_counter() - t0
        result = run_task(task, args, rng)
        print_table(result)
        print(f"   (data {load_seconds:.1f} s, task total {time.perf_counter() - t0:.1f} s)")
        if have_plot:
            path = os.path.join(args.plot_dir, f"realdata_{name}.png")
            plot(result, path, args.threads)
            print(f"   plot: {path}", flush=True)
    print(f"\ntotal {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
