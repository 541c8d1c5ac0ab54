/* Every tuning constant of the kernels, each with the measurement that chose it
 * (Zen 4 unless noted; the tables are in benchmarks/LOG.md). Each can be
 * overridden with -D for experiments. */
#ifndef AM_TUNING_H
#define AM_TUNING_H

/* ---- Row blocks (am_blocks.h) ---- */

/* Rows per block: more rows when the tables are large (more than 32 KiB), so that each
 * pass over the tables serves more rows. Multiples of 64. */
#ifndef AM_BLOCK_ROWS_SMALL
#define AM_BLOCK_ROWS_SMALL 64
#endif
#ifndef AM_BLOCK_ROWS_LARGE
#define AM_BLOCK_ROWS_LARGE 256
#endif
#ifndef AM_BLOCK_LARGE_TABLE_BYTES
#define AM_BLOCK_LARGE_TABLE_BYTES 32768
#endif

/* Calls with less work than this (N (C M + 8 C), in lookups) are not worth waking
 * threads for: they run on one thread. */
#ifndef AM_PARALLEL_MIN_WORK
#define AM_PARALLEL_MIN_WORK 2.0e5
#endif

/* ---- Output (am_output.h) ---- */

/* Outputs of at least this many bytes are written with non-temporal stores (they do not
 * fit in the caches anyway). */
#ifndef AM_STREAM_MIN_BYTES
#define AM_STREAM_MIN_BYTES (16.0 * 1024 * 1024)
#endif

/* The AVX-512 16 x 16 tiles (M < AM_ROW_MIN_M or M > AM_ROW_MAX_M) stream from smaller
 * outputs: each tile row is a whole 64-byte line, and the plain stores' reads for
 * ownership cost more than the caches give back. Measured (benchmarks/phases, C = 16,
 * D = 64, M = 16, plain / non-temporal, min of 7): 0.5-2 MiB 1.02-1.08 slower streamed,
 * 4 MiB 0.81 (F-order) and 0.99 (C-order), 8 MiB 0.89 / 0.96, 12.8 MiB (N = 200 000,
 * D = 27) 0.58 F-order; the sums along M (M = 100) stay 12-24 % faster with plain stores
 * up to 6 MiB, hence AM_STREAM_MIN_BYTES for them. */
#ifndef AM_TILE_STREAM_MIN_BYTES
#define AM_TILE_STREAM_MIN_BYTES (4.0 * 1024 * 1024)
#endif

/* ---- Encoder (am_encode_avx512.h, am_narrow.h) ---- */

/* Row-major rows of at most AM_TRANSPOSE_MAX_D adjacent values are transposed in
 * registers, 16 rows at a time, instead of copied value by value (transpose_rows16),
 * when the level has at least AM_TRANSPOSE_MIN_COLS distinct split columns per 16
 * columns of the row: a transpose costs about as much as copying 4 columns of 16 rows.
 * Measured (benchmarks/phases, float32, row flags, transposed / copied, min of 7):
 * D = 27 C = 16 M = 2: 0.72; D = 16 C = 8: 0.63; D = 64 C = 16 M = 10: 0.64; D = 96
 * C = 16: 0.68; D = 128 C = 16 M = 100: 0.83; D = 192 C = 16 M = 64: 0.95; D = 256
 * C = 32: 0.96; but D = 192 C = 8 (about 2.5 columns per 16): 2.08. */
#ifndef AM_TRANSPOSE_MAX_D
#define AM_TRANSPOSE_MAX_D 256
#endif
/* The same for narrow rows (am_narrow.h), up to a shorter length: at (265 860 x 192) ->
 * 64, C = 16, transposing took 21.6 / 29.4 / 34.8 ms (uint8 / uint16 / float16) where
 * the value-by-value widening took 19.0 / 23.4 / 27.3 (benchmarks/narrow.py, two runs);
 * at D = 27 it is the faster (see benchmarks/LOG.md, 2026-12-03). */
#ifndef AM_NARROW_TRANSPOSE_MAX_D
#define AM_NARROW_TRANSPOSE_MAX_D 64
#endif
#ifndef AM_TRANSPOSE_MIN_COLS
#define AM_TRANSPOSE_MIN_COLS 4
#endif

/* ---- Prefetch (am_prefetch.h) ---- */

/* Distance of the row prefetch, in rows ahead of the encoder; for a split prefetch, the
 * bytes of rows ahead beyond half a block. */
#ifndef AM_PF_ROWS
#define AM_PF_ROWS 16
#endif
#ifndef AM_PF_AHEAD_BYTES
#define AM_PF_AHEAD_BYTES (64 * 1024)
#endif

/* Column-major input: rows ahead of the encoder at which the split columns are
 * prefetched, one codebook (group) at a time. Issued for all distinct columns in one
 * burst per group of rows, most of the prefetches were lost at C >= 24. */
#ifndef AM_SPLIT_AHEAD_ROWS
#define AM_SPLIT_AHEAD_ROWS 256
#endif
/* Only for x of at least this many bytes: smaller ones are likely in L3 (32 MiB here),
 * where the prefetch instructions cost more than they save (N = 10 000, D = 512:
 * 0.096 ms without, 0.125 ms with; N = 20 000: 0.278 without, 0.256 with). */
#ifndef AM_SPLIT_PREFETCH_MIN_BYTES
#define AM_SPLIT_PREFETCH_MIN_BYTES (32.0 * 1024 * 1024)
#endif

/* ---- AVX-512 (kernels_avx512.c) ---- */

/* Sums along M (rows of the tables) for AM_ROW_MIN_M <= M <= AM_ROW_MAX_M; otherwise
 * 16 x 16 tiles of vpermb / vpdpbusd sums and a transpose. The row path wins at
 * M ~ 64-256, loses at M <= 32 (padding to 32 outputs, per-row overhead) and at
 * M >= 512 (table rows leave L1/L2). Part of the packed layout (the row tables exist
 * only in that range): changing it changes the packed bytes. */
#ifndef AM_ROW_MIN_M
#define AM_ROW_MIN_M 48
#endif
#ifndef AM_ROW_MAX_M
#define AM_ROW_MAX_M 256
#endif

/* The vpermb path walks 16 rows across every output column when its tables (Mp16 x G x
 * 64 bytes) take at most this many bytes (they then stay in L2), else one 16-column tile
 * down the whole row block. */
#ifndef AM_TILE_ROWS_FIRST_BYTES
#define AM_TILE_ROWS_FIRST_BYTES (512 * 1024)
#endif

/* ---- AVX2 (kernels_avx2.c) ---- */

/* The table sums share the prefetch of the rows ahead (am_pf_init, split) from this
 * many outputs on. */
#ifndef AM_PF_SPLIT_MIN_M
#define AM_PF_SPLIT_MIN_M 48
#endif

/* Output written in place 4 columns at a time: blocks of AM_BLOCK_ROWS_SMALL rows, so
 * that the rows being written stay in L1 (256 rows measured 1.1-1.4x slower at M = 100,
 * C = 32). Streamed outputs use am_block_rows (larger blocks for large tables). */

/* Staging buffer of the table sums' output (large outputs only): at least 32 rows x 16
 * float64 columns. Staging a whole block of a large output (row-major x) and copying it
 * out with non-temporal stores: M = 60-100 9-21 % faster; with column-major x the
 * buffer's room in L1 cost more (4-8 % slower), so it is not used there. */
#ifndef AVX2_STAGE_BYTES
#define AVX2_STAGE_BYTES (64 * 1024)
#endif

#endif
