"""Tests of the save/load file format: exact round trips and hostile files."""

import hashlib
import io
import json
import pathlib
import struct

import numpy as np
import pytest

from approxmat import _io, _testing
from approxmat._io import FORMAT_VERSION, MAGIC, load, save


@pytest.fixture
def content():
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((10, 3)).astype(np.float32)
    levels = [_testing.random_level(10, 3, 2, rng, error=0.25),
              _testing.random_level(10, 3, 5, rng, error=float("nan"))]
    return weights, levels, {"approxmat": "0.1.0", "note": [1, 2.5, None]}


@pytest.fixture
def blob(content):
    buf = io.BytesIO()
    save(buf, *content)
    return buf.getvalue()


def _same(a, b):
    (wa, la, ma), (wb, lb, mb) = a, b
    assert wa.dtype == wb.dtype and wa.tobytes() == wb.tobytes()
    assert ma == mb and len(la) == len(lb)
    for x, y in zip(la, lb):
        for name in ("split_dims", "thresholds", "luts", "scale", "offset"):
            u, v = getattr(x, name), getattr(y, name)
            assert u.dtype == v.dtype and u.shape == v.shape and u.tobytes() == v.tobytes()
        assert np.float64(x.error).tobytes() == np.float64(y.error).tobytes()


def test_round_trip_file_object(content, blob):
    _same(content, load(io.BytesIO(blob)))


def test_round_trip_paths(content, tmp_path):
    p = tmp_path / "w.approx"
    save(p, *content)
    _same(content, load(p))
    save(str(p), *content)  # overwrite atomically
    _same(content, load(str(p)))
    assert [f.name for f in tmp_path.iterdir()] == ["w.approx"]  # no temp files left


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.uint8])
def test_round_trip_weight_dtypes(dtype):
    w = (np.arange(6).reshape(3, 2) * 3).astype(dtype)
    buf = io.BytesIO()
    save(buf, w, [], {})
    w2, levels, meta = load(io.BytesIO(buf.getvalue()))
    assert w2.dtype == w.dtype and (w2 == w).all() and levels == [] and meta == {}


def test_round_trip_non_seekable_stream(content, blob):
    class Stream(io.RawIOBase):
        def __init__(self, data):
            self._b = io.BytesIO(data)

        def readable(self):
            return True

        def seekable(self):
            return False

        def readinto(self, b):
            chunk = self._b.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    _same(content, load(Stream(blob)))
    with pytest.raises(ValueError, match="truncated"):
        load(Stream(blob[:-1]))
    with pytest.raises(ValueError, match="trailing data"):
        load(Stream(blob + b"x"))


def test_save_rejects_bad_input(content):
    w, levels, _ = content
    with pytest.raises(TypeError, match="JSON-serialisable"):
        save(io.BytesIO(), w, levels, {"a": object()})
    with pytest.raises(TypeError, match="meta must be a dict"):
        save(io.BytesIO(), w, levels, [])
    with pytest.raises(ValueError, match="outputs but weights have M=4"):
        save(io.BytesIO(), np.ones((10, 4)), levels, {})
    with pytest.raises(ValueError, match=r"split columns outside \[0, 3\)"):
        save(io.BytesIO(), np.ones((3, 3)), levels, {})
    with pytest.raises(ValueError, match="2-D real numeric"):
        save(io.BytesIO(), np.ones((3, 3), dtype=object), [], {})


# ------------------------------------------------------------ corrupt files


def test_empty_and_truncated(blob):
    with pytest.raises(ValueError, match="truncated"):
        load(io.BytesIO(b""))
    for cut in (5, 20, 40, len(blob) // 2, len(blob) - 1):
        with pytest.raises(ValueError, match="not a valid approxmat file"):
            load(io.BytesIO(blob[:cut]))


def test_trailing_data(blob):
    with pytest.raises(ValueError, match="trailing data"):
        load(io.BytesIO(blob + b"\0"))


def test_wrong_magic(blob):
    with pytest.raises(ValueError, match="wrong magic"):
        load(io.BytesIO(b"\x93NUMPY" + blob[6:]))


def test_every_bit_flip_is_detected(blob):
    # Flip one bit in every byte past the magic (prelude, header, payload, digest).
    for i in range(16, len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 1 << (i % 8)
        with pytest.raises(ValueError):
            load(io.BytesIO(bytes(bad)))


def test_checksum_mismatch_message(blob):
    bad = bytearray(blob)
    bad[-40] ^= 0xFF  # inside the payload
    with pytest.raises(ValueError, match="checksum mismatch"):
        load(io.BytesIO(bytes(bad)))


def _forge(header, payload, version=FORMAT_VERSION, hlen=None, plen=None):
    """A file with a *valid* checksum around arbitrary (hostile) content."""
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    hlen = len(head) if hlen is None else hlen
    plen = len(payload) if plen is None else plen
    body = struct.pack("<16sIIQ", MAGIC, version, hlen, plen) + head + payload
    return io.BytesIO(body + hashlib.sha256(body).digest())


def _good_header(C=1, D=3, M=2, dtype="<f8"):
    return {"meta": {}, "weights": {"dtype": dtype, "shape": [D, M]},
            "points": [{"kind": "lut", "size": C}], "fitted": True, "costs": None,
            "left": None}


def _v1_header(C=1, D=3, M=2):
    """The header of a version-1 file: codebook counts only, no costs."""
    return {"meta": {}, "weights": {"dtype": "<f8", "shape": [D, M]}, "levels": [C]}


def _good_payload(C=1, D=3, M=2, split=0):
    w = np.ones((D, M)).tobytes()
    lv = (
        np.full((C, 4), split, "<i4").tobytes()
        + np.zeros((C, 15), "<f4").tobytes()
        + np.zeros((C, 16, M), "u1").tobytes()
        + np.ones(M, "<f8").tobytes()
        + np.zeros(M, "<f8").tobytes()
        + np.full((C, 4), -1, "<f4").tobytes()
        + np.full((C, 4), 1, "<f4").tobytes()
    )
    return w + lv + np.array([0.5], "<f8").tobytes()


def test_forged_good_file_loads():
    w, levels, meta = load(_forge(_good_header(), _good_payload()))
    assert w.shape == (3, 2) and levels[0].ncodebooks == 1 and levels[0].error == 0.5


def test_version_2_file_loads():
    """Version 2 wrote no "left" key (no W @ x points)."""
    header = _good_header()
    del header["left"]
    w, levels, meta = load(_forge(header, _good_payload(), version=2))
    assert w.shape == (3, 2) and [lv.ncodebooks for lv in levels] == [1]
    with pytest.raises(ValueError, match="exactly the keys"):
        load(_forge(_good_header(), _good_payload(), version=2))  # "left" is new in 3


def test_left_section_is_validated():
    header = _good_header()
    header["left"] = {"points": [{"kind": "lut", "size": 1}], "fitted": True}
    with pytest.raises(ValueError, match="left must be null or have exactly the keys"):
        load(_forge(header, _good_payload()))
    header["left"]["costs"] = None
    with pytest.raises(ValueError, match="payload is .* bytes but the header describes"):
        load(_forge(header, _good_payload()))  # the left point's arrays are missing


def test_newer_version():
    f = _forge(_good_header(), _good_payload(), version=FORMAT_VERSION + 1)
    msg = (
        f"written by a newer approxmat format version {FORMAT_VERSION + 1}; "
        f"this build reads up to version {FORMAT_VERSION}"
    )
    with pytest.raises(ValueError, match=msg):
        load(f)
    with pytest.raises(ValueError, match="unsupported format version 0"):
        load(_forge(_good_header(), _good_payload(), version=0))


def test_huge_declared_sizes_allocate_nothing():
    # Declared lengths far beyond the file: rejected before reading.
    with pytest.raises(ValueError, match="header of .* bytes exceeds"):
        load(_forge(_good_header(), _good_payload(), hlen=2**31))
    with pytest.raises(ValueError, match="declares"):
        load(_forge(_good_header(), _good_payload(), plen=2**62))


def test_huge_declared_shape():
    h = _good_header()
    h["weights"]["shape"] = [2**40, 2**40]
    with pytest.raises(ValueError, match="invalid weights shape"):
        load(_forge(h, _good_payload()))
    h = _good_header()
    h["weights"]["shape"] = [3, 20]  # plausible-looking but inconsistent
    with pytest.raises(ValueError, match="payload is .* bytes but the header describes"):
        load(_forge(h, _good_payload()))


@pytest.mark.parametrize(
    "dtype", ["|O", "<c16", ">f8", "|V8", "<U4", "|b1", "object", "<M8[s]"]
)
def test_disallowed_dtypes(dtype):
    with pytest.raises(ValueError, match="unsupported weights dtype"):
        load(_forge(_good_header(dtype=dtype), _good_payload()))


def test_extra_or_missing_members():
    h = _good_header()
    h["code"] = "__import__('os').system('echo pwned')"
    with pytest.raises(ValueError, match="exactly the keys"):
        load(_forge(h, _good_payload()))
    h = _good_header()
    del h["points"]
    with pytest.raises(ValueError, match="exactly the keys"):
        load(_forge(h, _good_payload()))
    h = _good_header()
    h["weights"]["order"] = "F"
    with pytest.raises(ValueError, match="exactly the keys dtype and shape"):
        load(_forge(h, _good_payload()))


def test_malformed_headers():
    for raw in (b"\xff\xfe", b"[1, 2]", b"{", b"[" * 100000, b'"text"'):
        with pytest.raises(ValueError, match="not a valid approxmat file"):
            load(_forge(raw, _good_payload()))


def test_inconsistent_shapes_and_values():
    h = _good_header(C=4)  # C > D
    with pytest.raises(ValueError, match="invalid number of codebooks 4"):
        load(_forge(h, _good_payload()))
    h = _good_header()
    h["points"] = [{"kind": "lut", "size": 1.5}]
    with pytest.raises(ValueError, match="invalid number of codebooks"):
        load(_forge(h, _good_payload()))
    h = _good_header()
    h["points"] = [{"kind": "lut", "size": 1}] * 2  # payload holds only one level
    with pytest.raises(ValueError, match="header describes"):
        load(_forge(h, _good_payload()))
    with pytest.raises(ValueError, match=r"split columns outside \[0, 3\)"):
        load(_forge(_good_header(), _good_payload(split=3)))
    with pytest.raises(ValueError, match=r"split columns outside"):
        load(_forge(_good_header(), _good_payload(split=-1)))
    p = bytearray(_good_payload())
    p[-8:] = np.array([np.nan], "<f8").tobytes()  # NaN error is allowed ...
    assert np.isnan(load(_forge(_good_header(), bytes(p)))[1][0].error)
    ranges = 2 * 4 * 4  # split_low and split_high of C=1 follow the offset
    p[-8 - ranges - 16 : -8 - ranges] = np.array([np.inf, 0.0], "<f8").tobytes()
    with pytest.raises(ValueError, match="non-finite scale or offset"):  # ... inf offset is not
        load(_forge(_good_header(), bytes(p)))
    p = bytearray(_good_payload())
    p[-8 - 4 : -8] = np.array([np.nan], "<f4").tobytes()
    with pytest.raises(ValueError, match="NaN calibrated ranges"):
        load(_forge(_good_header(), bytes(p)))


def test_nonfinite_weights_rejected():
    p = bytearray(_good_payload())
    p[:8] = np.array([np.nan]).tobytes()
    with pytest.raises(ValueError, match="weights contain NaN"):
        load(_forge(_good_header(), bytes(p)))


def test_loaded_arrays_are_native_and_independent(blob):
    w, levels, _ = load(io.BytesIO(blob))
    assert w.flags.writeable and w.flags.owndata and w.dtype.isnative
    assert not levels[0].luts.flags.writeable  # Level freezes its arrays


def test_path_like(content, tmp_path):
    p = pathlib.PurePath(tmp_path / "x.approx")
    save(p, *content)
    _same(content, load(p))
    assert _io.MAX_HEADER_BYTES >= 1024


def test_calibrated_ranges_round_trip(tmp_path):
    import approxmat as am

    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 12))
    W = am.ApproxMatrix(rng.standard_normal((12, 3))).fit(X, ncodebooks=[4], random_state=0)
    W.save(tmp_path / "w.approx")
    W2 = am.load(tmp_path / "w.approx")
    (a,), (b,) = W._levels, W2._levels
    np.testing.assert_array_equal(a.split_low, b.split_low)
    np.testing.assert_array_equal(a.split_high, b.split_high)
    assert (a.split_low < a.split_high).all()
    np.testing.assert_array_equal(X @ W, X @ W2)
