/* Kernels, compiled once per instruction set (AM_VARIANT = portable, avx2, avx512).
 *
 * The call path, per block of rows (64 or 256 rows, one OpenMP task each):
 *   1. encode the block into 4-bit codes, laid out for the variant's table-sum loop;
 *   2. exact table sums, 4 output columns at a time;
 *   3. dequantise (T(acc) * T(scale) + T(offset), two roundings) and write straight into
 *      the caller's row-major (N, M) output, float32 or float64.
 *
 * portable  one row at a time: scalar encode, sums along M (the compiler vectorises).
 * avx2      codes of 32 rows of one codebook per vector; `vpshufb` with the 16-entry
 *           table of (codebook, column) broadcast to both lanes; exact 16-bit sums of
 *           the even and odd bytes (`and` / `srl` + `vpaddw`).
 * avx512    (VBMI + VNNI) the tables of 4 codebooks for one output column form one
 *           64-byte `vpermb` table; a code byte is `code | 16 * (c % 4)`, 4 codebooks of
 *           one row in one 32-bit lane, so `vpdpbusd` with ones sums the 4 looked-up bytes
 *           of each row exactly into 32 bits: 64 lookups per vpermb + vpdpbusd pair.
 *           A tile of 16 rows x 16 output columns (16 accumulators, one code vector) is
 *           transposed in registers, then dequantised and stored one 64-byte output row
 *           at a time; tiles go across the row first when all tables fit in L2.
 *           For 48 <= M <= 256 the avx512 variant instead sums along M: per row and
 *           codebook, the M-byte table row is zero-extended (vpmovzxbw) and added into
 *           u16 accumulators (exact for C <= 256), which gives row-major output with
 *           full 64-byte stores and no transpose; outputs >= 16 MiB are staged 16 rows
 *           at a time in L1 and written with non-temporal stores.
 * Encoding compares floats directly (float64 input against the widened float32
 * thresholds), with contiguous loads: from x when rows are adjacent in memory (F-order),
 * otherwise from a small column-major copy of the block's split columns (byte offsets
 * computed once per block); the node index picks the level's thresholds by a permute.
 *
 * Row flags (product with flags != NULL): row-major input is scanned for NaN / inf row
 * by row, fused with the copy of its split columns (fma(x, 0, acc) per 64 bytes, while
 * the row is in L1, with a software prefetch 16 rows ahead); F-order input gets a
 * separate streaming pass over X in memory order (column runs folded into register
 * accumulators; only a run that holds a NaN / inf is re-read row by row). Out-of-range
 * checks compare the copied / contiguous split columns with the per-column intersection
 * of the calibration ranges. Rows with bit 0 get NaN written over their output row.
 */
#include "am_common.h"

#ifndef AM_VARIANT
#error "compile with -DAM_VARIANT=<portable|avx2|avx512>"
#endif

#define AM_STR_(x) #x
#define AM_STR(x) AM_STR_(x)

#if defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VBMI__) && \
    defined(__AVX512VNNI__) && defined(__AVX512DQ__)
#define AM_ISA 2
#define AM_VECTOR_BYTES 64
#elif defined(__AVX2__) && defined(__FMA__)
#define AM_ISA 1
#define AM_VECTOR_BYTES 32
#else
#define AM_ISA 0
#define AM_VECTOR_BYTES 16
#endif

#if AM_ISA > 0
#include <immintrin.h>

/* Copy len bytes from src (in cache) to dst with non-temporal stores for the whole,
 * 64-byte aligned lines of dst and plain copies for the partial lines at both ends (no
 * read for ownership of the lines written whole); the caller fences. */
AM_INLINE void am_stream_copy(char *dst, const char *src, size_t len)
{
    size_t head = (size_t)((64 - ((uintptr_t)dst & 63)) & 63);
    if (head > len)
        head = len;
    memcpy(dst, src, head);
    size_t o = head;
    for (; o + 64 <= len; o += 64) {
#if AM_ISA == 2
        _mm512_stream_si512((void *)(dst + o), _mm512_loadu_si512((const void *)(src + o)));
#else
        _mm256_stream_si256((__m256i *)(dst + o), _mm256_loadu_si256((const __m256i *)(src + o)));
        _mm256_stream_si256((__m256i *)(dst + o + 32),
                            _mm256_loadu_si256((const __m256i *)(src + o + 32)));
#endif
    }
    memcpy(dst + o, src + o, len - o);
}
#endif

#ifndef AM_BLOCK_ROWS_SMALL
#define AM_BLOCK_ROWS_SMALL 64
#endif
#ifndef AM_BLOCK_ROWS_LARGE
#define AM_BLOCK_ROWS_LARGE 256
#endif

/* Outputs of at least this many bytes are written with non-temporal stores (they do not
 * fit in the caches anyway). */
#ifndef AM_STREAM_MIN_BYTES
#define AM_STREAM_MIN_BYTES (16.0 * 1024 * 1024)
#endif

/* Rows per block: more rows when the tables are large, so that each pass over the
 * tables serves more rows. A multiple of 64. */
#if defined(__GNUC__)
__attribute__((unused))
#endif
static ptrdiff_t am_block_rows(int C, int M)
{
    size_t table = am_mpad(C, 4) * 16 * am_mpad(M, 4);
    return table > 32768 ? AM_BLOCK_ROWS_LARGE : AM_BLOCK_ROWS_SMALL;
}

/* =================================================================================
 * Portable: one row at a time.
 * ================================================================================= */
#if defined(__GNUC__)
__attribute__((unused))
#endif
static int portable_block(const am_level_view *lv, const am_matrix *x, am_matrix *out,
                          uint8_t *codes_out, uint8_t *flags, ptrdiff_t r0, ptrdiff_t nrows,
                          void *scratch)
{
    uint32_t *acc = (uint32_t *)scratch;
    uint8_t *codes = (uint8_t *)(acc + am_mpad(lv->M, 16));
    for (ptrdiff_t i = 0; i < nrows; i++) {
        const char *row = x->data + (r0 + i) * x->row_stride;
        if (codes_out) {
            am_encode_row(lv, row, x->col_stride, x->is_f64, codes_out + (r0 + i) * lv->C);
            continue;
        }
        am_encode_row(lv, row, x->col_stride, x->is_f64, codes);
        am_sums_row(lv, codes, acc);
        am_dequant_row(lv, acc, 0, lv->M, out->data + (r0 + i) * out->row_stride,
                       out->col_stride, out->is_f64);
    }
    if (flags && !codes_out) {
        if (!am_flags_prepass(x))
            am_flags_generic(lv, x, r0, nrows, flags);
        am_nan_rows(out, r0, nrows, flags);
    }
    return 0;
}

#if defined(__GNUC__)
__attribute__((unused))
#endif
static size_t portable_scratch(int C, int M) { return 4 * am_mpad(M, 16) + (size_t)C + 64; }

#if AM_ISA == 0
static size_t v_packed_bytes(int C, int M) { return am_tables_offset(C, M); }
static void v_pack(const am_level_view *lv, uint8_t *dst) { am_pack_common(lv, dst); }

static int v_encode(const am_level_view *lv, const am_matrix *x, uint8_t *codes, int nthreads)
{
    return am_run_blocks(lv, x, NULL, codes, NULL, 64, portable_scratch(lv->C, lv->M),
                         portable_block, nthreads);
}

static int v_product(const am_level_view *lv, const am_matrix *x, am_matrix *out, uint8_t *flags,
                     int nthreads)
{
    if (flags && am_flags_prepass(x) &&
        am_run_blocks(lv, x, NULL, NULL, flags, am_flags_rows(x->rows, nthreads), 64,
                      am_flags_block_generic,
                      nthreads))
        return -1;
    return am_run_blocks(lv, x, out, NULL, flags, 64, portable_scratch(lv->C, lv->M),
                         portable_block, nthreads);
}
#endif

/* =================================================================================
 * AVX-512 (BW, VL, DQ, VBMI, VNNI)
 * ================================================================================= */
#if AM_ISA == 2

/* Packed tables: [Mp16][G][64] bytes, entry k*16 + r = luts[4g + k, bitrev4(r), m]: the
 * encoder produces reversed codes r (decision of level l in bit l), which saves the
 * doubling of the node index on the encoder's critical path. */
/* Then, for the sums along M (am_row_path), row tables [Cp4 * 16][Mp32] bytes: row
 * 16 c + r = luts[c, bitrev4(r), :], zero padded, so that the code byte of the encoder,
 * r | 16 (c % 4), at group c / 4 selects row 64 (c / 4) + byte. */
static size_t v_row_tables_offset(int C, int M)
{
    return am_tables_offset(C, M) + am_mpad(M, 16) * am_mpad(C, 4) * 16;
}

/* Sums along M (rows of the tables) for AM_ROW_MIN_M <= M <= AM_ROW_MAX_M; otherwise
 * 16 x 16 tiles of vpermb / vpdpbusd sums and a transpose. Measured on
 * Zen 4 (docs/performance-kernels.md): the row path wins at M ~ 64-256, loses at M <= 32
 * (padding to 32 outputs, per-row overhead) and at M >= 512 (table rows leave L1/L2). */
#ifndef AM_ROW_MIN_M
#define AM_ROW_MIN_M 48
#endif
#ifndef AM_ROW_MAX_M
#define AM_ROW_MAX_M 256
#endif
AM_INLINE int v_row_path(int M) { return M >= AM_ROW_MIN_M && M <= AM_ROW_MAX_M; }

static size_t v_row_tables_bytes(int C, int M)
{
    return v_row_path(M) ? am_mpad(C, 4) * 16 * am_mpad(M, 64) : 0;
}

static size_t v_packed_bytes(int C, int M)
{
    return v_row_tables_offset(C, M) + v_row_tables_bytes(C, M);
}

static void v_pack(const am_level_view *lv, uint8_t *dst)
{
    int C = lv->C, M = lv->M, G = (C + 3) / 4;
    size_t Mp = am_mpad(M, 64);
    am_pack_common(lv, dst);
    uint8_t *t = dst + am_tables_offset(C, M);
    uint8_t *rt = dst + v_row_tables_offset(C, M);
    memset(t, 0, am_mpad(M, 16) * am_mpad(C, 4) * 16);
    int rows = v_row_path(M);
    memset(rt, 0, v_row_tables_bytes(C, M));
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

/* The vpermb path walks 16 rows across every output column when its tables (Mp16 x G x
 * 64 bytes) take at most this many bytes (they then stay in L2), else one 16-column tile
 * down the whole row block. */
#ifndef AM_TILE_ROWS_FIRST_BYTES
#define AM_TILE_ROWS_FIRST_BYTES (512 * 1024)
#endif

/* Outputs per pass of the sums along M: 8 accumulators of 32 u16 (exact for C <= 256). */
#define AM_ROW_MT 256

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
AM_INLINE __mmask16 outside16(const am_level_view *lv, const char *tmp, int is_f64, __mmask16 vm)
{
    ptrdiff_t jstride = 16 * (is_f64 ? 8 : 4);
    const int32_t *cols = am_cols(lv);
    int u = cols[0];
    __mmask16 bad = 0;
    if (!is_f64) {
        const float *lo = am_lo32(lv), *hi = am_hi32(lv);
        for (int j = 0; j < u; j++) {
            const char *col = tmp + j * jstride;
            __m512 v = _mm512_maskz_loadu_ps(vm, col);
            bad |= _mm512_cmp_ps_mask(v, _mm512_set1_ps(lo[j]), _CMP_LT_OQ) |
                   _mm512_cmp_ps_mask(v, _mm512_set1_ps(hi[j]), _CMP_GT_OQ);
        }
        return bad & vm;
    }
    const double *lo = am_lo64(lv), *hi = am_hi64(lv);
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
static int flags512_block(const am_level_view *lv, const am_matrix *x, am_matrix *out,
                          uint8_t *codes_out, uint8_t *flags, ptrdiff_t r0, ptrdiff_t nrows,
                          void *scratch)
{
    (void)out; (void)codes_out; (void)scratch;
    ptrdiff_t D = x->cols, cs = x->col_stride, item = x->is_f64 ? 8 : 4;
    const char *xb = x->data + r0 * item;
    int ranges = am_has_ranges(lv);
    const int32_t *list = am_cols(lv) + 1;
    int u = ranges ? am_cols(lv)[0] : 0, j = 0;
    int per = x->is_f64 ? 8 : 16;
    memset(flags, 0, (size_t)nrows);
    for (ptrdiff_t d = 0; d < D; d++) {
        const char *col = xb + d * cs;
        int bad;
        if (j < u && list[j] == d) {
            double lo = x->is_f64 ? am_lo64(lv)[j] : am_lo32(lv)[j];
            double hi = x->is_f64 ? am_hi64(lv)[j] : am_hi32(lv)[j];
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

/* Encode rows [r0, r0 + nrows) into codes[(g * nsub + s) * 64 + r * 4 + k] =
 * rev(code(row 16 s + r, codebook 4 g + k)) | 16 k. F-order rows (adjacent in memory)
 * are read in place with contiguous loads; otherwise the split columns of each 16 rows
 * are first copied, in address order, into a small column-major buffer `tmp`. */
static void enc_block512(const am_level_view *lv, const am_matrix *x, ptrdiff_t r0,
                         ptrdiff_t nrows, uint8_t *codes, char *tmp, uint8_t *flags, am_pf *pf,
                         ptrdiff_t pf_per_row)
{
    int C = lv->C, G = (C + 3) / 4;
    int nsub = (int)((nrows + 15) / 16);
    ptrdiff_t item = x->is_f64 ? 8 : 4;
    ptrdiff_t rs = x->row_stride, cs = x->col_stride;
    const char *xb = x->data + r0 * rs;
    int contig = rs == item;
    const int32_t *sdx = contig ? lv->split_dims : am_cols(lv) + 1 + 4 * C;
    ptrdiff_t ecs = contig ? cs : 16 * item;
    const double *thr64 = am_thr64(lv);
    const float *thr32r = am_thr32r(lv);
    int ranges = am_has_ranges(lv);
    /* Byte offsets of the distinct split columns in a row (after tmp in the scratch). */
    ptrdiff_t *offs = (ptrdiff_t *)(tmp + (size_t)4 * C * 16 * 8);
    int u = contig ? 0 : am_split_offsets(lv, cs, offs);
    int pf_cols = am_prefetch_split(x);
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
            for (int r = 0; r < nv; r++) {
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

/* acc[j] = exact sums over codebooks for rows 16 s + lane and column 16 t + j, where
 * T = tables + 16 t * G * 64 (the 64-byte table of column m, group g, is at
 * (m * G + g) * 64): one code vector serves 16 columns; tables are memory operands. */
AM_INLINE void sums512_tile(const uint8_t *codes, int nsub, int s, const uint8_t *T, int G,
                            __m512i acc[16])
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
        for (int j = 0; j < 16; j++) {
            acc[j] = _mm512_dpbusd_epi32(
                acc[j], _mm512_permutexvar_epi8(cv, _mm512_loadu_si512((const void *)Tg)), ones);
            Tg += step;
        }
    }
}

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

/* Dequantise a 16 x 16 tile (acc[j]: rows `row` + lane, column 16 t + j) and store
 * rows i < nv, columns < ncols (<= 16): transpose the exact sums first, then one
 * row-vector multiply and add per output row, with the per-column scale and offset
 * loaded as vectors; full 64-byte row stores when the output columns are adjacent
 * (non-temporal when `stream` and the row piece is 64-byte aligned; the caller fences). */
AM_INLINE void emit512_tile(const am_level_view *lv, __m512i acc[16], am_matrix *out,
                            ptrdiff_t row, int nv, int t, char *tile, int stream)
{
    int m0 = 16 * t, ncols = lv->M - m0 < 16 ? lv->M - m0 : 16;
    int item = out->is_f64 ? 8 : 4;
    char *dst = out->data + row * out->row_stride + (ptrdiff_t)m0 * out->col_stride;
    int direct = out->col_stride == item;
    char *d = direct ? dst : tile;
    ptrdiff_t drs = direct ? out->row_stride : 16 * item;
    stream = stream && direct;
#ifdef AM_PROFILE_NO_STORE /* profiling builds only: sums without transpose / stores */
    {
        __m512i x = acc[0];
        for (int i = 1; i < 16; i++)
            x = _mm512_xor_si512(x, acc[i]);
        if (_mm512_reduce_add_epi32(x) == 0x12345)
            *(volatile char *)d = 0;
        return;
    }
#endif
    transpose16x16(acc);
    if (!out->is_f64) {
        const __m512 sc = _mm512_loadu_ps(am_scale32(lv) + m0), of = _mm512_loadu_ps(am_offset32(lv) + m0);
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
        const double *s64 = am_scale64(lv) + m0, *o64 = am_offset64(lv) + m0;
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
AM_INLINE void rowstore512(int NA, const __m512i acc[8], const am_level_view *lv, int m0,
                           int ncols, char *orow, ptrdiff_t ocs, int out_f64, char *tile)
{
    int item = out_f64 ? 8 : 4;
    int direct = ocs == item;
    char *dst = direct ? orow : tile;
#ifdef AM_PROFILE_NO_STORE /* profiling builds only: sums without dequantisation / stores */
    __m512i t = acc[0];
    for (int i = 1; i < NA; i++)
        t = _mm512_xor_si512(t, acc[i]);
    if (_mm512_reduce_add_epi32(t) == 0x12345)
        *(volatile char *)dst = 0;
    return;
#endif
    if (!out_f64) {
        const float *sc = am_scale32(lv) + m0, *of = am_offset32(lv) + m0;
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
        const double *sc = am_scale64(lv) + m0, *of = am_offset64(lv) + m0;
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

/* Sums along M for rows [r0, r0 + nrows) of the block (codes from enc_block512). */
static void rowpath512(const am_level_view *lv, const uint8_t *codes, int nsub, am_matrix *out,
                       ptrdiff_t r0, ptrdiff_t nrows, char *tile, am_pf *pf)
{
    ptrdiff_t pf_per_row = (am_pf_left(pf) + nrows - 1) / nrows;
    int C = lv->C, M = lv->M, G = (C + 3) / 4;
    size_t Mp = am_mpad(M, 64);
    const uint8_t *T = lv->packed + v_row_tables_offset(C, M);
    int item = out->is_f64 ? 8 : 4;
    /* Large outputs, one tile, rows adjacent: 16 rows at a time are dequantised into a
     * staging buffer in L1, then copied with non-temporal 64-byte stores (no read for
     * ownership of the output lines, which would double the write traffic). */
    int stream = M <= AM_ROW_MT && out->col_stride == item && out->row_stride == (ptrdiff_t)M * item &&
                 (double)out->rows * M * item >= AM_STREAM_MIN_BYTES;
    if (stream) {
        const uint8_t *Tt = T;
        int NA = (M + 31) / 32;
        char *stage = tile + 8 * AM_ROW_MT;
        for (ptrdiff_t n0 = 0; n0 < nrows; n0 += 16) {
            int nr = nrows - n0 < 16 ? (int)(nrows - n0) : 16;
            for (int i = 0; i < nr; i++) {
                __m512i acc[8];
                char *orow = stage + (size_t)i * M * item;
                am_pf_lines(pf, pf_per_row);
#define AM_ROWCASE(K)                                                                          \
    case K:                                                                                    \
        rowsums512((K + 1) / 2, codes, nsub, G, n0 + i, Tt, Mp, acc);                          \
        rowstore512(K, acc, lv, 0, M, orow, item, out->is_f64, tile);                          \
        break;
                switch (NA) {
                    AM_ROWCASE(1) AM_ROWCASE(2) AM_ROWCASE(3) AM_ROWCASE(4)
                    AM_ROWCASE(5) AM_ROWCASE(6) AM_ROWCASE(7) AM_ROWCASE(8)
                }
#undef AM_ROWCASE
            }
#ifdef AM_PROFILE_NO_STORE /* profiling builds only: no copy out of the staging buffer */
            continue;
#endif
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
            __m512i acc[8];
            char *orow = out->data + (r0 + n) * out->row_stride + (ptrdiff_t)m0 * out->col_stride;
            am_pf_lines(pf, pf_per_row);
#define AM_ROWCASE(K)                                                                          \
    case K:                                                                                    \
        rowsums512((K + 1) / 2, codes, nsub, G, n, Tt, Mp, acc);                               \
        rowstore512(K, acc, lv, m0, ncols, orow, out->col_stride, out->is_f64, tile);          \
        break;
            switch (NA) {
                AM_ROWCASE(1) AM_ROWCASE(2) AM_ROWCASE(3) AM_ROWCASE(4)
                AM_ROWCASE(5) AM_ROWCASE(6) AM_ROWCASE(7) AM_ROWCASE(8)
            }
#undef AM_ROWCASE
        }
    }
}

static int avx512_block(const am_level_view *lv, const am_matrix *x, am_matrix *out,
                        uint8_t *codes_out, uint8_t *flags, ptrdiff_t r0, ptrdiff_t nrows,
                        void *scratch)
{
    int C = lv->C, G = (C + 3) / 4;
    int nsub = (int)((nrows + 15) / 16);
    uint8_t *codes = (uint8_t *)scratch;                     /* nsub * G * 64 */
    char *tile = (char *)scratch + (size_t)nsub * G * 64;    /* 16 x 4 or 256 doubles */
    char *tmp = tile + 8 * AM_ROW_MT + 16 * 8 * AM_ROW_MT;   /* 4 C x 16 doubles */
    am_pf pf; /* the sums along M share the prefetch of the rows ahead */
    ptrdiff_t pf_per_row = am_pf_init(&pf, x, r0, nrows, v_row_path(lv->M) && !codes_out);
    enc_block512(lv, x, r0, nrows, codes, tmp, codes_out ? NULL : flags, &pf, pf_per_row);
    if (codes_out) {
        for (ptrdiff_t i = 0; i < nrows; i++)
            for (int c = 0; c < C; c++)
                codes_out[(r0 + i) * C + c] = (uint8_t)am_bitrev(
                    codes[((size_t)(c / 4) * nsub + i / 16) * 64 + (i % 16) * 4 + c % 4] & 15, 4);
        return 0;
    }
#ifdef AM_PROFILE_ENCODE_ONLY /* profiling builds only: stop after the encoder */
    return 0;
#endif
    if (v_row_path(lv->M)) {
        rowpath512(lv, codes, nsub, out, r0, nrows, tile, &pf);
        if (flags)
            am_nan_rows(out, r0, nrows, flags);
        return 0;
    }
    const uint8_t *tables = am_tables(lv);
    int ntiles = (int)(am_mpad(lv->M, 16) / 16);
    size_t tile_bytes = (size_t)16 * G * 64;
    /* Tables that stay in L2: 16 rows at a time across every output column (each
     * output row written left to right); larger ones: one 16-column tile at a time down
     * the whole block (its tables stay in L1). */
    int rows_first = (size_t)ntiles * tile_bytes <= AM_TILE_ROWS_FIRST_BYTES;
    /* Large outputs: full, 64-byte aligned tile rows are written with non-temporal
     * stores (no read for ownership of lines that are written whole). */
    int stream = (double)out->rows * lv->M * (out->is_f64 ? 8 : 4) >= AM_STREAM_MIN_BYTES;
    int nouter = rows_first ? nsub : ntiles, ninner = rows_first ? ntiles : nsub;
    for (int a = 0; a < nouter; a++)
        for (int b = 0; b < ninner; b++) {
            int s = rows_first ? a : b, t = rows_first ? b : a;
            __m512i acc[16];
            sums512_tile(codes, nsub, s, tables + (size_t)t * tile_bytes, G, acc);
            ptrdiff_t row = 16 * s;
            int nv = nrows - row >= 16 ? 16 : (int)(nrows - row);
            emit512_tile(lv, acc, out, r0 + row, nv, t, tile, stream);
        }
    if (stream)
        _mm_sfence();
    if (flags)
        am_nan_rows(out, r0, nrows, flags);
    return 0;
}

static size_t avx512_scratch(int C, ptrdiff_t rows)
{
    return (size_t)rows * am_mpad(C, 4) + 8 * AM_ROW_MT + 16 * 8 * AM_ROW_MT +
           4 * (size_t)C * 16 * 8 + 4 * (size_t)C * sizeof(ptrdiff_t) + 64;
}

static int v_encode(const am_level_view *lv, const am_matrix *x, uint8_t *codes, int nthreads)
{
    return am_run_blocks(lv, x, NULL, codes, NULL, 64, avx512_scratch(lv->C, 64), avx512_block,
                         nthreads);
}

static int v_product(const am_level_view *lv, const am_matrix *x, am_matrix *out, uint8_t *flags,
                     int nthreads)
{
    ptrdiff_t B = am_block_rows(lv->C, lv->M);
    if (flags && am_flags_prepass(x) &&
        am_run_blocks(lv, x, NULL, NULL, flags, am_flags_rows(x->rows, nthreads), 64,
                      flags512_block,
                      nthreads))
        return -1;
    return am_run_blocks(lv, x, out, NULL, flags, B, avx512_scratch(lv->C, B), avx512_block,
                         nthreads);
}
#endif /* AM_ISA == 2 */

/* =================================================================================
 * AVX2
 * ================================================================================= */
#if AM_ISA == 1
/* AVX2: the table sums share the prefetch of the rows ahead (am_pf_init, split) from
 * this many outputs on. */
#ifndef AM_PF_SPLIT_MIN_M
#define AM_PF_SPLIT_MIN_M 48
#endif

/* Packed tables: [Mp4][C][16] bytes, entry code = luts[c, code, m]. */
static size_t v_packed_bytes(int C, int M)
{
    return am_tables_offset(C, M) + am_mpad(M, 4) * (size_t)C * 16;
}

static void v_pack(const am_level_view *lv, uint8_t *dst)
{
    int C = lv->C, M = lv->M;
    am_pack_common(lv, dst);
    uint8_t *t = dst + am_tables_offset(C, M);
    memset(t, 0, am_mpad(M, 4) * (size_t)C * 16);
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
AM_INLINE void enc32_256(const am_level_view *lv, const char *xb, ptrdiff_t item, ptrdiff_t cs,
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
        nodes[q] = item == 8 ? enc8_f64(xq, item, cs, vm, sd, am_thr64(lv) + 16 * c)
                             : enc8_f32(xq, cs, vm, sd, lv->thresholds + 15 * c);
    }
    __m256i p01 = _mm256_packs_epi32(nodes[0], nodes[1]);
    __m256i p23 = _mm256_packs_epi32(nodes[2], nodes[3]);
    _mm256_storeu_si256((__m256i *)dst,
                        _mm256_permutevar8x32_epi32(_mm256_packus_epi16(p01, p23), fix));
}

/* Row flags of up to 32 copied rows (tmp: column j at tmp + 32 j values): bit 0 from
 * nf, else bit 1 when a split column lies outside the level's calibration range. */
static void flags256(const am_level_view *lv, const char *tmp, int is_f64, int n32, uint32_t nf,
                     uint8_t *flags)
{
    uint32_t oor = 0;
    if (am_has_ranges(lv)) {
        int u = am_cols(lv)[0];
        if (!is_f64) {
            const float *lo = am_lo32(lv), *hi = am_hi32(lv);
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
            const double *lo = am_lo64(lv), *hi = am_hi64(lv);
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
static void enc_block256(const am_level_view *lv, const am_matrix *x, ptrdiff_t r0,
                         ptrdiff_t nrows, uint8_t *codes, char *tmp, uint8_t *flags, am_pf *pf,
                         ptrdiff_t pf_per_row)
{
    int C = lv->C;
    int nsub = (int)((nrows + 31) / 32);
    ptrdiff_t rs = x->row_stride, cs = x->col_stride, item = x->is_f64 ? 8 : 4;
    const char *xb = x->data + r0 * rs;
    if (rs != item) {
        const int32_t *pos = am_cols(lv) + 1 + 4 * C;
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

/* Staging buffer of the table sums' output (large outputs only): at least 32 rows x 16
 * float64 columns. */
#ifndef AVX2_STAGE_BYTES
#define AVX2_STAGE_BYTES (64 * 1024)
#endif
_Static_assert(AVX2_STAGE_BYTES >= 32 * 16 * 8, "AVX2_STAGE_BYTES below one 32 x 16 stage");

/* Whether the table sums write through the staging buffer with non-temporal stores:
 * large outputs, columns adjacent, rows a multiple of 64 bytes. */
AM_INLINE int avx2_streams(const am_matrix *out, int M)
{
    int item = out->is_f64 ? 8 : 4;
    return out->col_stride == item && out->row_stride % 64 == 0 &&
           (double)out->rows * M * item >= AM_STREAM_MIN_BYTES;
}

/* enc_block256's copy of 32 rows' split columns (doubles at most) and their offsets. */
static size_t avx2_tmp_bytes(int C) { return (size_t)4 * C * 32 * 8 + (size_t)4 * C * sizeof(ptrdiff_t); }

static int avx2_block(const am_level_view *lv, const am_matrix *x, am_matrix *out,
                      uint8_t *codes_out, uint8_t *flags, ptrdiff_t r0, ptrdiff_t nrows,
                      void *scratch)
{
    int C = lv->C, M = lv->M;
    int nsub = (int)((nrows + 31) / 32);
    uint8_t *codes = (uint8_t *)scratch;                 /* C * nsub * 32 */
    char *tile = (char *)scratch + (size_t)C * nsub * 32; /* 8 x 4 doubles */
    char *tmp = tile + 256;                               /* avx2_tmp_bytes(C) */
    /* Row-major flags come from the encoder; F-order ones from the pre-pass. */
    am_pf pf; /* the table sums share the prefetch of the rows ahead when M is large */
    ptrdiff_t pf_per_row = am_pf_init(&pf, x, r0, nrows, M >= AM_PF_SPLIT_MIN_M && !codes_out);
    enc_block256(lv, x, r0, nrows, codes, tmp,
                 flags && !codes_out && !am_flags_prepass(x) ? flags : NULL, &pf, pf_per_row);
    if (codes_out) {
        for (ptrdiff_t i = 0; i < nrows; i++)
            for (int c = 0; c < C; c++)
                codes_out[(r0 + i) * C + c] = codes[((size_t)c * nsub + i / 32) * 32 + i % 32];
        return 0;
    }
#ifdef AM_PROFILE_ENCODE_ONLY /* profiling builds only: stop after the encoder */
    return 0;
#endif
    const uint8_t *tables = am_tables(lv);
    int nmb = (int)(am_mpad(M, 4) / 4);
    int item = out->is_f64 ? 8 : 4;
    int direct = out->col_stride == item;
    ptrdiff_t pf_per_step = (am_pf_left(&pf) + (ptrdiff_t)nmb * nsub - 1) / ((ptrdiff_t)nmb * nsub);
    /* Large outputs with adjacent columns: 16 columns (4 steps of 4) of 32 rows at a time
     * are written into a staging buffer in L1, then copied out whole-line-wise with
     * non-temporal stores where a row's 16 columns are a 64-byte aligned line (f32) or
     * two (f64): no read for ownership of output lines written 16 bytes at a time. */
    int stream = avx2_streams(out, M);
    int group = stream ? 4 : 1;
    char *stage = tmp + avx2_tmp_bytes(C); /* 32 rows x 16 columns, or the block's rows */
    /* Other large outputs whose rows are adjacent, when x is row-major (its read keeps
     * memory busy): the block's rows are written into the staging buffer as if it were
     * the output, then copied out as one run with non-temporal stores, which saves the
     * read for ownership of the output lines (M = 60-100: 9-21 % faster). With
     * column-major x the staging buffer's room in L1 cost more (4-8 % slower). */
    int stage_block = !stream && !am_flags_prepass(x) && nrows * (size_t)M * item <= AVX2_STAGE_BYTES &&
                      direct && out->row_stride == (ptrdiff_t)M * item &&
                      (double)out->rows * M * item >= AM_STREAM_MIN_BYTES;
    for (int mb0 = 0; mb0 < nmb; mb0 += group)
        for (int s = 0; s < nsub; s++) {
            int mb1 = mb0 + group < nmb ? mb0 + group : nmb;
            for (int mb = mb0; mb < mb1; mb++) {
                const uint8_t *T = tables + (size_t)mb * 4 * C * 16;
                int m0 = 4 * mb, ncols = M - m0 < 4 ? M - m0 : 4;
                __m128i cm32 = _mm_cmpgt_epi32(_mm_set1_epi32(ncols), _mm_setr_epi32(0, 1, 2, 3));
                __m256i cm64 = _mm256_cvtepi32_epi64(cm32);
                __m256i lo[4], hi[4];
                am_pf_lines(&pf, pf_per_step);
                sums256(codes, nsub, s, T, C, lo, hi);
#ifdef AM_PROFILE_NO_STORE /* profiling builds only: sums without dequantisation / stores */
                {
                    __m256i f = _mm256_setzero_si256();
                    for (int j = 0; j < 4; j++)
                        f = _mm256_xor_si256(f, _mm256_xor_si256(lo[j], hi[j]));
                    *(volatile int *)tile = _mm256_extract_epi32(f, 0);
                    continue;
                }
#endif
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
                    char *dst = (stage_block ? stage + row * out->row_stride
                                             : out->data + (r0 + row) * out->row_stride) +
                                (ptrdiff_t)m0 * out->col_stride;
                    char *d = stream ? stage + (8 * q * 16 + 4 * (mb - mb0)) * item : direct ? dst : tile;
                    ptrdiff_t drs = stream ? 16 * item : direct ? out->row_stride : 4 * item;
                    store256_rows8(g, out->is_f64, am_scale32(lv) + m0, am_offset32(lv) + m0,
                                   am_scale64(lv) + m0, am_offset64(lv) + m0, d, drs, nv, ncols == 4, cm32,
                                   cm64);
                    if (!direct)
                        am_copy_tile(tile, drs, nv, ncols, dst, out->row_stride, out->col_stride, item);
                }
            }
#ifndef AM_PROFILE_NO_STORE
            if (stream) {
                int width = (M - 4 * mb0 < 16 ? M - 4 * mb0 : 16) * item;
                ptrdiff_t nv = nrows - 32 * s < 32 ? nrows - 32 * s : 32;
                for (ptrdiff_t i = 0; i < nv; i++) {
                    char *dst = out->data + (r0 + 32 * s + i) * out->row_stride + (ptrdiff_t)4 * mb0 * item;
                    const char *src = stage + i * 16 * item;
                    if (width == 16 * item && ((uintptr_t)dst & 63) == 0)
                        for (int b = 0; b < width; b += 32)
                            _mm256_stream_si256((__m256i *)(dst + b),
                                                _mm256_loadu_si256((const __m256i *)(src + b)));
                    else if (width == 16 * item)
                        for (int b = 0; b < width; b += 32)
                            _mm256_storeu_si256((__m256i *)(dst + b),
                                                _mm256_loadu_si256((const __m256i *)(src + b)));
                    else
                        memcpy(dst, src, (size_t)width);
                }
            }
#endif
        }
#ifndef AM_PROFILE_NO_STORE
    if (stage_block)
        am_stream_copy(out->data + r0 * out->row_stride, stage, (size_t)nrows * out->row_stride);
#endif
    if (stream || stage_block)
        _mm_sfence();
    if (flags)
        am_nan_rows(out, r0, nrows, flags);
    return 0;
}

static size_t avx2_scratch(int C, ptrdiff_t rows)
{
    return (size_t)rows * C + 256 + avx2_tmp_bytes(C) + AVX2_STAGE_BYTES + 64;
}

static int v_encode(const am_level_view *lv, const am_matrix *x, uint8_t *codes, int nthreads)
{
    return am_run_blocks(lv, x, NULL, codes, NULL, 64, avx2_scratch(lv->C, 64), avx2_block,
                         nthreads);
}

static int v_product(const am_level_view *lv, const am_matrix *x, am_matrix *out, uint8_t *flags,
                     int nthreads)
{
    /* Output written in place 4 columns at a time: blocks small enough that the rows
     * being written stay in L1 (64 rows; 256 rows measured 1.1-1.4x slower at M = 100,
     * C = 32). Streamed outputs: larger blocks, so that each pass over large tables
     * serves more rows. */
    ptrdiff_t B = avx2_streams(out, lv->M) ? am_block_rows(lv->C, lv->M) : AM_BLOCK_ROWS_SMALL;
    if (flags && am_flags_prepass(x) &&
        am_run_blocks(lv, x, NULL, NULL, flags, am_flags_rows(x->rows, nthreads), 64,
                      am_flags_block_generic,
                      nthreads))
        return -1;
    return am_run_blocks(lv, x, out, NULL, flags, B, avx2_scratch(lv->C, B), avx2_block, nthreads);
}
#endif /* AM_ISA == 1 */

const am_kernels AM_TABLE_NAME(AM_VARIANT) = {
    .name = AM_STR(AM_VARIANT),
    .vector_bytes = AM_VECTOR_BYTES,
    .packed_bytes = v_packed_bytes,
    .pack = v_pack,
    .encode = v_encode,
    .product = v_product,
};
