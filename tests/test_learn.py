"""Tests of the learner: trees, prototypes, quantisation, validation, honesty."""

import re

import numpy as np
import pytest

import approxmat as am
from approxmat._fit import (
    MIN_CALIBRATION_ROWS,
    VALIDATE_FRACTION,
    FitOptions,
    _tables,
    _trees,
    default_ncodebooks,
    fit_levels,
    quantize_tables,
)
from approxmat._fit._tables import _leaf_means
from approxmat._fit._trees import _learn_tree, block_bounds
from approxmat._level import MAX_CODEBOOKS
from approxmat._reference import approx_matmul, encode


def _lowrank(rng, n, d, r=4, noise=0.05):
    basis = rng.standard_normal((r, d))
    return rng.standard_normal((n, r)) @ basis + noise * rng.standard_normal((n, d))


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(1)
    basis = rng.standard_normal((4, 24))

    def draw(n):
        z = rng.standard_normal((n, 4))
        return (z @ basis + 0.05 * rng.standard_normal((n, 24))).astype(np.float32)

    W = rng.standard_normal((24, 3))
    return draw(600), draw(2000), W


@pytest.fixture(scope="module")
def fitted(problem):
    X, _, W = problem
    return fit_levels(X, W, [2, 4, 8], random_state=0)


# ---------------------------------------------------------------- subspaces


def test_block_bounds_extra_columns_go_first():
    assert block_bounds(10, 4).tolist() == [0, 3, 6, 8, 10]
    assert block_bounds(8, 8).tolist() == list(range(9))
    assert block_bounds(5, 1).tolist() == [0, 5]


def test_default_ladder():
    assert default_ncodebooks(512) == [4, 8, 16, 32, 64]
    assert default_ncodebooks(16) == [4, 8, 16]
    assert default_ncodebooks(2) == [2]


# -------------------------------------------------------------------- trees


def test_tree_hand_case_reference_criterion():
    # Column 0 separates two clusters (0 vs 10): the SSE-best first split is at 5.
    # Column 1 then separates 0 from 1 inside each cluster, at 0.5.
    raw = np.array([[0, 0], [0, 1], [10, 0], [10, 1]], dtype=np.float64)
    dims, thr, bucket = _learn_tree(raw, raw - raw.mean(axis=0), 4)
    assert dims[:2].tolist() == [0, 1]
    assert thr[0] == 5.0
    assert thr[1:3].tolist() == [0.5, 0.5]
    # Levels 2 and 3 have single-row buckets: no valid split, everything goes left.
    assert np.isfinite(thr).all()
    assert bucket.tolist() == [0, 4, 8, 12]
    sd = np.asarray(dims, dtype=np.int32)[None]
    assert encode(raw, sd, thr[None]).ravel().tolist() == bucket.tolist()


def test_tree_picks_the_sse_best_column_not_the_first():
    # Column 1 has a large gap between 3 and 100: splitting there removes most SSE.
    raw = np.array([[6, 0], [1, 1], [5, 2], [2, 3], [4, 100], [3, 101]], np.float64)
    dims, thr, _ = _learn_tree(raw, raw - raw.mean(axis=0), 4)
    assert dims[0] == 1
    assert thr[0] == np.float32(51.5)


def test_tree_threshold_within_bucket_uses_cumulative_sums():
    # One column, values 0,0,0,10: best split separates the 10 (midpoint 5).
    raw = np.array([[0.0], [0.0], [0.0], [10.0]])
    dims, thr, bucket = _learn_tree(raw, raw - raw.mean(), 4)
    assert thr[0] == 5.0
    # The left bucket is constant: no split, threshold >= its values, rows go left.
    assert thr[1] >= 0.0 and bucket.tolist() == [0, 0, 0, 8]


def test_tree_float32_rounding_keeps_fit_and_encode_identical():
    rng = np.random.default_rng(0)
    eps = 2.0**-30  # far below float32 resolution near 1
    raw = 1.0 + eps * rng.integers(0, 8, size=(64, 3)).astype(np.float64)
    dims, thr, bucket = _learn_tree(raw, raw - raw.mean(axis=0), 4)
    assert thr.dtype == np.float32 and np.isfinite(thr).all()
    codes = encode(raw, np.asarray(dims, np.int32)[None], thr[None])[:, 0]
    assert codes.tolist() == bucket.tolist()


def test_tree_midpoint_rounded_into_the_gap():
    a, b = 1.0, 1.0 + 2.0**-20  # float32 can represent a value between them
    raw = np.array([[a], [a], [b], [b]])
    _, thr, bucket = _learn_tree(raw, raw - raw.mean(), 4)
    assert a <= float(thr[0]) < b
    assert bucket.tolist() == [0, 0, 8, 8]


def test_tree_constant_block():
    raw = np.full((50, 3), 7.0)
    dims, thr, bucket = _learn_tree(raw, raw - raw.mean(axis=0), 4)
    assert np.isfinite(thr).all() and (bucket == 0).all()


def test_tree_residual_criterion_finds_the_informative_column():
    rng = np.random.default_rng(3)
    raw = rng.standard_normal((400, 6))
    target = (raw[:, 4] > 0.3).astype(float)[:, None] * 5.0  # depends on column 4 only
    dims, thr, _ = _learn_tree(raw, target - target.mean(), 2, proxy=True)
    assert dims[0] == 4
    assert abs(float(thr[0]) - 0.3) < 0.1


def _brute_force_splits(raw, j, bucket, nb, feats):
    """Best split of each bucket on column j by trying every threshold."""
    gains, los, his = [], [], []
    for b in range(nb):
        rows = bucket == b
        v, F = raw[rows, j], feats[rows]
        best = (-np.inf, None, None)
        for t in np.unique(v)[:-1]:
            L, R = F[v <= t], F[v > t]
            g = (L.sum(0) ** 2).sum() / len(L) + (R.sum(0) ** 2).sum() / len(R)
            if g > best[0] + 1e-9 * abs(g):
                best = (g, t, v[v > t].min())
        if best[1] is None:  # no valid split: the bucket's own gain
            best = ((F.sum(0) ** 2).sum() / max(len(F), 1), None, None)
        gains.append(best[0])
        los.append(best[1])
        his.append(best[2])
    return sum(gains), los, his


def test_split_candidates_match_brute_force():
    rng = np.random.default_rng(7)
    n, nb = 120, 4
    raw = np.round(rng.standard_normal((n, 5)), 1)  # ties on purpose
    raw[:, 3] = 2.0  # a constant column: no split anywhere
    feats = rng.standard_normal((n, 3)) + raw[:, [0]] * np.array([1.0, -2.0, 0.5])
    bucket = rng.integers(0, nb, n).astype(np.uint8)
    counts = np.bincount(bucket, minlength=nb)
    tot = np.stack([feats[bucket == b].sum(0) for b in range(nb)])
    cand = np.array([0, 2, 3, 4])
    score, lo, hi, split, vmax = _trees._split_candidates(
        _trees._presort(raw), cand, bucket, counts, feats.astype(np.float32), tot
    )
    for i, j in enumerate(cand):
        g, los, his = _brute_force_splits(raw, j, bucket, nb, feats)
        np.testing.assert_allclose(score[i], g, rtol=1e-5)
        for b in range(nb):
            assert split[i, b] == (los[b] is not None)
            if split[i, b]:
                assert (lo[i, b], hi[i, b]) == (los[b], his[b])
            assert vmax[i, b] == raw[bucket == b, j].max()


def test_all_columns_proxy_ranks_like_the_block_proxy():
    rng = np.random.default_rng(8)
    raw = rng.standard_normal((600, 12))
    feats = np.stack([3 * raw[:, 7] + raw[:, 2], 2 * raw[:, 10] - raw[:, 7]], axis=1)
    feats += 0.3 * rng.standard_normal(feats.shape)
    bucket = (raw[:, 0] > 0).astype(np.uint8) + 2 * (raw[:, 5] > 0.5)
    counts = np.bincount(bucket, minlength=4)
    proxy = _trees._AllColumnsProxy(raw, np.arange(600))
    got = proxy(bucket, feats, 3)
    want = _trees._proxy_candidates(raw, bucket, counts, feats, 3)
    assert got.tolist() == want.tolist() == [2, 7, 10]


def test_split_columns_outside_the_block_when_the_data_calls_for_it():
    # Only columns 2 and 3 carry weight: with contiguous blocks codebook 0 can
    # only split on the useless columns 0 and 1; with "all" it uses 2 and 3.
    rng = np.random.default_rng(9)
    X = rng.standard_normal((1000, 4))
    W = np.array([[0.0], [0.0], [1.0], [1.0]])
    lv_all = fit_levels(X, W, 2, random_state=0)[0]
    lv_blk = fit_levels(X, W, 2, random_state=0, options=FitOptions(split_columns="block"))[0]
    assert set(lv_blk.split_dims[0].tolist()) <= {0, 1}
    assert set(lv_blk.split_dims[1].tolist()) <= {2, 3}
    assert set(lv_all.split_dims[0].tolist()) <= {2, 3}
    assert set(lv_all.split_dims[1].tolist()) <= {2, 3}
    assert lv_all.error < 0.8 * lv_blk.error


def test_block_split_columns_stay_in_their_blocks(problem):
    X, _, W = problem
    for lv in fit_levels(X, W, [3, 8], random_state=0, options=FitOptions(split_columns="block")):
        bounds = block_bounds(24, lv.ncodebooks)
        for c in range(lv.ncodebooks):
            assert (bounds[c] <= lv.split_dims[c]).all()
            assert (lv.split_dims[c] < bounds[c + 1]).all()
    with pytest.raises(ValueError, match="split-column mode"):
        fit_levels(X, W, 2, random_state=0, options=FitOptions(split_columns="nope"))


def test_tree_search_on_a_row_sample_keeps_fit_and_call_identical(problem):
    X, _, W = problem
    options = FitOptions(tree_sample_rows=150, proxy_sample_rows=100)
    a = fit_levels(X, W, 4, random_state=3, options=options)[0]
    b = fit_levels(X, W, 4, random_state=3, options=options)[0]
    np.testing.assert_array_equal(a.thresholds, b.thresholds)
    assert 0 < a.error < 0.6


def test_many_outputs_use_the_principal_directions_for_the_proxy():
    # M > FitOptions.proxy_dims: the residual is rotated to principal directions and the
    # proxy sees the leading ones only; the fit still works and is accurate.
    rng = np.random.default_rng(10)
    X = _lowrank(rng, 800, 16, r=3)
    W = rng.standard_normal((16, 40))
    lv = fit_levels(X, W, 4, random_state=0)[0]
    assert 0 < lv.error < 0.5


# --------------------------------------------------------------- prototypes


def test_leaf_means_and_empty_leaf_fallback():
    codes = np.array([[0], [0], [1], [3]], dtype=np.uint8)
    # one codebook over one column, weights 1: the partial product is the column
    blocks = _tables.Blocks(np.array([[1.0], [3.0], [10.0], [20.0]]), np.ones((1, 1)),
                            np.array([0, 1]))
    T0 = _leaf_means(codes, blocks)
    assert T0[0, 0, 0] == 2.0 and T0[0, 1, 0] == 10.0 and T0[0, 3, 0] == 20.0
    # Leaf 2 is empty: its parent bucket (leaves 2, 3) has mean 20.
    assert T0[0, 2, 0] == 20.0
    # Leaves 4..7 are empty and so is their parent (4, 5) and (4..7); the
    # level-1 ancestor (leaves 0..7) has mean (1 + 3 + 10 + 20) / 4.
    assert T0[0, 5, 0] == 8.5


def test_ridge_refit_recovers_additive_tables():
    # Y is exactly additive in the codes: a tiny ridge penalty recovers it.
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 16, size=(2000, 3)).astype(np.uint8)
    truth = rng.standard_normal((3, 16, 2))
    Y = sum(truth[c][codes[:, c]] for c in range(3))
    zeros = _tables.Blocks(np.zeros((2000, 3)), np.zeros((3, 2)), np.arange(4))
    T0, GtG, GtR = _tables._ridge_tables(codes, Y, zeros)
    T = T0 + _tables.solve(GtG, GtR, 1e-9).reshape(T0.shape)
    np.testing.assert_allclose(_tables.predict(codes, T), Y, atol=1e-6)


# ------------------------------------------------------------- quantisation


def test_quantize_hand_case():
    T = np.zeros((2, 16, 2))
    T[0, :, 0] = np.linspace(0, 255, 16)  # range 255 -> scale 1
    T[1, :, 0] = 100.0  # constant table: offset only
    T[0, :, 1] = -1.0
    T[0, 5, 1] = 1.0  # range 2 -> scale 2/255
    luts, scale, offset = quantize_tables(T)
    assert scale[0] == 1.0 and scale[1] == 2 / 255
    assert offset.tolist() == [100.0, -1.0]
    assert luts[0, :, 0].tolist() == list(range(0, 256, 17))
    assert luts[1, :, 0].tolist() == [0] * 16
    assert luts[0, 5, 1] == 255 and luts[0, 4, 1] == 0


@pytest.mark.parametrize("scheme", ["column", "global"])
def test_quantize_error_at_most_half_a_step_per_table(scheme):
    rng = np.random.default_rng(0)
    T = rng.standard_normal((5, 16, 4)) * np.array([1, 10, 100, 0.1])
    luts, scale, offset = quantize_tables(T, scheme)
    codes = rng.integers(0, 16, size=(300, 5)).astype(np.uint8)
    acc = sum(luts[c][codes[:, c]].astype(np.int64) for c in range(5))
    exact = sum(T[c][codes[:, c]] for c in range(5))
    err = np.abs(acc * scale + offset - exact)
    assert (err <= 5 * scale / 2 * (1 + 1e-9)).all()


def test_column_scheme_beats_global_when_columns_differ():
    rng = np.random.default_rng(0)
    T = rng.standard_normal((8, 16, 3)) * np.array([100.0, 1.0, 0.01])
    err = {}
    for scheme in ("column", "global"):
        luts, scale, offset = quantize_tables(T, scheme)
        err[scheme] = np.abs(luts * scale - (T - T.min(axis=1, keepdims=True)))[..., 2].max()
    assert err["column"] < err["global"] / 100


# --------------------------------------------------------------- fit_levels


def test_fit_levels_structure(fitted, problem):
    X, _, W = problem
    assert [lv.ncodebooks for lv in fitted] == [2, 4, 8]
    for lv in fitted:
        assert lv.luts.shape == (lv.ncodebooks, 16, 3)
        assert np.isfinite(lv.thresholds).all()
        assert 0 < lv.error < 1
        # By default any column may be a split column (split_columns="all").
        assert ((0 <= lv.split_dims) & (lv.split_dims < 24)).all()
    errs = [lv.error for lv in fitted]
    assert errs[2] < errs[0]


def test_fit_levels_accuracy_beats_trivial_and_improves(fitted, problem):
    _, X_test, W = problem
    Y = X_test.astype(np.float64) @ W
    test = [
        np.linalg.norm(approx_matmul(X_test, lv, np.float64) - Y) / np.linalg.norm(Y)
        for lv in fitted
    ]
    assert test[-1] < 0.35
    assert test[0] > test[-1]


def test_validation_error_is_honest(fitted, problem):
    # The stored error comes from held-out rows: it matches fresh data.
    _, X_test, W = problem
    Y = X_test.astype(np.float64) @ W
    for lv in fitted:
        fresh = np.linalg.norm(approx_matmul(X_test, lv, np.float64) - Y) / np.linalg.norm(Y)
        assert 0.75 < lv.error / fresh < 1.33


def test_validation_error_matches_reference_on_the_validation_rows(problem):
    X, _, W = problem
    lv = fit_levels(X, W, 4, random_state=5)[0]
    perm = np.random.default_rng(5).permutation(len(X))
    val = np.sort(perm[: round(len(X) * VALIDATE_FRACTION)])
    Y = X[val].astype(np.float64) @ W
    err = np.linalg.norm(approx_matmul(X[val], lv, np.float64) - Y) / np.linalg.norm(Y)
    assert lv.error == err


def test_determinism(problem):
    X, _, W = problem
    a = fit_levels(X, W, 4, random_state=7)[0]
    b = fit_levels(X, W, 4, random_state=7)[0]
    c = fit_levels(X, W, 4, random_state=8)[0]
    for name in ("split_dims", "thresholds", "luts", "scale", "offset"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.error == b.error
    assert a.error != c.error or not np.array_equal(a.luts, c.luts)


def test_reference_tree_mode_runs(problem):
    X, _, W = problem
    lv = fit_levels(X, W, 4, random_state=0, options=FitOptions(tree_mode="reference"))[0]
    assert 0 < lv.error < 1


def test_inputs_of_other_dtypes():
    rng = np.random.default_rng(2)
    X = _lowrank(rng, 300, 6)
    W = rng.standard_normal((6, 2))
    lv64 = fit_levels(X, W, 2, random_state=0)[0]
    lvint = fit_levels(np.rint(X * 10).astype(np.int16), W, 2, random_state=0)[0]
    assert lv64.thresholds.dtype == lvint.thresholds.dtype == np.float32
    lv1 = fit_levels(X, W, [3, 3, 1], random_state=0)
    assert [lv.ncodebooks for lv in lv1] == [1, 3]


def test_narrow_blocks_and_constant_columns():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((300, 5))
    X[:, 1] = 3.0  # constant column
    W = rng.standard_normal((5, 2))
    levels = fit_levels(X, W, [4, 5], random_state=0)  # blocks of 2,1,1,1 and 1
    for lv in levels:
        assert np.isfinite(lv.thresholds).all() and np.isfinite(lv.error)


def test_zero_weights_give_zero_output():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((300, 5))
    lv = fit_levels(X, np.zeros((5, 2)), 2, random_state=0)[0]
    assert lv.error == 0.0
    assert (approx_matmul(X, lv, np.float64) == 0).all()


def test_progress_goes_to_stderr(capsys):
    rng = np.random.default_rng(0)
    X = _lowrank(rng, 300, 8)
    fit_levels(X, rng.standard_normal((8, 2)), 2, random_state=0, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "C=2" in err and "validated error" in err


# ---------------------------------------------------------------- bad input


@pytest.fixture
def W8():
    return np.ones((8, 2))


def test_bad_X_not_2d(W8):
    with pytest.raises(ValueError, match=r"X_cal must be a 2-D array of shape \(N, 8\).*1-D"):
        fit_levels(np.ones(8), W8, 2)


def test_bad_X_width(W8):
    with pytest.raises(ValueError, match=r"expected shape \(N, 8\).*got 7 columns"):
        fit_levels(np.ones((300, 7)), W8, 2)


def test_bad_X_dtype(W8):
    with pytest.raises(TypeError, match="X_cal must be a real numeric array, got dtype complex128"):
        fit_levels(np.ones((300, 8), dtype=complex), W8, 2)
    with pytest.raises(TypeError, match="got dtype <U1"):
        fit_levels(np.full((300, 8), "a"), W8, 2)


def test_bad_X_nonfinite(W8):
    X = np.ones((300, 8))
    X[5, 3] = np.nan
    X[7, 0] = np.inf
    with pytest.raises(ValueError, match=r"2 non-finite value\(s\).*first at row 5, column 3"):
        fit_levels(X, W8, 2)


def test_bad_X_too_few_rows(W8):
    n = MIN_CALIBRATION_ROWS - 1
    msg = f"too few calibration rows: got {n}, need at least {MIN_CALIBRATION_ROWS}"
    with pytest.raises(ValueError, match=re.escape(msg) + ".*held out"):
        fit_levels(np.ones((n, 8)), W8, 2)


def test_bad_ncodebooks(W8):
    X = np.ones((300, 8))
    with pytest.raises(ValueError, match=r"ncodebooks=9 exceeds the number of columns D=8"):
        fit_levels(X, W8, 9)
    with pytest.raises(ValueError, match=r"ncodebooks=0 is out of range.*\[1, 256\]"):
        fit_levels(X, W8, [0, 2])
    with pytest.raises(ValueError, match=rf"ncodebooks={MAX_CODEBOOKS + 1} is out of range"):
        fit_levels(np.ones((300, 300)), np.ones((300, 1)), MAX_CODEBOOKS + 1)
    with pytest.raises(TypeError, match="ncodebooks must contain ints, got 2.0"):
        fit_levels(X, W8, [2.0])
    with pytest.raises(TypeError, match="ncodebooks must be None, an int or a sequence"):
        fit_levels(X, W8, 2.5)
    with pytest.raises(TypeError, match="ncodebooks must be None, an int or a sequence"):
        fit_levels(X, W8, "4")
    with pytest.raises(TypeError, match="got True"):
        fit_levels(X, W8, [True])
    with pytest.raises(ValueError, match="ncodebooks is empty"):
        fit_levels(X, W8, [])


def test_progress_names_levels_stages_and_the_time_left(capsys):
    rng = np.random.default_rng(0)
    X = _lowrank(rng, 400, 8)
    fit_levels(X, rng.standard_normal((8, 2)), [2, 4, 8], random_state=0, progress=True)
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert any(line.startswith("approxmat fit [1/3] C=2: trees") for line in lines)
    assert any("ridge penalty" in line for line in lines)
    done = [line for line in lines if "validated error" in line]
    assert len(done) == 3
    assert "left)" in done[0] and "left)" in done[1] and "left" not in done[2]


def test_time_left_scales_with_the_codebooks_to_fit():
    from approxmat._fit._driver import _time_left

    assert _time_left(6.0, [4, 8], [16, 32]) == "; about 24 s left"  # 0.5 s per codebook
    assert _time_left(0.01, [4], [4]) == "; under a second left"
    assert _time_left(5.0, [4], []) == ""


# ------------------------------------------------------------ the split search


def _best_splits_by_hand(feats, values_of_rows, bucket, nb):
    """Every split position of every bucket, in float64: the reference."""
    gain = np.full(nb, -np.inf)
    lo, hi, vmax = np.zeros(nb), np.zeros(nb), np.zeros(nb)
    for b in range(nb):
        rows = np.flatnonzero(bucket == b)
        rows = rows[np.argsort(values_of_rows[rows], kind="stable")]
        if not len(rows):
            continue
        v = values_of_rows[rows]
        vmax[b] = v[-1]
        tot = feats[rows].sum(axis=0)
        for i in range(len(rows) - 1):
            if v[i] < v[i + 1]:
                left = feats[rows[: i + 1]].sum(axis=0)
                g = left @ left / (i + 1) + (tot - left) @ (tot - left) / (len(rows) - i - 1)
                if g > gain[b] * (1 + 1e-9) if gain[b] > 0 else g > gain[b]:
                    gain[b], lo[b], hi[b] = g, v[i], v[i + 1]
    return gain, lo, hi, vmax


@pytest.mark.parametrize("n, f, nb", [(1, 1, 1), (40, 3, 4), (300, 17, 8), (500, 64, 16)])
def test_best_splits_match_a_scan_by_hand(n, f, nb):
    from approxmat._fit._trees import _presort
    from approxmat._split_search import best_splits

    rng = np.random.default_rng(n + f)
    raw = np.round(rng.standard_normal((n, 3)), 1)  # ties: only distinct values split
    raw[:, 2] = 1.0  # a constant column: no bucket can split on it
    feats = rng.standard_normal((n, f)).astype(np.float32)
    bucket = rng.integers(0, nb, n).astype(np.uint8)
    if nb > 1:
        bucket[bucket == 1] = 0  # an empty bucket
    order, values = _presort(raw)
    tot = np.zeros((nb, f))
    np.add.at(tot, bucket, feats.astype(np.float64))
    tt = np.einsum("bf,bf->b", tot, tot)
    got = best_splits(feats, order, values, [2, 0, 1], bucket, tot.astype(np.float32), tt)
    for i, j in enumerate([2, 0, 1]):
        want = _best_splits_by_hand(feats.astype(np.float64), raw[:, j], bucket, nb)
        has = want[0] > -np.inf
        np.testing.assert_array_equal(got[0][i] > -np.inf, has)
        np.testing.assert_allclose(got[0][i][has], want[0][has], rtol=1e-4)
        np.testing.assert_array_equal(got[1][i][has], want[1][has])
        np.testing.assert_array_equal(got[2][i][has], want[2][has])
        filled = np.bincount(bucket, minlength=nb) > 0
        np.testing.assert_array_equal(got[3][i][filled], want[3][filled])
    assert not (got[0][0] > -np.inf).any()  # the constant column


def test_best_splits_rejects_bad_input():
    from approxmat._split_search import best_splits

    feats = np.zeros((4, 2), np.float32)
    order = np.arange(4, dtype=np.int32)[None]
    values = np.zeros((1, 4))
    tot = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="a bucket is >= nb"):
        best_splits(feats, order, values, [0], np.full(4, 2, np.uint8), tot, np.zeros(2))
    with pytest.raises(ValueError, match=r"outside \[0, 1\)"):
        best_splits(feats, order, values, [1], np.zeros(4, np.uint8), tot, np.zeros(2))
    with pytest.raises(ValueError, match="order holds a row"):
        best_splits(feats, order + 4, values, [0], np.zeros(4, np.uint8), tot, np.zeros(2))


def test_fit_memory_is_a_few_products_not_one_per_codebook():
    """The memory a fit allocates (NumPy's allocations, traced) stays within a few
    (N, M) float64 arrays: no per-codebook partial products (16 codebooks here, which
    would need 16 of them), whatever the number of codebooks. The bound is generous (6
    such arrays; a fit of this shape takes about 3)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    N, D, M = 8000, 64, 1024
    X = (rng.standard_normal((N, 16)) @ rng.standard_normal((16, D))).astype(np.float32)
    W = am.ApproxMatrix(rng.standard_normal((D, M)).astype(np.float32))
    tracemalloc.start()
    try:
        W.fit(X, [16], ranks=[], random_state=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    product = N * M * 8
    assert W.fitted and peak < 6 * product, f"peak {peak / 2**20:.0f} MiB"
