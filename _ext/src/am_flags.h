/* Row flags (see am_kernels.product): bit 0 when a row of x has a NaN or +-inf, bit 1
 * when it is finite and a split column lies outside the packed calibration range.
 * Generic code, used by the portable and AVX2 variants and by every variant for unusual
 * strides. Written so that gcc vectorises the contiguous cases: a value is NaN or +-inf
 * iff its exponent bits are all ones, i.e. iff (bits & EXP) + lowest exponent bit
 * carries into the sign bit. */
#ifndef AM_FLAGS_H
#define AM_FLAGS_H

#include "am_blocks.h"

#define AM_NF32(b) ((((b) & 0x7F800000u) + 0x00800000u) >> 31)
#define AM_NF64(b) ((((b) & 0x7FF0000000000000ull) + 0x0010000000000000ull) >> 63)

/* 1 when the D values row[0], row[cs], ... contain a NaN or an infinity. */
static int am_row_nonfinite(const char *row, ptrdiff_t D, ptrdiff_t cs, int is_f64)
{
    if (is_f64) {
        uint64_t m = 0;
        if (cs == 8) {
            const uint64_t *p = (const uint64_t *)row;
            for (ptrdiff_t d = 0; d < D; d++)
                m |= AM_NF64(p[d]);
        } else {
            for (ptrdiff_t d = 0; d < D; d++) {
                uint64_t b;
                memcpy(&b, row + d * cs, 8);
                m |= AM_NF64(b);
            }
        }
        return (int)m;
    }
    uint32_t m = 0;
    if (cs == 4) {
        const uint32_t *p = (const uint32_t *)row;
        for (ptrdiff_t d = 0; d < D; d++)
            m |= AM_NF32(p[d]);
    } else {
        for (ptrdiff_t d = 0; d < D; d++) {
            uint32_t b;
            memcpy(&b, row + d * cs, 4);
            m |= AM_NF32(b);
        }
    }
    return (int)m;
}

/* 1 when some split column of the row is outside its calibration range. */
AM_INLINE int am_row_outside(const am_level *lv, const char *row, ptrdiff_t cs, int is_f64)
{
    const int32_t *cols = lv->cols;
    int u = cols[0];
    const int32_t *list = cols + 1;
    int bad = 0;
    if (is_f64) {
        const double *lo = lv->lo64, *hi = lv->hi64;
        for (int j = 0; j < u; j++) {
            double v = am_ld64(row + list[j] * cs);
            bad |= (v < lo[j]) | (v > hi[j]);
        }
    } else {
        const float *lo = lv->lo32, *hi = lv->hi32;
        for (int j = 0; j < u; j++) {
            float v = am_ld32(row + list[j] * cs);
            bad |= (v < lo[j]) | (v > hi[j]);
        }
    }
    return bad;
}

/* flags[0 .. nrows) of rows [r0, r0 + nrows) of x. */
static void am_flags_generic(const am_level *lv, const am_matrix *x, ptrdiff_t r0,
                             ptrdiff_t nrows, uint8_t *AM_RESTRICT flags)
{
    ptrdiff_t item = x->is_f64 ? 8 : 4, D = x->cols;
    ptrdiff_t rs = x->row_stride, cs = x->col_stride;
    const char *xb = x->data + r0 * rs;
    int ranges = lv->has_ranges;
    if (rs == item) {
        /* Rows adjacent in memory: OR each column, read contiguously, into the rows. */
        memset(flags, 0, (size_t)nrows);
        for (ptrdiff_t d = 0; d < D; d++) {
            const char *col = xb + d * cs;
            if (x->is_f64) {
                const uint64_t *p = (const uint64_t *)col;
                for (ptrdiff_t r = 0; r < nrows; r++)
                    flags[r] |= (uint8_t)AM_NF64(p[r]);
            } else {
                const uint32_t *p = (const uint32_t *)col;
                for (ptrdiff_t r = 0; r < nrows; r++)
                    flags[r] |= (uint8_t)AM_NF32(p[r]);
            }
        }
        if (ranges) {
            const int32_t *cols = lv->cols;
            int u = cols[0];
            for (int j = 0; j < u; j++) {
                const char *col = xb + cols[1 + j] * cs;
                if (x->is_f64) {
                    const double *p = (const double *)col;
                    double lo = lv->lo64[j], hi = lv->hi64[j];
                    for (ptrdiff_t r = 0; r < nrows; r++)
                        flags[r] |= (uint8_t)(((p[r] < lo) | (p[r] > hi)) << 1);
                } else {
                    const float *p = (const float *)col;
                    float lo = lv->lo32[j], hi = lv->hi32[j];
                    for (ptrdiff_t r = 0; r < nrows; r++)
                        flags[r] |= (uint8_t)(((p[r] < lo) | (p[r] > hi)) << 1);
                }
            }
            for (ptrdiff_t r = 0; r < nrows; r++)
                flags[r] = (flags[r] & 1) ? 1 : flags[r];
        }
        return;
    }
    for (ptrdiff_t r = 0; r < nrows; r++) {
        const char *row = xb + r * rs;
        int f = am_row_nonfinite(row, D, cs, x->is_f64);
        if (!f && ranges)
            f = am_row_outside(lv, row, cs, x->is_f64) << 1;
        flags[r] = (uint8_t)f;
    }
}

/* Rows per task of the F-order flags pre-pass: one task per thread, so that each column
 * is read in runs as long as possible (a streaming read of X in memory order). */
AM_INLINE ptrdiff_t am_flags_rows(ptrdiff_t N, int nthreads)
{
    ptrdiff_t per = (N + nthreads - 1) / (nthreads > 0 ? nthreads : 1);
    return per < 64 ? 64 : (per + 63) / 64 * 64;
}

AM_UNUSED static int am_flags_block_generic(const am_call *k, ptrdiff_t r0, ptrdiff_t nrows,
                                            void *scratch)
{
    (void)scratch;
    am_flags_generic(k->lv, k->x, r0, nrows, k->flags + r0);
    return 0;
}

/* Whether the product computes the flags in a pre-pass over X in memory order (rows
 * adjacent in memory: F-order), rather than fused into the row blocks. */
AM_INLINE int am_flags_prepass(const am_matrix *x) { return x->row_stride == (x->is_f64 ? 8 : 4); }

/* The F-order pre-pass of a product with flags: `block` over tasks of am_flags_rows rows. */
AM_UNUSED static int am_flags_prepass_run(const am_level *lv, const am_matrix *x, uint8_t *flags,
                                          am_block_fn block, int nthreads)
{
    am_call k = {lv, x, NULL, NULL, flags};
    return am_run_blocks(&k, am_flags_rows(x->rows, nthreads), 64, block, nthreads);
}

#endif
