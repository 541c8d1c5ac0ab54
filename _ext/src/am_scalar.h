/* Scalar kernels: encode, exact table sums and dequantise one row at a time (the
 * portable variant, and the fallbacks of the SIMD variants), float32 and float64 from
 * one source (am_scalar_t.h). */
#ifndef AM_SCALAR_H
#define AM_SCALAR_H

#include "am_layout.h"

#define AM_T float
#define AM_S f32
#include "am_scalar_t.h"
#undef AM_T
#undef AM_S
#define AM_T double
#define AM_S f64
#include "am_scalar_t.h"
#undef AM_T
#undef AM_S

/* Codes of one row, codes[c] for c < C: float64 rows against the widened thresholds.
 * Written out for both types: through a template with the thresholds as a parameter it
 * measured 2-5 % slower (portable, N = 10 000, M = 10, C = 16, F-order x). */
AM_INLINE void am_encode_row(const am_level *lv, const char *row, ptrdiff_t cs, int is_f64,
                             uint8_t *codes)
{
    int C = lv->C;
    if (is_f64) {
        const double *thr = lv->thr64;
        for (int c = 0; c < C; c++)
            codes[c] = (uint8_t)am_code_f64(row, cs, lv->split_dims + 4 * c, thr + 16 * c);
    } else {
        for (int c = 0; c < C; c++)
            codes[c] = (uint8_t)am_code_f32(row, cs, lv->split_dims + 4 * c, lv->thresholds + 15 * c);
    }
}

/* Output columns m0 .. m1 of one row from the exact sums acc. */
AM_UNUSED static void am_dequant_row(const am_level *lv, const uint32_t *acc, int m0, int m1, char *orow,
                           ptrdiff_t ocs, int out_f64)
{
    if (out_f64)
        am_dequant_row_f64(lv->scale64, lv->offset64, acc, m0, m1, orow, ocs);
    else
        am_dequant_row_f32(lv->scale32, lv->offset32, acc, m0, m1, orow, ocs);
}

/* Exact sums of one row along M: acc[m] = sum_c luts[c, codes[c], m]. */
AM_UNUSED static void am_sums_row(const am_level *lv, const uint8_t *codes, uint32_t *AM_RESTRICT acc)
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
AM_INLINE int am_split_offsets(const am_level *lv, ptrdiff_t cs, ptrdiff_t *offs)
{
    for (int j = 0; j < lv->u; j++)
        offs[j] = (ptrdiff_t)lv->cols[1 + j] * cs;
    return lv->u;
}

/* Copy the u split values of one row (byte offsets offs) into column-major tmp:
 * value j at tmp[j * ld + r]. */
AM_INLINE void am_copy_split_row(const char *row, const ptrdiff_t *offs, int u, int is_f64,
                                 char *tmp, int ld, int r)
{
    if (is_f64)
        am_copy_split_row_f64(row, offs, u, tmp, ld, r);
    else
        am_copy_split_row_f32(row, offs, u, tmp, ld, r);
}

#endif
