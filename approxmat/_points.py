"""Operating points of kinds other than lookup tables: the exact product and low rank.

A fitted :class:`~approxmat.ApproxMatrix` holds a tuple of *operating points*, each
with a ``kind``, a ``size``, a validated ``error`` and the bytes it reads besides ``x``:

=========  ==============================================  ==========================
kind       computes                                        size
=========  ==============================================  ==========================
exact      ``x @ weights`` by NumPy (BLAS); error 0        0
lut        MADDNESS lookup tables (:class:`~approxmat._level.Level`)  codebooks ``C``
lowrank    ``(x @ left) @ right``, two BLAS products       rank ``r``
=========  ==============================================  ==========================

The exact point is implicit: every matrix has it (:data:`EXACT`). Which point a call
uses is decided by :mod:`approxmat._costs` and :mod:`approxmat._call`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["EXACT", "KINDS", "Exact", "LowRank", "describe"]

#: The kinds of operating point, in the order :attr:`ApproxMatrix.levels` lists them.
KINDS = ("exact", "lut", "lowrank")


class Exact:
    """The exact product, ``x @ weights`` by NumPy: error 0, always available."""

    __slots__ = ()
    kind = "exact"
    size = 0
    error = 0.0
    nbytes = 0

    def __repr__(self):
        return "EXACT"

    def __reduce__(self):
        return "EXACT"


#: The one :class:`Exact` point.
EXACT = Exact()


@dataclass(frozen=True, eq=False)
class LowRank:
    """A rank-``r`` operating point: ``x @ weights ~= (x @ left) @ right``.

    Parameters
    ----------
    left : ndarray of float64, shape (D, r)
    right : ndarray of float64, shape (r, M)
    error : float
        Relative Frobenius error measured on held-out calibration rows.

    Examples
    --------
    >>> import numpy as np
    >>> p = LowRank(np.ones((3, 1)), np.ones((1, 2)), error=0.25)
    >>> p.kind, p.size, p.nbytes
    ('lowrank', 1, 20)
    """

    left: np.ndarray
    right: np.ndarray
    error: float = float("nan")
    #: Factors converted to the dtype of a call, made on first use.
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    kind = "lowrank"

    def __post_init__(self):
        left, right = self.left, self.right
        ok = (
            isinstance(left, np.ndarray) and isinstance(right, np.ndarray)
            and left.dtype == np.float64 and right.dtype == np.float64
            and left.ndim == 2 and right.ndim == 2 and left.shape[1] == right.shape[0]
            and left.shape[1] >= 1
        )
        if not ok:
            raise ValueError(
                "inconsistent LowRank factors: expected float64 arrays of shapes (D, r) and "
                f"(r, M) with r >= 1, got {getattr(left, 'dtype', type(left))} "
                f"{getattr(left, 'shape', '')} and {getattr(right, 'dtype', type(right))} "
                f"{getattr(right, 'shape', '')}"
            )
        if not (np.isfinite(left).all() and np.isfinite(right).all()):
            raise ValueError("LowRank factors must be finite")
        left.flags.writeable = False
        right.flags.writeable = False

    def __reduce__(self):
        return (type(self), (self.left, self.right, self.error))

    @property
    def size(self) -> int:
        """The rank ``r``."""
        return self.left.shape[1]

    rank = size

    @property
    def noutputs(self) -> int:
        """Number of output columns ``M``."""
        return self.right.shape[1]

    @property
    def nbytes(self) -> int:
        """Bytes of the two factors a float32 call reads (float64 calls read twice this)."""
        return (self.left.size + self.right.size) * 4

    def factors(self, dtype):
        """``(left, right)`` as C-contiguous arrays of ``dtype``, converted once (64-byte
        aligned)."""
        pair = self.cache.get(dtype)
        if pair is None:
            pair = self.cache[dtype] = (_aligned(self.left, dtype), _aligned(self.right, dtype))
        return pair


def _aligned(a, dtype):
    """A read-only copy of ``a`` as ``dtype`` on a 64-byte boundary (faster BLAS calls)."""
    from ._backend import aligned_empty

    out = aligned_empty(a.shape, dtype)
    out[...] = a
    out.flags.writeable = False
    return out


def describe(point) -> str:
    """A few words naming a point, for reports and messages.

    Examples
    --------
    >>> import numpy as np
    >>> describe(EXACT), describe(LowRank(np.ones((3, 2)), np.ones((2, 2))))
    ('exact product', 'rank-2 factors')
    """
    if point.kind == "exact":
        return "exact product"
    if point.kind == "lowrank":
        return f"rank-{point.size} factors"
    return f"level with {point.size} codebooks"
