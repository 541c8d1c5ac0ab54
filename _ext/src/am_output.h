/* Output writers: how the dequantised sums reach the caller's (N, M) array, and the NaN
 * rows of flagged inputs. The variants choose one am_write per block (a small function
 * in each ISA file) and their store loops follow it; the copy-outs are here.
 *
 * Non-temporal copies need the ISA file to define, before including this header,
 * AM_STREAM_LINE(dst, src) (one 64-byte line, dst 64-byte aligned, with non-temporal
 * stores) and AM_COPY_LINE(dst, src) (one 64-byte line, plain stores). */
#ifndef AM_OUTPUT_H
#define AM_OUTPUT_H

#include "am_layout.h"
#include "am_profile.h"
#include "am_tuning.h"

typedef enum am_write {
    AM_WRITE_PLAIN,    /* in place, output columns adjacent */
    AM_WRITE_STRIDED,  /* through a small tile, copied value by value (am_copy_tile) */
    AM_WRITE_STAGED,   /* whole rows into an L1 staging buffer, then copied out as one run
                        * with non-temporal stores (am_stream_copy) */
    AM_WRITE_STREAMED, /* whole 64-byte lines with non-temporal stores: in place, or from
                        * a staging buffer of a few lines per row (am_stream_piece) */
} am_write;

AM_INLINE int am_itemsize(const am_matrix *m) { return m->is_f64 ? 8 : 4; }

/* Output columns adjacent in memory. */
AM_INLINE int am_out_adjacent(const am_matrix *out) { return out->col_stride == am_itemsize(out); }

/* Output rows adjacent too (one run of N M values). */
AM_INLINE int am_out_dense(const am_matrix *out, int M)
{
    return am_out_adjacent(out) && out->row_stride == (ptrdiff_t)M * am_itemsize(out);
}

/* Large enough for non-temporal stores (AM_STREAM_MIN_BYTES). */
AM_INLINE int am_out_large(const am_matrix *out, int M)
{
    return (double)out->rows * M * am_itemsize(out) >= AM_STREAM_MIN_BYTES;
}

/* Copy a tile of nrows x ncols values (row-major, row stride tile_rs bytes) into a
 * strided output. */
AM_UNUSED static void am_copy_tile(const char *tile, ptrdiff_t tile_rs, int nrows, int ncols,
                                   char *dst, ptrdiff_t ors, ptrdiff_t ocs, int itemsize)
{
    for (int i = 0; i < nrows; i++)
        for (int j = 0; j < ncols; j++)
            memcpy(dst + i * ors + j * ocs, tile + i * tile_rs + j * itemsize, (size_t)itemsize);
}

#ifdef AM_STREAM_LINE
/* Copy len bytes from src (in cache) to dst with non-temporal stores for the whole,
 * 64-byte aligned lines of dst and plain copies for the partial lines at both ends (no
 * read for ownership of the lines written whole); the caller fences. */
AM_INLINE void am_stream_copy(char *dst, const char *src, size_t len)
{
    AM_PROFILE_INSTEAD_OF_STORE(return;)
    size_t head = (size_t)((64 - ((uintptr_t)dst & 63)) & 63);
    if (head > len)
        head = len;
    memcpy(dst, src, head);
    size_t o = head;
    for (; o + 64 <= len; o += 64)
        AM_STREAM_LINE(dst + o, src + o);
    memcpy(dst + o, src + o, len - o);
}

/* Copy one row piece of len bytes: whole lines (full: len a multiple of 64) with
 * non-temporal stores when dst is 64-byte aligned, else plainly; the caller fences. */
AM_INLINE void am_stream_piece(char *dst, const char *src, int len, int full)
{
    AM_PROFILE_INSTEAD_OF_STORE(return;)
    if (full && ((uintptr_t)dst & 63) == 0)
        for (int b = 0; b < len; b += 64)
            AM_STREAM_LINE(dst + b, src + b);
    else if (full)
        for (int b = 0; b < len; b += 64)
            AM_COPY_LINE(dst + b, src + b);
    else
        memcpy(dst, src, (size_t)len);
}
#endif

/* NaN into the output rows r0 + i whose flag has bit 0 (NumPy's quiet NaN, as np.nan). */
AM_UNUSED static void am_nan_rows(am_matrix *out, ptrdiff_t r0, ptrdiff_t nrows,
                                  const uint8_t *flags)
{
    for (ptrdiff_t i = 0; i < nrows; i++) {
        if (!(flags[i] & 1))
            continue;
        char *row = out->data + (r0 + i) * out->row_stride;
        if (out->is_f64) {
            const uint64_t nan = 0x7FF8000000000000ull;
            for (ptrdiff_t m = 0; m < out->cols; m++)
                memcpy(row + m * out->col_stride, &nan, 8);
        } else {
            const uint32_t nan = 0x7FC00000u;
            for (ptrdiff_t m = 0; m < out->cols; m++)
                memcpy(row + m * out->col_stride, &nan, 4);
        }
    }
}

#endif
