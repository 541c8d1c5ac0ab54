/* AVX2 kernels (AVX2, FMA, BMI2), compiled with their flags only; defines
 * am_kernels_avx2.
 *
 * Per block of rows (64 rows; 64 or 256 for streamed outputs, one OpenMP task each):
 * encode 32 rows of one codebook per vector (enc_block256), then the exact table sums
 * 4 output columns at a time: `vpshufb` with the 16-entry table of (codebook, column)
 * broadcast to both lanes; exact 16-bit sums of the even and odd bytes (`and` / `srl` +
 * `vpaddw`); then dequantise and write as avx2_write chose (am_output.h). Row flags of
 * row-major input are computed by the encoder while each row is in L1; F-order input
 * gets the generic pre-pass (am_flags.h).
 */
#include <immintrin.h>

#define AM_STREAM_LINE(dst, src)                                                              \
    do {                                                                                       \
        _mm256_stream_si256((__m256i *)(dst), _mm256_loadu_si256((const __m256i *)(src)));     \
        _mm256_stream_si256((__m256i *)((dst) + 32),                                           \
                            _mm256_loadu_si256((const __m256i *)((src) + 32)));                \
    } while (0)
#define AM_COPY_LINE(dst, src)                                                                \
    do {                                                                                       \
        _mm256_storeu_si256((__m256i *)(dst), _mm256_loadu_si256((const __m256i *)(src)));     \
        _mm256_storeu_si256((__m256i *)((dst) + 32),                                           \
                            _mm256_loadu_si256((const __m256i *)((src) + 32)));                \
    } while (0)

#include "am_flags.h"
#include "am_narrow.h"
#include "am_output.h"
#include "am_prefetch.h"
#include "am_profile.h"
#include "am_scalar.h"

/* Packed tables: [Mp4][C][16] bytes from the common part's end on, entry code =
 * luts[c, code, m]. */
AM_INLINE size_t avx2_tables_bytes(int C, int M) { return am_mpad(M, 4) * (size_t)C * 16; }

static size_t avx2_packed_bytes(int C, int M)
{
    return am_layout_of(C, M).tables + avx2_tables_bytes(C, M);
}

static void avx2_pack(const am_level_view *lv, uint8_t *dst)
{
    int C = lv->C, M = lv->M;
    am_layout L = am_layout_of(C, M);
    am_pack_common(lv, &L, dst);
    uint8_t *t = dst + L.tables;
    memset(t, 0, avx2_tables_bytes(C, M));
    for (int c = 0; c < C; c++)
        for (int k = 0; k < 16; k++) {
            const uint8_t *src = lv->luts + ((size_t)c * 16 + k) * M;
            for (int m = 0; m < M; m++)
                t[((size_t)m * C + c) * 16 + k] = src[m];
        }
}

/* Nodes of up to 8 rows for one codebook, float32 input. */
AM_INLINE __m256i enc8_f32(const char *xb, ptrdiff_t cs, __m256i vm, const int32_t *sd,
                           const float *thr)
{
    __m256i node = _mm256_setzero_si256();
    for (int l = 0; l < 4; l++) {
        const char *col = xb + (ptrdiff_t)sd[l] * cs;
        __m256 v = _mm256_maskload_ps((const float *)col, vm);
        /* thr + (1<<l) - 1 + 8 <= 15 floats of this codebook: in bounds. */
        __m256 t = l == 0 ? _mm256_set1_ps(thr[0])
                          : _mm256_permutevar8x32_ps(_mm256_loadu_ps(thr + (1 << l) - 1), node);
        __m256i gt = _mm256_castps_si256(_mm256_cmp_ps(v, t, _CMP_GT_OQ));
        node = _mm256_sub_epi32(_mm256_add_epi32(node, node), gt);
    }
    return node;
}

/* Nodes of up to 8 rows, float64 input (two halves of 4, compared in double). */
AM_INLINE __m256i enc8_f64(const char *xb, ptrdiff_t rs, ptrdiff_t cs, __m256i vm,
                           const int32_t *sd, const double *thr)
{
    const __m256i pick = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    __m128i half[2];
    for (int h = 0; h < 2; h++) {
        __m256i m64 = _mm256_cvtepi32_epi64(h == 0 ? _mm256_castsi256_si128(vm)
                                                   : _mm256_extracti128_si256(vm, 1));
        const char *xh = xb + 4 * h * rs;
        __m256i node = _mm256_setzero_si256();
        for (int l = 0; l < 4; l++) {
            const char *col = xh + (ptrdiff_t)sd[l] * cs;
            __m256d v = _mm256_maskload_pd((const double *)col, m64);
            __m256d t = l == 0 ? _mm256_set1_pd(thr[0])
                               : _mm256_i64gather_pd(thr + (1 << l) - 1, node, 8);
            __m256i gt = _mm256_castpd_si256(_mm256_cmp_pd(v, t, _CMP_GT_OQ));
            node = _mm256_sub_epi64(_mm256_add_epi64(node, node), gt);
        }
        half[h] = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(node, pick));
    }
    return _mm256_inserti128_si256(_mm256_castsi128_si256(half[0]), half[1], 1);
}

/* Codes of rows 0 .. n - 1 (n <= 32) of codebook c into dst[0 .. 32) (0 beyond n): row r
 * of column sd[l] at xb + r * item + sd[l] * cs (rows adjacent in memory: x itself in
 * F-order, or enc_block256's copy). */
AM_INLINE void enc32_256(const am_level *lv, const char *xb, ptrdiff_t item, ptrdiff_t cs,
                         ptrdiff_t n, const int32_t *sd, int c, uint8_t *dst)
{
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i fix = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i nodes[4];
    for (int q = 0; q < 4; q++) {
        ptrdiff_t left = n - 8 * q;
        __m256i vm = _mm256_cmpgt_epi32(_mm256_set1_epi32(left < 8 ? (int)(left < 0 ? 0 : left) : 8),
                                        lanes);
        const char *xq = xb + 8 * q * item;
        nodes[q] = item == 8 ? enc8_f64(xq, item, cs, vm, sd, lv->thr64 + 16 * c)
                             : enc8_f32(xq, cs, vm, sd, lv->thresholds + 15 * c);
    }
    __m256i p01 = _mm256_packs_epi32(nodes[0], nodes[1]);
    __m256i p23 = _mm256_packs_epi32(nodes[2], nodes[3]);
    _mm256_storeu_si256((__m256i *)dst,
                        _mm256_permutevar8x32_epi32(_mm256_packus_epi16(p01, p23), fix));
}

/* Row flags of up to 32 copied rows (tmp: column j at tmp + 32 j values): bit 0 from
 * nf, else bit 1 when a split column lies outside the level's calibration range. */
static void flags256(const am_level *lv, const char *tmp, int is_f64, int n32, uint32_t nf,
                     uint8_t *flags)
{
    uint32_t oor = 0;
    if (lv->has_ranges) {
        int u = lv->u;
        if (!is_f64) {
            const float *lo = lv->lo32, *hi = lv->hi32;
            __m256 bad[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                             _mm256_setzero_ps()};
            for (int j = 0; j < u; j++) {
                const float *col = (const float *)tmp + 32 * j;
                __m256 l = _mm256_set1_ps(lo[j]), h = _mm256_set1_ps(hi[j]);
                for (int q = 0; q < 4; q++) {
                    __m256 v = _mm256_loadu_ps(col + 8 * q);
                    bad[q] = _mm256_or_ps(bad[q], _mm256_or_ps(_mm256_cmp_ps(v, l, _CMP_LT_OQ),
                                                               _mm256_cmp_ps(v, h, _CMP_GT_OQ)));
                }
            }
            for (int q = 0; q < 4; q++)
                oor |= (uint32_t)_mm256_movemask_ps(bad[q]) << (8 * q);
        } else {
            const double *lo = lv->lo64, *hi = lv->hi64;
            __m256d bad[8];
            for (int q = 0; q < 8; q++)
                bad[q] = _mm256_setzero_pd();
            for (int j = 0; j < u; j++) {
                const double *col = (const double *)tmp + 32 * j;
                __m256d l = _mm256_set1_pd(lo[j]), h = _mm256_set1_pd(hi[j]);
                for (int q = 0; q < 8; q++) {
                    __m256d v = _mm256_loadu_pd(col + 4 * q);
                    bad[q] = _mm256_or_pd(bad[q], _mm256_or_pd(_mm256_cmp_pd(v, l, _CMP_LT_OQ),
                                                               _mm256_cmp_pd(v, h, _CMP_GT_OQ)));
                }
            }
            for (int q = 0; q < 8; q++)
                oor |= (uint32_t)_mm256_movemask_pd(bad[q]) << (4 * q);
        }
    }
    for (int r = 0; r < n32; r++)
        flags[r] = (uint8_t)(((nf >> r) & 1) ? 1 : ((oor >> r) & 1) << 1);
}

/* Encode rows [r0, r0 + nrows) into codes[(c * nsub + s) * 32 + r] = code(row 32 s + r, c).
 * Rows not adjacent in memory (row-major) are taken 32 at a time: their distinct split
 * columns are copied (byte offsets computed once per block) into the column-major
 * `tmp`, which the encoder then reads with contiguous loads; with `flags` (row-major
 * only), each row is also checked for NaN / inf while it is in L1, and the copies
 * against the calibration ranges. */
static void enc_block256(const am_level *lv, const am_matrix *x, ptrdiff_t r0,
                         ptrdiff_t nrows, uint8_t *codes, char *tmp, uint8_t *flags, am_pf *pf,
                         ptrdiff_t pf_per_row)
{
    int C = lv->C;
    int nsub = (int)((nrows + 31) / 32);
    ptrdiff_t rs = x->row_stride, cs = x->col_stride, item = x->is_f64 ? 8 : 4;
    const char *xb = x->data + r0 * rs;
    if (rs != item) {
        const int32_t *pos = lv->split_pos;
        ptrdiff_t *offs = (ptrdiff_t *)(tmp + (size_t)4 * C * 32 * 8);
        int u = am_split_offsets(lv, cs, offs);
        for (int s = 0; s < nsub; s++) {
            int n32 = nrows - 32 * s < 32 ? (int)(nrows - 32 * s) : 32;
            uint32_t nf = 0;
            for (int r = 0; r < n32; r++) {
                const char *row = xb + (32 * s + r) * rs;
                am_pf_lines(pf, pf_per_row);
                am_copy_split_row(row, offs, u, x->is_f64, tmp, 32, r); /* copy first */
                if (flags)
                    nf |= (uint32_t)am_row_nonfinite(row, x->cols, cs, x->is_f64) << r;
            }
            if (flags)
                flags256(lv, tmp, x->is_f64, n32, nf, flags + 32 * s);
            for (int c = 0; c < C; c++)
                enc32_256(lv, tmp, item, 32 * item, n32, pos + 4 * c, c,
                          codes + ((size_t)c * nsub + s) * 32);
        }
        return;
    }
    /* Rows adjacent in memory (F-order): contiguous loads straight from x, 32 rows of
     * every codebook at a time, with the split columns' rows ahead prefetched. */
    int pf_cols = am_prefetch_split(x);
    for (int s = 0; s < nsub; s++) {
        ptrdiff_t n32 = nrows - 32 * s < 32 ? nrows - 32 * s : 32;
        for (int c = 0; c < C; c++) {
            if (pf_cols)
                am_prefetch_split_ahead(lv, x, r0 + 32 * s, n32, c, 1);
            enc32_256(lv, xb + 32 * s * rs, rs, cs, nrows - 32 * s, lv->split_dims + 4 * c, c,
                      codes + ((size_t)c * nsub + s) * 32);
        }
    }
}

/* Exact sums for 32 rows (sub-block s) and columns 4 mb .. 4 mb + 3: 16-bit sums of the
 * even bytes (lo) and odd bytes (hi) of the looked-up vectors. Each looked-up vector v
 * is added whole as 16-bit words (even byte + 256 odd byte, mod 2^16) and its odd bytes
 * v >> 8 separately: the sum of the even bytes is then the first minus 256 times the
 * second (exact below 2^16, so for C <= 257): 3 operations per vector instead of 4. */
AM_INLINE void sums256(const uint8_t *codes, int nsub, int s, const uint8_t *T, int C,
                       __m256i lo[4], __m256i hi[4])
{
    for (int j = 0; j < 4; j++)
        lo[j] = hi[j] = _mm256_setzero_si256();
    for (int c = 0; c < C; c++) {
        __m256i cv = _mm256_loadu_si256((const __m256i *)(codes + ((size_t)c * nsub + s) * 32));
        for (int j = 0; j < 4; j++) {
            __m256i t = _mm256_broadcastsi128_si256(
                _mm_loadu_si128((const __m128i *)(T + ((size_t)j * C + c) * 16)));
            __m256i v = _mm256_shuffle_epi8(t, cv);
            lo[j] = _mm256_add_epi16(lo[j], v);
            hi[j] = _mm256_add_epi16(hi[j], _mm256_srli_epi16(v, 8));
        }
    }
    for (int j = 0; j < 4; j++)
        lo[j] = _mm256_sub_epi16(lo[j], _mm256_slli_epi16(hi[j], 8));
}

/* Store 8 rows x 4 columns (int32 sums g[j], rows in lanes), dequantised. */
AM_INLINE void store256_rows8(const __m256i g[4], int out_f64, const float *s32, const float *o32,
                              const double *s64, const double *o64, char *dst, ptrdiff_t drs,
                              int nv, int full, __m128i cm32, __m256i cm64)
{
    if (!out_f64) {
        __m256 f[4];
        for (int j = 0; j < 4; j++)
            f[j] = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(g[j]), _mm256_set1_ps(s32[j])),
                                 _mm256_set1_ps(o32[j]));
        __m256d t0 = _mm256_castps_pd(_mm256_unpacklo_ps(f[0], f[1]));
        __m256d t1 = _mm256_castps_pd(_mm256_unpackhi_ps(f[0], f[1]));
        __m256d t2 = _mm256_castps_pd(_mm256_unpacklo_ps(f[2], f[3]));
        __m256d t3 = _mm256_castps_pd(_mm256_unpackhi_ps(f[2], f[3]));
        __m256 q[4];
        q[0] = _mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2));
        q[1] = _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2));
        q[2] = _mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3));
        q[3] = _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3));
        for (int i = 0; i < nv; i++) {
            __m128 v = i < 4 ? _mm256_castps256_ps128(q[i & 3]) : _mm256_extractf128_ps(q[i & 3], 1);
            if (full) /* masked stores are slow on AMD (microcoded) */
                _mm_storeu_ps((float *)(dst + i * drs), v);
            else
                _mm_maskstore_ps((float *)(dst + i * drs), cm32, v);
        }
    } else {
        for (int h = 0; h < 2; h++) {
            __m256d d[4];
            for (int j = 0; j < 4; j++) {
                __m128i part = h == 0 ? _mm256_castsi256_si128(g[j]) : _mm256_extracti128_si256(g[j], 1);
                d[j] = _mm256_add_pd(_mm256_mul_pd(_mm256_cvtepi32_pd(part), _mm256_set1_pd(s64[j])),
                                     _mm256_set1_pd(o64[j]));
            }
            __m256d t0 = _mm256_unpacklo_pd(d[0], d[1]); /* r0 m0 m1 | r2 m0 m1 */
            __m256d t1 = _mm256_unpackhi_pd(d[0], d[1]); /* r1 | r3 */
            __m256d t2 = _mm256_unpacklo_pd(d[2], d[3]);
            __m256d t3 = _mm256_unpackhi_pd(d[2], d[3]);
            __m256d rows[4];
            rows[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
            rows[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
            rows[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
            rows[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
            for (int i = 0; i < 4 && 4 * h + i < nv; i++) {
                if (full)
                    _mm256_storeu_pd((double *)(dst + (4 * h + i) * drs), rows[i]);
                else
                    _mm256_maskstore_pd((double *)(dst + (4 * h + i) * drs), cm64, rows[i]);
            }
        }
    }
}

_Static_assert(AVX2_STAGE_BYTES >= 32 * 16 * 8, "AVX2_STAGE_BYTES below one 32 x 16 stage");

/* Whether the table sums write through the staging buffer with non-temporal stores:
 * large outputs, columns adjacent, rows a multiple of 64 bytes. */
AM_INLINE int avx2_streams(const am_matrix *out, int M)
{
    return am_out_adjacent(out) && out->row_stride % 64 == 0 && am_out_large(out, M);
}

/* How the table sums of a block of nrows rows write:
 * STREAMED (avx2_streams): 16 columns (4 steps of 4) of 32 rows at a time into a
 *   staging buffer in L1, then copied out whole-line-wise with non-temporal stores where
 *   a row's 16 columns are a 64-byte aligned line (f32) or two (f64): no read for
 *   ownership of output lines written 16 bytes at a time.
 * STAGED: other large outputs whose rows are adjacent, when x is row-major (its read
 *   keeps memory busy): the block's rows go into the staging buffer as if it were the
 *   output, then are copied out as one run with non-temporal stores (see AVX2_STAGE_BYTES).
 * PLAIN: in place, 4 columns at a time; STRIDED: through a 8 x 4 tile. */
AM_INLINE am_write avx2_write(const am_call *k, ptrdiff_t nrows)
{
    const am_matrix *out = k->out;
    int M = k->lv->M;
    if (avx2_streams(out, M))
        return AM_WRITE_STREAMED;
    if (!am_flags_prepass(k->x) && nrows * (size_t)M * am_itemsize(out) <= AVX2_STAGE_BYTES &&
        am_out_dense(out, M) && am_out_large(out, M))
        return AM_WRITE_STAGED;
    return am_out_adjacent(out) ? AM_WRITE_PLAIN : AM_WRITE_STRIDED;
}

/* Scratch of a block: codes (C x rows), an 8 x 4 tile of doubles, enc_block256's copy of
 * 32 rows' split columns (doubles at most) and their offsets, the staging buffer. */
static size_t avx2_tmp_bytes(int C) { return (size_t)4 * C * 32 * 8 + (size_t)4 * C * sizeof(ptrdiff_t); }

static size_t avx2_scratch(int C, ptrdiff_t rows)
{
    return (size_t)rows * C + 256 + avx2_tmp_bytes(C) + AVX2_STAGE_BYTES + 64;
}

/* Table sums of a block's codes and their output, written as `w` says: always inlined
 * with w a constant (avx2_block's switch), so that each strategy gets its own loop. */
AM_INLINE void avx2_sums_write(const am_level *lv, am_matrix *out, ptrdiff_t r0, ptrdiff_t nrows,
                               const uint8_t *codes, char *tile, char *stage, am_pf *pf,
                               am_write w)
{
    int C = lv->C, M = lv->M;
    int nsub = (int)((nrows + 31) / 32);
    int nmb = (int)(am_mpad(M, 4) / 4);
    int item = out->is_f64 ? 8 : 4;
    ptrdiff_t ors = out->row_stride, ocs = out->col_stride;
    ptrdiff_t pf_per_step = (am_pf_left(pf) + (ptrdiff_t)nmb * nsub - 1) / ((ptrdiff_t)nmb * nsub);
    int group = w == AM_WRITE_STREAMED ? 4 : 1;
    ptrdiff_t drs = ors; /* row stride of the stores: PLAIN and STAGED as the output */
    if (w == AM_WRITE_STREAMED)
        drs = 16 * item; /* the 32 x 16 stage */
    else if (w == AM_WRITE_STRIDED)
        drs = 4 * item; /* the 8 x 4 tile */
    for (int mb0 = 0; mb0 < nmb; mb0 += group)
        for (int s = 0; s < nsub; s++) {
            int mb1 = mb0 + group < nmb ? mb0 + group : nmb;
            for (int mb = mb0; mb < mb1; mb++) {
                const uint8_t *T = lv->tables + (size_t)mb * 4 * C * 16;
                int m0 = 4 * mb, ncols = M - m0 < 4 ? M - m0 : 4;
                __m128i cm32 = _mm_cmpgt_epi32(_mm_set1_epi32(ncols), _mm_setr_epi32(0, 1, 2, 3));
                __m256i cm64 = _mm256_cvtepi32_epi64(cm32);
                __m256i lo[4], hi[4];
                am_pf_lines(pf, pf_per_step);
                sums256(codes, nsub, s, T, C, lo, hi);
                AM_PROFILE_INSTEAD_OF_STORE({ /* sums without dequantisation / stores */
                    __m256i f = _mm256_setzero_si256();
                    for (int j = 0; j < 4; j++)
                        f = _mm256_xor_si256(f, _mm256_xor_si256(lo[j], hi[j]));
                    *(volatile int *)tile = _mm256_extract_epi32(f, 0);
                    continue;
                })
                /* Rows 0-7 | 16-23 in A, rows 8-15 | 24-31 in B (16-bit). */
                __m256i A[4], B[4];
                for (int j = 0; j < 4; j++) {
                    A[j] = _mm256_unpacklo_epi16(lo[j], hi[j]);
                    B[j] = _mm256_unpackhi_epi16(lo[j], hi[j]);
                }
                for (int q = 0; q < 4; q++) {
                    ptrdiff_t row = 32 * s + 8 * q;
                    if (row >= nrows)
                        break;
                    int nv = nrows - row >= 8 ? 8 : (int)(nrows - row);
                    __m256i g[4];
                    for (int j = 0; j < 4; j++) {
                        __m256i src = (q & 1) ? B[j] : A[j];
                        __m128i part = q < 2 ? _mm256_castsi256_si128(src)
                                             : _mm256_extracti128_si256(src, 1);
                        g[j] = _mm256_cvtepu16_epi32(part);
                    }
                    char *d = tile; /* STRIDED */
                    if (w == AM_WRITE_STREAMED)
                        d = stage + (8 * q * 16 + 4 * (mb - mb0)) * item;
                    else if (w == AM_WRITE_STAGED)
                        d = stage + row * ors + (ptrdiff_t)m0 * item;
                    else if (w == AM_WRITE_PLAIN)
                        d = out->data + (r0 + row) * ors + (ptrdiff_t)m0 * item;
                    store256_rows8(g, out->is_f64, lv->scale32 + m0, lv->offset32 + m0,
                                   lv->scale64 + m0, lv->offset64 + m0, d, drs, nv, ncols == 4, cm32,
                                   cm64);
                    if (w == AM_WRITE_STRIDED)
                        am_copy_tile(tile, drs, nv, ncols, out->data + (r0 + row) * ors + m0 * ocs,
                                     ors, ocs, item);
                }
            }
            if (w == AM_WRITE_STREAMED) { /* copy out the 32 x 16 stage */
                int width = (M - 4 * mb0 < 16 ? M - 4 * mb0 : 16) * item;
                ptrdiff_t nv = nrows - 32 * s < 32 ? nrows - 32 * s : 32;
                for (ptrdiff_t i = 0; i < nv; i++)
                    am_stream_piece(out->data + (r0 + 32 * s + i) * ors + (ptrdiff_t)4 * mb0 * item,
                                    stage + i * 16 * item, width, width == 16 * item);
            }
        }
    if (w == AM_WRITE_STAGED)
        am_stream_copy(out->data + r0 * ors, stage, (size_t)nrows * ors);
    if (w == AM_WRITE_STREAMED || w == AM_WRITE_STAGED)
        _mm_sfence();
}

static int avx2_block(const am_call *k, ptrdiff_t r0, ptrdiff_t nrows, void *scratch)
{
    const am_level *lv = k->lv;
    const am_matrix *x = k->x;
    am_matrix *out = k->out;
    uint8_t *flags = am_block_flags(k, r0);
    int nsub = (int)((nrows + 31) / 32);
    uint8_t *codes = (uint8_t *)scratch;                     /* C * nsub * 32 */
    char *tile = (char *)scratch + (size_t)lv->C * nsub * 32; /* 8 x 4 doubles */
    char *tmp = tile + 256;                                   /* avx2_tmp_bytes(C) */
    char *stage = tmp + avx2_tmp_bytes(lv->C); /* 32 rows x 16 columns, or the block's rows */
    /* Row-major flags come from the encoder; F-order ones from the pre-pass. */
    am_pf pf; /* the table sums share the prefetch of the rows ahead when M is large */
    ptrdiff_t pf_per_row = am_pf_init(&pf, x, r0, nrows, lv->M >= AM_PF_SPLIT_MIN_M);
    enc_block256(lv, x, r0, nrows, codes, tmp, flags && !am_flags_prepass(x) ? flags : NULL, &pf,
                 pf_per_row);
    AM_PROFILE_AFTER_ENCODE(return 0;)
    switch (avx2_write(k, nrows)) {
    case AM_WRITE_PLAIN:
        avx2_sums_write(lv, out, r0, nrows, codes, tile, stage, &pf, AM_WRITE_PLAIN);
        break;
    case AM_WRITE_STRIDED:
        avx2_sums_write(lv, out, r0, nrows, codes, tile, stage, &pf, AM_WRITE_STRIDED);
        break;
    case AM_WRITE_STAGED:
        avx2_sums_write(lv, out, r0, nrows, codes, tile, stage, &pf, AM_WRITE_STAGED);
        break;
    case AM_WRITE_STREAMED:
        avx2_sums_write(lv, out, r0, nrows, codes, tile, stage, &pf, AM_WRITE_STREAMED);
        break;
    }
    if (flags)
        am_nan_rows(out, r0, nrows, flags);
    return 0;
}

/* The encoder alone: codes[n * C + c]. */
static int avx2_encode_block(const am_call *k, ptrdiff_t r0, ptrdiff_t nrows, void *scratch)
{
    int C = k->lv->C;
    int nsub = (int)((nrows + 31) / 32);
    uint8_t *codes = (uint8_t *)scratch;
    char *tmp = (char *)scratch + (size_t)C * nsub * 32 + 256;
    am_pf pf;
    ptrdiff_t pf_per_row = am_pf_init(&pf, k->x, r0, nrows, 0);
    enc_block256(k->lv, k->x, r0, nrows, codes, tmp, NULL, &pf, pf_per_row);
    for (ptrdiff_t i = 0; i < nrows; i++)
        for (int c = 0; c < C; c++)
            k->codes[(r0 + i) * C + c] = codes[((size_t)c * nsub + i / 32) * 32 + i % 32];
    return 0;
}

static int avx2_encode(const am_level_view *view, const am_matrix *x, uint8_t *codes, int nthreads)
{
    am_level lv = am_level_of(view);
    if (am_narrow_call(x, NULL))
        return am_narrow_run(&lv, x, NULL, codes, NULL, 64, avx2_scratch(lv.C, 64),
                             avx2_encode_block, nthreads);
    am_call k = {&lv, x, NULL, codes, NULL};
    return am_run_blocks(&k, 64, avx2_scratch(lv.C, 64), avx2_encode_block, nthreads);
}

static int avx2_product(const am_level_view *view, const am_matrix *x, am_matrix *out,
                        uint8_t *flags, int nthreads)
{
    am_level lv = am_level_of(view);
    /* Blocks of AM_BLOCK_ROWS_SMALL rows (in place, the rows being written stay in L1);
     * streamed outputs: am_block_rows (see am_tuning.h). */
    ptrdiff_t B = avx2_streams(out, lv.M) ? am_block_rows(lv.C, lv.M) : AM_BLOCK_ROWS_SMALL;
    if (am_narrow_call(x, out))
        return am_narrow_run(&lv, x, out, NULL, flags, B, avx2_scratch(lv.C, B), avx2_block,
                             nthreads);
    if (flags && am_flags_prepass(x) &&
        am_flags_prepass_run(&lv, x, flags, am_flags_block_generic, nthreads))
        return -1;
    am_call k = {&lv, x, out, NULL, flags};
    return am_run_blocks(&k, B, avx2_scratch(lv.C, B), avx2_block, nthreads);
}

const am_kernels am_kernels_avx2 = {
    .name = "avx2",
    .packed_bytes = avx2_packed_bytes,
    .pack = avx2_pack,
    .encode = avx2_encode,
    .product = avx2_product,
};
