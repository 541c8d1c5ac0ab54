"""``python -m approxmat demo``: fit on real data, then compare with NumPy.

Data: scikit-learn's bundled handwritten digits (1 797 images of 8 x 8 pixels,
shipped inside the scikit-learn package, read offline), enlarged by one-pixel
shifts of each image to get enough rows to time. Weights: the 64 x 10 least-squares
classifier from pixels to one-hot labels, a real linear layer trained on the
training images. Calibration uses the training images; timing and error use the
held-out test images, so the error shown is the one a user would see on new data.
"""

from __future__ import annotations

import sys
import time

import numpy as np

__all__ = ["load_digits_problem", "run_demo"]


def _shifted(images, dy, dx):
    out = np.zeros_like(images)
    h, w = images.shape[1:]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = images[
        :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def load_digits_problem(seed=0):
    """Rows, weights and labels of the demo problem.

    Returns
    -------
    X_train, X_test : ndarray of float32, shape (n, 64)
    weights : ndarray of float32, shape (64, 10)
    bias : ndarray of float32, shape (10,)
    y_test : ndarray of int, shape (n_test,)

    Raises
    ------
    ImportError
        When scikit-learn (which carries the data) is not installed.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    labels = digits.target
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    train, test = order[: len(order) * 2 // 3], order[len(order) * 2 // 3 :]

    def augment(idx):
        shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        rows = np.concatenate([_shifted(images[idx], dy, dx) for dy, dx in shifts])
        return rows.reshape(len(rows), -1), np.tile(labels[idx], len(shifts))

    X_train, y_train = augment(train)
    X_test, y_test = augment(test)
    onehot = np.eye(10, dtype=np.float64)[y_train]
    A = np.c_[X_train, np.ones(len(X_train))].astype(np.float64)
    coef = np.linalg.solve(A.T @ A + 1e-3 * np.eye(A.shape[1]), A.T @ onehot)
    weights = coef[:-1].astype(np.float32)  # the bias is added after the product
    return X_train, X_test, weights, coef[-1].astype(np.float32), y_test


def _median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run_demo(threads=None, repeat=7, seed=0, file=None) -> int:
    """Fit on the digits problem and print a table of error and speed per level."""
    import approxmat as am

    file = file if file is not None else sys.stdout
    try:
        X_train, X_test, weights, bias, y_test = load_digits_problem(seed)
    except ImportError:
        print(
            "The demo reads scikit-learn's bundled digits dataset, and scikit-learn is not "
            "installed.\nInstall it with:  pip install 'approxmat[demo]'  (or: pip install "
            "scikit-learn)",
            file=sys.stderr,
        )
        return 2
    print(
        f"data: scikit-learn digits, {len(X_train)} calibration rows, {len(X_test)} test rows "
        f"(8x8 images with 1-pixel shifts); weights: {weights.shape[0]}x{weights.shape[1]} "
        "least-squares classifier",
        file=file,
    )
    W = am.ApproxMatrix(weights)
    start = time.perf_counter()
    W.fit(X_train, random_state=seed)
    print(f"fit: {len(W.levels)} levels in {time.perf_counter() - start:.2f} s", file=file)

    exact = X_test @ weights
    t_numpy = _median_time(lambda: X_test @ weights, repeat)
    acc_exact = float(np.mean((exact + bias).argmax(1) == y_test))
    header = f"{'codebooks':>9} {'val err':>8} {'test err':>8} {'accuracy':>8} " + (
        f"{'ms':>8} {'numpy ms':>8} {'speedup':>8}"
    )
    print(header, file=file)
    print(
        f"{'exact':>9} {0:8.3f} {0:8.3f} {acc_exact:8.3f} {t_numpy * 1e3:8.3f} "
        f"{t_numpy * 1e3:8.3f} {1:8.2f}",
        file=file,
    )
    for info in W.levels:
        with am.config(tolerance=info.error, threads=threads):
            approx = X_test @ W
            t = _median_time(lambda: X_test @ W, repeat)
        err = np.linalg.norm(approx - exact) / np.linalg.norm(exact)
        acc = float(np.mean((approx + bias).argmax(1) == y_test))
        print(
            f"{info.ncodebooks:>9} {info.error:8.3f} {err:8.3f} {acc:8.3f} {t * 1e3:8.3f} "
            f"{t_numpy * 1e3:8.3f} {t_numpy / t:8.2f}",
            file=file,
        )
    from ._kernels import selected_variant

    print(
        f"kernel variant: {selected_variant()}; speedup = NumPy time / approxmat time, "
        f"medians of {repeat} calls in this process",
        file=file,
    )
    return 0
