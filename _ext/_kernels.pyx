# cython: language_level=3
"""Thin bindings to approxmat's C kernels (``_ext/src``).

The Python side decides (``approxmat._call``, ``approxmat._backend``); this module
only computes. Thread counts are always passed in explicitly.
"""

import os

import numpy as np

cimport numpy as cnp
from libc.stdint cimport int32_t, uint8_t
from libc.string cimport memcpy

cnp.import_array()

cdef extern from "am_kernels.h":
    ctypedef struct am_level_view:
        int C
        int M
        const int32_t *split_dims
        const float *thresholds
        const uint8_t *luts
        const double *scale
        const double *offset
        const uint8_t *packed
        const float *split_low
        const float *split_high
    cdef enum am_narrow_type:
        AM_WIDE
        AM_U8
        AM_I8
        AM_U16
        AM_I16
        AM_F16
        AM_BF16
    ctypedef struct am_matrix:
        char *data
        Py_ssize_t rows
        Py_ssize_t cols
        Py_ssize_t row_stride
        Py_ssize_t col_stride
        int is_f64
        int narrow
    ctypedef struct am_kernels:
        const char *name
        size_t (*packed_bytes)(int C, int M) noexcept nogil
        void (*pack)(const am_level_view *lv, uint8_t *dst) noexcept nogil
        int (*encode)(const am_level_view *lv, const am_matrix *x, uint8_t *codes,
                      int nthreads) noexcept nogil
        int (*product)(const am_level_view *lv, const am_matrix *x, am_matrix *out,
                       uint8_t *flags, int nthreads) noexcept nogil
    int am_supported_variants(const char **names, int capacity)
    const am_kernels *am_variant(const char *name)
    const am_kernels *am_default_variant(const char **error)
    int am_omp_enabled()
    int am_omp_max_threads()
    int am_parallel_probe(int nthreads) nogil


cdef const am_kernels *_selected = NULL


def _init_variant():
    global _selected
    cdef const char *error = NULL
    _selected = am_default_variant(&error)
    if _selected == NULL:
        forced = os.environ.get("APPROXMAT_FORCE_ISA", "")
        raise ImportError(
            f"APPROXMAT_FORCE_ISA={forced!r} cannot be used: this build and CPU support "
            f"{supported_variants()}. Unset it or choose one of those."
        )


def supported_variants():
    """Kernel variants this build has and this CPU can run, most portable first."""
    cdef const char *names[8]
    cdef int n = am_supported_variants(names, 8)
    return [names[i].decode() for i in range(n)]


def selected_variant():
    """Name of the variant used by default ("portable", "avx2" or "avx512")."""
    return _selected.name.decode()


cdef const am_kernels *_table(str name) except NULL:
    if name is None:
        return _selected
    cdef bytes encoded = name.encode()
    cdef const am_kernels *table = am_variant(encoded)
    if table == NULL:
        raise ValueError(
            f"kernel variant {name!r} is not available; this build and CPU support "
            f"{supported_variants()}"
        )
    return table


cdef object _F32 = np.dtype(np.float32)
cdef object _F64 = np.dtype(np.float64)
cdef object _I32 = np.dtype(np.int32)
cdef object _U8 = np.dtype(np.uint8)


cdef int _check(object arr, str what, object dtype, tuple shape) except -1:
    if not cnp.PyArray_Check(arr):
        raise TypeError(f"{what} must be a numpy array, got {type(arr).__name__}")
    if arr.dtype != dtype or arr.shape != shape or not arr.flags.c_contiguous:
        raise ValueError(
            f"{what} must be a C-contiguous {dtype} array of shape {shape}, got "
            f"{arr.dtype} {arr.shape} (c_contiguous={arr.flags.c_contiguous})"
        )
    return 0


cdef int _level_view(am_level_view *lv, object split_dims, object thresholds, object luts,
                     object scale, object offset) except -1:
    if not isinstance(luts, np.ndarray) or (<cnp.ndarray>luts).ndim != 3:
        raise ValueError("luts must be a 3-D uint8 array of shape (C, 16, M)")
    cdef Py_ssize_t C = luts.shape[0], M = luts.shape[2]
    if not 1 <= C <= 256 or M < 1 or luts.shape[1] != 16:
        raise ValueError(f"luts must have shape (C, 16, M) with 1 <= C <= 256, M >= 1; "
                         f"got {luts.shape}")
    _check(split_dims, "split_dims", _I32, (C, 4))
    _check(thresholds, "thresholds", _F32, (C, 15))
    _check(luts, "luts", _U8, (C, 16, M))
    _check(scale, "scale", _F64, (M,))
    _check(offset, "offset", _F64, (M,))
    lv.C = <int>C
    lv.M = <int>M
    lv.split_dims = <const int32_t *>cnp.PyArray_DATA(split_dims)
    lv.thresholds = <const float *>cnp.PyArray_DATA(thresholds)
    lv.luts = <const uint8_t *>cnp.PyArray_DATA(luts)
    lv.scale = <const double *>cnp.PyArray_DATA(scale)
    lv.offset = <const double *>cnp.PyArray_DATA(offset)
    lv.packed = NULL
    lv.split_low = NULL
    lv.split_high = NULL
    return 0


cdef int _use_packed(am_level_view *lv, const am_kernels *table, object packed) except -1:
    cdef size_t need = table.packed_bytes(lv.C, lv.M)
    _check(packed, "packed", _U8, (<Py_ssize_t>need,))
    lv.packed = <const uint8_t *>cnp.PyArray_DATA(packed)
    return 0


cdef int _matrix(am_matrix *mat, object arr, str what, bint writeable) except -1:
    # C-API checks only (no attribute lookups): this runs on every call, and calls with
    # one row take a few microseconds in all.
    if not cnp.PyArray_Check(arr):
        raise TypeError(f"{what} must be a numpy array, got {type(arr).__name__}")
    cdef cnp.ndarray a = arr
    if cnp.PyArray_NDIM(a) != 2:
        raise ValueError(f"{what} must be 2-D, got shape {arr.shape}")
    cdef int typenum = cnp.PyArray_TYPE(a)
    mat.is_f64 = 0
    mat.narrow = AM_WIDE
    if not cnp.PyArray_ISNOTSWAPPED(a):
        raise ValueError(f"{what} must be in native byte order, got {a.dtype}")
    if typenum == cnp.NPY_FLOAT32:
        pass
    elif typenum == cnp.NPY_FLOAT64:
        mat.is_f64 = 1
    elif typenum == cnp.NPY_FLOAT16:
        mat.narrow = AM_F16
    elif writeable:
        raise ValueError(f"{what} must be float16, float32 or float64, got {a.dtype}")
    elif typenum == cnp.NPY_UINT8:
        mat.narrow = AM_U8
    elif typenum == cnp.NPY_INT8:
        mat.narrow = AM_I8
    elif typenum == cnp.NPY_UINT16:
        mat.narrow = AM_U16
    elif typenum == cnp.NPY_INT16:
        mat.narrow = AM_I16
    elif typenum >= 256 and a.dtype.itemsize == 2 and a.dtype.name == "bfloat16":  # user dtype
        mat.narrow = AM_BF16  # ml_dtypes' bfloat16
    else:
        raise ValueError(
            f"{what} must be float32, float64, float16, bfloat16, uint8, int8, uint16 or "
            f"int16, got {a.dtype}")
    if writeable and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{what} is read-only")
    mat.data = <char *>cnp.PyArray_DATA(a)
    mat.rows = cnp.PyArray_DIM(a, 0)
    mat.cols = cnp.PyArray_DIM(a, 1)
    mat.row_stride = cnp.PyArray_STRIDE(a, 0)
    mat.col_stride = cnp.PyArray_STRIDE(a, 1)
    return 0


cdef uint8_t *_flags_buffer(object flags, Py_ssize_t rows) except? NULL:
    """The data of a writeable C-contiguous uint8 (rows,) array (C-API fast path; the
    general check gives the error message)."""
    cdef cnp.ndarray a
    if cnp.PyArray_Check(flags):
        a = flags
        if (cnp.PyArray_TYPE(a) == cnp.NPY_UINT8 and cnp.PyArray_NDIM(a) == 1 and
                cnp.PyArray_DIM(a, 0) == rows and cnp.PyArray_IS_C_CONTIGUOUS(a) and
                cnp.PyArray_ISWRITEABLE(a)):
            return <uint8_t *>cnp.PyArray_DATA(a)
    _check(flags, "flags", _U8, (rows,))
    if not flags.flags.writeable:
        raise ValueError("flags is read-only")
    return <uint8_t *>cnp.PyArray_DATA(flags)


def packed_bytes(int C, int M, str variant=None):
    """Bytes of the packed form of a level (C codebooks, M outputs) for a variant."""
    cdef const am_kernels *table = _table(variant)
    if not 1 <= C <= 256 or M < 1:
        raise ValueError("need 1 <= C <= 256 and M >= 1")
    return table.packed_bytes(C, M)


def aligned_bytes(Py_ssize_t nbytes):
    """A new uninitialised uint8 array of ``nbytes`` starting on a 64-byte boundary.

    NumPy aligns large buffers to 16 bytes only, and a 64-byte vector load or store that
    spans two cache lines costs two. The array is a view of a buffer 64 bytes longer.
    """
    if nbytes < 0:
        raise ValueError(f"nbytes must be >= 0, got {nbytes}")
    cdef cnp.ndarray buf = np.empty(nbytes + 64, dtype=np.uint8)
    cdef size_t skip = (64 - <size_t>cnp.PyArray_DATA(buf) % 64) % 64
    return buf[skip : skip + nbytes]


def pack(split_dims, thresholds, luts, scale, offset, str variant=None, split_low=None,
         split_high=None):
    """The level's parameters in the named variant's layout (a 1-D uint8 array).

    Computed once per level and variant; pass it to :class:`PreparedLevel`.
    ``split_low`` / ``split_high`` (float32 (C, 4), both or neither): calibration ranges
    of the split columns, used by :meth:`PreparedLevel.product`'s out-of-range flags.
    """
    cdef const am_kernels *table = _table(variant)
    cdef am_level_view lv
    _level_view(&lv, split_dims, thresholds, luts, scale, offset)
    if (split_low is None) != (split_high is None):
        raise ValueError("split_low and split_high must be given together")
    if split_low is not None:
        _check(split_low, "split_low", _F32, (lv.C, 4))
        _check(split_high, "split_high", _F32, (lv.C, 4))
        lv.split_low = <const float *>cnp.PyArray_DATA(split_low)
        lv.split_high = <const float *>cnp.PyArray_DATA(split_high)
    # Aligned: the AVX-512 sums load whole 64-byte table rows.
    cdef cnp.ndarray packed = aligned_bytes(table.packed_bytes(lv.C, lv.M))
    cdef uint8_t *dst = <uint8_t *>cnp.PyArray_DATA(packed)
    with nogil:
        table.pack(&lv, dst)
    packed.flags.writeable = False
    return packed


cdef Py_ssize_t _run(const am_kernels *table, am_level_view *lv, object x, object out,
                     int nthreads, object flags, Py_ssize_t max_split) except -1:
    """Validate the call's arrays, run the kernel without the GIL, count flagged rows.

    ``max_split``: the largest split column of the level (the rows must be wider).
    """
    cdef am_matrix xm, om
    _validate(lv, &xm, &om, x, out, nthreads, max_split)
    cdef uint8_t *fl = NULL
    if flags is not None:
        fl = _flags_buffer(flags, xm.rows)
    return _run_checked(table, lv, &xm, &om, nthreads, fl)


cdef int _validate(am_level_view *lv, am_matrix *xm, am_matrix *om, object x, object out,
                   int nthreads, Py_ssize_t max_split) except -1:
    """Fill the matrix views of x and out, checking them against the level."""
    _matrix(xm, x, "x", False)
    _matrix(om, out, "out", True)
    if max_split >= xm.cols:
        raise ValueError(
            f"split_dims must lie in [0, {xm.cols}) for rows of width {xm.cols}; "
            f"found {max_split}"
        )
    if om.narrow == AM_F16 and xm.is_f64:
        raise ValueError("a float16 out needs x of a type narrower than float64")
    if om.rows != xm.rows or om.cols != lv.M:
        raise ValueError(
            f"out must have shape ({xm.rows}, {lv.M}), got ({om.rows}, {om.cols})"
        )
    if nthreads < 1:
        raise ValueError(f"nthreads must be >= 1, got {nthreads}")
    return 0


cdef Py_ssize_t _run_checked(const am_kernels *table, am_level_view *lv, am_matrix *xm,
                             am_matrix *om, int nthreads, uint8_t *fl) except -1:
    cdef int status = 0
    cdef Py_ssize_t i, flagged = 0
    if xm.rows > 0:
        with nogil:
            status = table.product(lv, xm, om, fl, nthreads)
            if status == 0 and fl != NULL:
                for i in range(xm.rows):
                    flagged += fl[i] != 0
    if status != 0:
        raise MemoryError("approxmat kernel could not allocate its scratch memory")
    return flagged


cdef class PreparedLevel:
    """A level's kernel arguments, validated once, for repeated calls of one variant.

    ``PreparedLevel(split_dims, thresholds, luts, scale, offset, packed, variant)``
    checks and keeps the arrays (which must stay unchanged: Level freezes them);
    :meth:`product` (and :meth:`checked_product`, :meth:`encode`) then only validate
    the call's own arrays. The one way into the kernels.
    """
    cdef am_level_view lv
    cdef const am_kernels *table
    cdef object arrays
    cdef Py_ssize_t max_split

    def __init__(self, split_dims, thresholds, luts, scale, offset, packed, str variant=None):
        self.table = _table(variant)
        _level_view(&self.lv, split_dims, thresholds, luts, scale, offset)
        _use_packed(&self.lv, self.table, packed)
        self.arrays = (split_dims, thresholds, luts, scale, offset, packed)
        cdef Py_ssize_t i
        self.max_split = 0
        for i in range(4 * self.lv.C):
            if self.lv.split_dims[i] < 0:
                raise ValueError(f"split_dims must be >= 0, found {self.lv.split_dims[i]}")
            if self.lv.split_dims[i] > self.max_split:
                self.max_split = self.lv.split_dims[i]

    def encode(self, x, int nthreads=1):
        """Codes (N, C) uint8 of the rows of ``x`` (float32, float64, float16, bfloat16,
        uint8, int8, uint16 or int16; any strides).

        The encoder alone, for tests: the codes the product sums tables for.
        """
        cdef am_matrix xm
        _matrix(&xm, x, "x", False)
        if self.max_split >= xm.cols:
            raise ValueError(
                f"split_dims must lie in [0, {xm.cols}) for rows of width {xm.cols}; "
                f"found {self.max_split}"
            )
        if nthreads < 1:
            raise ValueError(f"nthreads must be >= 1, got {nthreads}")
        cdef cnp.ndarray codes = np.empty((xm.rows, self.lv.C), dtype=np.uint8)
        cdef uint8_t *dst = <uint8_t *>cnp.PyArray_DATA(codes)
        cdef int status = 0
        if xm.rows > 0:
            with nogil:
                status = self.table.encode(&self.lv, &xm, dst, nthreads)
        if status != 0:
            raise MemoryError("approxmat kernel could not allocate its scratch memory")
        return codes

    def product(self, x, out, int nthreads=1, flags=None):
        """Write the approximate product of rows ``x`` into ``out`` (N, M).

        Returns the number of rows with a nonzero flag (0 when ``flags`` is None).

        ``x``: float32, float64 or a narrow type (float16, bfloat16, uint8, int8,
        uint16, int16: read as it is, see ``am_narrow.h``), (N, D), any strides. ``out``: float32,
        float64 or float16 (x narrower than float64), (N, M), any strides, writeable,
        not overlapping ``x``. The GIL is released while computing.

        ``flags``: None (pure product), or a writeable C-contiguous uint8 array of shape
        (N,) that receives the row flags: bit 0 when the row of ``x`` has a NaN or +-inf
        in any column (its output row is then all NaN), bit 1 when the row is finite and
        a split column lies outside the calibration range packed with the level.
        """
        return _run(self.table, &self.lv, x, out, nthreads, flags, self.max_split)

    def checked_product(self, x, out, int nthreads):
        """:meth:`product` with row flags, for the common call that has none.

        Returns None when no row is flagged, else the (N,) uint8 row flags. Calls of
        up to 1024 rows keep their flags on the stack, so the usual small call
        allocates nothing besides ``out``.
        """
        cdef uint8_t small[1024]
        cdef am_matrix xm, om
        cdef cnp.ndarray flags = None
        cdef uint8_t *fl = small
        _validate(&self.lv, &xm, &om, x, out, nthreads, self.max_split)
        if xm.rows > 1024:
            flags = np.empty(xm.rows, dtype=np.uint8)
            fl = <uint8_t *>cnp.PyArray_DATA(flags)
        if not _run_checked(self.table, &self.lv, &xm, &om, nthreads, fl):
            return None
        if flags is None:
            flags = np.empty(xm.rows, dtype=np.uint8)
            memcpy(cnp.PyArray_DATA(flags), small, xm.rows)
        return flags


def openmp_enabled():
    """Whether the kernels were compiled with OpenMP."""
    return bool(am_omp_enabled())


def max_threads():
    """``omp_get_max_threads()`` in the calling thread (1 without OpenMP).

    threadpoolctl's limits act on this value, so the dispatcher caps its thread
    count with it.
    """
    return am_omp_max_threads()


def parallel_probe(int nthreads):
    """Run an OpenMP parallel region with ``nthreads`` and return how many took part."""
    cdef int seen
    with nogil:
        seen = am_parallel_probe(nthreads)
    return seen


_init_variant()
