/* The OpenMP row-block driver: a call (am_call) is cut into blocks of rows, each
 * handled by the variant's block function with its own scratch memory. Every row is
 * computed by the same code whatever the thread count or the block it falls in, so the
 * results are identical for every thread count. */
#ifndef AM_BLOCKS_H
#define AM_BLOCKS_H

#include "am_layout.h"
#include "am_tuning.h"

typedef struct am_call am_call;

/* Handles rows [r0, r0 + nrows) of the call. */
typedef int (*am_block_fn)(const am_call *k, ptrdiff_t r0, ptrdiff_t nrows, void *scratch);

/* One kernel call. */
struct am_call {
    const am_level *lv;
    const am_matrix *x;
    am_matrix *out; /* product: the (N, M) output; NULL for encode and flag passes */
    uint8_t *codes; /* encode: codes[n * C + c]; NULL otherwise */
    uint8_t *flags; /* row flags, N bytes, or NULL */
    /* Narrow inputs and float16 outputs only (am_narrow.h): the variant's own block
     * function for float32 rows, the bytes of its scratch, and the level as it reads
     * the widened split columns. */
    am_block_fn inner;
    size_t inner_scratch;
    const am_level *wide;
};

/* The flags of the block's first row, or NULL. */
AM_INLINE uint8_t *am_block_flags(const am_call *k, ptrdiff_t r0)
{
    return k->flags ? k->flags + r0 : NULL;
}

/* Rows per block: more rows when the tables are large, so that each pass over the
 * tables serves more rows. A multiple of 64. */
AM_UNUSED static ptrdiff_t am_block_rows(int C, int M)
{
    size_t table = am_mpad(C, 4) * 16 * am_mpad(M, 4);
    return table > AM_BLOCK_LARGE_TABLE_BYTES ? AM_BLOCK_ROWS_LARGE : AM_BLOCK_ROWS_SMALL;
}

AM_UNUSED static int am_run_blocks(const am_call *k, ptrdiff_t block_rows, size_t scratch_bytes,
                                   am_block_fn block, int nthreads)
{
    const am_level *lv = k->lv;
    ptrdiff_t N = k->x->rows;
    if (N <= 0)
        return 0;
    ptrdiff_t nblocks = (N + block_rows - 1) / block_rows;
#ifndef _OPENMP
    nthreads = 1;
#endif
    /* Small calls are not worth waking threads for. */
    double work = (double)N * ((double)lv->C * (k->out ? (double)lv->M : 1.0) + 8.0 * lv->C);
    if (work < AM_PARALLEL_MIN_WORK)
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
            block(k, r0, n, scratch);
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
            block(k, r0, n, scratch);
        }
        free(scratch);
    }
#endif
    return failed ? -1 : 0;
}

#endif
