"""Compiled kernels against the NumPy reference, bit for bit, on every variant this CPU runs.

Every test takes the variant as a parameter (its id names the ISA, e.g.
``test_product_matches_oracle[N33-D100-C32-M100-avx2-f32-F]``), so one process checks
portable, AVX2 and AVX-512 (whatever ``supported_variants()`` lists) regardless of the
import-time choice. The kernels are called through ``PreparedLevel``; levels, inputs,
layouts and expected results come from :mod:`approxmat._testing`.
"""

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from approxmat import _backend, _kernels, _reference
from approxmat._testing import (
    DTYPES,
    LAYOUTS,
    assert_bits_equal,
    flagged_product,
    layout,
    layouts,
    modified,
    offset_rows,
    oracle,
    oracle_flags,
    pack,
    prepared,
    random_level,
    random_x,
    strided_output,
    with_bounds,
    with_ranges,
)

VARIANTS = _kernels.supported_variants()
#: Ids of the row / result dtypes in test ids.
DTYPE_IDS = ["f32", "f64"]


# (N, D, C, M): N = 0, 1, 31, 32, 33 and beyond, odd D, C across the ladder (incl. non
# powers of two, D not divisible by C), M in {1, 3, 17, 100}.
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


def test_cases_cover_awkward_sizes():
    """Every variant, row dtype and layout of test_product_matches_oracle sees these."""
    Ns, Ds, Cs, Ms = (set(col) for col in zip(*CASES))
    assert {0, 1, 31, 33} <= Ns and 1 in Ms
    assert any(D % 2 for D in Ds) and any(C & (C - 1) for C in Cs)
    assert any(D % C for _, D, C, _ in CASES)


def _case_id(case):
    return "N{}-D{}-C{}-M{}".format(*case)


@pytest.fixture(scope="module", params=CASES, ids=_case_id)
def oracle_case(request):
    """One case of :data:`CASES`: a level, the same level with calibration ranges drawn
    from x, and per row dtype x, codes, products and flags of the reference (computed
    once for every variant and layout of the case)."""
    N, D, C, M = request.param
    rng = np.random.default_rng(N * 1000 + C * 7 + M)
    # NaN / inf in every third row only, so that finite rows exist for every D
    x64 = random_x(N, D, rng, nonfinite_every=3)
    level = random_level(D, M, C, rng, x=x64)
    per_dtype = {}
    for xdt in DTYPES:
        x = x64.astype(xdt)
        ranged = with_ranges(level, x, rng)
        per_dtype[xdt] = {
            "x": x,
            "codes": _reference.encode(x, level.split_dims, level.thresholds),
            "plain": {odt: _reference.approx_matmul(x, level, odt) for odt in DTYPES},
            "ranged": ranged,
            # (level, flags, product with NaN rows per output dtype), without and with ranges
            "flagged": [(lev, oracle_flags(x, lev), {odt: oracle(x, lev, odt)[0] for odt in DTYPES})
                        for lev in (level, ranged)],
        }
        if N >= 100:  # the case exercises every flag
            assert set(np.unique(per_dtype[xdt]["flagged"][1][1])) == {0, 1, 2}
    return level, per_dtype


@pytest.mark.parametrize("layout_name", LAYOUTS)
@pytest.mark.parametrize("xdt", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_product_matches_oracle(variant, xdt, layout_name, oracle_case):
    """Codes, products into both output dtypes and into a strided output, and the fused
    row flags with NaN rows (without and with calibration ranges), bit for bit against
    the reference, for each case of :data:`CASES` (N = 0, 1, 31, 33, ...; odd D; C not a
    power of two; M = 1)."""
    level, per_dtype = oracle_case
    case = per_dtype[xdt]
    x = case["x"]
    N, M = x.shape[0], level.noutputs
    xv = layout(x, layout_name)
    kernel = prepared(level, variant)
    np.testing.assert_array_equal(kernel.encode(xv, 2), case["codes"])
    for odt in DTYPES:
        out = np.full((N, M), np.nan, dtype=odt)
        assert kernel.product(xv, out, 2) == 0
        assert_bits_equal(out, case["plain"][odt])
    # strided output (every other row, reversed columns)
    odt = DTYPES[N % 2]
    out = strided_output(N, M, odt)
    kernel.product(xv, out, 1)
    assert_bits_equal(out, case["plain"][odt])
    # fused row flags and NaN rows, with and without ranges
    for lev, wf, wn in case["flagged"]:
        kernel = prepared(lev, variant)
        for odt in DTYPES:
            out = np.full((N, M), 7, dtype=odt)
            np.testing.assert_array_equal(flagged_product(kernel, xv, out, 2), wf)
            assert_bits_equal(out, wn[odt])
        out = strided_output(N, M, odt)
        np.testing.assert_array_equal(flagged_product(kernel, xv, out, 1), wf)
        assert_bits_equal(out, wn[odt])


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_codebook_count(variant):
    """Code packing for every C in 1..256 (the reference's wrong block stride)."""
    rng = np.random.default_rng(7)
    for C in list(range(1, 70)) + [95, 96, 97, 127, 128, 129, 200, 254, 255, 256]:
        N, D = 37, C + 3
        x = random_x(N, D, rng).astype(np.float32)
        for M in (3 + C % 5, 64 + C % 5):  # both sum paths of the AVX-512 variant
            level = random_level(D, M, C, rng, x=x)
            out = np.empty((N, M), np.float32)
            prepared(level, variant).product(x, out, 1)
            assert_bits_equal(out, _reference.approx_matmul(x, level, np.float32))
        codes = prepared(level, variant).encode(np.asfortranarray(x))
        np.testing.assert_array_equal(codes, _reference.encode(x, level.split_dims, level.thresholds))


@pytest.mark.parametrize("D", [1, 15, 16, 17, 37, 64, 100, 130])
@pytest.mark.parametrize("xdt", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_nonfinite_in_every_column(variant, xdt, D):
    """A NaN / inf in any one column (vector bodies and tails) flags its row, and only it."""
    rng = np.random.default_rng(D)
    N, C, M = 3 * D + 5, 6, 9
    x64 = rng.standard_normal((N, D))
    specials = (np.nan, np.inf, -np.inf, -np.nan)
    for i in range(3 * D):
        x64[i, i % D] = specials[(i // D) % 4]
    x64[-5:] = np.finfo(np.float32).max  # huge but finite
    level = with_ranges(random_level(D, M, C, rng, x=x64), x64, rng)
    kernel = prepared(level, variant)
    x = x64.astype(xdt)
    wf = oracle_flags(x, level)
    assert (wf[: 3 * D] == 1).all() and not (wf[3 * D :] & 1).any()
    for name, xv in layouts(x):
        for odt in DTYPES:
            out = np.empty((N, M), odt)
            flags = flagged_product(kernel, xv, out, 1)
            np.testing.assert_array_equal(flags, wf, err_msg=name)
            assert_bits_equal(out, oracle(x, level, odt)[0], err_msg=name)


@pytest.mark.parametrize("N", [1, 31, 33, 100])
@pytest.mark.parametrize("xdt", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_flags_written_for_own_rows_only(variant, xdt, N):
    """Calibrated ranges that exclude 0 (the value a masked load gives past the last row):
    every row in range gets flag 0, and no byte past the flags array is written, for each
    layout (the F-order pre-pass checks the ranges down each column run) and thread count."""
    rng = np.random.default_rng(N)
    D, C, M = 21, 5, 7
    level = random_level(D, M, C, rng, ranges=(1.0, 2.0))
    kernel = prepared(level, variant)
    x64 = rng.uniform(1.0, 2.0, size=(N, D))
    x64[N // 2, level.split_dims[0, 0]] = 3.0  # one row out of range
    x = x64.astype(xdt)
    wf = oracle_flags(x, level)
    assert wf.sum() == 2
    for name, xv in layouts(x):
        for threads in (1, 2):
            buf = np.full(N + 64, 0x55, np.uint8)
            out = np.empty((N, M), np.float32)
            assert kernel.product(xv, out, threads, buf[:N]) == 1
            np.testing.assert_array_equal(buf[:N], wf, err_msg=f"{name} {threads}")
            assert (buf[N:] == 0x55).all(), f"{name} {threads}: wrote past the flags"


@pytest.mark.parametrize("xdt", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_range_bounds_exact(variant, xdt):
    """Values equal to a bound are in range; the next float beyond it is out (f32 and f64)."""
    rng = np.random.default_rng(17)
    D, C, M = 40, 8, 5
    level = random_level(D, M, C, rng)
    low = rng.uniform(-2, -1, size=(C, 4)).astype(np.float32)
    high = rng.uniform(1, 2, size=(C, 4)).astype(np.float32)
    level = with_bounds(level, low, high)
    rows = []
    for c in range(C):
        for lev in range(4):
            d = level.split_dims[c, lev]
            # in-range value of every split column: inside every range that uses it
            base = np.zeros(D)
            for delta, bound in ((0, low), (0, high), (-1, low), (+1, high)):
                row = base.copy()
                col_lo = low[level.split_dims == d].max()
                col_hi = high[level.split_dims == d].min()
                b = np.float64(col_lo if bound is low else col_hi)
                if delta:
                    b = np.nextafter(np.float32(b), np.float32(delta * np.inf))
                row[d] = b
                rows.append(row)
    x64 = np.array(rows)
    kernel = prepared(level, variant)
    x = x64.astype(xdt)
    if xdt == np.float64:  # just beyond the bound in float64: out of range
        x = np.concatenate([x, x64 + np.where(x64 != 0, np.sign(x64) * 1e-12, 0)])
    wf = oracle_flags(x, level)
    assert set(np.unique(wf)) == {0, 2}
    for name, xv in layouts(x):
        out = np.empty((x.shape[0], M), np.float32)
        flags = flagged_product(kernel, xv, out, 1)
        np.testing.assert_array_equal(flags, wf, err_msg=name)
        assert_bits_equal(out, oracle(x, level, np.float32)[0], err_msg=name)


def check_every_layout(x, level, variant, strided_dtype, strided_view):
    """The level on x (float64 rows) as float32 and float64, in every layout of
    :func:`layouts`: both output dtypes with row flags against the reference, then one
    strided output, ``strided_view`` of an (N, 2 M) ``strided_dtype`` buffer, without."""
    N, M = x.shape[0], level.luts.shape[2]
    kernel = prepared(level, variant)
    for xdt in DTYPES:
        xx = x.astype(xdt)
        wf = oracle_flags(xx, level)
        for name, xv in layouts(xx):
            for odt in DTYPES:
                out = np.empty((N, M), odt)
                flags = flagged_product(kernel, xv, out, 2)
                np.testing.assert_array_equal(flags, wf, err_msg=f"{xdt} {name}")
                assert_bits_equal(out, oracle(xx, level, odt)[0], err_msg=f"{xdt} {name}")
            out = strided_view(np.zeros((N, 2 * M), dtype=strided_dtype))
            kernel.product(xv, out, 1)
            assert_bits_equal(np.ascontiguousarray(out),
                              _reference.approx_matmul(xx, level, strided_dtype))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("M", [15, 16, 31, 32, 33, 47, 48, 63, 64, 65, 255, 256, 257, 513])
def test_output_widths(variant, M):
    """Output widths around the vector, tile and path boundaries; every layout, dtypes."""
    rng = np.random.default_rng(M + 100)
    N, D, C = 70, 50, 20
    x = random_x(N, D, rng)
    fix = ~np.isfinite(x)
    fix[::4] = False
    x[fix] = 0.5
    level = with_ranges(random_level(D, M, C, rng, x=x), x, rng)
    check_every_layout(x, level, variant, np.float64, lambda big: big[:, ::-2])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("M,C", [(300, 16), (529, 33), (1100, 36), (1040, 64)])
def test_wide_outputs_both_tile_orders(variant, M, C):
    """Wide outputs of the AVX-512 16 x 16 tile path: small tables walk 16 rows across
    every column, tables beyond AM_TILE_ROWS_FIRST_BYTES (512 KiB: the last two cases)
    walk one 16-column tile down the block; C not a multiple of 4, N not of 16."""
    rng = np.random.default_rng(M + C)
    N, D = 70, 41
    x = random_x(N, D, rng)
    fix = ~np.isfinite(x)
    fix[::5] = False
    x[fix] = -0.25
    level = with_ranges(random_level(D, M, C, rng, x=x), x, rng)
    assert ((M + 15) // 16 * 16 * ((C + 3) // 4) * 64 > 512 * 1024) == (M >= 1040)
    check_every_layout(x, level, variant, np.float32, lambda big: big[:, ::2])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("D", [16, 48, 80])
def test_row_major_every_alignment(variant, D):
    """Row-major float32 rows at every 4-byte offset from a 64-byte boundary (the AVX-512
    encoder reads aligned 64-byte chunks and masks the lanes outside the row), with
    split columns and NaN / inf in the first and last columns of the row."""
    rng = np.random.default_rng(D)
    N, M, C = 37, 5, 7
    level = random_level(D, M, C, rng)
    dims = level.split_dims.copy()
    dims[0, :2] = 0
    dims[1, :2] = D - 1
    dims[2, 0] = 15
    for k in range(16):
        x = rng.standard_normal((N, D)).astype(np.float32)
        x[3, 0] = np.nan
        x[5, D - 1] = np.inf
        x[8, 0] = -np.inf
        x[9, 15] = np.nan
        xv = offset_rows(x, k)
        assert (xv.ctypes.data % 64) // 4 == k
        lev = with_ranges(modified(level, split_dims=dims), x, rng)
        kernel = prepared(lev, variant)
        out = np.empty((N, M), np.float32)
        flags = flagged_product(kernel, xv, out, 1)
        np.testing.assert_array_equal(flags, oracle_flags(x, lev), err_msg=f"offset {k}")
        assert_bits_equal(out, oracle(x, lev, np.float32)[0])
        codes = kernel.encode(xv)
        np.testing.assert_array_equal(codes, _reference.encode(x, dims, lev.thresholds))


@pytest.mark.parametrize("variant", VARIANTS)
def test_level_thresholds_not_reused(variant):
    """The reference reused level 0's threshold table at every level; we do not."""
    rng = np.random.default_rng(3)
    N, D, C, M = 500, 8, 4, 5
    x = rng.standard_normal((N, D)).astype(np.float32)
    level = random_level(D, M, C, rng, x=x)
    # The buggy encoder: thresholds[c, node] instead of thresholds[c, 2**l - 1 + node].
    node = np.zeros((N, C), dtype=np.intp)
    cols = np.arange(C)
    for lev in range(4):
        node = 2 * node + (x[:, level.split_dims[:, lev]] > level.thresholds[cols, node])
    right = _reference.encode(x, level.split_dims, level.thresholds)
    assert (node != right).any()  # the case does exercise the bug
    got = prepared(level, variant).encode(x)
    np.testing.assert_array_equal(got, right)


@pytest.mark.parametrize("xdt", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_threshold_ties_exact(variant, xdt):
    """Split-column values equal to the threshold they are compared with (ties go left),
    and the neighbouring floats just above and below it (float32 steps; float64 steps for
    float64 rows), in every layout: codes and products bit for bit."""
    rng = np.random.default_rng(21)
    N, D, C, M = 203, 19, 9, 6
    level = random_level(D, M, C, rng)
    th = level.thresholds
    x = rng.standard_normal((N, D))
    for i in range(N):
        c, kind = i % C, (i // C) % 4
        node = 0
        for lev in range(4):
            t = th[c, (1 << lev) - 1 + node]
            if kind == 1 or kind == 2:  # the next float32 above / below
                t = np.nextafter(t, np.float32(np.inf if kind == 1 else -np.inf))
            value = np.float64(t)
            if kind == 3:  # the next float64 above or below (a tie once rounded to float32)
                value = np.nextafter(value, np.inf if lev % 2 else -np.inf)
            x[i, level.split_dims[c, lev]] = value
            node = 2 * node + (xdt.type(value) > th[c, (1 << lev) - 1 + node])
    x = x.astype(xdt)
    right = _reference.encode(x, level.split_dims, level.thresholds)
    # ties going right would give other codes: the case does exercise the ties
    node = np.zeros((N, C), dtype=np.intp)
    cols = np.arange(C)
    for lev in range(4):
        limits = th[cols, (1 << lev) - 1 + node]
        node = 2 * node + (x[:, level.split_dims[:, lev]] >= limits)
    assert (node != right).any()
    kernel = prepared(level, variant)
    for name, xv in layouts(x):
        np.testing.assert_array_equal(kernel.encode(xv), right, err_msg=name)
        for odt in DTYPES:
            out = np.empty((N, M), odt)
            kernel.product(xv, out, 1)
            assert_bits_equal(out, _reference.approx_matmul(x, level, odt), err_msg=name)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("C", [17, 32, 64, 256])
@pytest.mark.parametrize("M", [5, 100, 255])  # AVX-512: vpermb tiles, sums along M
def test_sums_above_127_exact(variant, C, M):
    """Table entries >= 128 and sums far above 127 (sign extension in the reference)."""
    rng = np.random.default_rng(C)
    N, D = 65, 40
    x = rng.standard_normal((N, D)).astype(np.float32)
    level = random_level(D, M, C, rng, x=x)
    luts = np.full((C, 16, M), 255, np.uint8)
    luts[:, :, 1] = 128
    luts[:, :, 2] = rng.integers(128, 256, size=(C, 16))
    level = modified(level, luts=luts, scale=np.ones(M), offset=np.zeros(M))
    out = np.empty((N, M), np.float64)
    prepared(level, variant).product(x, out, 1)
    assert (out[:, 0] == 255 * C).all() and (out[:, 1] == 128 * C).all()
    assert_bits_equal(out, _reference.approx_matmul(x, level, np.float64))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("M", [1, 3, 5, 7, 17, 33])
def test_odd_output_columns_all_written(variant, M):
    """Every output column is written (the reference zeroed half of them for odd M)."""
    rng = np.random.default_rng(M)
    N, D, C = 50, 20, 8
    x = rng.standard_normal((N, D)).astype(np.float32)
    level = random_level(D, M, C, rng, x=x)
    level = modified(level, scale=np.ones(M), offset=np.full(M, 1.0))
    kernel = prepared(level, variant)
    for odt in DTYPES:
        out = np.zeros((N, M), odt)
        kernel.product(x, out, 1)
        assert (out >= 1).all()
        assert_bits_equal(out, _reference.approx_matmul(x, level, odt))


@pytest.mark.parametrize("variant", VARIANTS)
def test_large_n(variant):
    """Large N, not a multiple of 32 (the reference needed N % 32 == 0)."""
    rng = np.random.default_rng(11)
    N, D, C, M = 200_003, 12, 4, 3
    x = rng.standard_normal((N, D)).astype(np.float32)
    level = random_level(D, M, C, rng, x=x)
    out = np.empty((N, M), np.float32)
    prepared(level, variant).product(x, out, 2)
    assert_bits_equal(out, _reference.approx_matmul(x, level, np.float32))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "N, D, C, M, odt",
    [
        (210_011, 8, 4, 20, np.float32),  # vpermb tiles, rows first
        (105_007, 8, 4, 20, np.float64),
        (4_100, 40, 32, 1040, np.float32),  # vpermb tiles, one tile down the block
        (2_100, 40, 32, 1040, np.float64),
        (2_100, 40, 32, 1032, np.float64),  # AVX2: a last group of 8 columns, copied
        (42_003, 8, 4, 100, np.float32),  # sums along M
        (43_001, 8, 4, 99, np.float32),  # AVX2 staged blocks, a partial 4-column step
        (57_003, 8, 4, 37, np.float64),
        (14_056, 8, 4, 300, np.float32),  # AVX2: only the short last block is staged
    ],
)
def test_streamed_large_outputs(variant, N, D, C, M, odt):
    """Outputs of 16 MiB and more are written with non-temporal stores where whole
    64-byte lines are written (staged first where the sums do not write whole lines):
    exact, with NaN rows, with the output 64-byte aligned and not."""
    rng = np.random.default_rng(M + N)
    x = rng.standard_normal((N, D)).astype(np.float32)
    x[rng.integers(0, N, size=20), rng.integers(0, D, size=20)] = np.nan
    level = random_level(D, M, C, rng, x=x)
    assert N * M * np.dtype(odt).itemsize >= 16 << 20
    item = np.dtype(odt).itemsize
    buf = np.empty(N * M * item + 128, np.uint8)
    for shift in (0, 16, item):
        o = -buf.ctypes.data % 64 + shift
        out = buf[o : o + N * M * item].view(odt).reshape(N, M)
        out[...] = 7
        flags = flagged_product(prepared(level, variant), x, out, 2)
        np.testing.assert_array_equal(flags, oracle_flags(x, level))
        assert_bits_equal(out, oracle(x, level, odt)[0])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("odt, M", [(np.float32, 1037), (np.float64, 517)])
def test_streamed_padded_rows(variant, odt, M):
    """Large outputs whose rows are padded to a 64-byte multiple (a column slice of a
    wider array) and whose width is not a multiple of 4: streamed line by line, the last
    partial group of columns copied, the padding untouched."""
    N, D, C = 4_100, 40, 32
    item = np.dtype(odt).itemsize
    width = M + (-M * item % 64) // item
    assert N * M * item >= 16 << 20 and width * item % 64 == 0 and width > M
    rng = np.random.default_rng(M)
    x = rng.standard_normal((N, D)).astype(np.float32)
    x[rng.integers(0, N, size=10), rng.integers(0, D, size=10)] = np.inf
    level = random_level(D, M, C, rng, x=x)
    big = np.full((N, width), 7, odt)
    out = big[:, :M]
    flags = flagged_product(prepared(level, variant), x, out, 2)
    np.testing.assert_array_equal(flags, oracle_flags(x, level))
    assert_bits_equal(out, oracle(x, level, odt)[0])
    assert (big[:, M:] == 7).all()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("odt", [np.float32, np.float64])
def test_large_column_major_x(variant, odt):
    """Column-major x of 32 MiB and more: the encoders prefetch the split columns'
    rows ahead (up to the last row); exact against the reference, with flags, also with
    a streamed output."""
    N, D, C, M = 66_000, 128, 8, 64
    rng = np.random.default_rng(5)
    x = np.asfortranarray(rng.standard_normal((N, D)).astype(np.float32))
    assert x.nbytes >= 32 << 20
    x[rng.integers(0, N, size=10), rng.integers(0, D, size=10)] = np.nan
    level = random_level(D, M, C, rng, x=x)
    out = np.empty((N, M), odt)
    flags = flagged_product(prepared(level, variant), x, out, 2)
    np.testing.assert_array_equal(flags, oracle_flags(x, level))
    assert_bits_equal(out, oracle(x, level, odt)[0])


@pytest.mark.parametrize("variant", VARIANTS)
def test_thread_counts_identical(variant):
    rng = np.random.default_rng(5)
    N, D, C, M = 5000, 64, 16, 17
    x = random_x(N, D, rng)
    level = random_level(D, M, C, rng, x=x)
    ranged = with_ranges(level, x, rng)
    kernel, kernel_ranged = prepared(level, variant), prepared(ranged, variant)
    outs = []
    for t in (1, 2, 3):
        out = np.empty((N, M), np.float32)
        kernel.product(x, out, t)
        outs.append(out)
        for xv in (x, np.asfortranarray(x)):
            out = np.empty((N, M), np.float64)
            flags = flagged_product(kernel_ranged, xv, out, t)
            np.testing.assert_array_equal(flags, oracle_flags(x, ranged))
            assert_bits_equal(out, oracle(x, ranged, np.float64)[0])
        codes = kernel.encode(x, t)
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
        level = random_level(D, M, C, rng, x=x)
        jobs.append((x, level, prepared(level, VARIANTS[i % len(VARIANTS)])))
    wants = [_reference.approx_matmul(x, level, np.float32) for x, level, _ in jobs]
    barrier = threading.Barrier(4)

    def run(i):
        x, level, kernel = jobs[i]
        if i < 4:  # the first four start together
            barrier.wait(timeout=60)
        results = []
        for _ in range(5):
            out = np.empty((x.shape[0], level.noutputs), np.float32)
            kernel.product(x, out, 2)
            results.append(out)
        return results

    with ThreadPoolExecutor(4) as pool:
        for want, results in zip(wants, pool.map(run, range(len(jobs)))):
            for out in results:
                assert_bits_equal(out, want)


def test_backend_product_uses_kernel_and_falls_back():
    rng = np.random.default_rng(2)
    N, D, C, M = 100, 30, 8, 7
    x = random_x(N, D, rng)
    level = random_level(D, M, C, rng, x=x)
    for lev in (level, with_ranges(level, x, rng)):
        for xdt in DTYPES:
            xv = x.astype(xdt)[::-1]
            for odt in DTYPES:
                out = np.empty((N, M), odt)
                flags = _backend.product(xv, lev, out, threads=2)
                want = oracle_flags(xv, lev)
                if not want.any():
                    assert flags is None  # no row flagged: no array to inspect
                else:
                    assert flags.dtype == np.uint8 and flags.shape == (N,)
                    np.testing.assert_array_equal(flags, want)
                assert_bits_equal(out, oracle(xv, lev, odt)[0])
        assert ("packed", _kernels.selected_variant()) in lev.cache
        # float16 output of float64 rows: no kernel, the reference computes it
        out16 = np.empty((N, M), np.float16)
        flags = _backend.product(x, lev, out16)
        want = oracle_flags(x, lev)
        assert (flags is None) == (not want.any())
        if flags is not None:
            np.testing.assert_array_equal(flags, want)
        np.testing.assert_array_equal(out16, oracle(x, lev, np.float16)[0])


@pytest.mark.parametrize("variant", VARIANTS)
def test_bad_arguments_raise(variant):
    """The validation of PreparedLevel / pack: wrong shapes, dtypes, packed tables,
    read-only outputs, thread counts, variants, flags arrays."""
    rng = np.random.default_rng(4)
    N, D, C, M = 10, 6, 3, 4
    x = rng.standard_normal((N, D)).astype(np.float32)
    level = random_level(D, M, C, rng, x=x)
    assert level.split_dims.max() >= 2  # so that rows of width 2 are too narrow
    kernel = prepared(level, variant)
    a = (level.split_dims, level.thresholds, level.luts, level.scale, level.offset)
    out = np.empty((N, M), np.float32)
    with pytest.raises(ValueError, match="split_dims"):
        kernel.product(x[:, :2], np.empty((N, M), np.float32))
    with pytest.raises(ValueError, match="out must have shape"):
        kernel.product(x, np.empty((N, M + 1), np.float32))
    with pytest.raises(ValueError, match="uint16 or int16, got int32"):
        kernel.product(x.astype(np.int32), out)
    with pytest.raises(ValueError, match="float16, float32 or float64, got int32"):
        kernel.product(x, np.zeros((N, M), np.int32))
    with pytest.raises(ValueError, match="float16, float32 or float64, got uint8"):
        kernel.product(x, np.zeros((N, M), np.uint8))
    with pytest.raises(ValueError, match="float16 out needs"):
        kernel.product(x.astype(np.float64), np.zeros((N, M), np.float16))
    with pytest.raises(ValueError, match="packed"):
        _kernels.PreparedLevel(*a, pack(level, variant)[:-1], variant)
    with pytest.raises(ValueError, match="read-only"):
        ro = np.empty((N, M), np.float32)
        ro.flags.writeable = False
        kernel.product(x, ro)
    with pytest.raises(ValueError, match="2-D"):
        kernel.product(x[0], out)
    with pytest.raises(ValueError, match="nthreads"):
        kernel.product(x, out, nthreads=0)
    with pytest.raises(ValueError, match="not available"):
        _kernels.PreparedLevel(*a, pack(level, variant), "sse9")
    with pytest.raises(ValueError, match="not available"):
        _kernels.pack(*a, "sse9")
    with pytest.raises(TypeError):
        kernel.product(list(x), out)
    with pytest.raises(ValueError, match="flags"):
        kernel.product(x, out, flags=np.empty(N + 1, np.uint8))
    with pytest.raises(ValueError, match="flags"):
        kernel.product(x, out, flags=np.empty(N, np.int8))
    with pytest.raises(ValueError, match="together"):
        _kernels.pack(*a, variant, split_low=np.zeros((C, 4), np.float32))
    # the encoder alone checks the same rows
    with pytest.raises(ValueError, match="split_dims"):
        kernel.encode(x[:, :2])
    with pytest.raises(ValueError, match="got uint64"):
        kernel.encode(x.astype(np.uint64))
    with pytest.raises(ValueError, match="nthreads"):
        kernel.encode(x, 0)
    with pytest.raises(TypeError):
        kernel.encode(list(x))
    # negative split columns are rejected when the level is prepared
    dims = level.split_dims.copy()
    dims[1, 2] = -1
    with pytest.raises(ValueError, match="split_dims must be >= 0"):
        _kernels.PreparedLevel(dims, *a[1:], pack(level, variant), variant)


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
    level = random_level(D, M, C, rng, x=x)
    out = np.empty((N, M), np.float64)
    prepared(level, variant).product(x, out, 1)
    assert_bits_equal(out, _reference.approx_matmul(np.array(x), level, np.float64))


@pytest.mark.parametrize("variant", VARIANTS)
def test_product_counts_flagged_rows(variant):
    rng = np.random.default_rng(8)
    N, D, C, M = 40, 9, 3, 5
    x = random_x(N, D, rng)
    level = with_ranges(random_level(D, M, C, rng, x=x), x, rng)
    kernel = prepared(level, variant)
    out = np.empty((N, M))
    flags = np.empty(N, np.uint8)
    got = kernel.product(x, out, 1, flags)
    assert got == np.count_nonzero(oracle_flags(x, level)) > 0
    assert kernel.product(x, out, 1) == 0


def test_aligned_bytes():
    """Large results start on a 64-byte boundary."""
    for n in (0, 1, 63, 64, 100_003):
        a = _kernels.aligned_bytes(n)
        assert a.dtype == np.uint8 and a.shape == (n,)
        assert n == 0 or a.ctypes.data % 64 == 0  # an empty view has no data to align
        assert a.flags.writeable and a.flags.c_contiguous
    with pytest.raises(ValueError, match="nbytes must be >= 0"):
        _kernels.aligned_bytes(-1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_packed_tables_aligned(variant):
    """Packed tables start on a 64-byte boundary, read-only, of packed_bytes bytes."""
    level = random_level(40, 100, 8, np.random.default_rng(5))
    packed = pack(level, variant)
    assert packed.ctypes.data % 64 == 0 and not packed.flags.writeable
    assert packed.shape == (_kernels.packed_bytes(8, 100, variant),)


@pytest.mark.parametrize("variant", VARIANTS)
def test_prepared_level_calls_agree(variant):
    """product with and without flags and checked_product give the same outputs, the same
    flags and the same count, at every thread count, and match the reference."""
    rng = np.random.default_rng(9)
    N, D, C, M = 37, 11, 5, 6
    x = random_x(N, D, rng)
    level = with_ranges(random_level(D, M, C, rng, x=x), x, rng)
    kernel = prepared(level, variant)
    want, want_flags = oracle(x, level, np.float64)
    plain = _reference.approx_matmul(x, level, np.float64)
    for threads in (1, 2):
        out1, out2, out3 = np.empty((N, M)), np.empty((N, M)), np.empty((N, M))
        fl1 = np.empty(N, np.uint8)
        n1 = kernel.product(x, out1, threads, fl1)
        assert kernel.product(x, out2, threads) == 0
        fl3 = kernel.checked_product(x, out3, threads)
        assert n1 == np.count_nonzero(want_flags) > 0
        np.testing.assert_array_equal(fl1, want_flags)
        np.testing.assert_array_equal(fl3, want_flags)
        assert_bits_equal(out1, want)
        assert_bits_equal(out3, want)
        assert_bits_equal(out2, plain)  # no flags: non-finite rows as the reference has them
    with pytest.raises(ValueError, match="split_dims must lie in"):
        kernel.product(x[:, :int(level.split_dims.max())], np.empty((N, M)), 1)
    with pytest.raises(ValueError, match="out must have shape"):
        kernel.product(x, np.empty((N, M + 1)), 1)


@pytest.mark.parametrize("N", [0, 1, 33, 1024, 1025, 3000])
@pytest.mark.parametrize("variant", VARIANTS)
def test_checked_product(variant, N):
    """PreparedLevel.checked_product: None when no row is flagged (flags kept on the stack
    up to 1024 rows), else the same flags as product(); same outputs either way."""
    rng = np.random.default_rng(N)
    D, C, M = 20, 6, 9
    x = rng.standard_normal((N, D)).astype(np.float32)
    level = with_bounds(random_level(D, M, C, rng, x=x), -np.inf, np.inf)
    kernel = prepared(level, variant)
    out = np.empty((N, M), np.float32)
    assert kernel.checked_product(x, out, 2) is None
    assert_bits_equal(out, _reference.approx_matmul(x, level, np.float32))
    if N == 0:
        return
    xb = x.copy()
    xb[N // 2, D - 1] = np.nan
    want_out = np.empty((N, M), np.float32)
    want_fl = np.empty(N, np.uint8)
    assert kernel.product(xb, want_out, 1, want_fl) == 1
    got = kernel.checked_product(xb, out, 1)
    assert got.dtype == np.uint8 and got.shape == (N,)
    np.testing.assert_array_equal(got, want_fl)
    assert_bits_equal(out, want_out)
    with pytest.raises(ValueError, match="out must have shape"):
        kernel.checked_product(x, np.empty((N + 1, M), np.float32), 1)
    with pytest.raises(TypeError, match="x must be a numpy array"):
        kernel.checked_product(list(x), out, 1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_byte_swapped_and_read_only_arrays_rejected(variant):
    """The C-API checks of the bindings: non-native byte order is refused; read-only
    out or flags raise."""
    rng = np.random.default_rng(3)
    N, D, C, M = 5, 8, 2, 3
    x = rng.standard_normal((N, D)).astype(np.float32)
    level = random_level(D, M, C, rng, x=x)
    kernel = prepared(level, variant)
    out = np.empty((N, M), np.float32)
    with pytest.raises(ValueError, match="x must be in native byte order"):
        kernel.product(x.astype(">f4"), out, 1)
    with pytest.raises(ValueError, match="x must be in native byte order"):
        kernel.checked_product(x.astype(">f4"), out, 1)
    with pytest.raises(ValueError, match="x must be in native byte order"):
        kernel.encode(x.astype(">f4"))
    with pytest.raises(ValueError, match="out must be in native byte order"):
        kernel.product(x, np.empty((N, M), ">f8"), 1)
    ro = np.empty((N, M), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        kernel.product(x, ro, 1)
    with pytest.raises(ValueError, match="out is read-only"):
        kernel.checked_product(x, ro, 1)
    fl = np.empty(N, np.uint8)
    fl.flags.writeable = False
    with pytest.raises(ValueError, match="flags is read-only"):
        kernel.product(x, out, 1, flags=fl)
    with pytest.raises(ValueError, match="flags must be a C-contiguous uint8"):
        kernel.product(x, out, 1, flags=np.empty(2 * N, np.uint8)[::2])
