# cython: language_level=3
"""Thin bindings to approxmat's C kernels (``_ext/src``).

The Python side decides (``approxmat._dispatch``); this module only computes.
Thread counts are always passed in explicitly.
"""

import os

cdef extern from "am_kernels.h":
    ctypedef struct am_kernels:
        const char *name
        int vector_bytes
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


def variant_vector_bytes(str name):
    """Vector width in bytes of the named variant's inner loops."""
    cdef const am_kernels *table = _table(name)
    return table.vector_bytes


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
