/* Row flags with AVX-512 (see am_flags.h for the generic ones): row-major input is
 * scanned for NaN / inf row by row while the encoder has the row in L1
 * (row_nonfinite512, outside16, store_flags16); F-order input gets a separate streaming
 * pass over X in memory order (flags512_block). Included by kernels_avx512.c only. */
#ifndef AM_FLAGS_AVX512_H
#define AM_FLAGS_AVX512_H

#include <immintrin.h>

#include "am_flags.h"

/* ---- Row flags, AVX-512. fma(v, 0, a) is NaN when v is NaN or +-inf and a otherwise
 * (a = 0 stays 0): one instruction per vector accumulates "some value is not finite". */

/* 1 when the contiguous values row[0 .. D) contain a NaN or an infinity. */
AM_INLINE int row_nonfinite512(const char *row, ptrdiff_t D, int is_f64)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const __m512 z = a0;
    /* Loads aligned to 64 bytes (NumPy rows often are not): a masked head first, so that
     * no load straddles two cache lines. */
    uintptr_t mis = (uintptr_t)row & 63;
    const float *p = (const float *)row;
    if (is_f64) {
        __m512d b0 = _mm512_setzero_pd(), b1 = b0, b2 = b0, b3 = b0;
        const __m512d zd = b0;
        const double *q = (const double *)row;
        if (mis && (mis & 7) == 0) {
            ptrdiff_t h = (ptrdiff_t)(64 - mis) / 8;
            if (h > D)
                h = D;
            b3 = _mm512_fmadd_pd(_mm512_maskz_loadu_pd((__mmask8)((1u << h) - 1), q), zd, b3);
            q += h;
            D -= h;
        }
        ptrdiff_t d = 0;
        for (; d + 32 <= D; d += 32) {
            b0 = _mm512_fmadd_pd(_mm512_loadu_pd(q + d), zd, b0);
            b1 = _mm512_fmadd_pd(_mm512_loadu_pd(q + d + 8), zd, b1);
            b2 = _mm512_fmadd_pd(_mm512_loadu_pd(q + d + 16), zd, b2);
            b3 = _mm512_fmadd_pd(_mm512_loadu_pd(q + d + 24), zd, b3);
        }
        for (; d + 8 <= D; d += 8)
            b0 = _mm512_fmadd_pd(_mm512_loadu_pd(q + d), zd, b0);
        if (d < D)
            b1 = _mm512_fmadd_pd(_mm512_maskz_loadu_pd((__mmask8)((1u << (D - d)) - 1), q + d),
                                 zd, b1);
        b0 = _mm512_add_pd(_mm512_add_pd(b0, b1), _mm512_add_pd(b2, b3));
        (void)p; (void)z;
        return _mm512_cmp_pd_mask(b0, b0, _CMP_UNORD_Q) != 0;
    }
    if (mis && (mis & 3) == 0) {
        ptrdiff_t h = (ptrdiff_t)(64 - mis) / 4;
        if (h > D)
            h = D;
        a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps((__mmask16)((1u << h) - 1), p), z, a3);
        p += h;
        D -= h;
    }
    ptrdiff_t d = 0;
    for (; d + 64 <= D; d += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(p + d), z, a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(p + d + 16), z, a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(p + d + 32), z, a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(p + d + 48), z, a3);
    }
    for (; d + 16 <= D; d += 16)
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(p + d), z, a0);
    if (d < D)
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps((__mmask16)((1u << (D - d)) - 1), p + d), z, a1);
    a0 = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
    return _mm512_cmp_ps_mask(a0, a0, _CMP_UNORD_Q) != 0;
}

/* Flag bytes of `nv` (<= 16) rows from the masks of not-finite and out-of-range rows. */
AM_INLINE void store_flags16(uint8_t *dst, int nv, __mmask16 nf, __mmask16 oor)
{
    __m128i b = _mm_maskz_mov_epi8((__mmask16)(oor & ~nf), _mm_set1_epi8(2));
    b = _mm_mask_mov_epi8(b, nf, _mm_set1_epi8(1));
    _mm_mask_storeu_epi8(dst, (__mmask16)((1u << nv) - 1), b);
}

/* Out-of-range mask of 16 rows whose distinct split columns were copied into the
 * column-major tmp (column j at tmp + 16 j items; lanes >= nv read as 0 through the mask
 * and are ignored). */
AM_INLINE __mmask16 outside16(const am_level *lv, const char *tmp, int is_f64, __mmask16 vm)
{
    ptrdiff_t jstride = 16 * (is_f64 ? 8 : 4);
    const int32_t *cols = lv->cols;
    int u = cols[0];
    __mmask16 bad = 0;
    if (!is_f64) {
        const float *lo = lv->lo32, *hi = lv->hi32;
        for (int j = 0; j < u; j++) {
            const char *col = tmp + j * jstride;
            __m512 v = _mm512_maskz_loadu_ps(vm, col);
            bad |= _mm512_cmp_ps_mask(v, _mm512_set1_ps(lo[j]), _CMP_LT_OQ) |
                   _mm512_cmp_ps_mask(v, _mm512_set1_ps(hi[j]), _CMP_GT_OQ);
        }
        return bad & vm;
    }
    const double *lo = lv->lo64, *hi = lv->hi64;
    for (int j = 0; j < u; j++) {
        const char *col = tmp + j * jstride;
        __m512d v0 = _mm512_maskz_loadu_pd((__mmask8)vm, col);
        __m512d v1 = _mm512_maskz_loadu_pd((__mmask8)(vm >> 8), col + 64);
        __m512d l = _mm512_set1_pd(lo[j]), h = _mm512_set1_pd(hi[j]);
        __mmask8 b0 = _mm512_cmp_pd_mask(v0, l, _CMP_LT_OQ) | _mm512_cmp_pd_mask(v0, h, _CMP_GT_OQ);
        __mmask8 b1 = _mm512_cmp_pd_mask(v1, l, _CMP_LT_OQ) | _mm512_cmp_pd_mask(v1, h, _CMP_GT_OQ);
        bad |= (__mmask16)(b0 | ((unsigned)b1 << 8));
    }
    return bad & vm;
}

/* Bit r of the result: value r of p[0 .. n) (n <= 16 float32 or 8 float64) is NaN / inf. */
AM_INLINE __mmask16 nonfinite_vec(const char *p, int n, int is_f64)
{
    if (!is_f64) {
        __m512 v = _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);
        v = _mm512_mul_ps(v, _mm512_setzero_ps());
        return _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    }
    __m512d v = _mm512_maskz_loadu_pd((__mmask8)((1u << n) - 1), p);
    v = _mm512_mul_pd(v, _mm512_setzero_pd());
    return _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q);
}

/* Flag bit 2 (outside [lo, hi]) into flags[0 .. n) for the n contiguous values at p:
 * one column run of an F-order block. Returns 1 when the run holds a NaN / inf (the
 * same fmadd test as row_nonfinite512, folded into the same pass over the run). */
AM_INLINE int range_run512(const char *p, ptrdiff_t n, double lo, double hi, int is_f64,
                           uint8_t *flags)
{
    const __m128i two = _mm_set1_epi8(2);
    if (!is_f64) {
        const float *q = (const float *)p;
        const __m512 l = _mm512_set1_ps((float)lo), h = _mm512_set1_ps((float)hi), z = _mm512_setzero_ps();
        __m512 a = z;
        for (ptrdiff_t r = 0; r < n; r += 16) {
            __mmask16 vm = n - r >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - r)) - 1);
            __m512 v = _mm512_maskz_loadu_ps(vm, q + r);
            a = _mm512_fmadd_ps(v, z, a);
            __mmask16 m = _mm512_mask_cmp_ps_mask(vm, v, l, _CMP_LT_OQ) |
                          _mm512_mask_cmp_ps_mask(vm, v, h, _CMP_GT_OQ);
            if (m)
                _mm_mask_storeu_epi8(flags + r, m, _mm_or_si128(_mm_maskz_loadu_epi8(vm, flags + r), two));
        }
        return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q) != 0;
    }
    const double *q = (const double *)p;
    const __m512d l = _mm512_set1_pd(lo), h = _mm512_set1_pd(hi), z = _mm512_setzero_pd();
    __m512d a = z;
    for (ptrdiff_t r = 0; r < n; r += 8) {
        __mmask8 vm = n - r >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (n - r)) - 1);
        __m512d v = _mm512_maskz_loadu_pd(vm, q + r);
        a = _mm512_fmadd_pd(v, z, a);
        __mmask8 m = _mm512_mask_cmp_pd_mask(vm, v, l, _CMP_LT_OQ) |
                     _mm512_mask_cmp_pd_mask(vm, v, h, _CMP_GT_OQ);
        if (m)
            _mm_mask_storeu_epi8(flags + r, m, _mm_or_si128(_mm_maskz_loadu_epi8(vm, flags + r), two));
    }
    return _mm512_cmp_pd_mask(a, a, _CMP_UNORD_Q) != 0;
}

/* F-order flags pre-pass task: rows [r0, r0 + nrows) adjacent in memory. X is read
 * once, in memory order (each column's run of rows is contiguous): split columns with a
 * calibration range are checked against it and for NaN / inf in the same pass
 * (range_run512), the other columns only for NaN / inf (row_nonfinite512). Only a run
 * that does hold a NaN / inf is read again to find its rows (rare). Bits 1 (not finite)
 * and 2 (out of range) are collected per row, then turned into the flag byte. */
static int flags512_block(const am_call *k, ptrdiff_t r0, ptrdiff_t nrows, void *scratch)
{
    const am_level *lv = k->lv;
    const am_matrix *x = k->x;
    uint8_t *flags = k->flags + r0;
    (void)scratch;
    ptrdiff_t D = x->cols, cs = x->col_stride, item = x->is_f64 ? 8 : 4;
    const char *xb = x->data + r0 * item;
    int ranges = lv->has_ranges;
    const int32_t *list = lv->cols + 1;
    int u = ranges ? lv->u : 0, j = 0;
    int per = x->is_f64 ? 8 : 16;
    memset(flags, 0, (size_t)nrows);
    for (ptrdiff_t d = 0; d < D; d++) {
        const char *col = xb + d * cs;
        int bad;
        if (j < u && list[j] == d) {
            double lo = x->is_f64 ? lv->lo64[j] : lv->lo32[j];
            double hi = x->is_f64 ? lv->hi64[j] : lv->hi32[j];
            bad = range_run512(col, nrows, lo, hi, x->is_f64, flags);
            j++;
        } else {
            bad = row_nonfinite512(col, nrows, x->is_f64);
        }
        if (!bad)
            continue;
        for (ptrdiff_t q = 0; q < nrows; q += per) {
            int n = nrows - q >= per ? per : (int)(nrows - q);
            __mmask16 m = nonfinite_vec(col + q * item, n, x->is_f64);
            __m128i b = _mm_maskz_mov_epi8(m, _mm_set1_epi8(1));
            __m128i old = _mm_maskz_loadu_epi8((__mmask16)((1u << n) - 1), flags + q);
            _mm_mask_storeu_epi8(flags + q, (__mmask16)((1u << n) - 1), _mm_or_si128(old, b));
        }
    }
    for (ptrdiff_t q = 0; q < nrows; q += 16) {
        int nv = nrows - q >= 16 ? 16 : (int)(nrows - q);
        __mmask16 vm = (__mmask16)((1u << nv) - 1);
        __m128i f = _mm_maskz_loadu_epi8(vm, flags + q);
        __mmask16 nf = _mm_mask_test_epi8_mask(vm, f, _mm_set1_epi8(1));
        __mmask16 oor = _mm_mask_test_epi8_mask(vm, f, _mm_set1_epi8(2));
        store_flags16(flags + q, nv, nf, oor);
    }
    return 0;
}

#endif
