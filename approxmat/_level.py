"""The fitted parameters of one operating point, shared by learner, oracle and kernels.

This module is the contract between the learner (which produces a :class:`Level`),
the NumPy reference in :mod:`approxmat._reference` (which defines what the call
computes, bit for bit) and the compiled kernels (which must reproduce it).

Call-time semantics for rows ``x`` of width ``D``, with ``C = ncodebooks``:

1. **Encode.** For each codebook ``c`` start at ``node = 0`` and, for
   ``level = 0, 1, 2, 3``, set ``node = 2 * node + (x[split_dims[c, level]] >
   thresholds[c, 2**level - 1 + node])``. The comparison is the exact comparison of
   two real numbers (``x`` as given; thresholds are float32). ``x`` is float32 or
   float64, or narrower: float16, bfloat16, uint8, int8, uint16 or int16, read as it
   is. Every value of those types is a float32 value, so the kernels widen it exactly
   and compare in float32: for an integer ``x`` that is ``x >= floor(t) + 1``, and a
   threshold beyond the type's range sends every row the same way. NaN compares
   false. The code of row ``n`` in codebook ``c`` is the final ``node`` in ``0..15``.
2. **Sum.** ``acc[n, m] = sum_c luts[c, code[n, c], m]``, exactly, as an integer.
   ``C <= MAX_CODEBOOKS`` so that the sum fits in 16 unsigned bits.
3. **Dequantise.** With ``T`` the output dtype (float32 or float64):
   ``y[n, m] = T(acc[n, m]) * T(scale[m]) + T(offset[m])``, a multiplication and
   an addition each rounded to ``T`` (no fused multiply-add). A float16 output is
   that float32 value rounded once to float16 (to nearest, ties to even).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Level", "MAX_CODEBOOKS", "NLEAVES", "TREE_DEPTH"]

#: Depth of each codebook's hash tree.
TREE_DEPTH = 4
#: Number of leaves (prototypes) per codebook.
NLEAVES = 1 << TREE_DEPTH
#: Largest number of codebooks: ``MAX_CODEBOOKS * 255`` fits in an unsigned 16-bit sum.
MAX_CODEBOOKS = 256


@dataclass(frozen=True, eq=False)
class Level:
    """One fitted operating point of an :class:`~approxmat.ApproxMatrix`.

    Parameters
    ----------
    split_dims : ndarray of int32, shape (C, 4)
        Column of ``x`` tested at each tree level of each codebook.
    thresholds : ndarray of float32, shape (C, 15)
        Per-node thresholds in heap order (level ``l``, node ``j`` at ``2**l - 1 + j``).
    luts : ndarray of uint8, shape (C, 16, M)
        Quantised lookup tables.
    scale, offset : ndarray of float64, shape (M,)
        Dequantisation: ``y = acc * scale + offset``.
    error : float
        Relative Frobenius error measured on held-out calibration rows.
    split_low, split_high : ndarray of float32, shape (C, 4), optional
        Range of each split column over the calibration rows (rounded outwards
        to float32). A row is *out of range* when any of its split columns is
        below ``split_low`` or above ``split_high``; it feeds drift warnings.
    """

    split_dims: np.ndarray
    thresholds: np.ndarray
    luts: np.ndarray
    scale: np.ndarray
    offset: np.ndarray
    error: float = float("nan")
    split_low: np.ndarray | None = None
    split_high: np.ndarray | None = None
    #: Kernel-specific packed copies of the parameters, filled lazily by the kernels.
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    #: The kind of operating point (see :mod:`approxmat._points`).
    kind = "lut"

    def __post_init__(self):
        C = self.split_dims.shape[0] if self.split_dims.ndim == 2 else -1
        M = self.luts.shape[2] if self.luts.ndim == 3 else -1
        checks = [
            (self.split_dims, np.int32, (C, TREE_DEPTH)),
            (self.thresholds, np.float32, (C, NLEAVES - 1)),
            (self.luts, np.uint8, (C, NLEAVES, M)),
            (self.scale, np.float64, (M,)),
            (self.offset, np.float64, (M,)),
        ]
        if (self.split_low is None) != (self.split_high is None):
            raise ValueError("split_low and split_high must be given together")
        if self.split_low is not None:
            checks += [
                (self.split_low, np.float32, (C, TREE_DEPTH)),
                (self.split_high, np.float32, (C, TREE_DEPTH)),
            ]
        for arr, dtype, shape in checks:
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.shape != shape:
                raise ValueError(
                    f"inconsistent Level parameters: expected {np.dtype(dtype)} array of "
                    f"shape {shape}, got {getattr(arr, 'dtype', type(arr))} "
                    f"{getattr(arr, 'shape', '')}"
                )
        if not 1 <= C <= MAX_CODEBOOKS:
            raise ValueError(f"ncodebooks must be in [1, {MAX_CODEBOOKS}], got {C}")
        for arr in (self.split_dims, self.thresholds, self.luts, self.scale, self.offset,
                    self.split_low, self.split_high):
            if arr is not None:
                arr.flags.writeable = False

    def __reduce__(self):
        # The cache holds kernel handles that are rebuilt on demand: not pickled.
        return (
            type(self),
            (self.split_dims, self.thresholds, self.luts, self.scale, self.offset, self.error,
             self.split_low, self.split_high),
        )

    @property
    def ncodebooks(self) -> int:
        """Number of codebooks ``C``."""
        return self.split_dims.shape[0]

    @property
    def noutputs(self) -> int:
        """Number of output columns ``M``."""
        return self.luts.shape[2]

    @property
    def table_bytes(self) -> int:
        """Bytes of lookup tables read at call time."""
        return self.luts.nbytes

    #: The size of the point: its number of codebooks.
    size = ncodebooks
    #: Bytes the call reads besides ``x``: the tables.
    nbytes = table_bytes
