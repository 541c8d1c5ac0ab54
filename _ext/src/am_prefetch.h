/* Software prefetch: whole rows ahead of the encoder (row-major input), shared with the
 * table sums when they take as long as the encoder; split columns ahead (column-major
 * input). Distances in am_tuning.h; -DAM_NO_PREFETCH turns it off (experiments). */
#ifndef AM_PREFETCH_H
#define AM_PREFETCH_H

#include "am_layout.h"
#include "am_tuning.h"

/* Software prefetch (towards L2) of whole rows, for inputs whose rows are runs of
 * adjacent values (C-order and row views), a few lines at a time from the encoder and,
 * for split prefetches, from the table sums, so that memory keeps streaming while the
 * tables are summed. */
typedef struct {
    const char *base;  /* x->data */
    ptrdiff_t rs;      /* row stride, bytes */
    ptrdiff_t bytes;   /* bytes per row */
    ptrdiff_t r, rend; /* next row to prefetch, end of the range */
    ptrdiff_t off;     /* next byte offset in row r */
} am_pf;

/* Lines per row. */
AM_INLINE ptrdiff_t am_pf_row_lines(const am_pf *p) { return (p->bytes + 63) / 64; }

/* Set up the prefetch for block [r0, r0 + nrows): the rows [r0 + d, r0 + d + nrows).
 * split: the block's table sums take about as long as its encoder, so the prefetch runs
 * one block ahead (d = nrows / 2 + AM_PF_AHEAD_BYTES of rows) and is shared between the
 * two: half of each row's lines per encoded row, the rest during the sums (am_pf_left).
 * Otherwise d = AM_PF_ROWS and the encoder prefetches whole rows. Returns the lines to
 * prefetch per encoded row. */
AM_UNUSED static ptrdiff_t am_pf_init(am_pf *p, const am_matrix *x, ptrdiff_t r0,
                                      ptrdiff_t nrows, int split)
{
    ptrdiff_t item = x->is_f64 ? 8 : 4;
    p->base = x->data;
    p->rs = x->row_stride;
    p->bytes = x->cols * item;
    p->off = 0;
    p->r = p->rend = 0;
#if defined(__GNUC__) && !defined(AM_NO_PREFETCH)
    if (x->col_stride != item || x->row_stride == item || p->bytes <= 0)
        return 0; /* not row runs: nothing to do here */
    ptrdiff_t d = split ? nrows / 2 + (AM_PF_AHEAD_BYTES + p->bytes - 1) / p->bytes : AM_PF_ROWS;
    p->r = r0 + d;
    p->rend = r0 + d + nrows < x->rows ? r0 + d + nrows : x->rows;
    ptrdiff_t lines = am_pf_row_lines(p);
    return split ? (lines + 1) / 2 : lines;
#else
    (void)r0;
    (void)nrows;
    (void)split;
    return 0;
#endif
}

/* Lines still to prefetch. */
AM_INLINE ptrdiff_t am_pf_left(const am_pf *p)
{
    return p->r < p->rend ? (p->rend - p->r) * am_pf_row_lines(p) - p->off / 64 : 0;
}

/* Prefetch the next n lines or so of the range (a row's last line is added when the row
 * does not start on a line). */
AM_INLINE void am_pf_lines(am_pf *p, ptrdiff_t n)
{
#if defined(__GNUC__) && !defined(AM_NO_PREFETCH)
    while (n > 0 && p->r < p->rend) {
        const char *row = p->base + p->r * p->rs;
        ptrdiff_t end = p->off + 64 * n < p->bytes ? p->off + 64 * n : p->bytes;
        for (ptrdiff_t o = p->off; o < end; o += 64)
            __builtin_prefetch(row + o, 0, 2);
        n -= (end - p->off + 63) / 64;
        if (end < p->bytes) {
            p->off = end;
        } else {
            __builtin_prefetch(row + p->bytes - 1, 0, 2);
            p->off = 0;
            p->r++;
        }
    }
#else
    (void)p;
    (void)n;
#endif
}

/* Column-major input (rows adjacent in memory): prefetch (towards L2) rows
 * [row + AM_SPLIT_AHEAD_ROWS, ... + n) of the split columns of codebooks c0 .. c0 + k - 1.
 * The encoders call it for each codebook (group) just before encoding it, so that the
 * ~4C column streams keep flowing at a steady distance (the hardware prefetchers follow
 * only a few streams), and the prefetches are spread out and in the order the columns
 * are used: issued for all distinct columns in one burst per group of rows, most of them
 * were lost at C >= 24 (see benchmarks/LOG.md). */
AM_INLINE int am_prefetch_split(const am_matrix *x)
{
    ptrdiff_t item = x->is_f64 ? 8 : 4;
    return x->row_stride == item && (double)x->rows * x->cols * item >= AM_SPLIT_PREFETCH_MIN_BYTES;
}
AM_INLINE void am_prefetch_split_ahead(const am_level *lv, const am_matrix *x,
                                       ptrdiff_t row, ptrdiff_t n, int c0, int k)
{
#if defined(__GNUC__) && !defined(AM_NO_PREFETCH)
    row += AM_SPLIT_AHEAD_ROWS;
    if (row + n > x->rows)
        n = x->rows - row;
    if (n <= 0)
        return;
    ptrdiff_t item = x->is_f64 ? 8 : 4;
    const char *base = x->data + row * item;
    const int32_t *sd = lv->split_dims + 4 * c0;
    for (int j = 0; j < 4 * k; j++) {
        const char *p = base + sd[j] * x->col_stride;
        for (ptrdiff_t b = 0; b < n * item; b += 64)
            __builtin_prefetch(p + b, 0, 2);
    }
#else
    (void)lv; (void)x; (void)row; (void)n; (void)c0; (void)k;
#endif
}

#endif
