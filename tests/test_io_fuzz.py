"""Fuzzing approxmat.load: any byte string either loads or raises a clear ValueError.

Never another exception, a crash, a hang or a huge allocation. Mutations of a valid
file are caught by the checksum; forged files with a *valid* checksum exercise the
parser's own checks.
"""

import hashlib
import io
import json
import resource
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import approxmat as am
from approxmat import _io

PRELUDE = struct.Struct("<16sIIQ")


@pytest.fixture(scope="module")
def valid_file():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 10))
    W = am.ApproxMatrix(rng.standard_normal((10, 3))).fit(X, ncodebooks=[2, 5], random_state=0)
    buf = io.BytesIO()
    W.save(buf)
    return buf.getvalue()


@pytest.fixture(autouse=True, scope="module")
def memory_cap():
    """Cap the address space so a huge allocation fails loudly instead of swapping."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = 8 * 2**30
    if soft == resource.RLIM_INFINITY or soft > cap:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def load_or_valueerror(data):
    try:
        W = am.load(io.BytesIO(data))
    except ValueError as exc:
        assert str(exc), "empty error message"
        return None
    assert isinstance(W, am.ApproxMatrix)
    return W


def reseal(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()


FUZZ = settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    assert load_or_valueerror(data) is None


@FUZZ
@given(st.data())
def test_truncated_flipped_and_spliced(valid_file, data):
    blob = bytearray(valid_file)
    action = data.draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
    pos = data.draw(st.integers(0, len(blob) - 1))
    if action == "truncate":
        blob = blob[:pos]
    elif action == "flip":
        blob[pos] ^= 1 << data.draw(st.integers(0, 7))
    elif action == "insert":
        blob[pos:pos] = data.draw(st.binary(min_size=1, max_size=64))
    else:
        del blob[pos : pos + data.draw(st.integers(1, 64))]
    assert load_or_valueerror(bytes(blob)) is None  # the checksum catches every change


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(st.data())
def test_forged_headers_with_valid_checksum(valid_file, data):
    magic, version, hlen, plen = PRELUDE.unpack_from(valid_file)
    header = json.loads(valid_file[PRELUDE.size : PRELUDE.size + hlen])
    payload = valid_file[PRELUDE.size + hlen : PRELUDE.size + hlen + plen]
    target = data.draw(st.sampled_from(["weights.shape", "weights.dtype", "levels", "meta", "key"]))
    value = data.draw(json_values)
    if target == "weights.shape":
        header["weights"]["shape"] = data.draw(
            st.lists(st.integers(-5, 2**62), min_size=0, max_size=3) | json_values
        )
    elif target == "weights.dtype":
        header["weights"]["dtype"] = data.draw(
            st.sampled_from(["|O", "<c16", ">f8", "<U4", "V8", "<f8", "<i8"]) | st.text(max_size=5)
        )
    elif target == "levels":
        header["levels"] = data.draw(st.lists(st.integers(-3, 2**40), max_size=6) | json_values)
    elif target == "meta":
        header["meta"] = value
    else:
        header[data.draw(st.text(max_size=5))] = value
    head = json.dumps(header).encode()
    plen = data.draw(st.sampled_from([len(payload), 0, 2**63, len(payload) + 8]))
    body = PRELUDE.pack(magic, version, len(head), plen) + head + payload
    load_or_valueerror(reseal(body))


@FUZZ
@given(st.data())
def test_forged_payload_with_valid_checksum(valid_file, data):
    _, _, hlen, plen = PRELUDE.unpack_from(valid_file)
    start = PRELUDE.size + hlen
    body = bytearray(valid_file[: start + plen])
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(start, len(body) - 1))
        body[pos] = data.draw(st.integers(0, 255))
    W = load_or_valueerror(reseal(bytes(body)))
    if W is not None:  # whatever loads must be usable: a product never crashes
        with am.config(drift_fraction=None):
            y = np.ones((4, W.shape[0])) @ W
        assert y.shape == (4, W.shape[1])


def test_newer_format_version_is_named(valid_file):
    magic, version, hlen, plen = PRELUDE.unpack_from(valid_file)
    body = PRELUDE.pack(magic, version + 1, hlen, plen) + valid_file[PRELUDE.size : -32]
    with pytest.raises(ValueError, match=f"format version {version + 1}"):
        am.load(io.BytesIO(reseal(body)))
    assert _io.FORMAT_VERSION == version
