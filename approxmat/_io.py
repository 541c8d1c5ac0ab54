"""Save and load fitted operating points: one self-describing file, no pickle.

File layout (all integers little-endian)::

    offset  size  content
    0       16    MAGIC = b"\\x89APPROXMAT\\r\\n\\x1a\\n\\x00\\x00"
    16      4     uint32 format version (FORMAT_VERSION)
    20      4     uint32 header length H (<= MAX_HEADER_BYTES)
    24      8     uint64 payload length P
    32      H     header: UTF-8 JSON object, exactly the keys
                  {"meta", "weights", "points", "fitted", "costs"}:
                  "meta": the caller's small JSON-able dict,
                  "weights": {"dtype": "<f8", "shape": [D, M]},
                  "points": [{"kind": ..., "size": ...}, ...] (in order),
                  "fitted": true or false, "costs": the cost table or null
    32+H    P     payload: the raw little-endian arrays, back to back:
                  weights (D, M); then for each point, by kind:
                  "lut": split_dims <i4 (C, 4), thresholds <f4 (C, 15),
                  luts u1 (C, 16, M), scale <f8 (M,), offset <f8 (M,),
                  split_low <f4 (C, 4), split_high <f4 (C, 4) (calibrated
                  ranges; -inf/+inf when a level has none);
                  "lowrank": left <f8 (D, r), right <f8 (r, M);
                  then the errors <f8 (L,); then, when the header's "left"
                  is not null, the points of W @ x the same way, for the
                  transposed weights (D and M swapped), and their errors
    32+H+P  32    SHA-256 of every preceding byte

The header of version 3 (written now) has exactly the keys ``{"meta", "weights",
"points", "fitted", "costs", "left"}``: "points" lists ``{"kind": "lut" or
"lowrank", "size": C or r}`` in order, "fitted" says whether the matrix was fitted
(it may keep no point but the exact one), "costs" holds the measured cost curves and
the fingerprint of the machine that measured them
(:class:`approxmat._costs.CostTable`; a loading machine with another fingerprint
measures its own). "left" is null, or ``{"points", "fitted", "costs"}`` of the
points fitted for ``W @ x`` (``fit(..., side="left")``), which approximate
``x.T @ W.T``. Version 2 files (no "left") and version 1 files (``{"meta",
"weights", "levels"}`` with "levels" the codebook counts of lookup-table points, no
costs) still load.

Loading reads at most the bytes that really are in the file (sizes are checked
against the file before anything is allocated), verifies the digest, then
validates the header and every array (dtypes from a fixed list, consistent
shapes, split columns inside ``[0, D)``, finite scales) before building
:class:`~approxmat._level.Level` objects. Every failure is a ``ValueError``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import struct
import tempfile

import numpy as np

from ._costs import CostTable
from ._level import MAX_CODEBOOKS, NLEAVES, TREE_DEPTH, Level
from ._points import LowRank

__all__ = ["save", "load", "FORMAT_VERSION"]

MAGIC = b"\x89APPROXMAT\r\n\x1a\n\x00\x00"
#: Version written by this build; it reads versions 1..FORMAT_VERSION.
FORMAT_VERSION = 3
_PRELUDE = struct.Struct("<16sIIQ")
_DIGEST = 32
#: Largest accepted JSON header (the metadata is meant to be small).
MAX_HEADER_BYTES = 1 << 20
#: Largest number of levels in one file.
MAX_LEVELS = 1024
_WEIGHT_DTYPES = {
    np.dtype(t).newbyteorder("<").str
    for t in (
        np.float16, np.float32, np.float64,
        np.int8, np.int16, np.int32, np.int64,
        np.uint8, np.uint16, np.uint32, np.uint64,
    )
}
_READ_CHUNK = 1 << 20


def _le(dtype):
    return np.dtype(dtype).newbyteorder("<")


def _level_layout(C, M):
    return [
        ("split_dims", _le(np.int32), (C, TREE_DEPTH)),
        ("thresholds", _le(np.float32), (C, NLEAVES - 1)),
        ("luts", np.dtype(np.uint8), (C, NLEAVES, M)),
        ("scale", _le(np.float64), (M,)),
        ("offset", _le(np.float64), (M,)),
        ("split_low", _le(np.float32), (C, TREE_DEPTH)),
        ("split_high", _le(np.float32), (C, TREE_DEPTH)),
    ]


def _point_layout(kind, size, D, M):
    """``[(name, dtype, shape)]`` of one point's arrays in the payload."""
    if kind == "lut":
        return _level_layout(size, M)
    return [("left", _le(np.float64), (D, size)), ("right", _le(np.float64), (size, M))]


def _stored(level, name):
    """The array saved for ``name``; levels without calibrated ranges save -inf/+inf."""
    value = getattr(level, name)
    if value is None:
        fill = -np.inf if name == "split_low" else np.inf
        value = np.full((level.ncodebooks, TREE_DEPTH), fill, dtype=np.float32)
    return value


def save(path, weights, levels, meta, costs=None, fitted=None, left=None):
    """Write weights, fitted points, their cost curves and metadata to one file.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
        Destination. A path is written atomically (temporary file, then rename).
    weights : ndarray, shape (D, M)
        Real numeric weights (float16/32/64 or integers).
    levels : sequence of Level or LowRank
        Fitted operating points, each with ``M`` outputs (and split columns in
        ``[0, D)``, factors of ``D`` rows).
    meta : dict
        Small JSON-serialisable metadata (at most 1 MiB of JSON with the costs).
    costs : CostTable, optional
        Measured cost curves of the exact product and the points.
    fitted : bool, optional
        Whether the matrix was fitted (default: whether there are points).
    left : tuple, optional
        ``(levels, costs, fitted)`` of the points of ``W @ x``, fitted for the
        transposed weights ``weights.T``.

    Examples
    --------
    >>> import io, numpy as np
    >>> from approxmat._level import Level
    >>> lv = Level(np.zeros((1, 4), np.int32), np.zeros((1, 15), np.float32),
    ...            np.zeros((1, 16, 2), np.uint8), np.ones(2), np.zeros(2), error=0.5)
    >>> buf = io.BytesIO()
    >>> save(buf, np.eye(3, 2), [lv], {"approxmat": "0.1"})
    >>> w, levels, meta = load(io.BytesIO(buf.getvalue()))
    >>> w.shape, levels[0].error, meta
    ((3, 2), 0.5, {'approxmat': '0.1'})
    """
    data = _serialise(weights, levels, meta, costs, fitted, left)
    if isinstance(path, (str, bytes, os.PathLike)):
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".approxmat-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    else:
        path.write(data)


def _serialise(weights, levels, meta, costs=None, fitted=None, left=None):
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    try:
        meta_json = json.dumps(meta, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"meta must be JSON-serialisable: {exc}") from None
    w = np.asarray(weights)
    if w.ndim != 2 or _le(w.dtype).str not in _WEIGHT_DTYPES:
        raise ValueError(
            f"weights must be a 2-D real numeric array, got {w.dtype} of shape {w.shape}"
        )
    D, M = w.shape
    parts = [np.ascontiguousarray(w, dtype=_le(w.dtype)).tobytes()]
    head = {
        "meta": json.loads(meta_json),
        "weights": {"dtype": _le(w.dtype).str, "shape": [D, M]},
        "left": None,
    }
    head.update(_serialise_points(parts, levels, costs, fitted, D, M))
    if left is not None:
        head["left"] = _serialise_points(parts, *left, M, D)
    header = json.dumps(head, allow_nan=False, sort_keys=True).encode("utf-8")
    if len(header) > MAX_HEADER_BYTES:
        raise ValueError(
            f"metadata too large: the header is {len(header)} bytes, at most "
            f"{MAX_HEADER_BYTES} are allowed"
        )
    payload = b"".join(parts)
    body = _PRELUDE.pack(MAGIC, FORMAT_VERSION, len(header), len(payload)) + header + payload
    return body + hashlib.sha256(body).digest()


def _serialise_points(parts, levels, costs, fitted, D, M):
    """Append the arrays of one side's points (for ``(D, M)`` weights) to ``parts``;
    the header entries ``{"points", "fitted", "costs"}``."""
    levels = list(levels)
    if len(levels) > MAX_LEVELS:
        raise ValueError(f"at most {MAX_LEVELS} levels can be saved, got {len(levels)}")
    for lv in levels:
        if not isinstance(lv, (Level, LowRank)):
            raise TypeError(
                f"levels must contain Level or LowRank objects, got {type(lv).__name__}"
            )
        if lv.noutputs != M:
            raise ValueError(f"a level has {lv.noutputs} outputs but weights have M={M}")
        if lv.kind == "lut":
            if lv.split_dims.size and (lv.split_dims.min() < 0 or lv.split_dims.max() >= D):
                raise ValueError(f"a level has split columns outside [0, {D})")
        elif lv.left.shape[0] != D:
            raise ValueError(f"low-rank factors have {lv.left.shape[0]} rows, weights D={D}")
        for name, dtype, shape in _point_layout(lv.kind, lv.size, D, M):
            parts.append(np.ascontiguousarray(_stored(lv, name), dtype=dtype).tobytes())
    errors = np.array([lv.error for lv in levels], dtype=_le(np.float64))
    parts.append(errors.tobytes())
    if costs is not None and any(
        len(c.seconds) != len(levels) + 1 for c in costs.curves.values()
    ):
        raise ValueError("the cost curves do not match the points")
    return {
        "points": [{"kind": lv.kind, "size": int(lv.size)} for lv in levels],
        "fitted": bool(levels) if fitted is None else bool(fitted),
        "costs": None if costs is None else costs.to_json(),
    }


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def _bad(msg):
    return ValueError(f"not a valid approxmat file: {msg}")


def _read_exact(f, n, what, remaining=None):
    """Read exactly n bytes, never allocating more than what the file holds."""
    if remaining is not None and n > remaining:
        raise _bad(
            f"truncated: the {what} needs {n} bytes but only {remaining} remain"
        )
    chunks = []
    got = 0
    while got < n:
        block = f.read(min(_READ_CHUNK, n - got))
        if not block:
            raise _bad(f"truncated: the {what} needs {n} bytes, only {got} were read")
        chunks.append(block)
        got += len(block)
    return b"".join(chunks)


def _remaining(f):
    try:
        if not f.seekable():
            return None
        here = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(here)
        return end - here
    except (AttributeError, OSError, ValueError):
        return None


def load(path, with_costs=False):
    """Read a file written by :func:`save`.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
    with_costs : bool
        Also return the cost table and the fitted flag.

    Returns
    -------
    weights : ndarray, shape (D, M)
    levels : list of Level or LowRank
    meta : dict
    costs : CostTable or None
        Only with ``with_costs``.
    fitted : bool
        Only with ``with_costs``.
    left : tuple or None
        Only with ``with_costs``: ``(levels, costs, fitted)`` of the points of
        ``W @ x`` (fitted for ``weights.T``), None when there are none.

    Raises
    ------
    ValueError
        If the file is not a valid approxmat file: wrong magic, newer format
        version, truncated, checksum mismatch, malformed header, unsupported
        dtype or inconsistent shapes. Nothing in the file is ever executed.
    """
    if isinstance(path, (str, bytes, os.PathLike)):
        with open(path, "rb") as f:
            result = _load(f)
    else:
        result = _load(path)
    return result if with_costs else result[:3]


def _load(f):
    remaining = _remaining(f)
    prelude = _read_exact(f, _PRELUDE.size, "file prelude", remaining)
    magic, version, hlen, plen = _PRELUDE.unpack(prelude)
    if magic != MAGIC:
        raise _bad("wrong magic bytes (is this an approxmat file?)")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"this file was written by a newer approxmat format version {version}; "
            f"this build reads up to version {FORMAT_VERSION}; upgrade approxmat "
            "to read it"
        )
    if version < 1:
        raise _bad(f"unsupported format version {version}")
    if hlen > MAX_HEADER_BYTES:
        raise _bad(f"header of {hlen} bytes exceeds the limit of {MAX_HEADER_BYTES}")
    if remaining is not None:
        remaining -= _PRELUDE.size
        if remaining != hlen + plen + _DIGEST:
            raise _bad(
                f"the file holds {remaining} bytes after the prelude but declares "
                f"{hlen} + {plen} + {_DIGEST} (truncated or trailing data)"
            )
    header = _read_exact(f, hlen, "header", remaining)
    payload = _read_exact(f, plen, "payload", None if remaining is None else remaining - hlen)
    digest = _read_exact(f, _DIGEST, "checksum")
    if remaining is None and f.read(1):
        raise _bad("trailing data after the checksum")
    h = hashlib.sha256(prelude)
    h.update(header)
    h.update(payload)
    if h.digest() != digest:
        raise _bad("checksum mismatch (the file is corrupt or was modified)")
    return _parse(header, payload, version)


def _parse(header, payload, version=FORMAT_VERSION):
    try:
        head = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad(f"malformed header ({type(exc).__name__})") from None
    keys = {"meta", "weights", "levels"} if version == 1 else {
        "meta", "weights", "points", "fitted", "costs"}
    if version >= 3:
        keys = keys | {"left"}
    if not isinstance(head, dict) or set(head) != keys:
        found = sorted(head) if isinstance(head, dict) else type(head).__name__
        raise _bad(f"header must have exactly the keys {', '.join(sorted(keys))}; "
                   f"got {found}")
    meta, wspec = head["meta"], head["weights"]
    if not isinstance(meta, dict):
        raise _bad("meta is not an object")
    if not isinstance(wspec, dict) or set(wspec) != {"dtype", "shape"}:
        raise _bad("weights spec must have exactly the keys dtype and shape")
    if wspec["dtype"] not in _WEIGHT_DTYPES:
        raise _bad(f"unsupported weights dtype {wspec['dtype']!r}")
    shape = wspec["shape"]
    if not (
        isinstance(shape, list)
        and len(shape) == 2
        and all(type(s) is int and 1 <= s <= max(1, len(payload)) for s in shape)
    ):
        raise _bad(f"invalid weights shape {shape!r}")
    D, M = shape
    if version == 1:
        specs = head["levels"]
        if not isinstance(specs, list):
            raise _bad("levels must be a list of codebook counts")
        sections = [([{"kind": "lut", "size": C} for C in specs], bool(specs), None, D, M)]
    else:
        sections = [_section(head, D, M, version)]
        left = head.get("left")
        if left is not None:
            if not isinstance(left, dict) or set(left) != {"points", "fitted", "costs"}:
                raise _bad("left must be null or have exactly the keys costs, fitted "
                           "and points")
            sections.append(_section(left, M, D, version))

    # Sizes, computed with Python ints (no overflow), before touching the payload.
    wdtype = np.dtype(wspec["dtype"])
    expected = D * M * wdtype.itemsize
    for specs, _fitted, _costs, d, m in sections:
        for sp in specs:
            layout = _point_layout(sp["kind"], sp["size"], d, m)
            expected += sum(math.prod(s) * dt.itemsize for _, dt, s in layout)
        expected += 8 * len(specs)
    if expected != len(payload):
        raise _bad(
            f"payload is {len(payload)} bytes but the header describes {expected}"
        )

    pos = 0

    def take(dtype, shape):
        nonlocal pos
        count = math.prod(shape)
        arr = np.frombuffer(payload, dtype=dtype, count=count, offset=pos)
        pos += count * dtype.itemsize
        return arr.reshape(shape).astype(dtype.newbyteorder("="), copy=True)

    weights = take(wdtype, (D, M))
    if weights.dtype.kind == "f" and not np.isfinite(weights).all():
        raise _bad("weights contain NaN or inf")
    sides = []
    for specs, fitted, costs, d, m in sections:
        layouts = [_point_layout(sp["kind"], sp["size"], d, m) for sp in specs]
        arrays = [{name: take(dt, s) for name, dt, s in layout} for layout in layouts]
        errors = take(_le(np.float64), (len(specs),))
        levels = [_point(spec, arrs, err, d) for spec, arrs, err in zip(specs, arrays, errors)]
        sides.append((levels, costs, fitted))
    levels, costs, fitted = sides[0]
    return weights, levels, meta, costs, fitted, sides[1] if len(sides) > 1 else None


def _section(head, D, M, version):
    """``(specs, fitted, costs, D, M)`` of one side's points in a version >= 2 header."""
    specs, fitted = head["points"], head["fitted"]
    if type(fitted) is not bool:
        raise _bad("fitted must be true or false")
    if not isinstance(specs, list) or len(specs) > MAX_LEVELS:
        raise _bad(f"points must be a list of at most {MAX_LEVELS} entries")
    for spec in specs:
        if not isinstance(spec, dict) or set(spec) != {"kind", "size"}:
            raise _bad("each point must have exactly the keys kind and size")
        kind, size = spec["kind"], spec["size"]
        if kind == "lut":
            if type(size) is not int or not 1 <= size <= MAX_CODEBOOKS or size > D:
                raise _bad(f"invalid number of codebooks {size!r} (D={D})")
        elif kind == "lowrank":
            if type(size) is not int or not 1 <= size <= min(D, M):
                raise _bad(f"invalid rank {size!r} (D={D}, M={M})")
        else:
            raise _bad(f"unknown point kind {kind!r}")
    costs = None
    if head["costs"] is not None:
        try:
            costs = CostTable.from_json(head["costs"], len(specs) + 1)
        except (ValueError, TypeError) as exc:
            raise _bad(f"invalid cost curves: {exc}") from None
    return specs, fitted, costs, D, M


def _point(spec, arrs, err, D):
    """The validated :class:`Level` or :class:`LowRank` of one point's arrays."""
    what = ("the level with C=" if spec["kind"] == "lut" else "the point of rank ") + str(
        spec["size"])
    if err < 0:  # NaN is allowed: an error not measured
        raise _bad(f"negative error in {what}")
    if spec["kind"] == "lowrank":
        if not (np.isfinite(arrs["left"]).all() and np.isfinite(arrs["right"]).all()):
            raise _bad(f"non-finite factors in {what}")
        return LowRank(arrs["left"], arrs["right"], error=float(err))
    sd = arrs["split_dims"]
    if sd.size and (sd.min() < 0 or sd.max() >= D):
        raise _bad(f"split columns outside [0, {D}) in {what}")
    if np.isnan(arrs["thresholds"]).any():
        raise _bad(f"NaN thresholds in {what}")
    if np.isnan(arrs["split_low"]).any() or np.isnan(arrs["split_high"]).any():
        raise _bad(f"NaN calibrated ranges in {what}")
    if not (np.isfinite(arrs["scale"]).all() and np.isfinite(arrs["offset"]).all()):
        raise _bad(f"non-finite scale or offset in {what}")
    try:
        return Level(**arrs, error=float(err))
    except ValueError as exc:
        raise _bad(str(exc)) from None
