"""The compiled kernels as the call sees them: variant, threads, prepared levels, outputs.

Everything here is about *how* a chosen level runs, never *whether* it runs (that is
:mod:`approxmat._call`):

* the kernel variant chosen at import (``APPROXMAT_FORCE_ISA`` may lower it),
* how many threads a kernel may use (:func:`kernel_threads`),
* the level's packed tables and validated kernel arguments, made once per level and
  variant and cached on the level (:func:`prepared_level`),
* result buffers the kernels write fastest into (:func:`empty_output`),
* the one kernel entry of the package, :func:`product` (the NumPy reference computes
  dtype pairs the kernels do not take).
"""

from __future__ import annotations

import os

import numpy as np

from . import _kernels, _reference
from ._config import get_config

__all__ = [
    "FLAG_NONFINITE",
    "FLAG_OUT_OF_RANGE",
    "KERNEL_DTYPES",
    "NARROW_DTYPES",
    "aligned_empty",
    "available_cores",
    "empty_output",
    "is_bfloat16",
    "is_real",
    "kernel_input",
    "kernel_entry",
    "kernel_threads",
    "packed_level",
    "prepared_level",
    "product",
]

#: The dtypes the compiled kernels compute in: their float inputs and outputs.
KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: Inputs the kernels also read as they are (each value widened exactly to float32),
#: and, for float16, an output they write (computed in float32, rounded once).
NARROW_DTYPES = tuple(np.dtype(t) for t in (np.float16, np.uint8, np.int8, np.uint16, np.int16))
_INPUTS = KERNEL_DTYPES + NARROW_DTYPES
_OUTPUTS = KERNEL_DTYPES + (np.dtype(np.float16),)


def is_bfloat16(dtype) -> bool:
    """Whether ``dtype`` is ml_dtypes' bfloat16 (recognised by name: approxmat does not
    import ml_dtypes; an array of that dtype means it is loaded).

    Examples
    --------
    >>> is_bfloat16(np.dtype(np.float16))
    False
    """
    return dtype.kind == "V" and dtype.itemsize == 2 and dtype.name == "bfloat16"


def is_real(dtype) -> bool:
    """Whether ``dtype`` holds real numbers a product can take: booleans, integers,
    floats and bfloat16.

    Examples
    --------
    >>> is_real(np.dtype(np.uint8)), is_real(np.dtype(complex))
    (True, False)
    """
    return dtype.kind in "biuf" or is_bfloat16(dtype)


def kernel_input(dtype) -> bool:
    """Whether the lookup-table kernels read rows of ``dtype`` as they are: float32,
    float64, :data:`NARROW_DTYPES` and bfloat16, in native byte order.

    Examples
    --------
    >>> kernel_input(np.dtype(np.uint8)), kernel_input(np.dtype(">f4"))
    (True, False)
    """
    return (dtype in _INPUTS or is_bfloat16(dtype)) and dtype.isnative


#: Row flag bits returned by :func:`product`.
FLAG_NONFINITE = 1
FLAG_OUT_OF_RANGE = 2
#: The kernel variant chosen at import (``APPROXMAT_FORCE_ISA`` may lower it).
DEFAULT_VARIANT = _kernels.selected_variant()


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


#: :func:`available_cores` at import (asking the OS costs a microsecond per call).
_CORES = available_cores()
_max_threads = _kernels.max_threads


def kernel_threads(threads: int | None = None) -> int:
    """Threads a kernel called now from this thread will use.

    ``min(threads or available_cores(), omp_get_max_threads())``: the OpenMP limit
    of the calling thread is what :func:`threadpoolctl.threadpool_limits` lowers,
    so such limits cap approxmat too.

    Parameters
    ----------
    threads : int or None
        The requested count; ``None`` takes it from :func:`approxmat.get_config`.

    Examples
    --------
    >>> from threadpoolctl import threadpool_limits
    >>> with threadpool_limits(limits=1):
    ...     kernel_threads(8)
    1
    """
    if threads is None:
        threads = get_config().threads
    wanted = threads if threads is not None else _CORES  # config validates threads >= 1
    limit = _max_threads()  # >= 1
    return wanted if wanted < limit else limit


#: Outputs of at least this many bytes are allocated 64-byte aligned (see
#: :func:`empty_output`); smaller ones are plain ``np.empty``, which is faster to make.
ALIGNED_OUTPUT_MIN_BYTES = 1 << 16


def empty_output(nrows: int, ncols: int, dtype) -> np.ndarray:
    """An uninitialised C-contiguous ``(nrows, ncols)`` result array for the kernels.

    Large ones start on a 64-byte boundary (:func:`approxmat._kernels.aligned_bytes`).
    The kernels store whole 64-byte vectors; when the output rows are not aligned, each
    of those stores spans two cache lines, which costs up to a quarter of the call when
    the tables are summed one 16-column tile at a time (measured at
    (8192, 768, 3072, 64): 23.9 against 18.9 ms). The array is then a view of a slightly
    larger buffer (its ``base``).

    Examples
    --------
    >>> from approxmat._backend import empty_output
    >>> y = empty_output(1000, 100, np.float32)
    >>> y.shape, y.dtype, y.ctypes.data % 64, y.flags.c_contiguous
    ((1000, 100), dtype('float32'), 0, True)
    """
    dtype = np.dtype(dtype)
    nbytes = nrows * ncols * dtype.itemsize
    if nbytes < ALIGNED_OUTPUT_MIN_BYTES:
        return np.empty((nrows, ncols), dtype)
    return _kernels.aligned_bytes(nbytes).view(dtype).reshape(nrows, ncols)


def aligned_empty(shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array starting on a 64-byte boundary.

    Examples
    --------
    >>> a = aligned_empty((3, 5), np.float64)
    >>> a.shape, a.ctypes.data % 64, a.flags.c_contiguous
    ((3, 5), 0, True)
    """
    dtype = np.dtype(dtype)
    nbytes = max(1, int(np.prod(shape)) * dtype.itemsize)
    return _kernels.aligned_bytes(nbytes)[: int(np.prod(shape)) * dtype.itemsize].view(
        dtype).reshape(shape)


def packed_level(level, variant=None):
    """The level's tables in the layout of a kernel variant, computed once and cached.

    Stored in ``level.cache[("packed", variant)]``. Concurrent first calls may both
    pack; they produce identical arrays, so the race is harmless.
    """
    variant = variant or DEFAULT_VARIANT
    key = ("packed", variant)
    packed = level.cache.get(key)
    if packed is None:
        packed = _kernels.pack(
            level.split_dims, level.thresholds, level.luts, level.scale, level.offset, variant,
            level.split_low, level.split_high,
        )
        level.cache[key] = packed
    return packed


def prepared_level(level, variant=None):
    """A :class:`approxmat._kernels.PreparedLevel` of the level, made once and cached."""
    variant = variant or DEFAULT_VARIANT
    key = ("prepared", variant)
    prepared = level.cache.get(key)
    if prepared is None:
        prepared = _kernels.PreparedLevel(
            level.split_dims, level.thresholds, level.luts, level.scale, level.offset,
            packed_level(level, variant), variant,
        )
        level.cache[key] = prepared
    return prepared


def kernel_entry(level, check_finite=True, variant=None):
    """The kernel entry of a level: ``entry(x2d, out2d, nthreads) -> flags or None``.

    With ``check_finite`` the bound ``checked_product`` of the level's
    :func:`prepared_level`, which also computes the row flags; without, the pure
    product (no NaN/inf or range scan), which returns None. The call-time fast path
    keeps it to skip the lookups of :func:`product`.
    """
    prepared = prepared_level(level, variant)
    if check_finite:
        return prepared.checked_product
    pure = prepared.product

    def unchecked(x2d, out2d, nthreads):
        pure(x2d, out2d, nthreads)

    return unchecked


def product(x2d, level, out2d, threads=None, check_finite=True):
    """Write the approximate product of rows ``x2d`` into ``out2d``; return the row flags.

    Parameters
    ----------
    x2d : ndarray, shape (N, D), any strides
        float32, float64, or a type in :data:`NARROW_DTYPES` or bfloat16 (read as it
        is).
    level : Level
    out2d : ndarray of float32, float64 or float16, shape (N, M), writeable, not
        overlapping ``x2d``; float16 for ``x2d`` narrower than float64
    threads : int or None
        Requested threads (see :func:`kernel_threads`).
    check_finite : bool
        Compute the row flags (and NaN output rows). ``False``: the pure product,
        rows with NaN or inf give unspecified finite values, and None is returned.

    Returns
    -------
    flags : ndarray of uint8, shape (N,), or None
        None when no row is flagged (the common case, checked without a NumPy call)
        or when ``check_finite`` is false.
        Otherwise bit 0 (``FLAG_NONFINITE``): the row of ``x2d`` has a NaN or +-inf in some
        column; its output row is all NaN. Bit 1 (``FLAG_OUT_OF_RANGE``): the row is
        finite and some split column lies outside the level's calibration range
        (never set when the level has no ranges). Equal to
        :func:`approxmat._reference.row_flags` (``nonfinite | out_of_range << 1``).

    Examples
    --------
    >>> from approxmat._testing import random_level
    >>> rng = np.random.default_rng(0)
    >>> level = random_level(8, 3, 2, rng)
    >>> x = rng.standard_normal((4, 8)).astype(np.float32)
    >>> out = np.empty((4, 3), np.float32)
    >>> x[1, 0] = np.nan
    >>> product(x, level, out, threads=1)
    array([0, 1, 0, 0], dtype=uint8)
    >>> bool(np.isnan(out[1]).all())
    True
    """
    nthreads = kernel_threads(threads)
    if kernel_input(x2d.dtype) and out2d.dtype in _OUTPUTS and not (
            out2d.dtype.itemsize == 2 and x2d.dtype.itemsize == 8):
        if check_finite:
            return prepared_level(level).checked_product(x2d, out2d, nthreads)
        prepared_level(level).product(x2d, out2d, nthreads)
        return None
    # No kernel for this dtype combination: the (single-threaded) NumPy reference.
    out2d[...] = _reference.approx_matmul(x2d, level, out2d.dtype)
    if not check_finite:
        return None
    nonfinite, out_of_range = _reference.row_flags(x2d, level)
    out2d[nonfinite] = np.nan
    flags = nonfinite.astype(np.uint8) | (out_of_range.astype(np.uint8) << 1)
    return flags if flags.any() else None
