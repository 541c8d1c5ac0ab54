"""Compiled kernels against the NumPy reference, bit for bit, on every variant this CPU runs.

Every test takes the variant explicitly, so one process checks portable, AVX2 and
AVX-512 (whatever ``supported_variants()`` lists) regardless of the import-time choice.
"""

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from approxmat import _dispatch, _kernels, _reference
from approxmat._level import Level

VARIANTS = _kernels.supported_variants()
DTYPES = (np.float32, np.float64)


def random_level(D, M, C, rng, x=None):
    """Random valid level; thresholds drawn from the data so that codes are spread."""
    split_dims = rng.integers(0, D, size=(C, 4)).astype(np.int32)
    if x is not None and x.size:
        finite = x[np.isfinite(x)]
        thresholds = rng.choice(finite, size=(C, 15)).astype(np.float32)
    else:
        thresholds = rng.standard_normal((C, 15)).astype(np.float32)
    luts = rng.integers(0, 256, size=(C, 16, M), dtype=np.uint8)
    luts[rng.random(luts.shape) < 0.05] = 255
    scale = rng.uniform(1e-3, 1e-1, size=M)
    offset = rng.standard_normal(M) * 10
    return Level(split_dims, thresholds, luts, scale, offset, error=0.1)


def random_x(N, D, rng, special=True):
    """float64 rows with a few NaN / +-inf / values equal to float32 thresholds' neighbours."""
    x = rng.standard_normal((N, D))
    if special and x.size:
        flat = x.ravel()
        k = max(1, flat.size // 50)
        flat[rng.integers(0, flat.size, k)] = np.nan
        flat[rng.integers(0, flat.size, k)] = np.inf
        flat[rng.integers(0, flat.size, k)] = -np.inf
    return x


def args(level, variant):
    packed = _dispatch.packed_level(level, variant)
    return (level.split_dims, level.thresholds, level.luts, level.scale, level.offset, packed)


def layouts(x):
    """The same logical rows in several memory layouts (C, F, negative / non-unit strides)."""
    N, D = x.shape
    yield "C", np.ascontiguousarray(x)
    yield "F", np.asfortranarray(x)
    big = np.empty((2 * N + 1, 3 * D), dtype=x.dtype)
    view = big[2 * N - 1 :: -2, ::-3] if N else big[:0, ::-3]
    view[...] = x
    assert view.shape == x.shape
    yield "neg-strided", view
    bigf = np.asfortranarray(np.empty((N + 3, 2 * D), dtype=x.dtype))
    vf = bigf[1 : N + 1, ::2]
    vf[...] = x
    yield "F-strided", vf


def assert_bits_equal(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


# (N, D, C, M): every N of the brief, C across the ladder (incl. non powers of two,
# D not divisible by C), M in {1, 3, 17, 100}.
CASES = [
    (0, 7, 3, 3),
    (1, 5, 1, 1),
    (1, 300, 64, 100),
    (31, 37, 5, 17),
    (32, 64, 16, 3),
    (33, 100, 32, 100),
    (33, 10, 7, 1),
    (1000, 200, 33, 17),
    (1000, 512, 256, 3),
    (4097, 96, 12, 100),
    (4097, 513, 128, 1),
    (4097, 64, 255, 17),
]


@pytest.mark.parametrize("N,D,C,M", CASES)
def test_bit_exact_all_variants(N, D, C, M):
    rng = np.random.default_rng(N * 1000 + C * 7 + M)
    x64 = random_x(N, D, rng)
    level = random_level(D, M, C, rng, x64)
    for xdt in DTYPES:
        x = x64.astype(xdt)
        want_codes = _reference.encode(x, level.split_dims, level.thresholds)
        want = {odt: _reference.approx_matmul(x, level, odt) for odt in DTYPES}
        for variant in VARIANTS:
            a = args(level, variant)
            for name, xv in layouts(x):
                codes = _kernels.encode(xv, *a, nthreads=2, variant=variant)
                np.testing.assert_array_equal(codes, want_codes, err_msg=f"{variant} {name}")
                for odt in DTYPES:
                    out = np.full((N, M), np.nan, dtype=odt)
                    _kernels.product(xv, *a, out, nthreads=2, variant=variant)
                    assert_bits_equal(out, want[odt])
                # strided output (every other row, reversed columns)
                odt = DTYPES[N % 2]
                big = np.zeros((2 * N, M + 2), dtype=odt)
                out = big[::2, M - 1 :: -1] if M > 1 else big[::2, :1]
                _kernels.product(xv, *a, out, nthreads=1, variant=variant)
                assert_bits_equal(np.ascontiguousarray(out), want[odt])


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_codebook_count(variant):
    """Code packing for every C in 1..256 (the reference's wrong block stride)."""
    rng = np.random.default_rng(7)
    for C in list(range(1, 70)) + [95, 96, 97, 127, 128, 129, 200, 254, 255, 256]:
        N, D, M = 37, C + 3, 3 + C % 5
        x = random_x(N, D, rng).astype(np.float32)
        level = random_level(D, M, C, rng, x)
        out = np.empty((N, M), np.float32)
        _kernels.product(x, *args(level, variant), out, nthreads=1, variant=variant)
        assert_bits_equal(out, _reference.approx_matmul(x, level, np.float32))
        codes = _kernels.encode(np.asfortranarray(x), *args(level, variant), variant=variant)
        np.testing.assert_array_equal(codes, _reference.encode(x, level.split_dims, level.thresholds))


@pytest.mark.parametrize("variant", VARIANTS)
def test_level_thresholds_not_reused(variant):
    """The reference reused level 0's threshold table at every level; we do not."""
    rng = np.random.default_rng(3)
    N, D, C, M = 500, 8, 4, 5
    x = rng.standard_normal((N, D)).astype(np.float32)
    level = random_level(D, M, C, rng, x)
    # The buggy encoder: thresholds[c, node] instead of thresholds[c, 2**l - 1 + node].
    node = np.zeros((N, C), dtype=np.intp)
    cols = np.arange(C)
    for lev in range(4):
        node = 2 * node + (x[:, level.split_dims[:, lev]] > level.thresholds[cols, node])
    right = _reference.encode(x, level.split_dims, level.thresholds)
    assert (node != right).any()  # the case does exercise the bug
    got = _kernels.encode(x, *args(level, variant), variant=variant)
    np.testing.assert_array_equal(got, right)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("C", [17, 32, 64, 256])
def test_sums_above_127_exact(variant, C):
    """Table entries >= 128 and sums far above 127 (sign extension in the reference)."""
    rng = np.random.default_rng(C)
    N, D, M = 65, 40, 5
    x = rng.standard_normal((N, D)).astype(np.float32)
    level = random_level(D, M, C, rng, x)
    luts = np.full((C, 16, M), 255, np.uint8)
    luts[:, :, 1] = 128
    luts[:, :, 2] = rng.integers(128, 256, size=(C, 16))
    level = Level(level.split_dims, level.thresholds, luts, np.ones(M), np.zeros(M))
    out = np.empty((N, M), np.float64)
    _kernels.product(x, *args(level, variant), out, nthreads=1, variant=variant)
    assert (out[:, 0] == 255 * C).all() and (out[:, 1] == 128 * C).all()
    assert_bits_equal(out, _reference.approx_matmul(x, level, np.float64))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("M", [1, 3, 5, 7, 17, 33])
def test_odd_output_columns_all_written(variant, M):
    """Every output column is written (the reference zeroed half of them for odd M)."""
    rng = np.random.default_rng(M)
    N, D, C = 50, 20, 8
    x = rng.standard_normal((N, D)).astype(np.float32)
    level = random_level(D, M, C, rng, x)
    level = Level(level.split_dims, level.thresholds, level.luts, np.ones(M), np.full(M, 1.0))
    for odt in DTYPES:
        out = np.zeros((N, M), odt)
        _kernels.product(x, *args(level, variant), out, nthreads=1, variant=variant)
        assert (out >= 1).all()
        assert_bits_equal(out, _reference.approx_matmul(x, level, odt))


@pytest.mark.parametrize("variant", VARIANTS)
def test_large_n(variant):
    """Large N, not a multiple of 32 (the reference needed N % 32 == 0)."""
    rng = np.random.default_rng(11)
    N, D, C, M = 200_003, 12, 4, 3
    x = rng.standard_normal((N, D)).astype(np.float32)
    level = random_level(D, M, C, rng, x)
    out = np.empty((N, M), np.float32)
    _kernels.product(x, *args(level, variant), out, nthreads=2, variant=variant)
    assert_bits_equal(out, _reference.approx_matmul(x, level, np.float32))


@pytest.mark.parametrize("variant", VARIANTS)
def test_thread_counts_identical(variant):
    rng = np.random.default_rng(5)
    N, D, C, M = 5000, 64, 16, 17
    x = random_x(N, D, rng)
    level = random_level(D, M, C, rng, x)
    outs = []
    for t in (1, 2, 3):
        out = np.empty((N, M), np.float32)
        _kernels.product(x, *args(level, variant), out, nthreads=t, variant=variant)
        outs.append(out)
        codes = _kernels.encode(x, *args(level, variant), nthreads=t, variant=variant)
        np.testing.assert_array_equal(codes, _reference.encode(x, level.split_dims, level.thresholds))
    for out in outs[1:]:
        assert_bits_equal(out, outs[0])
    assert_bits_equal(outs[0], _reference.approx_matmul(x, level, np.float32))


def test_concurrent_python_threads():
    """Several Python threads calling kernels at once (GIL released) get right answers."""
    rng = np.random.default_rng(9)
    jobs = []
    for i in range(8):
        N, D, C, M = 3000 + 17 * i, 40, 8 + i, 10 + i
        x = rng.standard_normal((N, D)).astype(np.float32)
        level = random_level(D, M, C, rng, x)
        jobs.append((x, level, VARIANTS[i % len(VARIANTS)]))
    wants = [_reference.approx_matmul(x, level, np.float32) for x, level, _ in jobs]
    barrier = threading.Barrier(4)

    def run(i):
        x, level, variant = jobs[i]
        if i < 4:  # the first four start together
            barrier.wait(timeout=60)
        results = []
        for _ in range(5):
            out = np.empty((x.shape[0], level.noutputs), np.float32)
            _kernels.product(x, *args(level, variant), out, nthreads=2, variant=variant)
            results.append(out)
        return results

    with ThreadPoolExecutor(4) as pool:
        for want, results in zip(wants, pool.map(run, range(len(jobs)))):
            for out in results:
                assert_bits_equal(out, want)


def test_approx_product_uses_kernel_and_falls_back():
    rng = np.random.default_rng(2)
    N, D, C, M = 100, 30, 8, 7
    x = rng.standard_normal((N, D))
    level = random_level(D, M, C, rng, x)
    for xdt in DTYPES:
        for odt in DTYPES:
            out = np.empty((N, M), odt)
            _dispatch.approx_product(x.astype(xdt)[::-1], level, out, threads=2)
            assert_bits_equal(out, _reference.approx_matmul(x.astype(xdt)[::-1], level, odt))
    assert ("packed", _kernels.selected_variant()) in level.cache
    # float16 output: no kernel, the reference computes it
    out16 = np.empty((N, M), np.float16)
    _dispatch.approx_product(x, level, out16)
    np.testing.assert_array_equal(out16, _reference.approx_matmul(x, level, np.float16))


def test_bad_arguments_raise():
    rng = np.random.default_rng(4)
    N, D, C, M = 10, 6, 3, 4
    x = rng.standard_normal((N, D)).astype(np.float32)
    level = random_level(D, M, C, rng, x)
    a = args(level, None)
    out = np.empty((N, M), np.float32)
    with pytest.raises(ValueError, match="split_dims"):
        _kernels.product(x[:, :2], *a, np.empty((N, M), np.float32))
    with pytest.raises(ValueError, match="out must have shape"):
        _kernels.product(x, *a, np.empty((N, M + 1), np.float32))
    with pytest.raises(ValueError, match="float32 or float64"):
        _kernels.product(x.astype(np.float16), *a, out)
    with pytest.raises(ValueError, match="float32 or float64"):
        _kernels.product(x, *a, np.zeros((N, M), np.int32))
    with pytest.raises(ValueError, match="packed"):
        _kernels.product(x, *a[:5], a[5][:-1], out)
    with pytest.raises(ValueError, match="read-only"):
        ro = np.empty((N, M), np.float32)
        ro.flags.writeable = False
        _kernels.product(x, *a, ro)
    with pytest.raises(ValueError, match="2-D"):
        _kernels.product(x[0], *a, out)
    with pytest.raises(ValueError, match="nthreads"):
        _kernels.product(x, *a, out, nthreads=0)
    with pytest.raises(ValueError, match="not available"):
        _kernels.product(x, *a, out, variant="sse9")
    with pytest.raises(TypeError):
        _kernels.product(list(x), *a, out)


@pytest.mark.parametrize("variant", VARIANTS)
def test_force_isa_env(variant):
    code = "import approxmat._kernels as k; print(k.selected_variant())"
    env = dict(os.environ, APPROXMAT_FORCE_ISA=variant)
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == variant


@pytest.mark.parametrize("variant", VARIANTS)
def test_huge_row_stride(variant):
    """Row strides too large for 32-bit gather offsets take the scalar path, still exact."""
    rng = np.random.default_rng(12)
    N, D, C, M = 3, 5, 6, 4
    step = (1 << 28) // 4 + 3  # > 2**31 / 16 bytes between rows; pages stay untouched
    big = np.zeros(step * (N - 1) + D, dtype=np.float32)
    x = np.lib.stride_tricks.as_strided(big, shape=(N, D), strides=(4 * step, 4))
    x[...] = rng.standard_normal((N, D))
    level = random_level(D, M, C, rng, x)
    out = np.empty((N, M), np.float64)
    _kernels.product(x, *args(level, variant), out, nthreads=1, variant=variant)
    assert_bits_equal(out, _reference.approx_matmul(np.array(x), level, np.float64))
