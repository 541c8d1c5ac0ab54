/* Pieces shared by every kernel variant: the common part of the packed level, scalar
 * encode / dequantise (the portable variant, and the fallbacks of the SIMD variants),
 * and the OpenMP row-block driver.
 *
 * Included by am_kernels_body.c only, which is compiled once per instruction set, so
 * everything here is `static` and gets compiled with that variant's flags.
 */
#ifndef AM_COMMON_H
#define AM_COMMON_H

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

/* ---------------------------------------------------------------------------------
 * Packed level, common part (identical in every variant):
 *   float  scale32[Mp], offset32[Mp]    T(scale), T(offset) for float32 outputs
 *   double scale64[Mp], offset64[Mp]
 *   double thr64[C][16]                 thresholds widened, heap order, 15 used
 *   ...variant tables from am_tables_offset(C, M) on (64-byte multiple)
 * Mp = M rounded up to 16; padding entries are 0.
 * --------------------------------------------------------------------------------- */
AM_INLINE size_t am_mpad(int M, int to) { return ((size_t)M + to - 1) / to * to; }

AM_INLINE size_t am_tables_offset(int C, int M)
{
    return 24 * am_mpad(M, 16) + 448 * (size_t)C;
}

/* l-bit reversal of j (l <= 4). */
AM_INLINE int am_bitrev(int j, int l)
{
    int r = 0;
    for (int i = 0; i < l; i++)
        r |= ((j >> i) & 1) << (l - 1 - i);
    return r;
}

AM_INLINE const float *am_scale32(const am_level_view *lv) { return (const float *)lv->packed; }
AM_INLINE const float *am_offset32(const am_level_view *lv)
{
    return (const float *)lv->packed + am_mpad(lv->M, 16);
}
AM_INLINE const double *am_scale64(const am_level_view *lv)
{
    return (const double *)(lv->packed + 8 * am_mpad(lv->M, 16));
}
AM_INLINE const double *am_offset64(const am_level_view *lv)
{
    return (const double *)(lv->packed + 16 * am_mpad(lv->M, 16));
}
AM_INLINE const double *am_thr64(const am_level_view *lv)
{
    return (const double *)(lv->packed + 24 * am_mpad(lv->M, 16));
}
/* thr32r[c][l][j] (16 floats per level): threshold of level l at the node whose path,
 * read with the first decision in the lowest bit, is j (the "reversed" node number). */
AM_INLINE const float *am_thr32r(const am_level_view *lv)
{
    return (const float *)(lv->packed + 24 * am_mpad(lv->M, 16) + 128 * (size_t)lv->C);
}
/* cols[0] = u, the number of distinct split columns; cols[1 .. u] those columns in
 * increasing order; cols[1 + 4C + i] = position in that list of split_dims[i]. Used to
 * copy the split columns of a few rows into a small column-major buffer in address
 * order (row-major input), which the encoder then reads with contiguous loads. */
AM_INLINE const int32_t *am_cols(const am_level_view *lv)
{
    return (const int32_t *)(lv->packed + 24 * am_mpad(lv->M, 16) + 384 * (size_t)lv->C);
}
AM_INLINE const uint8_t *am_tables(const am_level_view *lv)
{
    return lv->packed + am_tables_offset(lv->C, lv->M);
}

static void am_pack_common(const am_level_view *lv, uint8_t *dst)
{
    size_t Mp = am_mpad(lv->M, 16);
    memset(dst, 0, am_tables_offset(lv->C, lv->M));
    float *s32 = (float *)dst, *o32 = s32 + Mp;
    double *s64 = (double *)(dst + 8 * Mp), *o64 = (double *)(dst + 16 * Mp);
    double *thr = (double *)(dst + 24 * Mp);
    for (int m = 0; m < lv->M; m++) {
        s32[m] = (float)lv->scale[m];
        o32[m] = (float)lv->offset[m];
        s64[m] = lv->scale[m];
        o64[m] = lv->offset[m];
    }
    int32_t *cols = (int32_t *)(dst + 24 * Mp + 384 * (size_t)lv->C);
    {
        int n = 4 * lv->C, u = 0;
        int32_t *list = cols + 1, *where = cols + 1 + n;
        for (int i = 0; i < n; i++) { /* insertion into the sorted distinct list */
            int32_t v = lv->split_dims[i];
            int j = 0;
            while (j < u && list[j] < v)
                j++;
            if (j < u && list[j] == v)
                continue;
            memmove(list + j + 1, list + j, sizeof(int32_t) * (size_t)(u - j));
            list[j] = v;
            u++;
        }
        cols[0] = u;
        for (int i = 0; i < n; i++) {
            int j = 0;
            while (list[j] != lv->split_dims[i])
                j++;
            where[i] = j;
        }
    }
    float *thr32r = (float *)(dst + 24 * Mp + 128 * (size_t)lv->C);
    for (int c = 0; c < lv->C; c++) {
        for (int j = 0; j < 15; j++)
            thr[c * 16 + j] = (double)lv->thresholds[c * 15 + j];
        for (int l = 0; l < 4; l++)
            for (int j = 0; j < (1 << l); j++)
                thr32r[c * 64 + l * 16 + j] = lv->thresholds[c * 15 + (1 << l) - 1 + am_bitrev(j, l)];
    }
}

/* ---------------------------------------------------------------------------------
 * Scalar helpers (unaligned-safe loads and stores).
 * --------------------------------------------------------------------------------- */
AM_INLINE float am_ld32(const char *p) { float v; memcpy(&v, p, 4); return v; }
AM_INLINE double am_ld64(const char *p) { double v; memcpy(&v, p, 8); return v; }

/* Code of one row in one codebook: exact comparisons; NaN goes left. */
AM_INLINE int am_code_f32(const char *row, ptrdiff_t cs, const int32_t *sd, const float *thr)
{
    int node = 0;
    for (int l = 0; l < 4; l++) {
        float v = am_ld32(row + sd[l] * cs);
        node = 2 * node + (v > thr[(1 << l) - 1 + node]);
    }
    return node;
}

AM_INLINE int am_code_f64(const char *row, ptrdiff_t cs, const int32_t *sd, const double *thr)
{
    int node = 0;
    for (int l = 0; l < 4; l++) {
        double v = am_ld64(row + sd[l] * cs);
        node = 2 * node + (v > thr[(1 << l) - 1 + node]);
    }
    return node;
}

/* Codes of one row, codes[c] for c < C. */
AM_INLINE void am_encode_row(const am_level_view *lv, const char *row, ptrdiff_t cs, int is_f64,
                             uint8_t *codes)
{
    int C = lv->C;
    if (is_f64) {
        const double *thr = am_thr64(lv);
        for (int c = 0; c < C; c++)
            codes[c] = (uint8_t)am_code_f64(row, cs, lv->split_dims + 4 * c, thr + 16 * c);
    } else {
        for (int c = 0; c < C; c++)
            codes[c] = (uint8_t)am_code_f32(row, cs, lv->split_dims + 4 * c, lv->thresholds + 15 * c);
    }
}

/* out row = T(acc) * T(scale) + T(offset), two roundings (compiled with -ffp-contract=off). */
static void am_dequant_row(const am_level_view *lv, const uint32_t *acc, int m0, int m1,
                           char *orow, ptrdiff_t ocs, int out_f64)
{
    if (out_f64) {
        const double *s = am_scale64(lv), *o = am_offset64(lv);
        if (ocs == 8) {
            double *dst = (double *)orow;
            for (int m = m0; m < m1; m++) {
                double p = (double)acc[m] * s[m];
                dst[m] = p + o[m];
            }
        } else {
            for (int m = m0; m < m1; m++) {
                double p = (double)acc[m] * s[m];
                double v = p + o[m];
                memcpy(orow + m * ocs, &v, 8);
            }
        }
    } else {
        const float *s = am_scale32(lv), *o = am_offset32(lv);
        if (ocs == 4) {
            float *dst = (float *)orow;
            for (int m = m0; m < m1; m++) {
                float p = (float)acc[m] * s[m];
                dst[m] = p + o[m];
            }
        } else {
            for (int m = m0; m < m1; m++) {
                float p = (float)acc[m] * s[m];
                float v = p + o[m];
                memcpy(orow + m * ocs, &v, 4);
            }
        }
    }
}

/* Exact sums of one row along M: acc[m] = sum_c luts[c, codes[c], m]. */
static void am_sums_row(const am_level_view *lv, const uint8_t *codes, uint32_t *AM_RESTRICT acc)
{
    int C = lv->C, M = lv->M;
    memset(acc, 0, sizeof(uint32_t) * (size_t)M);
    for (int c = 0; c < C; c++) {
        const uint8_t *AM_RESTRICT t = lv->luts + ((size_t)c * 16 + codes[c]) * (size_t)M;
        for (int m = 0; m < M; m++)
            acc[m] += t[m];
    }
}

/* Copy the split columns of rows [0, nrows) of x (row pointer xb) into
 * tmp[j * ld + r] (j over the distinct split columns, in address order). */
AM_INLINE void am_extract(const am_level_view *lv, const char *xb, ptrdiff_t rs, ptrdiff_t cs,
                          int is_f64, int nrows, char *tmp, int ld)
{
    const int32_t *cols = am_cols(lv);
    int u = cols[0];
    const int32_t *list = cols + 1;
    if (is_f64) {
        double *t = (double *)tmp;
        for (int r = 0; r < nrows; r++) {
            const char *row = xb + r * rs;
            for (int j = 0; j < u; j++)
                t[(size_t)j * ld + r] = am_ld64(row + list[j] * cs);
        }
    } else {
        float *t = (float *)tmp;
        for (int r = 0; r < nrows; r++) {
            const char *row = xb + r * rs;
            for (int j = 0; j < u; j++)
                t[(size_t)j * ld + r] = am_ld32(row + list[j] * cs);
        }
    }
}

/* Prefetch (towards L2) the lines of the split columns of rows [r0, r0 + nrows), so that
 * memory keeps streaming while the previous rows' table sums run. */
AM_UNUSED static void am_prefetch_rows(const am_level_view *lv, const am_matrix *x, ptrdiff_t r0,
                             ptrdiff_t nrows)
{
#if defined(__GNUC__) && !defined(AM_NO_PREFETCH)
    if (r0 + nrows > x->rows)
        nrows = x->rows - r0;
    if (nrows <= 0)
        return;
    const int32_t *cols = am_cols(lv);
    int u = cols[0];
    const int32_t *list = cols + 1;
    ptrdiff_t item = x->is_f64 ? 8 : 4;
    ptrdiff_t rs = x->row_stride, cs = x->col_stride;
    if (rs == item) { /* columns are contiguous runs of rows */
        for (int j = 0; j < u; j++) {
            const char *p = x->data + r0 * rs + list[j] * cs;
            for (ptrdiff_t b = 0; b < nrows * item; b += 64)
                __builtin_prefetch(p + b, 0, 2);
        }
        return;
    }
    for (ptrdiff_t r = r0; r < r0 + nrows; r++) {
        const char *row = x->data + r * rs;
        uintptr_t last = (uintptr_t)-1;
        for (int j = 0; j < u; j++) {
            const char *p = row + list[j] * cs;
            uintptr_t line = (uintptr_t)p >> 6;
            if (line != last)
                __builtin_prefetch(p, 0, 2);
            last = line;
        }
    }
#else
    (void)lv; (void)x; (void)r0; (void)nrows;
#endif
}

/* Copy a tile of nrows x ncols values (row-major, row stride tile_rs bytes) into a
 * strided output. */
AM_UNUSED static void am_copy_tile(const char *tile, ptrdiff_t tile_rs, int nrows, int ncols, char *dst,
                         ptrdiff_t ors, ptrdiff_t ocs, int itemsize)
{
    for (int i = 0; i < nrows; i++)
        for (int j = 0; j < ncols; j++)
            memcpy(dst + i * ors + j * ocs, tile + i * tile_rs + j * itemsize, (size_t)itemsize);
}

/* ---------------------------------------------------------------------------------
 * Row-block driver. `block` handles rows [r0, r0 + nrows) with its own scratch.
 * Every row is computed by the same code whatever the thread count or the block it
 * falls in, so the results are identical for every thread count.
 * --------------------------------------------------------------------------------- */
typedef int (*am_block_fn)(const am_level_view *lv, const am_matrix *x, am_matrix *out,
                           uint8_t *codes_out, ptrdiff_t r0, ptrdiff_t nrows, void *scratch);

static int am_run_blocks(const am_level_view *lv, const am_matrix *x, am_matrix *out,
                         uint8_t *codes_out, ptrdiff_t block_rows, size_t scratch_bytes,
                         am_block_fn block, int nthreads)
{
    ptrdiff_t N = x->rows;
    if (N <= 0)
        return 0;
    ptrdiff_t nblocks = (N + block_rows - 1) / block_rows;
#ifndef _OPENMP
    nthreads = 1;
#endif
    /* Small calls are not worth waking threads for. */
    double work = (double)N * ((double)lv->C * (out ? (double)lv->M : 1.0) + 8.0 * lv->C);
    if (work < 2.0e5)
        nthreads = 1;
    if (nthreads > nblocks)
        nthreads = (int)nblocks;
    if (nthreads < 1)
        nthreads = 1;
    int failed = 0;
    scratch_bytes = (scratch_bytes + 63) / 64 * 64;
    if (nthreads == 1) {
        void *scratch = aligned_alloc(64, scratch_bytes);
        if (!scratch)
            return -1;
        for (ptrdiff_t b = 0; b < nblocks; b++) {
            ptrdiff_t r0 = b * block_rows;
            ptrdiff_t n = N - r0 < block_rows ? N - r0 : block_rows;
            block(lv, x, out, codes_out, r0, n, scratch);
        }
        free(scratch);
        return 0;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
    {
        void *scratch = aligned_alloc(64, scratch_bytes);
        if (!scratch) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (ptrdiff_t b = 0; b < nblocks; b++) {
            if (!scratch)
                continue;
            ptrdiff_t r0 = b * block_rows;
            ptrdiff_t n = N - r0 < block_rows ? N - r0 : block_rows;
            block(lv, x, out, codes_out, r0, n, scratch);
        }
        free(scratch);
    }
#endif
    return failed ? -1 : 0;
}

#endif
