/* The packed form of a level, common part (identical in every variant), as a struct of
 * byte offsets computed once (am_layout_of), and the level as the kernels read it
 * (am_level: the caller's arrays and the packed pieces, resolved once per call).
 *
 *   float  scale32[Mp], offset32[Mp]    T(scale), T(offset) for float32 outputs
 *   double scale64[Mp], offset64[Mp]
 *   double thr64[C][16]                 thresholds widened, heap order, 15 used
 *   float  thr32r[C][4][16]             threshold of level l at the node whose path, read
 *                                       with the first decision in the lowest bit, is j
 *                                       (the "reversed" node number)
 *   int32  cols[16 C]                   cols[0] = u, the number of distinct split
 *                                       columns; cols[1 .. u] those columns in increasing
 *                                       order; cols[1 + 4C + i] = position in that list of
 *                                       split_dims[i]; cols[1 + 8 C] = has ranges
 *   float  lo32[4C], hi32[4C]           calibration range of distinct split column j
 *   double lo64[4C], hi64[4C]           (intersection over the (c, l) using it; +-inf
 *                                       when the level has no ranges); 128 C bytes
 *   ...variant tables from `tables` on (a 64-byte multiple)
 * Mp = M rounded up to 16; padding entries are 0.
 */
#ifndef AM_LAYOUT_H
#define AM_LAYOUT_H

#include "am_base.h"

typedef struct am_layout {
    size_t Mp; /* M rounded up to 16 */
    size_t scale32, offset32, scale64, offset64, thr64, thr32r, cols;
    size_t lo32, hi32, lo64, hi64;
    size_t tables; /* start of the variant's tables = bytes of the common part */
} am_layout;

AM_INLINE am_layout am_layout_of(int C, int M)
{
    am_layout L;
    size_t c = (size_t)C;
    L.Mp = am_mpad(M, 16);
    L.scale32 = 0;
    L.offset32 = 4 * L.Mp;
    L.scale64 = 8 * L.Mp;
    L.offset64 = 16 * L.Mp;
    L.thr64 = 24 * L.Mp;
    L.thr32r = L.thr64 + 128 * c;
    L.cols = L.thr32r + 256 * c;
    L.lo32 = L.cols + 64 * c;
    L.hi32 = L.lo32 + 16 * c;
    L.lo64 = L.hi32 + 16 * c;
    L.hi64 = L.lo64 + 32 * c;
    L.tables = L.hi64 + 64 * c; /* 32 C bytes of padding after hi64 */
    return L;
}

/* A level as the kernels read it. */
typedef struct am_level {
    int C, M;
    const int32_t *split_dims; /* (C, 4) */
    const float *thresholds;   /* (C, 15), heap order */
    const uint8_t *luts;       /* (C, 16, M) */
    const uint8_t *packed;
    const float *scale32, *offset32;
    const double *scale64, *offset64;
    const double *thr64;
    const float *thr32r;
    const int32_t *cols;      /* as in the layout above */
    const int32_t *split_pos; /* cols + 1 + 4 C: position of split_dims[i] in the list */
    int u;                    /* distinct split columns, cols[1 .. u] */
    int has_ranges;
    const float *lo32, *hi32;
    const double *lo64, *hi64;
    const uint8_t *tables;
} am_level;

AM_INLINE am_level am_level_of(const am_level_view *v)
{
    am_layout L = am_layout_of(v->C, v->M);
    const uint8_t *p = v->packed;
    am_level lv;
    lv.C = v->C;
    lv.M = v->M;
    lv.split_dims = v->split_dims;
    lv.thresholds = v->thresholds;
    lv.luts = v->luts;
    lv.packed = p;
    lv.scale32 = (const float *)(p + L.scale32);
    lv.offset32 = (const float *)(p + L.offset32);
    lv.scale64 = (const double *)(p + L.scale64);
    lv.offset64 = (const double *)(p + L.offset64);
    lv.thr64 = (const double *)(p + L.thr64);
    lv.thr32r = (const float *)(p + L.thr32r);
    lv.cols = (const int32_t *)(p + L.cols);
    lv.split_pos = lv.cols + 1 + 4 * v->C;
    lv.u = lv.cols[0];
    lv.has_ranges = lv.cols[1 + 8 * v->C];
    lv.lo32 = (const float *)(p + L.lo32);
    lv.hi32 = (const float *)(p + L.hi32);
    lv.lo64 = (const double *)(p + L.lo64);
    lv.hi64 = (const double *)(p + L.hi64);
    lv.tables = p + L.tables;
    return lv;
}

/* Fill the common part of the packed form (L.tables bytes at dst) from the view. */
AM_UNUSED static void am_pack_common(const am_level_view *lv, const am_layout *L, uint8_t *dst)
{
    int n = 4 * lv->C;
    memset(dst, 0, L->tables);
    float *s32 = (float *)(dst + L->scale32), *o32 = (float *)(dst + L->offset32);
    double *s64 = (double *)(dst + L->scale64), *o64 = (double *)(dst + L->offset64);
    for (int m = 0; m < lv->M; m++) {
        s32[m] = (float)lv->scale[m];
        o32[m] = (float)lv->offset[m];
        s64[m] = lv->scale[m];
        o64[m] = lv->offset[m];
    }
    int32_t *cols = (int32_t *)(dst + L->cols);
    int32_t *list = cols + 1, *where = cols + 1 + n;
    int u = 0;
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
    /* Ranges per distinct column: v is outside some [low_i, high_i] of the (c, l) using
     * column j iff v < max_i low_i or v > min_i high_i. NaN bounds never flag anything
     * (a comparison with NaN is false), so they are skipped. */
    int has = lv->split_low != NULL && lv->split_high != NULL;
    cols[1 + 2 * n] = has;
    float *lo32 = (float *)(dst + L->lo32), *hi32 = (float *)(dst + L->hi32);
    double *lo64 = (double *)(dst + L->lo64), *hi64 = (double *)(dst + L->hi64);
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
    double *thr = (double *)(dst + L->thr64);
    float *thr32r = (float *)(dst + L->thr32r);
    for (int c = 0; c < lv->C; c++) {
        for (int j = 0; j < 15; j++)
            thr[c * 16 + j] = (double)lv->thresholds[c * 15 + j];
        for (int l = 0; l < 4; l++)
            for (int j = 0; j < (1 << l); j++)
                thr32r[c * 64 + l * 16 + j] = lv->thresholds[c * 15 + (1 << l) - 1 + am_bitrev(j, l)];
    }
}

#endif
