/* AVX-512 kernels (BW, VL, DQ, VBMI, VNNI), compiled with their flags only; defines
 * am_kernels_avx512.
 *
 * Per block of rows (64 or 256 rows, one OpenMP task each): encode into 4-bit codes
 * (enc_block512), exact table sums, dequantise and write (am_output.h).
 *   Tiles: the tables of 4 codebooks for one output column form one 64-byte `vpermb`
 *   table; a code byte is `code | 16 * (c % 4)`, 4 codebooks of one row in one 32-bit
 *   lane, so `vpdpbusd` with ones sums the 4 looked-up bytes of each row exactly into 32
 *   bits: 64 lookups per vpermb + vpdpbusd pair. A tile of 16 rows x 16 output columns
 *   (16 accumulators, one code vector) is transposed in registers, then dequantised and
 *   stored one 64-byte output row at a time; tiles go across the row first when all
 *   tables fit in L2.
 *   Rows (AM_ROW_MIN_M <= M <= AM_ROW_MAX_M): sums along M: per row and codebook, the
 *   M-byte table row is added into u16 accumulators (exact for C <= 256), which gives
 *   row-major output with full 64-byte stores and no transpose; outputs >= 16 MiB are
 *   staged 16 rows at a time in L1 and written with non-temporal stores.
 * Encoding compares floats directly (float64 input against the widened float32
 * thresholds), with contiguous loads: from x when rows are adjacent in memory (F-order),
 * otherwise from a small column-major copy of the block's split columns; the node index
 * picks the level's thresholds by a permute (am_encode_avx512.h). Row flags:
 * am_flags_avx512.h.
 */
#include <immintrin.h>

#define AM_STREAM_LINE(dst, src) \
    _mm512_stream_si512((void *)(dst), _mm512_loadu_si512((const void *)(src)))
#define AM_COPY_LINE(dst, src) \
    _mm512_storeu_si512((void *)(dst), _mm512_loadu_si512((const void *)(src)))

#include "am_encode_avx512.h"
#include "am_flags_avx512.h"
#include "am_narrow.h"
#include "am_output.h"
#include "am_prefetch.h"
#include "am_profile.h"
#include "am_scalar.h"

/* Packed tables: [Mp16][G][64] bytes, entry k*16 + r = luts[4g + k, bitrev4(r), m]: the
 * encoder produces reversed codes r (decision of level l in bit l), which saves the
 * doubling of the node index on the encoder's critical path. */
/* Then, for the sums along M (avx512_row_path), row tables [Cp4 * 16][Mp64] bytes: row
 * 16 c + r = luts[c, bitrev4(r), :], zero padded, so that the code byte of the encoder,
 * r | 16 (c % 4), at group c / 4 selects row 64 (c / 4) + byte. */
typedef struct avx512_layout {
    am_layout common;
    size_t tiles;      /* offset of the vpermb tables */
    size_t rows;       /* offset of the row tables */
    size_t rows_bytes; /* their size (0 outside the row path) */
    size_t bytes;      /* the whole packed form */
} avx512_layout;

/* Sums along M (rows of the tables) in this range of M; otherwise tiles. */
AM_INLINE int avx512_row_path(int M) { return M >= AM_ROW_MIN_M && M <= AM_ROW_MAX_M; }

AM_INLINE avx512_layout avx512_layout_of(int C, int M)
{
    avx512_layout L;
    L.common = am_layout_of(C, M);
    L.tiles = L.common.tables;
    L.rows = L.tiles + am_mpad(M, 16) * am_mpad(C, 4) * 16;
    L.rows_bytes = avx512_row_path(M) ? am_mpad(C, 4) * 16 * am_mpad(M, 64) : 0;
    L.bytes = L.rows + L.rows_bytes;
    return L;
}

static size_t avx512_packed_bytes(int C, int M) { return avx512_layout_of(C, M).bytes; }

static void avx512_pack(const am_level_view *lv, uint8_t *dst)
{
    int C = lv->C, M = lv->M, G = (C + 3) / 4;
    size_t Mp = am_mpad(M, 64);
    avx512_layout L = avx512_layout_of(C, M);
    am_pack_common(lv, &L.common, dst);
    uint8_t *t = dst + L.tiles;
    uint8_t *rt = dst + L.rows;
    memset(t, 0, L.rows - L.tiles);
    int rows = avx512_row_path(M);
    memset(rt, 0, L.rows_bytes);
    for (int c = 0; c < C; c++)
        for (int k = 0; k < 16; k++) {
            const uint8_t *src = lv->luts + ((size_t)c * 16 + k) * M;
            for (int m = 0; m < M; m++)
                t[((size_t)m * G + c / 4) * 64 + (c % 4) * 16 + am_bitrev(k, 4)] = src[m];
            for (int m = 0; rows && m < M; m++) {
                rt[((size_t)c * 16 + am_bitrev(k, 4)) * Mp + m] = src[m];
            }
        }
}

/* Outputs per pass of the sums along M: 8 accumulators of 32 u16 (exact for C <= 256). */
#define AM_ROW_MT 256

/* acc[j] = exact sums over codebooks for rows 16 s + lane and column 16 t + j, j < NJ
 * (the others 0: a last tile of fewer columns sums only what it writes), where
 * T = tables + 16 t * G * 64 (the 64-byte table of column m, group g, is at
 * (m * G + g) * 64): one code vector serves 16 columns; tables are memory operands. */
AM_INLINE void sums512_tile(int NJ, const uint8_t *codes, int nsub, int s, const uint8_t *T,
                            int G, __m512i acc[16])
{
    const __m512i ones = _mm512_set1_epi8(1);
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++)
        acc[j] = _mm512_setzero_si512();
    for (int g = 0; g < G; g++) {
        __m512i cv = _mm512_loadu_si512((const void *)(codes + ((size_t)g * nsub + s) * 64));
        const uint8_t *Tg = T + (size_t)g * 64;
        size_t step = (size_t)G * 64;
#pragma GCC unroll 16
        for (int j = 0; j < NJ; j++) {
            acc[j] = _mm512_dpbusd_epi32(
                acc[j], _mm512_permutexvar_epi8(cv, _mm512_loadu_si512((const void *)Tg)), ones);
            Tg += step;
        }
    }
}

/* Dequantise a 16 x 16 tile (acc[j]: rows `row` + lane, column 16 t + j) and store
 * rows i < nv, columns < ncols (<= 16): transpose the exact sums first, then one
 * row-vector multiply and add per output row, with the per-column scale and offset
 * loaded as vectors; full 64-byte row stores when the output columns are adjacent
 * (AM_WRITE_STREAMED: non-temporal when the row piece is 64-byte aligned; the caller
 * fences), else through `tile` (AM_WRITE_STRIDED). */
AM_INLINE void emit512_tile(const am_level *lv, __m512i acc[16], am_matrix *out,
                            ptrdiff_t row, int nv, int t, char *tile, am_write w)
{
    int m0 = 16 * t, ncols = lv->M - m0 < 16 ? lv->M - m0 : 16;
    int item = out->is_f64 ? 8 : 4;
    char *dst = out->data + row * out->row_stride + (ptrdiff_t)m0 * out->col_stride;
    int direct = w != AM_WRITE_STRIDED;
    int stream = w == AM_WRITE_STREAMED;
    char *d = direct ? dst : tile;
    ptrdiff_t drs = direct ? out->row_stride : 16 * item;
    AM_PROFILE_INSTEAD_OF_STORE({ /* sums without transpose / stores */
        __m512i x = acc[0];
        for (int i = 1; i < 16; i++)
            x = _mm512_xor_si512(x, acc[i]);
        if (_mm512_reduce_add_epi32(x) == 0x12345)
            *(volatile char *)d = 0;
        return;
    })
    transpose16x16(acc);
    if (!out->is_f64) {
        const __m512 sc = _mm512_loadu_ps(lv->scale32 + m0), of = _mm512_loadu_ps(lv->offset32 + m0);
        __mmask16 cm = (__mmask16)((1u << ncols) - 1);
        for (int i = 0; i < nv; i++) {
            __m512 f = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc[i]), sc), of);
            if (ncols == 16 && stream && ((uintptr_t)(d + i * drs) & 63) == 0)
                _mm512_stream_ps((float *)(d + i * drs), f);
            else if (ncols == 16)
                _mm512_storeu_ps((float *)(d + i * drs), f);
            else
                _mm512_mask_storeu_ps((float *)(d + i * drs), cm, f);
        }
    } else {
        const double *s64 = lv->scale64 + m0, *o64 = lv->offset64 + m0;
        const __m512d s0 = _mm512_loadu_pd(s64), s1 = _mm512_loadu_pd(s64 + 8);
        const __m512d o0 = _mm512_loadu_pd(o64), o1 = _mm512_loadu_pd(o64 + 8);
        __mmask8 c0 = (__mmask8)(ncols >= 8 ? 0xFF : (1u << ncols) - 1);
        __mmask8 c1 = (__mmask8)(ncols >= 16 ? 0xFF : ncols > 8 ? (1u << (ncols - 8)) - 1 : 0);
        for (int i = 0; i < nv; i++) {
            __m512d f0 = _mm512_add_pd(
                _mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(acc[i])), s0), o0);
            __m512d f1 = _mm512_add_pd(
                _mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(acc[i], 1)), s1), o1);
            double *o = (double *)(d + i * drs);
            if (stream && c1 == 0xFF && ((uintptr_t)o & 63) == 0) {
                _mm512_stream_pd(o, f0);
                _mm512_stream_pd(o + 8, f1);
                continue;
            }
            _mm512_mask_storeu_pd(o, c0, f0);
            if (c1)
                _mm512_mask_storeu_pd(o + 8, c1, f1);
        }
    }
    if (!direct)
        am_copy_tile(tile, drs, nv, ncols, dst, out->row_stride, out->col_stride, item);
}

/* acc[i] (32 u16 lanes) = exact sums over codebooks of the table row bytes
 * T[row(c)][32 i .. 32 i + 31] of row n of the block, for i < 2 NB; T already offset to
 * the tile, rows Mp (a multiple of 64) bytes apart.
 *
 * No byte is widened in the loop (vpmovzxbw is a 512-bit shuffle, two cycles each on
 * Zen 4). Each 64-byte chunk v of a table row is added as 32 u16 words, lo + 256 hi,
 * into A (mod 2^16), and its high bytes v >> 8 into H. H is exact (at most 255 C), and
 * so is A - 256 H = sum of the low bytes (mod 2^16, below 2^16 for C <= 257). One
 * vpermt2w per 32 outputs then puts the even (low) and odd (high) columns in order. */
AM_INLINE void rowsums512(int NB, const uint8_t *codes, int nsub, int G, ptrdiff_t n,
                          const uint8_t *T, size_t Mp, __m512i acc[8])
{
    __m512i A[4], H[4];
    for (int b = 0; b < NB; b++)
        A[b] = H[b] = _mm512_setzero_si512();
    const uint8_t *cb = codes + (size_t)(n >> 4) * 64 + (size_t)(n & 15) * 4;
    for (int g = 0; g < G; g++) {
        uint32_t w;
        memcpy(&w, cb + (size_t)g * nsub * 64, 4);
        const uint8_t *Tg = T + (size_t)g * 64 * Mp;
        for (int k = 0; k < 4; k++) {
            const uint8_t *p = Tg + (size_t)((w >> (8 * k)) & 0xFF) * Mp;
            for (int b = 0; b < NB; b++) {
                __m512i v = _mm512_loadu_si512((const void *)(p + 64 * b));
                A[b] = _mm512_add_epi16(A[b], v);
                H[b] = _mm512_add_epi16(H[b], _mm512_srli_epi16(v, 8));
            }
        }
    }
    /* word m of the result: column m of the chunk, from L (m even) or H (m odd) */
    const __m512i lo_idx = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
                                            39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    const __m512i hi_idx = _mm512_add_epi16(lo_idx, _mm512_set1_epi16(16));
    for (int b = 0; b < NB; b++) {
        __m512i L = _mm512_sub_epi16(A[b], _mm512_slli_epi16(H[b], 8));
        acc[2 * b] = _mm512_permutex2var_epi16(L, lo_idx, H[b]);
        acc[2 * b + 1] = _mm512_permutex2var_epi16(L, hi_idx, H[b]);
    }
}

/* Dequantise outputs m0 .. m0 + ncols of one row from the u16 sums and store them at
 * orow (m0 included), column stride ocs; via `tile` when the columns are not adjacent. */
AM_INLINE void rowstore512(int NA, const __m512i acc[8], const am_level *lv, int m0,
                           int ncols, char *orow, ptrdiff_t ocs, int out_f64, char *tile)
{
    int item = out_f64 ? 8 : 4;
    int direct = ocs == item;
    char *dst = direct ? orow : tile;
    AM_PROFILE_INSTEAD_OF_STORE({ /* sums without dequantisation / stores */
        __m512i t = acc[0];
        for (int i = 1; i < NA; i++)
            t = _mm512_xor_si512(t, acc[i]);
        if (_mm512_reduce_add_epi32(t) == 0x12345)
            *(volatile char *)dst = 0;
        return;
    })
    if (!out_f64) {
        const float *sc = lv->scale32 + m0, *of = lv->offset32 + m0;
        for (int i = 0; i < NA; i++)
            for (int h = 0; h < 2; h++) {
                int j0 = 32 * i + 16 * h;
                if (j0 >= ncols)
                    break;
                __m256i part = h ? _mm512_extracti64x4_epi64(acc[i], 1) : _mm512_castsi512_si256(acc[i]);
                __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(part));
                f = _mm512_add_ps(_mm512_mul_ps(f, _mm512_loadu_ps(sc + j0)), _mm512_loadu_ps(of + j0));
                if (j0 + 16 <= ncols)
                    _mm512_storeu_ps((float *)dst + j0, f);
                else
                    _mm512_mask_storeu_ps((float *)dst + j0, (__mmask16)((1u << (ncols - j0)) - 1), f);
            }
    } else {
        const double *sc = lv->scale64 + m0, *of = lv->offset64 + m0;
        for (int i = 0; i < NA; i++)
            for (int q = 0; q < 4; q++) {
                int j0 = 32 * i + 8 * q;
                if (j0 >= ncols)
                    break;
                __m256i part = (q >> 1) ? _mm512_extracti64x4_epi64(acc[i], 1) : _mm512_castsi512_si256(acc[i]);
                __m128i part8 = (q & 1) ? _mm256_extracti128_si256(part, 1) : _mm256_castsi256_si128(part);
                __m512d f = _mm512_cvtepi32_pd(_mm256_cvtepu16_epi32(part8));
                f = _mm512_add_pd(_mm512_mul_pd(f, _mm512_loadu_pd(sc + j0)), _mm512_loadu_pd(of + j0));
                if (j0 + 8 <= ncols)
                    _mm512_storeu_pd((double *)dst + j0, f);
                else
                    _mm512_mask_storeu_pd((double *)dst + j0, (__mmask8)((1u << (ncols - j0)) - 1), f);
            }
    }
    if (!direct)
        am_copy_tile(tile, 0, 1, ncols, orow, 0, ocs, item);
}

/* Sums and store of row n's output piece of ncols <= AM_ROW_MT outputs from m0 on, NA =
 * its 32-output chunks (1 .. 8): the switch gives rowsums512 / rowstore512 their chunk
 * count as a constant. A macro, so that each loop keeps its own constants. */
#define AVX512_ROWPIECE(NA, n, T, m0, ncols, orow, ocs)                                        \
    do {                                                                                       \
        __m512i acc_[8];                                                                       \
        switch (NA) {                                                                          \
            AVX512_ROWCASE(1, n, T, m0, ncols, orow, ocs)                                      \
            AVX512_ROWCASE(2, n, T, m0, ncols, orow, ocs)                                      \
            AVX512_ROWCASE(3, n, T, m0, ncols, orow, ocs)                                      \
            AVX512_ROWCASE(4, n, T, m0, ncols, orow, ocs)                                      \
            AVX512_ROWCASE(5, n, T, m0, ncols, orow, ocs)                                      \
            AVX512_ROWCASE(6, n, T, m0, ncols, orow, ocs)                                      \
            AVX512_ROWCASE(7, n, T, m0, ncols, orow, ocs)                                      \
            AVX512_ROWCASE(8, n, T, m0, ncols, orow, ocs)                                      \
        }                                                                                      \
    } while (0)
#define AVX512_ROWCASE(K, n, T, m0, ncols, orow, ocs)                                          \
    case K:                                                                                    \
        rowsums512((K + 1) / 2, codes, nsub, G, n, T, Mp, acc_);                               \
        rowstore512(K, acc_, lv, m0, ncols, orow, ocs, out->is_f64, tile);                     \
        break;

/* How the sums along M write: large outputs, one piece per row, rows adjacent: staged
 * 16 rows at a time in L1, then copied with non-temporal 64-byte stores (no read for
 * ownership of the output lines, which would double the write traffic). */
AM_INLINE am_write avx512_row_write(const am_matrix *out, int M)
{
    if (M <= AM_ROW_MT && am_out_dense(out, M) && am_out_large(out, M))
        return AM_WRITE_STAGED;
    return am_out_adjacent(out) ? AM_WRITE_PLAIN : AM_WRITE_STRIDED;
}

/* How the tiles write: outputs of AM_TILE_STREAM_MIN_BYTES or more get non-temporal
 * stores for full, 64-byte aligned tile rows (no read for ownership of lines that are
 * written whole). */
AM_INLINE am_write avx512_tile_write(const am_matrix *out, int M)
{
    if (!am_out_adjacent(out))
        return AM_WRITE_STRIDED;
    double bytes = (double)out->rows * M * am_itemsize(out);
    return bytes >= AM_TILE_STREAM_MIN_BYTES ? AM_WRITE_STREAMED : AM_WRITE_PLAIN;
}

/* Sums along M for rows [r0, r0 + nrows) of the block (codes from enc_block512). */
static void rowpath512(const am_level *lv, const uint8_t *codes, int nsub, am_matrix *out,
                       ptrdiff_t r0, ptrdiff_t nrows, char *tile, am_pf *pf)
{
    ptrdiff_t pf_per_row = (am_pf_left(pf) + nrows - 1) / nrows;
    int M = lv->M, G = (lv->C + 3) / 4;
    size_t Mp = am_mpad(M, 64);
    const uint8_t *T = lv->packed + avx512_layout_of(lv->C, M).rows;
    int item = out->is_f64 ? 8 : 4;
    if (avx512_row_write(out, M) == AM_WRITE_STAGED) {
        char *stage = tile + 8 * AM_ROW_MT;
        int NA = (M + 31) / 32;
        for (ptrdiff_t n0 = 0; n0 < nrows; n0 += 16) {
            int nr = nrows - n0 < 16 ? (int)(nrows - n0) : 16;
            for (int i = 0; i < nr; i++) {
                char *orow = stage + (size_t)i * M * item;
                am_pf_lines(pf, pf_per_row);
                AVX512_ROWPIECE(NA, n0 + i, T, 0, M, orow, item);
            }
            am_stream_copy(out->data + (r0 + n0) * out->row_stride, stage, (size_t)nr * M * item);
        }
        _mm_sfence();
        return;
    }
    for (int m0 = 0; m0 < M; m0 += AM_ROW_MT) {
        int ncols = M - m0 < AM_ROW_MT ? M - m0 : AM_ROW_MT;
        int NA = (ncols + 31) / 32;
        const uint8_t *Tt = T + m0;
        for (ptrdiff_t n = 0; n < nrows; n++) {
            char *orow = out->data + (r0 + n) * out->row_stride + (ptrdiff_t)m0 * out->col_stride;
            am_pf_lines(pf, pf_per_row);
            AVX512_ROWPIECE(NA, n, Tt, m0, ncols, orow, out->col_stride);
        }
    }
}

/* 16 x 16 tiles of vpermb / vpdpbusd sums for rows [r0, r0 + nrows) of the block. */
static void tilepath512(const am_level *lv, const uint8_t *codes, int nsub, am_matrix *out,
                        ptrdiff_t r0, ptrdiff_t nrows, char *tile)
{
    int G = (lv->C + 3) / 4;
    int ntiles = (int)(am_mpad(lv->M, 16) / 16);
    size_t tile_bytes = (size_t)16 * G * 64;
    /* Tables that stay in L2: 16 rows at a time across every output column (each
     * output row written left to right); larger ones: one 16-column tile at a time down
     * the whole block (its tables stay in L1). */
    int rows_first = (size_t)ntiles * tile_bytes <= AM_TILE_ROWS_FIRST_BYTES;
    am_write w = avx512_tile_write(out, lv->M);
    int nouter = rows_first ? nsub : ntiles, ninner = rows_first ? ntiles : nsub;
    for (int a = 0; a < nouter; a++)
        for (int b = 0; b < ninner; b++) {
            int s = rows_first ? a : b, t = rows_first ? b : a;
            __m512i acc[16];
            const uint8_t *T = lv->tables + (size_t)t * tile_bytes;
            int ncols = lv->M - 16 * t; /* a constant column count for each case */
            if (ncols >= 16 || ncols > 8)
                sums512_tile(16, codes, nsub, s, T, G, acc);
            else if (ncols > 4)
                sums512_tile(8, codes, nsub, s, T, G, acc);
            else if (ncols > 2)
                sums512_tile(4, codes, nsub, s, T, G, acc);
            else if (ncols == 2)
                sums512_tile(2, codes, nsub, s, T, G, acc);
            else
                sums512_tile(1, codes, nsub, s, T, G, acc);
            ptrdiff_t row = 16 * s;
            int nv = nrows - row >= 16 ? 16 : (int)(nrows - row);
            emit512_tile(lv, acc, out, r0 + row, nv, t, tile, w);
        }
    if (w == AM_WRITE_STREAMED)
        _mm_sfence();
}

/* Scratch of a block: codes (rows x Cp4 bytes), the tile or a row's outputs (256
 * doubles), the row path's staging buffer (16 rows x 256 doubles), the encoder's copy
 * of 16 rows' split columns (4 C x 16 doubles) and their offsets. */
#define AVX512_TILE(s, rows, C) \
    ((char *)(s) + (size_t)(((rows) + 15) / 16) * (size_t)(((C) + 3) / 4) * 64)
#define AVX512_TMP(tile) ((tile) + 8 * AM_ROW_MT + 16 * 8 * AM_ROW_MT)

static size_t avx512_scratch(int C, ptrdiff_t rows)
{
    return (size_t)rows * am_mpad(C, 4) + 8 * AM_ROW_MT + 16 * 8 * AM_ROW_MT +
           4 * (size_t)C * 16 * 8 + 4 * (size_t)C * sizeof(ptrdiff_t) + 64;
}

static int avx512_block(const am_call *k, ptrdiff_t r0, ptrdiff_t nrows, void *scratch)
{
    const am_level *lv = k->lv;
    am_matrix *out = k->out;
    uint8_t *flags = am_block_flags(k, r0);
    int nsub = (int)((nrows + 15) / 16);
    uint8_t *codes = (uint8_t *)scratch;
    char *tile = AVX512_TILE(scratch, nrows, lv->C);
    am_pf pf; /* the sums along M share the prefetch of the rows ahead */
    int rows = avx512_row_path(lv->M);
    ptrdiff_t pf_per_row = am_pf_init(&pf, k->x, r0, nrows, rows);
    enc_block512(lv, k->x, r0, nrows, codes, AVX512_TMP(tile), flags, &pf, pf_per_row);
    AM_PROFILE_AFTER_ENCODE(return 0;)
    if (rows)
        rowpath512(lv, codes, nsub, out, r0, nrows, tile, &pf);
    else
        tilepath512(lv, codes, nsub, out, r0, nrows, tile);
    if (flags)
        am_nan_rows(out, r0, nrows, flags);
    return 0;
}

/* The encoder alone: codes[n * C + c] in code order (the encoder's are bit-reversed). */
static int avx512_encode_block(const am_call *k, ptrdiff_t r0, ptrdiff_t nrows, void *scratch)
{
    int C = k->lv->C;
    int nsub = (int)((nrows + 15) / 16);
    uint8_t *codes = (uint8_t *)scratch;
    am_pf pf;
    ptrdiff_t pf_per_row = am_pf_init(&pf, k->x, r0, nrows, 0);
    enc_block512(k->lv, k->x, r0, nrows, codes, AVX512_TMP(AVX512_TILE(scratch, nrows, C)), NULL,
                 &pf, pf_per_row);
    for (ptrdiff_t i = 0; i < nrows; i++)
        for (int c = 0; c < C; c++)
            k->codes[(r0 + i) * C + c] = (uint8_t)am_bitrev(
                codes[((size_t)(c / 4) * nsub + i / 16) * 64 + (i % 16) * 4 + c % 4] & 15, 4);
    return 0;
}

static int avx512_encode(const am_level_view *view, const am_matrix *x, uint8_t *codes,
                         int nthreads)
{
    am_level lv = am_level_of(view);
    if (am_narrow_call(x, NULL))
        return am_narrow_run(&lv, x, NULL, codes, NULL, 64, avx512_scratch(lv.C, 64),
                             avx512_encode_block, nthreads);
    am_call k = {&lv, x, NULL, codes, NULL};
    return am_run_blocks(&k, 64, avx512_scratch(lv.C, 64), avx512_encode_block, nthreads);
}

static int avx512_product(const am_level_view *view, const am_matrix *x, am_matrix *out,
                          uint8_t *flags, int nthreads)
{
    am_level lv = am_level_of(view);
    ptrdiff_t B = am_block_rows(lv.C, lv.M);
    if (am_narrow_call(x, out))
        return am_narrow_run(&lv, x, out, NULL, flags, B, avx512_scratch(lv.C, B), avx512_block,
                             nthreads);
    if (flags && am_flags_prepass(x) && am_flags_prepass_run(&lv, x, flags, flags512_block, nthreads))
        return -1;
    am_call k = {&lv, x, out, NULL, flags};
    return am_run_blocks(&k, B, avx512_scratch(lv.C, B), avx512_block, nthreads);
}

const am_kernels am_kernels_avx512 = {
    .name = "avx512",
    .packed_bytes = avx512_packed_bytes,
    .pack = avx512_pack,
    .encode = avx512_encode,
    .product = avx512_product,
};
