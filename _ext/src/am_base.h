/* What every kernel file includes first: the C API, the standard headers, compiler
 * attributes, and a few integer and load helpers. */
#ifndef AM_BASE_H
#define AM_BASE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "am_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__)
#define AM_INLINE static inline __attribute__((always_inline))
#define AM_RESTRICT __restrict__
#define AM_UNUSED __attribute__((unused))
#else
#define AM_INLINE static inline
#define AM_RESTRICT
#define AM_UNUSED
#endif

/* M rounded up to a multiple of `to`. */
AM_INLINE size_t am_mpad(int M, int to) { return ((size_t)M + to - 1) / to * to; }

/* l-bit reversal of j (l <= 4). */
AM_INLINE int am_bitrev(int j, int l)
{
    int r = 0;
    for (int i = 0; i < l; i++)
        r |= ((j >> i) & 1) << (l - 1 - i);
    return r;
}

/* Unaligned-safe loads. */
AM_INLINE float am_ld32(const char *p) { float v; memcpy(&v, p, 4); return v; }
AM_INLINE double am_ld64(const char *p) { double v; memcpy(&v, p, 8); return v; }

#endif
