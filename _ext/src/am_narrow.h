/* Narrow inputs (uint8, int8, uint16, int16, float16, bfloat16) read as they are, and
 * float16 outputs: the stage in front of every variant's float32 kernels.
 *
 * Every value of those types is a float32 value, so a comparison of the widened value
 * with a float32 threshold is the exact comparison of _level.py's contract, whatever
 * the type (float16 NaN compares false, as in float32). Per block of rows the level's
 * distinct split columns, and only those, are read from x and widened into a small
 * float32 buffer, column by column (rows adjacent: the layout the encoders read with
 * contiguous loads); the variant's own float32 block function then encodes and sums
 * from that buffer, with the level's split columns renumbered to their positions in it.
 * The row flags come from here: bit 0 for float16 rows with a NaN or an infinity in any
 * of their D columns (integers have none), bit 1 from the widened split values against
 * the float32 calibration ranges. A float16 output is written by the variant into a
 * float32 buffer of the block, then rounded once to float16 (to nearest, ties to even).
 *
 * A variant uses it from its product and encode entries:
 *   if (am_narrow_call(x, out))
 *       return am_narrow_run(&lv, x, out, codes, flags, rows, scratch(rows), block, nthreads);
 */
#ifndef AM_NARROW_H
#define AM_NARROW_H

#include "am_flags.h"
#include "am_output.h"
#include "am_scalar.h"

#if defined(__F16C__)
#include <immintrin.h>
#endif

/* float16 bits -> float32 (exact: every float16 is a float32). */
AM_INLINE float am_f16_to_f32(uint16_t h)
{
#if defined(__F16C__)
    return _cvtsh_ss(h);
#else
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu, bits;
    if (e == 0x1F)
        bits = sign | 0x7F800000u | (m << 13); /* inf, NaN (stays NaN) */
    else if (e != 0)
        bits = sign | ((e + 112) << 23) | (m << 13);
    else {
        float f = (float)m * 0x1p-24f; /* zero and subnormals: m 2^-24, exact */
        return sign ? -f : f;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
#endif
}

/* float32 -> float16 bits, rounded to nearest, ties to even (NumPy's astype). NaN gives
 * a quiet NaN; the caller writes NaN rows itself. */
AM_INLINE uint16_t am_f32_to_f16(float f)
{
#if defined(__F16C__)
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
#else
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t a = x & 0x7FFFFFFFu;
    if (a > 0x7F800000u)
        return (uint16_t)(sign | 0x7E00u);
    if (a >= 0x477FF000u) /* >= 65520 (65504 + half a unit): to infinity */
        return (uint16_t)(sign | 0x7C00u);
    if (a < 0x38800000u) { /* below 2^-14: a multiple of 2^-24, rounded (exact scaling) */
        float v;
        memcpy(&v, &a, 4);
        float q = v * 0x1p24f; /* in [0, 1024): rounding to an integer, ties to even */
        float r = (q + 0x1p23f) - 0x1p23f;
        return (uint16_t)(sign | (uint16_t)r);
    }
    /* Normal: rebias the exponent (-112 << 23), round the 13 dropped bits to even. */
    a += 0xC8000FFFu + ((a >> 13) & 1u);
    return (uint16_t)(sign | (uint16_t)(a >> 13));
#endif
}

/* n float32 values -> float16 at dst (adjacent), each rounded as am_f32_to_f16. */
AM_INLINE void am_f32_to_f16_run(const float *src, int n, char *dst)
{
    int i = 0;
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + 2 * i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < n; i++) {
        uint16_t h = am_f32_to_f16(src[i]);
        memcpy(dst + 2 * i, &h, 2);
    }
}

/* Whether a call goes through this stage. */
AM_INLINE int am_narrow_call(const am_matrix *x, const am_matrix *out)
{
    return x->narrow != AM_WIDE || (out && out->narrow != AM_WIDE);
}

/* wide[j * nrows + r] = split column j (byte offset offs[j]) of row r, as float32: row
 * by row when the values of a row are adjacent (each row read once, while in L1),
 * else column by column (rows adjacent: contiguous loads). */
#define AM_WIDEN(T, CONV)                                                                  \
    if (x->col_stride == (ptrdiff_t)sizeof(T) && rs != (ptrdiff_t)sizeof(T)) {             \
        for (ptrdiff_t r = 0; r < nrows; r++) {                                            \
            const char *row = xb + r * rs;                                                 \
            for (int j = 0; j < u; j++) {                                                  \
                T v_;                                                                      \
                memcpy(&v_, row + offs[j], sizeof v_);                                     \
                wide[(size_t)j * nrows + r] = CONV(v_);                                    \
            }                                                                              \
        }                                                                                  \
    } else {                                                                               \
        for (int j = 0; j < u; j++) {                                                      \
            const char *col = xb + offs[j];                                                \
            float *AM_RESTRICT w = wide + (size_t)j * nrows;                               \
            for (ptrdiff_t r = 0; r < nrows; r++) {                                        \
                T v_;                                                                      \
                memcpy(&v_, col + r * rs, sizeof v_);                                      \
                w[r] = CONV(v_);                                                           \
            }                                                                              \
        }                                                                                  \
    }
#define AM_AS_FLOAT(v) ((float)(v))

/* bfloat16 bits -> float32 (exact: the float32 with those top 16 bits). */
AM_INLINE float am_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

#if defined(AM_ENCODE_AVX512_H)
/* AVX-512: 16 values of one row from p (the first w, the others 0), widened. */
AM_INLINE __m512 am_narrow_load16(const char *p, int type, __mmask16 cm)
{
    switch (type) {
    case AM_U8:
        return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(cm, p)));
    case AM_I8:
        return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(cm, p)));
    case AM_U16:
        return _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(cm, p)));
    case AM_I16:
        return _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(cm, p)));
    case AM_F16:
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(cm, p));
    case AM_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(cm, p)), 16));
    default:
        return _mm512_maskz_loadu_ps(cm, p);
    }
}

/* AVX-512, rows of at most AM_NARROW_TRANSPOSE_MAX_D adjacent values and many split
 * columns (the rule of the float32 encoder, transpose_rows16): 16 rows loaded whole,
 * widened and transposed in registers, the split columns stored. Returns 0 when the rows
 * are not of that kind. */
static int am_widen_transposed(const am_level *lv, const am_matrix *x, ptrdiff_t r0,
                               ptrdiff_t nrows, float *AM_RESTRICT wide)
{
    static const int sizes[7] = {4, 1, 1, 2, 2, 2, 2};
    int item = sizes[x->narrow], D = (int)x->cols, u = lv->u, nblk = (D + 15) / 16;
    ptrdiff_t rs = x->row_stride;
    if (x->col_stride != item || rs == item || D > AM_NARROW_TRANSPOSE_MAX_D ||
        u < AM_TRANSPOSE_MIN_COLS * nblk)
        return 0;
    int16_t colpos[AM_NARROW_TRANSPOSE_MAX_D];
    memset(colpos, -1, sizeof colpos);
    for (int j = 0; j < u; j++)
        colpos[lv->cols[1 + j]] = (int16_t)j;
    const char *xb = x->data + r0 * rs;
    for (ptrdiff_t s = 0; s < nrows; s += 16) {
        int nv = nrows - s < 16 ? (int)(nrows - s) : 16;
        __mmask16 vm = (__mmask16)((1u << nv) - 1);
        for (int d0 = 0; d0 < D; d0 += 16) {
            int w = D - d0 < 16 ? D - d0 : 16;
            __mmask16 cm = (__mmask16)((1u << w) - 1);
            __m512i a[16];
            for (int r = 0; r < 16; r++)
                a[r] = r < nv ? _mm512_castps_si512(am_narrow_load16(
                                    xb + (s + r) * rs + (ptrdiff_t)d0 * item, x->narrow, cm))
                              : _mm512_setzero_si512();
            transpose16x16(a); /* a[c] lane r: row s + r, column d0 + c */
            for (int c = 0; c < w; c++) {
                int j = colpos[d0 + c];
                if (j >= 0)
                    _mm512_mask_storeu_ps(wide + (size_t)j * nrows + s, vm,
                                          _mm512_castsi512_ps(a[c]));
            }
        }
    }
    return 1;
}
#endif

static void am_widen_split(const am_level *lv, const am_matrix *x, ptrdiff_t r0,
                           ptrdiff_t nrows, float *AM_RESTRICT wide, ptrdiff_t *offs)
{
#if defined(AM_ENCODE_AVX512_H)
    if (am_widen_transposed(lv, x, r0, nrows, wide))
        return;
#endif
    int u = am_split_offsets(lv, x->col_stride, offs);
    ptrdiff_t rs = x->row_stride;
    const char *xb = x->data + r0 * rs;
    switch (x->narrow) {
    case AM_U8:
        AM_WIDEN(uint8_t, AM_AS_FLOAT)
        break;
    case AM_I8:
        AM_WIDEN(int8_t, AM_AS_FLOAT)
        break;
    case AM_U16:
        AM_WIDEN(uint16_t, AM_AS_FLOAT)
        break;
    case AM_I16:
        AM_WIDEN(int16_t, AM_AS_FLOAT)
        break;
    case AM_F16:
        AM_WIDEN(uint16_t, am_f16_to_f32)
        break;
    case AM_BF16:
        AM_WIDEN(uint16_t, am_bf16_to_f32)
        break;
    default: /* float32 rows (a float16 output only) */
        AM_WIDEN(float, AM_AS_FLOAT)
        break;
    }
}
#undef AM_WIDEN
#undef AM_AS_FLOAT

/* 1 when the 16-bit value h, whose exponent field is `exp` (its lowest bit `low`), is
 * a NaN or an infinity: its exponent bits are all ones. */
#define AM_NF16(h) (((uint16_t)((h) & exp) + low) >> 15)

/* flags[r] = 1 for the rows with a 16-bit float (float16: exp = 0x7C00, bfloat16:
 * 0x7F80) NaN or infinity, else 0: contiguous loops (vectorised) for rows or columns of
 * adjacent values. */
static void am_nonfinite_rows_16(const char *xb, ptrdiff_t nrows, ptrdiff_t D, ptrdiff_t rs,
                                 ptrdiff_t cs, uint16_t exp, uint8_t *AM_RESTRICT flags)
{
    const uint16_t low = (uint16_t)(exp & (uint16_t)-exp);
    if (cs == 2) {
        for (ptrdiff_t r = 0; r < nrows; r++) {
            const char *row = xb + r * rs;
            unsigned bad = 0;
            for (ptrdiff_t d = 0; d < D; d++) {
                uint16_t h;
                memcpy(&h, row + 2 * d, 2);
                bad |= AM_NF16(h);
            }
            flags[r] = (uint8_t)bad;
        }
    } else if (rs == 2) {
        memset(flags, 0, (size_t)nrows);
        for (ptrdiff_t d = 0; d < D; d++) {
            const char *col = xb + d * cs;
            for (ptrdiff_t r = 0; r < nrows; r++) {
                uint16_t h;
                memcpy(&h, col + 2 * r, 2);
                flags[r] |= (uint8_t)AM_NF16(h);
            }
        }
    } else {
        for (ptrdiff_t r = 0; r < nrows; r++) {
            unsigned bad = 0;
            for (ptrdiff_t d = 0; d < D; d++) {
                uint16_t h;
                memcpy(&h, xb + r * rs + d * cs, 2);
                bad |= AM_NF16(h);
            }
            flags[r] = (uint8_t)bad;
        }
    }
}

/* Flags of the block's rows (see am_kernels.product) from x and the widened values. */
static void am_narrow_flags(const am_level *lv, const am_matrix *x, ptrdiff_t r0,
                            ptrdiff_t nrows, const float *wide, uint8_t *AM_RESTRICT flags)
{
    memset(flags, 0, (size_t)nrows);
    ptrdiff_t rs = x->row_stride, cs = x->col_stride, D = x->cols;
    const char *xb = x->data + r0 * rs;
    if (x->narrow == AM_F16 || x->narrow == AM_BF16)
        am_nonfinite_rows_16(xb, nrows, D, rs, cs, x->narrow == AM_F16 ? 0x7C00u : 0x7F80u,
                             flags);
    else if (x->narrow == AM_WIDE)
        for (ptrdiff_t r = 0; r < nrows; r++)
            flags[r] = (uint8_t)am_row_nonfinite(xb + r * rs, D, cs, 0);
    if (!lv->has_ranges)
        return;
    int u = lv->u;
    for (int j = 0; j < u; j++) {
        const float *w = wide + (size_t)j * nrows;
        float lo = lv->lo32[j], hi = lv->hi32[j];
        for (ptrdiff_t r = 0; r < nrows; r++)
            flags[r] |= (uint8_t)(((w[r] < lo) | (w[r] > hi)) << 1);
    }
    for (ptrdiff_t r = 0; r < nrows; r++)
        if (flags[r] & 1)
            flags[r] = 1;
}

/* Bytes of the stage's scratch per block of `rows` rows, besides the variant's. */
AM_INLINE size_t am_narrow_scratch(const am_level *lv, const am_matrix *out, ptrdiff_t rows)
{
    size_t wide = ((size_t)lv->u * (size_t)rows * 4 + 63) / 64 * 64;
    size_t offs = ((size_t)lv->u * sizeof(ptrdiff_t) + 63) / 64 * 64;
    size_t staged = out && out->narrow == AM_F16 ? (size_t)rows * (size_t)lv->M * 4 : 0;
    return wide + offs + (staged + 63) / 64 * 64;
}

static int am_narrow_block(const am_call *k, ptrdiff_t r0, ptrdiff_t nrows, void *scratch)
{
    const am_level *lv = k->lv;
    const am_matrix *x = k->x;
    am_matrix *out = k->out;
    char *s = (char *)scratch + (k->inner_scratch + 63) / 64 * 64;
    float *wide = (float *)s;
    s += ((size_t)lv->u * (size_t)nrows * 4 + 63) / 64 * 64;
    ptrdiff_t *offs = (ptrdiff_t *)s;
    s += ((size_t)lv->u * sizeof(ptrdiff_t) + 63) / 64 * 64;
    float *staged = (float *)s;
    am_widen_split(lv, x, r0, nrows, wide, offs);
    uint8_t *flags = am_block_flags(k, r0);
    if (flags)
        am_narrow_flags(lv, x, r0, nrows, wide, flags);
    /* The block's rows as float32 columns 0 .. u - 1 (rows adjacent). */
    am_matrix xw = {(char *)wide, nrows, lv->u, 4, 4 * nrows, 0, AM_WIDE};
    am_call k2 = {k->wide, &xw, NULL, k->codes ? k->codes + r0 * lv->C : NULL, NULL,
                  NULL, 0, NULL};
    am_matrix ow;
    int f16 = out && out->narrow == AM_F16;
    if (out) {
        if (f16) /* the block's output in float32, rows of M adjacent values */
            ow = (am_matrix){(char *)staged, nrows, lv->M, 4 * (ptrdiff_t)lv->M, 4, 0, AM_WIDE};
        else /* the caller's output from row r0 on */
            ow = (am_matrix){out->data + r0 * out->row_stride, out->rows - r0, out->cols,
                             out->row_stride, out->col_stride, out->is_f64, AM_WIDE};
        k2.out = &ow;
    }
    int status = k->inner(&k2, 0, nrows, scratch);
    if (!out)
        return status;
    if (f16) {
        int M = lv->M;
        const uint16_t nan = 0x7E00u; /* np.float16(np.nan) */
        for (ptrdiff_t i = 0; i < nrows; i++) {
            char *orow = out->data + (r0 + i) * out->row_stride;
            const float *srow = staged + (size_t)i * M;
            if (flags && (flags[i] & 1))
                for (int m = 0; m < M; m++)
                    memcpy(orow + m * out->col_stride, &nan, 2);
            else if (out->col_stride == 2)
                am_f32_to_f16_run(srow, M, orow);
            else
                for (int m = 0; m < M; m++) {
                    uint16_t h = am_f32_to_f16(srow[m]);
                    memcpy(orow + m * out->col_stride, &h, 2);
                }
        }
    } else if (flags) {
        am_nan_rows(out, r0, nrows, flags);
    }
    return status;
}

/* A product (out != NULL) or an encode (codes != NULL) of narrow rows or into a float16
 * output: blocks of `rows` rows, each widened, then computed by `inner` with
 * `inner_scratch` bytes of scratch. */
AM_UNUSED static int am_narrow_run(const am_level *lv, const am_matrix *x, am_matrix *out,
                                   uint8_t *codes, uint8_t *flags, ptrdiff_t rows,
                                   size_t inner_scratch, am_block_fn inner, int nthreads)
{
    am_level wide = *lv;
    wide.split_dims = lv->split_pos; /* split column i of the level is column split_pos[i] */
    am_call k = {lv, x, out, codes, flags, inner, inner_scratch, &wide};
    size_t bytes = (inner_scratch + 63) / 64 * 64 + am_narrow_scratch(lv, out, rows);
    return am_run_blocks(&k, rows, bytes, am_narrow_block, nthreads);
}

#endif
