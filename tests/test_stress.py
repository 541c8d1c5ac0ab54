"""Concurrency and memory: shared matrices under many threads, refits, long runs."""

import os
import threading
import time

import numpy as np
import pytest

import approxmat as am

#: Seconds the 8-thread soak runs (10 by default; override for quick local runs).
SOAK_SECONDS = float(os.environ.get("APPROXMAT_SOAK_SECONDS", "10"))


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(3)
    basis = rng.standard_normal((12, 96))
    X = rng.standard_normal((3000, 12)) @ basis
    weights = rng.standard_normal((96, 24)).astype(np.float32)
    W = am.ApproxMatrix(weights).fit(X, ncodebooks=[4, 8, 16], random_state=0)
    x = (rng.standard_normal((257, 12)) @ basis).astype(np.float32)
    return W, weights, X, x


def _serial_results(W, x):
    results = {}
    for tolerance in (None, 0, W.levels[0].error, W.levels[-1].error):
        for threads in (1, 2):
            with am.config(tolerance=tolerance, threads=threads):
                results[tolerance, threads] = x @ W
    return results


def test_eight_threads_with_different_settings_match_serial(fitted):
    W, _, _, x = fitted
    expected = _serial_results(W, x)
    keys = list(expected)
    errors, calls = [], [0] * 8
    deadline = time.monotonic() + SOAK_SECONDS

    def worker(i):
        try:
            while time.monotonic() < deadline:
                tolerance, threads = keys[(i + calls[i]) % len(keys)]
                with am.config(tolerance=tolerance, threads=threads):
                    got = x @ W
                if not np.array_equal(got, expected[tolerance, threads]):
                    errors.append((i, tolerance, threads))
                calls[i] += 1
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(SOAK_SECONDS + 60)
    assert not any(t.is_alive() for t in pool), "deadlock: a worker did not finish"
    assert errors == []
    assert min(calls) > 0


def test_fit_while_others_multiply(fitted):
    W, weights, X, x = fitted
    other = am.ApproxMatrix(weights)
    expected = x @ W
    stop = threading.Event()
    errors = []

    def multiply():
        while not stop.is_set():
            if not np.array_equal(x @ W, expected):
                errors.append("wrong result")

    pool = [threading.Thread(target=multiply) for _ in range(3)]
    for t in pool:
        t.start()
    try:
        other.fit(X, ncodebooks=[4, 8], random_state=1)
    finally:
        stop.set()
        for t in pool:
            t.join(60)
    assert errors == [] and other.fitted


def test_refit_of_a_matrix_in_use_is_safe(fitted):
    _, weights, X, x = fitted
    W = am.ApproxMatrix(weights).fit(X, ncodebooks=[8], random_state=0)
    before = x @ W
    refit = am.ApproxMatrix(weights).fit(X[::-1], ncodebooks=[8], random_state=5)
    after = x @ refit
    stop = threading.Event()
    seen, errors = set(), []

    def multiply():
        while not stop.is_set():
            got = x @ W
            if np.array_equal(got, before):
                seen.add("before")
            elif np.array_equal(got, after):
                seen.add("after")
            else:
                errors.append("a product mixing two fits")

    pool = [threading.Thread(target=multiply) for _ in range(3)]
    for t in pool:
        t.start()
    try:
        W.fit(X[::-1], ncodebooks=[8], random_state=5)  # same fit as `refit`
        time.sleep(0.2)
    finally:
        stop.set()
        for t in pool:
            t.join(60)
    assert errors == []
    np.testing.assert_array_equal(x @ W, after)


def test_many_calls_do_not_grow_the_process(fitted):
    W, _, _, x = fitted
    out = np.empty((len(x), W.shape[1]), np.float32)
    for _ in range(500):  # warm up allocator and caches
        x @ W
        np.matmul(x, W, out=out)
    start = _rss_bytes()
    for _ in range(10_000):
        x @ W
        np.matmul(x, W, out=out)
    grown = _rss_bytes() - start
    assert grown < 16 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over 10 000 calls"
