"""Narrow rows (uint8, int8, uint16, int16, float16, bfloat16) read as they are, and
float16 results.

Kernel tests take the variant and the dtype as parameters (ids such as
``test_narrow_product_matches_oracle[N33-D37-C5-M17-avx2-u8-F]``), bit for bit against
the NumPy reference, which compares the narrow values with the float32 thresholds as
real numbers. The call-level tests check that ``x @ W`` hands such rows to the kernels
without converting them, and that the result dtype follows NumPy's rules.
"""

import ml_dtypes
import numpy as np
import pytest

import approxmat as am
from approxmat import _call, _kernels, _reference
from approxmat._testing import (
    LAYOUTS,
    NARROW_DTYPES,
    assert_bits_equal,
    flagged_product,
    layout,
    modified,
    narrow_level,
    narrow_x,
    oracle,
    prepared,
    random_level,
    with_ranges,
)

VARIANTS = _kernels.supported_variants()
BF16 = np.dtype(ml_dtypes.bfloat16)
ROW_DTYPES = NARROW_DTYPES + (BF16,)
NARROW_IDS = ["u8", "i8", "u16", "i16", "f16", "bf16"]
F16 = np.dtype(np.float16)
OUT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), F16)

# (N, D, C, M): N = 0, 1, 31, 33 and beyond, odd D, C not a power of two, M = 1, wide M.
CASES = [
    (0, 7, 3, 3),
    (1, 5, 1, 1),
    (31, 37, 5, 17),
    (33, 27, 16, 2),
    (33, 10, 7, 1),
    (1000, 192, 33, 64),
    (1000, 64, 256, 100),
    (4097, 27, 12, 300),
]


def _case_id(case):
    return "N{}-D{}-C{}-M{}".format(*case)


@pytest.fixture(scope="module", params=CASES, ids=_case_id)
def narrow_case(request):
    """One case: per narrow dtype, rows reaching the type's edges (float16: NaN and inf
    rows too), a level with thresholds at delicate values, the same with ranges, and
    the reference's codes, products and flags."""
    N, D, C, M = request.param
    rng = np.random.default_rng(N * 1000 + C * 7 + M)
    per_dtype = {}
    for xdt in ROW_DTYPES:
        x = narrow_x(N, D, rng, xdt)
        level = narrow_level(random_level(D, M, C, rng), xdt, rng)
        ranged = narrow_level(with_ranges(level, x.astype(np.float64), rng), xdt, rng)
        per_dtype[xdt] = {
            "x": x,
            "codes": _reference.encode(x, level.split_dims, level.thresholds),
            "levels": [(lev, {odt: oracle(x, lev, odt) for odt in OUT_DTYPES})
                       for lev in (level, ranged)],
        }
    return per_dtype


@pytest.mark.parametrize("layout_name", LAYOUTS)
@pytest.mark.parametrize("xdt", ROW_DTYPES, ids=NARROW_IDS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_narrow_product_matches_oracle(variant, xdt, layout_name, narrow_case):
    """Codes, products into float32, float64 and float16 outputs (with and without row
    flags and calibration ranges) and a strided output, bit for bit, in every layout."""
    case = narrow_case[xdt]
    x = case["x"]
    N = x.shape[0]
    xv = layout(x, layout_name)
    for lev, want in case["levels"]:
        M = lev.noutputs
        kernel = prepared(lev, variant)
        np.testing.assert_array_equal(
            kernel.encode(xv, 2), _reference.encode(x, lev.split_dims, lev.thresholds))
        for odt in OUT_DTYPES:
            out = np.full((N, M), 7, dtype=odt)
            flags = flagged_product(kernel, xv, out, 2)
            np.testing.assert_array_equal(flags, want[odt][1])
            assert_bits_equal(out, want[odt][0], f"{odt} output")
            plain = np.full((N, M), 7, dtype=odt)
            kernel.product(xv, plain, 1)  # no flags: NaN rows are not rewritten
            assert_bits_equal(plain[flags != 1], want[odt][0][flags != 1])
        big = np.zeros((2 * N, M + 2), F16)  # every other row, columns reversed
        out = big[::2, M - 1 :: -1] if M > 1 else big[::2, :1]
        np.testing.assert_array_equal(flagged_product(kernel, xv, out, 1), want[F16][1])
        assert_bits_equal(out, want[F16][0])


@pytest.mark.parametrize("xdt", ["u8", "i8", "u16", "i16"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_integer_decisions_at_every_threshold_kind(variant, xdt):
    """Integer rows against thresholds at, between and around integers and beyond the
    type's range: the kernel's codes are those of the rule ``x > t`` iff
    ``x >= floor(t) + 1`` (clamped to the range), computed here in integers."""
    dtype = np.dtype(NARROW_DTYPES[["u8", "i8", "u16", "i16"].index(xdt)])
    info = np.iinfo(dtype)
    rng = np.random.default_rng(11)
    if dtype.itemsize == 1:
        values = np.arange(info.min, info.max + 1)
    else:
        values = np.concatenate([np.arange(info.min, info.min + 300),
                                 rng.integers(info.min, info.max, 2000, endpoint=True),
                                 np.arange(info.max - 300, info.max + 1)])
    D = 4
    x = np.repeat(values, 1)[:, None].repeat(D, axis=1).astype(dtype)
    level = narrow_level(random_level(D, 3, 9, rng), dtype, rng)
    kernel = prepared(level, variant)
    codes = kernel.encode(x, 1)
    np.testing.assert_array_equal(codes, _reference.encode(x, level.split_dims, level.thresholds))
    # the same codes from integer comparisons with floor(t) + 1
    t = level.thresholds.astype(np.float64)
    with np.errstate(invalid="ignore"):
        bound = np.clip(np.floor(t) + 1, info.min - 1, info.max + 1)
    xi = x.astype(np.int64)
    node = np.zeros((len(x), level.ncodebooks), np.intp)
    for lev in range(4):
        limit = bound[np.arange(level.ncodebooks), (1 << lev) - 1 + node]
        node = 2 * node + (xi[:, level.split_dims[:, lev]] >= limit)
    np.testing.assert_array_equal(codes, node)


@pytest.mark.parametrize("fdt", [F16, BF16], ids=["f16", "bf16"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_16_bit_float_extremes_nan_and_inf(variant, fdt):
    """float16 and bfloat16 rows at their largest, smallest normal and subnormal values,
    +-0, +-inf and NaN, against thresholds at those values and their float32
    neighbours: codes, flags (a NaN or inf anywhere in a row flags it, split column or
    not) and NaN rows."""
    f = np.finfo(fdt) if fdt == F16 else ml_dtypes.finfo(fdt)
    special = np.array([float(v) for v in (f.max, -f.max, f.smallest_normal,
                                           -f.smallest_normal, f.smallest_subnormal,
                                           -f.smallest_subnormal)]
                       + [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0]).astype(fdt)
    D = 5
    rows = np.array(np.meshgrid(*[special] * 2)).reshape(2, -1).T.astype(fdt)
    x = np.concatenate([rows, np.zeros((len(rows), D - 2), fdt)], axis=1)
    x[::7, 4] = np.nan  # a NaN outside the split columns
    assert x.dtype == fdt
    rng = np.random.default_rng(5)
    level = random_level(D, 4, 6, rng)
    sd = np.tile(np.array([0, 1, 0, 1], np.int32), (6, 1))
    thr32 = special.astype(np.float32)
    thr32 = thr32[np.isfinite(thr32)]
    near = np.concatenate([thr32, np.nextafter(thr32, np.float32(np.inf)),
                           np.nextafter(thr32, np.float32(-np.inf))])
    level = modified(level, split_dims=sd,
                     thresholds=rng.choice(near, level.thresholds.shape).astype(np.float32))
    ranged = modified(level, split_low=np.full((6, 4), -1, np.float32),
                      split_high=np.full((6, 4), 1, np.float32))
    for lev in (level, ranged):
        kernel = prepared(lev, variant)
        np.testing.assert_array_equal(
            kernel.encode(x), _reference.encode(x, lev.split_dims, lev.thresholds))
        for odt in OUT_DTYPES:
            want, wf = oracle(x, lev, odt)
            out = np.empty((len(x), 4), odt)
            np.testing.assert_array_equal(flagged_product(kernel, x, out, 2), wf)
            assert_bits_equal(out, want)
        assert set(np.unique(wf)) == ({0, 1, 2} if lev is ranged else {0, 1})


@pytest.mark.parametrize("variant", VARIANTS)
def test_float16_output_rounding(variant):
    """float16 outputs are the float32 result rounded once, to nearest with ties to
    even: outputs exactly halfway between float16 values, subnormal results, results
    that round to 65504 or overflow to infinity, as NumPy's astype gives them."""
    rng = np.random.default_rng(8)
    D, C, N = 6, 16, 3000
    x = rng.standard_normal((N, D)).astype(np.float32)
    base = random_level(D, 6, C, rng)
    # acc * 2^-11 + 1: odd sums are ties between float16 neighbours (spacing 2^-10)
    scale = np.array([2.0**-11, 2.0**-25, 1.0, 2.0**-13, 0.25, 3.0e-3])
    offset = np.array([1.0, 0.0, 65504.0 - 2000, -1.5, 65500.0, 0.1])
    level = modified(base, scale=scale, offset=offset)
    want = oracle(x, level, F16)[0]
    acc = _reference.table_sums(_reference.encode(x, level.split_dims, level.thresholds),
                                level.luts)
    assert (acc[:, 0] % 2 == 1).any()  # ties were produced
    assert np.isinf(want).any() and (np.abs(want[:, 1]) < np.finfo(np.float16).smallest_normal).any()
    kernel = prepared(level, variant)
    for nthreads in (1, 2):
        out = np.empty((N, 6), F16)
        kernel.product(x, out, nthreads)  # float32 rows, float16 result
        assert_bits_equal(out, want)
        out = np.empty((N, 6), F16)
        kernel.product(x.astype(F16), out, nthreads)
        assert_bits_equal(out, oracle(x.astype(F16), level, F16)[0])


@pytest.mark.parametrize("variant", VARIANTS)
def test_narrow_threads_identical(variant):
    """The result of narrow rows does not depend on the thread count or the block a
    row falls in (rows offset by one between calls)."""
    rng = np.random.default_rng(9)
    x = narrow_x(5000, 40, rng, np.uint8)
    level = narrow_level(random_level(40, 20, 16, rng), np.uint8, rng)
    kernel = prepared(level, variant)
    want = oracle(x, level, np.float32)[0]
    for nthreads in (1, 2, 3):
        out = np.empty((5000, 20), np.float32)
        kernel.product(x, out, nthreads)
        assert_bits_equal(out, want)
        out = np.empty((4999, 20), np.float32)
        kernel.product(x[1:], out, nthreads)
        assert_bits_equal(out, want[1:])


# ---------------------------------------------------------------- through x @ W

@pytest.fixture(scope="module")
def fitted():
    """W (float32) fitted on float rows with integer-like columns, lookup-table points
    only, and a float16 twin of the weights fitted the same way."""
    rng = np.random.default_rng(0)
    D, M = 27, 16
    basis = rng.standard_normal((4, D))
    X = np.clip(np.round(60 + 10 * rng.standard_normal((3000, 4)) @ basis / 2), 0, 120)  # every type
    weights = rng.standard_normal((D, M)).astype(np.float32)
    W = am.ApproxMatrix(weights).fit(X, [8, 16], ranks=[], random_state=0)
    W16 = am.ApproxMatrix(weights.astype(np.float16)).fit(X, [8, 16], ranks=[], random_state=0)
    return W, W16, X


@pytest.mark.parametrize("xdt", ROW_DTYPES, ids=NARROW_IDS)
def test_matmul_reads_narrow_rows(fitted, xdt):
    """``x @ W`` with narrow rows: the result dtype is NumPy's, the point is a lookup
    table, and the values are the reference's on the rows as given."""
    W, W16, X = fitted
    x = X[:500].astype(xdt)
    for matrix in (W, W16):
        result = np.result_type(xdt, matrix.dtype)
        y = x @ matrix
        report = am.last_call()
        assert y.dtype == result and report.kind == "lut"
        level = next(lv for lv in matrix._levels if lv.ncodebooks == report.ncodebooks)
        assert_bits_equal(y, oracle(x, level, result)[0])
        # the general path (out=, a stacked operand) computes the same
        buf = np.empty_like(y)
        assert np.matmul(x, matrix, out=buf) is buf
        assert_bits_equal(buf, y)
        assert_bits_equal((x[None] @ matrix)[0], y)
        assert_bits_equal(np.dot(x[:1], matrix), y[:1])


def test_narrow_rows_are_not_converted(fitted, monkeypatch):
    """The lookup-table path hands uint8 rows to the kernel as they are."""
    W, _, X = fitted
    x = X[:100].astype(np.uint8)
    seen = []
    real = _call._backend.product

    def spy(x2d, level, out2d, *args, **kwargs):
        seen.append((x2d.dtype, out2d.dtype))
        return real(x2d, level, out2d, *args, **kwargs)

    monkeypatch.setattr(_call._backend, "product", spy)
    with am.config(verify=1.0):  # the general path, which goes through product()
        x @ W
    assert seen == [(np.dtype(np.uint8), np.dtype(np.float32))]


def test_float16_rows_nan_and_tolerance(fitted):
    """float16 rows with NaN give NaN result rows; tolerance=0 gives the exact product
    through float32 BLAS, float16 in, float16 out."""
    _, W16, X = fitted
    x = X[:300].astype(np.float16)
    x[5, 3] = np.nan
    y = x @ W16
    assert y.dtype == F16 and np.isnan(y[5]).all() and np.isfinite(np.delete(y, 5, 0)).all()
    with am.config(tolerance=0):
        exact = x @ W16
    assert exact.dtype == F16 and am.last_call().kind == "exact"
    want = (x.astype(np.float32) @ np.asarray(W16).astype(np.float32)).astype(F16)
    assert_bits_equal(exact, want)


def test_narrow_rows_with_low_rank_points():
    """A low-rank point takes narrow rows converted to float32: the same values as the
    float32 rows give."""
    rng = np.random.default_rng(3)
    X = np.round(50 + 20 * rng.standard_normal((2000, 12)))
    W = am.ApproxMatrix(rng.standard_normal((12, 5)).astype(np.float32))
    W.fit(X, [], ranks=[4], random_state=0)
    x = X[:50].astype(np.int16)
    y = x @ W
    assert am.last_call().kind == "lowrank"
    assert_bits_equal(y, x.astype(np.float32) @ W)
