/* The AVX-512 encoder: 4-bit codes of 16 rows per vector, 4 codebooks of a row in one
 * 32-bit lane, as the vpermb / vpdpbusd sums and the sums along M read them; float32
 * compared as float32, float64 against the widened thresholds. Row-major input is first
 * copied (split columns of 16 rows, column-major), with its row flags taken while each
 * row is in L1 (am_flags_avx512.h). Included by kernels_avx512.c only. */
#ifndef AM_ENCODE_AVX512_H
#define AM_ENCODE_AVX512_H

#include <immintrin.h>

#include "am_flags_avx512.h"
#include "am_prefetch.h"
#include "am_scalar.h"

/* In-register transpose of a 16 x 16 tile of 32-bit values: on return a[r] holds what
 * lane r of the 16 inputs held (a[j] lane r -> a[r] lane j). */
AM_INLINE void transpose16x16(__m512i a[16])
{
    __m512i t[16], b[16];
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++) {
        t[2 * p] = _mm512_unpacklo_epi32(a[2 * p], a[2 * p + 1]);
        t[2 * p + 1] = _mm512_unpackhi_epi32(a[2 * p], a[2 * p + 1]);
    }
    /* b[4 q + k], 128-bit lane L: row 4 L + k, columns 4 q .. 4 q + 3. */
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        b[4 * q + 0] = _mm512_unpacklo_epi64(t[4 * q], t[4 * q + 2]);
        b[4 * q + 1] = _mm512_unpackhi_epi64(t[4 * q], t[4 * q + 2]);
        b[4 * q + 2] = _mm512_unpacklo_epi64(t[4 * q + 1], t[4 * q + 3]);
        b[4 * q + 3] = _mm512_unpackhi_epi64(t[4 * q + 1], t[4 * q + 3]);
    }
    /* Per k, a 4 x 4 transpose of 128-bit lanes among b[k], b[4 + k], b[8 + k], b[12 + k]. */
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        __m512i c0 = _mm512_shuffle_i32x4(b[k], b[4 + k], _MM_SHUFFLE(1, 0, 1, 0));
        __m512i c1 = _mm512_shuffle_i32x4(b[k], b[4 + k], _MM_SHUFFLE(3, 2, 3, 2));
        __m512i c2 = _mm512_shuffle_i32x4(b[8 + k], b[12 + k], _MM_SHUFFLE(1, 0, 1, 0));
        __m512i c3 = _mm512_shuffle_i32x4(b[8 + k], b[12 + k], _MM_SHUFFLE(3, 2, 3, 2));
        a[k] = _mm512_shuffle_i32x4(c0, c2, _MM_SHUFFLE(2, 0, 2, 0));
        a[4 + k] = _mm512_shuffle_i32x4(c0, c2, _MM_SHUFFLE(3, 1, 3, 1));
        a[8 + k] = _mm512_shuffle_i32x4(c1, c3, _MM_SHUFFLE(2, 0, 2, 0));
        a[12 + k] = _mm512_shuffle_i32x4(c1, c3, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

/* Row-major float32 rows of at most AM_TRANSPOSE_MAX_D values, 16 at a time: the rows
 * are loaded whole and transposed in registers, 16 columns at a time; column d is stored
 * at tmp + 16 j floats when it is the level's distinct split column j (colpos[d] = j,
 * else -1), and every column is checked for NaN / inf. Returns the non-finite rows (bit
 * r, r < nv). Costs ceil(D / 16) transposes per 16 rows against the value-by-value
 * copy's u loads and stores per row (am_copy_split_row): the encoder takes it when u is
 * large enough (AM_TRANSPOSE_MIN_COLS). */
AM_INLINE __mmask16 transpose_rows16(const char *src, ptrdiff_t rs, int nv, int D,
                                     const int16_t *colpos, char *tmp)
{
    __mmask16 nf = 0;
    for (int d0 = 0; d0 < D; d0 += 16) {
        int w = D - d0 < 16 ? D - d0 : 16;
        __mmask16 cm = (__mmask16)((1u << w) - 1);
        __m512i a[16];
        for (int r = 0; r < 16; r++)
            a[r] = r < nv ? _mm512_castps_si512(
                                _mm512_maskz_loadu_ps(cm, src + r * rs + (ptrdiff_t)d0 * 4))
                          : _mm512_setzero_si512();
        transpose16x16(a); /* a[c] lane r: row r, column d0 + c */
        for (int c = 0; c < w; c++) {
            __m512 v = _mm512_castsi512_ps(a[c]);
            nf |= _mm512_fpclass_ps_mask(v, 0x99); /* NaN or +-inf */
            int j = colpos[d0 + c];
            if (j >= 0)
                _mm512_storeu_ps((float *)tmp + 16 * j, v);
        }
    }
    return (__mmask16)(nf & ((1u << nv) - 1));
}

/* Reversed codes of up to 16 rows for KN codebooks c0 .. c0 + KN - 1 (float32 input),
 * in lockstep so that the KN dependency chains overlap; returned OR-ed into byte k of
 * each row's 32-bit lane. */
AM_INLINE __m512i enc16xK_f32(int KN, const char *xb, ptrdiff_t cs, __mmask16 vm,
                              const int32_t *sd, const float *thr, const float *thr32r)
{
    __m512i node[4], out = _mm512_setzero_si512();
    __m512 v[4][4];
    for (int k = 0; k < KN; k++)
        for (int l = 0; l < 4; l++) {
            const char *col = xb + (ptrdiff_t)sd[4 * k + l] * cs;
            v[k][l] = _mm512_maskz_loadu_ps(vm, col);
        }
    __mmask16 gt[4];
    for (int k = 0; k < KN; k++) {
        gt[k] = _mm512_cmp_ps_mask(v[k][0], _mm512_set1_ps(thr[15 * k]), _CMP_GT_OQ);
        node[k] = _mm512_maskz_mov_epi32(gt[k], _mm512_set1_epi32(1));
    }
    for (int k = 0; k < KN; k++) {
        __m512 t = _mm512_mask_blend_ps(gt[k], _mm512_set1_ps(thr[15 * k + 1]),
                                        _mm512_set1_ps(thr[15 * k + 2]));
        gt[k] = _mm512_cmp_ps_mask(v[k][1], t, _CMP_GT_OQ);
        node[k] = _mm512_mask_add_epi32(node[k], gt[k], node[k], _mm512_set1_epi32(2));
    }
    for (int l = 2; l < 4; l++)
        for (int k = 0; k < KN; k++) {
            __m512 t = _mm512_permutexvar_ps(node[k], _mm512_loadu_ps(thr32r + 64 * k + 16 * l));
            gt[k] = _mm512_cmp_ps_mask(v[k][l], t, _CMP_GT_OQ);
            node[k] = _mm512_mask_add_epi32(node[k], gt[k], node[k], _mm512_set1_epi32(1 << l));
        }
    for (int k = 0; k < KN; k++)
        out = _mm512_or_si512(out, _mm512_slli_epi32(node[k], 8 * k));
    return out;
}

/* Same for float64 input: two halves of 8 rows compared in double. */
AM_INLINE __m512i enc16_f64(const char *xb, ptrdiff_t rs, ptrdiff_t cs, __mmask16 vm,
                            const int32_t *sd, const double *thr)
{
    __m256i half[2];
    const __m512i minus1 = _mm512_set1_epi64(-1);
    for (int h = 0; h < 2; h++) {
        __mmask8 m8 = (__mmask8)(vm >> (8 * h));
        const char *xh = xb + 8 * h * rs;
        __m512i node = _mm512_setzero_si512();
        for (int l = 0; l < 4; l++) {
            const char *col = xh + (ptrdiff_t)sd[l] * cs;
            __m512d v = _mm512_maskz_loadu_pd(m8, col);
            __m512d t = l == 0 ? _mm512_set1_pd(thr[0])
                               : _mm512_permutexvar_pd(node, _mm512_loadu_pd(thr + (1 << l) - 1));
            __mmask8 gt = _mm512_cmp_pd_mask(v, t, _CMP_GT_OQ);
            node = _mm512_add_epi64(node, node);
            node = _mm512_mask_sub_epi64(node, gt, node, minus1);
        }
        half[h] = _mm512_cvtepi64_epi32(node);
    }
    const __m512i rev = _mm512_setr_epi32(0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15);
    return _mm512_permutexvar_epi32(
        _mm512_inserti64x4(_mm512_castsi256_si512(half[0]), half[1], 1), rev);
}

/* Encode rows [r0, r0 + nrows) into codes[(g * nsub + s) * 64 + r * 4 + k] =
 * rev(code(row 16 s + r, codebook 4 g + k)) | 16 k. F-order rows (adjacent in memory)
 * are read in place with contiguous loads; otherwise the split columns of each 16 rows
 * are first copied, in address order, into a small column-major buffer `tmp`. */
static void enc_block512(const am_level *lv, const am_matrix *x, ptrdiff_t r0,
                         ptrdiff_t nrows, uint8_t *codes, char *tmp, uint8_t *flags, am_pf *pf,
                         ptrdiff_t pf_per_row)
{
    int C = lv->C, G = (C + 3) / 4;
    int nsub = (int)((nrows + 15) / 16);
    ptrdiff_t item = x->is_f64 ? 8 : 4;
    ptrdiff_t rs = x->row_stride, cs = x->col_stride;
    const char *xb = x->data + r0 * rs;
    int contig = rs == item;
    const int32_t *sdx = contig ? lv->split_dims : lv->split_pos;
    ptrdiff_t ecs = contig ? cs : 16 * item;
    const double *thr64 = lv->thr64;
    const float *thr32r = lv->thr32r;
    int ranges = lv->has_ranges;
    /* Byte offsets of the distinct split columns in a row (after tmp in the scratch). */
    ptrdiff_t *offs = (ptrdiff_t *)(tmp + (size_t)4 * C * 16 * 8);
    int u = contig ? 0 : am_split_offsets(lv, cs, offs);
    int pf_cols = am_prefetch_split(x);
    /* Short float32 rows with many split columns: whole rows transposed (see
     * transpose_rows16), colpos[d] = position of column d in the distinct list or -1. */
    int D = (int)x->cols, nblk = (D + 15) / 16;
    int transposed = !contig && !x->is_f64 && cs == 4 && D <= AM_TRANSPOSE_MAX_D &&
                     u >= AM_TRANSPOSE_MIN_COLS * nblk;
    int16_t colpos[AM_TRANSPOSE_MAX_D];
    if (transposed) {
        memset(colpos, -1, sizeof colpos);
        for (int j = 0; j < u; j++)
            colpos[lv->cols[1 + j]] = (int16_t)j;
    }
    for (int s = 0; s < nsub; s++) {
        ptrdiff_t left = nrows - 16 * s;
        int nv = left >= 16 ? 16 : (int)left;
        __mmask16 vm = (__mmask16)((1u << nv) - 1);
        const char *src = xb + 16 * s * rs;
        if (!contig) {
            /* Row by row: prefetch rows ahead (pf), copy the split columns, then scan
             * the row for NaN / inf (flags only) while it is in L1. The copy goes first:
             * scan first, the encoder's loads queued behind the scan's 32 line fills and
             * the flags cost 25-40 % more at N = 100 000 (C harness, measured). */
            __mmask16 nf = 0;
            if (transposed) {
                am_pf_lines(pf, pf_per_row * nv);
                nf = transpose_rows16(src, rs, nv, D, colpos, tmp);
            }
            for (int r = 0; r < nv && !transposed; r++) {
                const char *row = src + r * rs;
                am_pf_lines(pf, pf_per_row);
                am_copy_split_row(row, offs, u, x->is_f64, tmp, 16, r);
                if (flags) {
                    int bad = cs == item ? row_nonfinite512(row, x->cols, x->is_f64)
                                         : am_row_nonfinite(row, x->cols, cs, x->is_f64);
                    nf |= (__mmask16)(bad << r);
                }
            }
            if (flags) {
                __mmask16 oor = ranges ? outside16(lv, tmp, x->is_f64, vm) : 0;
                store_flags16(flags + 16 * s, nv, nf, oor);
            }
            src = tmp;
        }
        for (int g = 0; g < G; g++) {
            int kmax = C - 4 * g < 4 ? C - 4 * g : 4;
            const int32_t *sd = sdx + 16 * g;
            if (pf_cols)
                am_prefetch_split_ahead(lv, x, r0 + 16 * s, nv, 4 * g, kmax);
            __m512i acc;
            if (!x->is_f64) {
                const float *thr = lv->thresholds + 60 * g, *tr = thr32r + 256 * g;
                if (kmax == 4)
                    acc = enc16xK_f32(4, src, ecs, vm, sd, thr, tr);
                else if (kmax == 3)
                    acc = enc16xK_f32(3, src, ecs, vm, sd, thr, tr);
                else if (kmax == 2)
                    acc = enc16xK_f32(2, src, ecs, vm, sd, thr, tr);
                else
                    acc = enc16xK_f32(1, src, ecs, vm, sd, thr, tr);
            } else {
                acc = _mm512_setzero_si512();
                for (int k = 0; k < kmax; k++) {
                    __m512i node = enc16_f64(src, item, ecs, vm, sd + 4 * k,
                                             thr64 + 16 * (4 * g + k));
                    acc = _mm512_or_si512(acc, _mm512_sllv_epi32(node, _mm512_set1_epi32(8 * k)));
                }
            }
            acc = _mm512_or_si512(acc, _mm512_set1_epi32(0x30201000));
            _mm512_storeu_si512((void *)(codes + ((size_t)g * nsub + s) * 64), acc);
        }
    }
}

#endif
