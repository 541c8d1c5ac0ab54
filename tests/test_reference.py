"""Hand-worked cases for the NumPy oracle of the call path."""

import numpy as np
import pytest

from approxmat._level import Level
from approxmat._reference import approx_matmul, dequantize, encode, table_sums


def _tree(dims, thresholds):
    return np.array([dims], dtype=np.int32), np.array([thresholds], dtype=np.float32)


def test_encode_heap_order_walk():
    # Level 0 tests column 0 against t[0]; level 1 column 1 against t[1 + node]; ...
    th = np.arange(15, dtype=np.float32)  # node thresholds 0..14 in heap order
    sd, th = _tree([0, 1, 2, 3], th)
    # x0 = 0.5 > 0 -> right (node 1); x1 = 1.5 > t[2] = 2? no -> node 2;
    # x2 = 6 > t[3 + 2] = 5 -> node 5; x3 = 12 > t[7 + 5] = 12? no -> node 10.
    x = np.array([[0.5, 1.5, 6.0, 12.0]])
    assert encode(x, sd, th).tolist() == [[10]]
    # All far below: always left -> 0; all far above: always right -> 15.
    assert encode(np.full((1, 4), -100.0), sd, th).tolist() == [[0]]
    assert encode(np.full((1, 4), 100.0), sd, th).tolist() == [[15]]


def test_encode_ties_go_left_and_nan_goes_left():
    sd, th = _tree([0, 0, 0, 0], np.zeros(15))
    x = np.array([[0.0], [np.nan], [-0.0], [np.float64(np.nextafter(0, 1))], [np.inf]])
    assert encode(x, sd, th)[:, 0].tolist() == [0, 0, 0, 15, 15]


def test_encode_compares_float64_exactly_against_float32_threshold():
    t = np.float32(0.1)  # 0.100000001490116...
    sd, th = _tree([0, 0, 0, 0], np.full(15, t))
    just_above = np.nextafter(np.float64(t), np.inf)
    x = np.array([[0.1], [float(t)], [just_above]])  # 0.1 (float64) < float32(0.1)
    assert encode(x, sd, th)[:, 0].tolist() == [0, 0, 15]
    x32 = np.array([[t], [np.nextafter(t, np.float32(1))]], dtype=np.float32)
    assert encode(x32, sd, th)[:, 0].tolist() == [0, 15]


def test_encode_several_codebooks_use_their_own_columns():
    sd = np.array([[0, 0, 0, 0], [1, 1, 1, 1]], dtype=np.int32)
    th = np.zeros((2, 15), dtype=np.float32)
    th[1] = 5.0
    x = np.array([[1.0, 1.0], [-1.0, 6.0]])
    assert encode(x, sd, th).tolist() == [[15, 0], [0, 15]]


def test_table_sums_exact_and_large():
    luts = np.full((256, 16, 2), 255, dtype=np.uint8)
    luts[:, 3, 1] = 1
    codes = np.full((1, 256), 3, dtype=np.uint8)
    acc = table_sums(codes, luts)
    assert acc.dtype == np.int32
    assert acc.tolist() == [[256 * 255, 256]]  # no wrap-around, no averaging
    codes = np.array([[0, 15], [15, 0]], dtype=np.uint8)
    luts = np.arange(2 * 16 * 1, dtype=np.uint8).reshape(2, 16, 1)
    assert table_sums(codes, luts)[:, 0].tolist() == [0 + 31, 15 + 16]


def test_dequantize_rounds_in_dtype():
    acc = np.array([[3, 0]], dtype=np.int32)
    scale = np.array([0.1, 2.0])
    offset = np.array([1.0, -1.0])
    y64 = dequantize(acc, scale, offset, np.float64)
    assert y64.dtype == np.float64
    assert y64[0, 0] == 3 * 0.1 + 1.0 and y64[0, 1] == -1.0
    y32 = dequantize(acc, scale, offset, np.float32)
    assert y32.dtype == np.float32
    assert y32[0, 0] == np.float32(3) * np.float32(0.1) + np.float32(1.0)


def test_approx_matmul_hand_case():
    sd = np.array([[0, 0, 0, 0]], dtype=np.int32)
    th = np.zeros((1, 15), dtype=np.float32)
    luts = np.zeros((1, 16, 1), dtype=np.uint8)
    luts[0, 15, 0] = 10
    level = Level(sd, th, luts, np.array([0.5]), np.array([-1.0]))
    y = approx_matmul(np.array([[1.0], [-1.0]]), level, np.float64)
    assert y.tolist() == [[4.0], [-1.0]]


def test_level_validates_shapes():
    with pytest.raises(ValueError, match="inconsistent Level parameters"):
        Level(
            np.zeros((1, 3), np.int32),
            np.zeros((1, 15), np.float32),
            np.zeros((1, 16, 1), np.uint8),
            np.ones(1),
            np.zeros(1),
        )
