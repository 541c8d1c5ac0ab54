/* Scalar code of one row and codebook, dequantise and split-column copy for one input /
 * output type: included twice by am_scalar.h, with AM_T = float (AM_S = f32) and
 * AM_T = double (AM_S = f64), so that both come from this one source. */
#define AM_FN_(name, s) name##_##s
#define AM_FN(name, s) AM_FN_(name, s)

/* Code of one row in one codebook: exact comparisons; NaN goes left. thr: the
 * codebook's thresholds in heap order. */
AM_INLINE int AM_FN(am_code, AM_S)(const char *row, ptrdiff_t cs, const int32_t *sd, const AM_T *thr)
{
    int node = 0;
    for (int l = 0; l < 4; l++) {
        AM_T v;
        memcpy(&v, row + sd[l] * cs, sizeof(AM_T));
        node = 2 * node + (v > thr[(1 << l) - 1 + node]);
    }
    return node;
}

/* out row = T(acc) * T(scale) + T(offset), two roundings (compiled with -ffp-contract=off). */
AM_INLINE void AM_FN(am_dequant_row, AM_S)(const AM_T *s, const AM_T *o, const uint32_t *acc,
                                           int m0, int m1, char *orow, ptrdiff_t ocs)
{
    if (ocs == (ptrdiff_t)sizeof(AM_T)) {
        AM_T *dst = (AM_T *)orow;
        for (int m = m0; m < m1; m++) {
            AM_T p = (AM_T)acc[m] * s[m];
            dst[m] = p + o[m];
        }
    } else {
        for (int m = m0; m < m1; m++) {
            AM_T p = (AM_T)acc[m] * s[m];
            AM_T v = p + o[m];
            memcpy(orow + m * ocs, &v, sizeof(AM_T));
        }
    }
}

/* Copy the u split values of one row (byte offsets offs) into column-major tmp:
 * value j at tmp[j * ld + r]. */
AM_INLINE void AM_FN(am_copy_split_row, AM_S)(const char *row, const ptrdiff_t *offs, int u,
                                              char *tmp, int ld, int r)
{
    for (int j = 0; j < u; j++)
        memcpy((AM_T *)tmp + j * ld + r, row + offs[j], sizeof(AM_T));
}

#undef AM_FN
#undef AM_FN_
