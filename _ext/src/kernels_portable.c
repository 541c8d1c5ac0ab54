/* Portable kernels (plain C, the baseline flags; the compiler vectorises the loops):
 * one row at a time, scalar encode, exact sums along M, dequantise into the output.
 * Defines am_kernels_portable. The packed form is the common part alone. */
#include "am_flags.h"
#include "am_narrow.h"
#include "am_output.h"
#include "am_scalar.h"

static size_t portable_packed_bytes(int C, int M) { return am_layout_of(C, M).tables; }

static void portable_pack(const am_level_view *lv, uint8_t *dst)
{
    am_layout L = am_layout_of(lv->C, lv->M);
    am_pack_common(lv, &L, dst);
}

/* Scratch: the sums of one row, then its codes. */
static size_t portable_scratch(int C, int M) { return 4 * am_mpad(M, 16) + (size_t)C + 64; }

static int portable_encode_block(const am_call *k, ptrdiff_t r0, ptrdiff_t nrows, void *scratch)
{
    const am_level *lv = k->lv;
    const am_matrix *x = k->x;
    (void)scratch;
    for (ptrdiff_t i = 0; i < nrows; i++)
        am_encode_row(lv, x->data + (r0 + i) * x->row_stride, x->col_stride, x->is_f64,
                      k->codes + (r0 + i) * lv->C);
    return 0;
}

static int portable_block(const am_call *k, ptrdiff_t r0, ptrdiff_t nrows, void *scratch)
{
    const am_level *lv = k->lv;
    const am_matrix *x = k->x;
    am_matrix *out = k->out;
    uint8_t *flags = am_block_flags(k, r0);
    uint32_t *acc = (uint32_t *)scratch;
    uint8_t *codes = (uint8_t *)(acc + am_mpad(lv->M, 16));
    for (ptrdiff_t i = 0; i < nrows; i++) {
        const char *row = x->data + (r0 + i) * x->row_stride;
        am_encode_row(lv, row, x->col_stride, x->is_f64, codes);
        am_sums_row(lv, codes, acc);
        am_dequant_row(lv, acc, 0, lv->M, out->data + (r0 + i) * out->row_stride,
                       out->col_stride, out->is_f64);
    }
    if (flags) {
        if (!am_flags_prepass(x))
            am_flags_generic(lv, x, r0, nrows, flags);
        am_nan_rows(out, r0, nrows, flags);
    }
    return 0;
}

static int portable_encode(const am_level_view *view, const am_matrix *x, uint8_t *codes,
                           int nthreads)
{
    am_level lv = am_level_of(view);
    if (am_narrow_call(x, NULL))
        return am_narrow_run(&lv, x, NULL, codes, NULL, 64, portable_scratch(lv.C, lv.M),
                             portable_encode_block, nthreads);
    am_call k = {&lv, x, NULL, codes, NULL};
    return am_run_blocks(&k, 64, portable_scratch(lv.C, lv.M), portable_encode_block, nthreads);
}

static int portable_product(const am_level_view *view, const am_matrix *x, am_matrix *out,
                            uint8_t *flags, int nthreads)
{
    am_level lv = am_level_of(view);
    if (am_narrow_call(x, out))
        return am_narrow_run(&lv, x, out, NULL, flags, 64, portable_scratch(lv.C, lv.M),
                             portable_block, nthreads);
    if (flags && am_flags_prepass(x) &&
        am_flags_prepass_run(&lv, x, flags, am_flags_block_generic, nthreads))
        return -1;
    am_call k = {&lv, x, out, NULL, flags};
    return am_run_blocks(&k, 64, portable_scratch(lv.C, lv.M), portable_block, nthreads);
}

const am_kernels am_kernels_portable = {
    .name = "portable",
    .packed_bytes = portable_packed_bytes,
    .pack = portable_pack,
    .encode = portable_encode,
    .product = portable_product,
};
