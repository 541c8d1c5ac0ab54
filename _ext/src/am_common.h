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
 *   float  thr32r[C][4][16]             see am_thr32r
 *   int32  cols[16 C]                   see am_cols; cols[1 + 8 C] = has ranges
 *   float  lo32[4C], hi32[4C]           calibration range of distinct split column j
 *   double lo64[4C], hi64[4C]           (intersection over the (c, l) using it; +-inf
 *                                       when the level has no ranges); 128 C bytes
 *   ...variant tables from am_tables_offset(C, M) on (64-byte multiple)
 * Mp = M rounded up to 16; padding entries are 0.
 * --------------------------------------------------------------------------------- */
AM_INLINE size_t am_mpad(int M, int to) { return ((size_t)M + to - 1) / to * to; }

AM_INLINE size_t am_tables_offset(int C, int M)
{
    return 24 * am_mpad(M, 16) + 576 * (size_t)C;
}

AM_INLINE size_t am_ranges_offset(int C, int M) { return 24 * am_mpad(M, 16) + 448 * (size_t)C; }

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
AM_INLINE int am_has_ranges(const am_level_view *lv) { return am_cols(lv)[1 + 8 * lv->C]; }
AM_INLINE const float *am_lo32(const am_level_view *lv)
{
    return (const float *)(lv->packed + am_ranges_offset(lv->C, lv->M));
}
AM_INLINE const float *am_hi32(const am_level_view *lv) { return am_lo32(lv) + 4 * lv->C; }
AM_INLINE const double *am_lo64(const am_level_view *lv)
{
    return (const double *)(lv->packed + am_ranges_offset(lv->C, lv->M) + 32 * (size_t)lv->C);
}
AM_INLINE const double *am_hi64(const am_level_view *lv) { return am_lo64(lv) + 4 * lv->C; }
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
        /* Ranges per distinct column: v is outside some [low_i, high_i] of the (c, l)
         * using column j iff v < max_i low_i or v > min_i high_i. NaN bounds never
         * flag anything (a comparison with NaN is false), so they are skipped. */
        int has = lv->split_low != NULL && lv->split_high != NULL;
        cols[1 + 2 * n] = has;
        float *lo32 = (float *)(dst + am_ranges_offset(lv->C, lv->M)), *hi32 = lo32 + n;
        double *lo64 = (double *)(lo32 + 2 * n), *hi64 = lo64 + n;
        for (int j = 0; j < n; j++) {
            lo32[j] = -__builtin_inff();
            hi32[j] = __builtin_inff();
        }
        if (has)
            for (int i = 0; i < n; i++) {
                float l = lv->split_low[i], h = lv->split_high[i];
                int j = where[i];
                if (l > lo32[j])
                    lo32[j] = l;
                if (h < hi32[j])
                    hi32[j] = h;
            }
        for (int j = 0; j < n; j++) {
            lo64[j] = (double)lo32[j];
            hi64[j] = (double)hi32[j];
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

/* Byte offsets, within a row of column stride cs, of the level's distinct split columns
 * (in address order): computed once per block, so that copying a value costs no multiply. */
AM_INLINE int am_split_offsets(const am_level_view *lv, ptrdiff_t cs, ptrdiff_t *offs)
{
    const int32_t *cols = am_cols(lv);
    int u = cols[0];
    for (int j = 0; j < u; j++)
        offs[j] = (ptrdiff_t)cols[1 + j] * cs;
    return u;
}

/* Copy the u split values of one row (byte offsets offs) into column-major tmp:
 * value j at tmp[j * ld + r]. */
AM_INLINE void am_copy_split_row(const char *row, const ptrdiff_t *offs, int u, int is_f64,
                                 char *tmp, int ld, int r)
{
    if (is_f64)
        for (int j = 0; j < u; j++)
            ((double *)tmp)[j * ld + r] = am_ld64(row + offs[j]);
    else
        for (int j = 0; j < u; j++)
            ((float *)tmp)[j * ld + r] = am_ld32(row + offs[j]);
}

/* Software prefetch (towards L2) of whole rows, for inputs whose rows are runs of
 * adjacent values (C-order and row views), a few lines at a time from the encoder and,
 * for split prefetches, from the table sums, so that memory keeps streaming while the
 * tables are summed. */
typedef struct {
    const char *base;  /* x->data */
    ptrdiff_t rs;      /* row stride, bytes */
    ptrdiff_t bytes;   /* bytes per row */
    ptrdiff_t r, rend; /* next row to prefetch, end of the range */
    ptrdiff_t off;     /* next byte offset in row r */
} am_pf;

/* Lines per row. */
AM_INLINE ptrdiff_t am_pf_row_lines(const am_pf *p) { return (p->bytes + 63) / 64; }

/* Distance of the prefetch, in rows ahead of the encoder; for a split prefetch, the
 * bytes of rows ahead beyond half a block. */
#ifndef AM_PF_ROWS
#define AM_PF_ROWS 16
#endif
#ifndef AM_PF_AHEAD_BYTES
#define AM_PF_AHEAD_BYTES (64 * 1024)
#endif

/* Set up the prefetch for block [r0, r0 + nrows): the rows [r0 + d, r0 + d + nrows).
 * split: the block's table sums take about as long as its encoder, so the prefetch runs
 * one block ahead (d = nrows / 2 + AM_PF_AHEAD_BYTES of rows) and is shared between the
 * two: half of each row's lines per encoded row, the rest during the sums (am_pf_left).
 * Otherwise d = AM_PF_ROWS and the encoder prefetches whole rows. Returns the lines to
 * prefetch per encoded row. */
AM_UNUSED static ptrdiff_t am_pf_init(am_pf *p, const am_matrix *x, ptrdiff_t r0,
                                      ptrdiff_t nrows, int split)
{
    ptrdiff_t item = x->is_f64 ? 8 : 4;
    p->base = x->data;
    p->rs = x->row_stride;
    p->bytes = x->cols * item;
    p->off = 0;
    p->r = p->rend = 0;
#if defined(__GNUC__) && !defined(AM_NO_PREFETCH)
    if (x->col_stride != item || x->row_stride == item || p->bytes <= 0)
        return 0; /* not row runs: nothing to do here */
    ptrdiff_t d = split ? nrows / 2 + (AM_PF_AHEAD_BYTES + p->bytes - 1) / p->bytes : AM_PF_ROWS;
    p->r = r0 + d;
    p->rend = r0 + d + nrows < x->rows ? r0 + d + nrows : x->rows;
    ptrdiff_t lines = am_pf_row_lines(p);
    return split ? (lines + 1) / 2 : lines;
#else
    (void)r0;
    (void)nrows;
    (void)split;
    return 0;
#endif
}

/* Lines still to prefetch. */
AM_INLINE ptrdiff_t am_pf_left(const am_pf *p)
{
    return p->r < p->rend ? (p->rend - p->r) * am_pf_row_lines(p) - p->off / 64 : 0;
}

/* Prefetch the next n lines or so of the range (a row's last line is added when the row
 * does not start on a line). */
AM_INLINE void am_pf_lines(am_pf *p, ptrdiff_t n)
{
#if defined(__GNUC__) && !defined(AM_NO_PREFETCH)
    while (n > 0 && p->r < p->rend) {
        const char *row = p->base + p->r * p->rs;
        ptrdiff_t end = p->off + 64 * n < p->bytes ? p->off + 64 * n : p->bytes;
        for (ptrdiff_t o = p->off; o < end; o += 64)
            __builtin_prefetch(row + o, 0, 2);
        n -= (end - p->off + 63) / 64;
        if (end < p->bytes) {
            p->off = end;
        } else {
            __builtin_prefetch(row + p->bytes - 1, 0, 2);
            p->off = 0;
            p->r++;
        }
    }
#else
    (void)p;
    (void)n;
#endif
}

/* Column-major input (rows adjacent in memory): prefetch (towards L2) rows
 * [row + AM_SPLIT_AHEAD_ROWS, ... + n) of the split columns of codebooks c0 .. c0 + k - 1.
 * The encoders call it for each codebook (group) just before encoding it, so that the
 * ~4C column streams keep flowing at a steady distance (the hardware prefetchers follow
 * only a few streams), and the prefetches are spread out and in the order the columns
 * are used: issued for all distinct columns in one burst per group of rows, most of them
 * were lost at C >= 24 (see docs/performance-kernels.md). */
#ifndef AM_SPLIT_AHEAD_ROWS
#define AM_SPLIT_AHEAD_ROWS 256
#endif
/* Only for x of at least this many bytes: smaller ones are likely in L3 (32 MiB here),
 * where the prefetch instructions cost more than they save (N = 10 000, D = 512:
 * 0.096 ms without, 0.125 ms with; N = 20 000: 0.278 without, 0.256 with). */
#ifndef AM_SPLIT_PREFETCH_MIN_BYTES
#define AM_SPLIT_PREFETCH_MIN_BYTES (32.0 * 1024 * 1024)
#endif
AM_INLINE int am_prefetch_split(const am_matrix *x)
{
    ptrdiff_t item = x->is_f64 ? 8 : 4;
    return x->row_stride == item && (double)x->rows * x->cols * item >= AM_SPLIT_PREFETCH_MIN_BYTES;
}
AM_INLINE void am_prefetch_split_ahead(const am_level_view *lv, const am_matrix *x,
                                       ptrdiff_t row, ptrdiff_t n, int c0, int k)
{
#if defined(__GNUC__) && !defined(AM_NO_PREFETCH)
    row += AM_SPLIT_AHEAD_ROWS;
    if (row + n > x->rows)
        n = x->rows - row;
    if (n <= 0)
        return;
    ptrdiff_t item = x->is_f64 ? 8 : 4;
    const char *base = x->data + row * item;
    const int32_t *sd = lv->split_dims + 4 * c0;
    for (int j = 0; j < 4 * k; j++) {
        const char *p = base + sd[j] * x->col_stride;
        for (ptrdiff_t b = 0; b < n * item; b += 64)
            __builtin_prefetch(p + b, 0, 2);
    }
#else
    (void)lv; (void)x; (void)row; (void)n; (void)c0; (void)k;
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
 * Row flags (see am_kernels.product): generic code, used by the portable and AVX2
 * variants and by every variant for unusual strides. Written so that gcc vectorises
 * the contiguous cases: a value is NaN or +-inf iff its exponent bits are all ones, i.e.
 * iff (bits & EXP) + lowest exponent bit carries into the sign bit.
 * --------------------------------------------------------------------------------- */
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
AM_INLINE int am_row_outside(const am_level_view *lv, const char *row, ptrdiff_t cs, int is_f64)
{
    const int32_t *cols = am_cols(lv);
    int u = cols[0];
    const int32_t *list = cols + 1;
    int bad = 0;
    if (is_f64) {
        const double *lo = am_lo64(lv), *hi = am_hi64(lv);
        for (int j = 0; j < u; j++) {
            double v = am_ld64(row + list[j] * cs);
            bad |= (v < lo[j]) | (v > hi[j]);
        }
    } else {
        const float *lo = am_lo32(lv), *hi = am_hi32(lv);
        for (int j = 0; j < u; j++) {
            float v = am_ld32(row + list[j] * cs);
            bad |= (v < lo[j]) | (v > hi[j]);
        }
    }
    return bad;
}

/* flags[0 .. nrows) of rows [r0, r0 + nrows) of x. */
static void am_flags_generic(const am_level_view *lv, const am_matrix *x, ptrdiff_t r0,
                             ptrdiff_t nrows, uint8_t *AM_RESTRICT flags)
{
    ptrdiff_t item = x->is_f64 ? 8 : 4, D = x->cols;
    ptrdiff_t rs = x->row_stride, cs = x->col_stride;
    const char *xb = x->data + r0 * rs;
    int ranges = am_has_ranges(lv);
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
            const int32_t *cols = am_cols(lv);
            int u = cols[0];
            for (int j = 0; j < u; j++) {
                const char *col = xb + cols[1 + j] * cs;
                if (x->is_f64) {
                    const double *p = (const double *)col;
                    double lo = am_lo64(lv)[j], hi = am_hi64(lv)[j];
                    for (ptrdiff_t r = 0; r < nrows; r++)
                        flags[r] |= (uint8_t)(((p[r] < lo) | (p[r] > hi)) << 1);
                } else {
                    const float *p = (const float *)col;
                    float lo = am_lo32(lv)[j], hi = am_hi32(lv)[j];
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

/* NaN into the output rows r0 + i whose flag has bit 0 (NumPy's quiet NaN, as np.nan). */
static void am_nan_rows(am_matrix *out, ptrdiff_t r0, ptrdiff_t nrows, const uint8_t *flags)
{
    for (ptrdiff_t i = 0; i < nrows; i++) {
        if (!(flags[i] & 1))
            continue;
        char *row = out->data + (r0 + i) * out->row_stride;
        if (out->is_f64) {
            const uint64_t nan = 0x7FF8000000000000ull;
            for (ptrdiff_t m = 0; m < out->cols; m++)
                memcpy(row + m * out->col_stride, &nan, 8);
        } else {
            const uint32_t nan = 0x7FC00000u;
            for (ptrdiff_t m = 0; m < out->cols; m++)
                memcpy(row + m * out->col_stride, &nan, 4);
        }
    }
}

/* ---------------------------------------------------------------------------------
 * Row-block driver. `block` handles rows [r0, r0 + nrows) with its own scratch.
 * Every row is computed by the same code whatever the thread count or the block it
 * falls in, so the results are identical for every thread count.
 * --------------------------------------------------------------------------------- */
typedef int (*am_block_fn)(const am_level_view *lv, const am_matrix *x, am_matrix *out,
                           uint8_t *codes_out, uint8_t *flags, ptrdiff_t r0, ptrdiff_t nrows,
                           void *scratch);

static int am_run_blocks(const am_level_view *lv, const am_matrix *x, am_matrix *out,
                         uint8_t *codes_out, uint8_t *flags, ptrdiff_t block_rows,
                         size_t scratch_bytes, am_block_fn block, int nthreads)
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
            block(lv, x, out, codes_out, flags ? flags + r0 : NULL, r0, n, scratch);
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
            block(lv, x, out, codes_out, flags ? flags + r0 : NULL, r0, n, scratch);
        }
        free(scratch);
    }
#endif
    return failed ? -1 : 0;
}

/* Rows per task of the F-order flags pre-pass: one task per thread, so that each column
 * is read in runs as long as possible (a streaming read of X in memory order). */
AM_INLINE ptrdiff_t am_flags_rows(ptrdiff_t N, int nthreads)
{
    ptrdiff_t per = (N + nthreads - 1) / (nthreads > 0 ? nthreads : 1);
    return per < 64 ? 64 : (per + 63) / 64 * 64;
}

AM_UNUSED static int am_flags_block_generic(const am_level_view *lv, const am_matrix *x, am_matrix *out,
                                  uint8_t *codes_out, uint8_t *flags, ptrdiff_t r0,
                                  ptrdiff_t nrows, void *scratch)
{
    (void)out; (void)codes_out; (void)scratch;
    am_flags_generic(lv, x, r0, nrows, flags);
    return 0;
}

/* Whether the product computes the flags in a pre-pass over X in memory order (rows
 * adjacent in memory: F-order), rather than fused into the row blocks. */
AM_INLINE int am_flags_prepass(const am_matrix *x) { return x->row_stride == (x->is_f64 ? 8 : 4); }

#endif
