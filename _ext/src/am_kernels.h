/* approxmat compiled core, the C API: a level and a matrix as the kernels see them, and
 * the table of kernels each instruction-set variant provides.
 *
 * Each variant is one file, kernels_<name>.c, compiled once with its own flags; it
 * defines `am_kernels_<name>`, an am_kernels table. am_isa.c chooses one table at import.
 */
#ifndef AM_KERNELS_H
#define AM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One fitted level as the kernels see it (see approxmat/_level.py for the semantics).
 * All pointers are to C-contiguous arrays owned by the caller. */
typedef struct am_level_view {
    int C;                      /* codebooks, 1..256 */
    int M;                      /* output columns, >= 1 */
    const int32_t *split_dims;  /* (C, 4), each in [0, D) */
    const float *thresholds;    /* (C, 15), heap order */
    const uint8_t *luts;        /* (C, 16, M) */
    const double *scale;        /* (M,) */
    const double *offset;       /* (M,) */
    const uint8_t *packed;      /* am_packed_bytes(variant, C, M) bytes from pack() */
    /* (C, 4) calibration ranges of the split columns, or both NULL. Read by pack() only:
     * the packed form keeps their intersection per distinct split column. */
    const float *split_low;
    const float *split_high;
} am_level_view;

/* Element types narrower than float32 (am_matrix.narrow): inputs read as they are
 * (am_narrow.h), and float16 outputs. */
enum am_narrow_type {
    AM_WIDE = 0, /* float32 (is_f64 = 0) or float64 (is_f64 = 1) */
    AM_U8 = 1,
    AM_I8 = 2,
    AM_U16 = 3,
    AM_I16 = 4,
    AM_F16 = 5,
    AM_BF16 = 6, /* bfloat16 (ml_dtypes): the top 16 bits of a float32 */
};

/* A strided 2-D array; strides in bytes, any sign, any alignment. Its elements are
 * float32 or float64 (narrow = AM_WIDE, is_f64 says which) or, with is_f64 = 0, of a
 * narrow type: any of them for x, AM_F16 for an output. */
typedef struct am_matrix {
    char *data;
    ptrdiff_t rows, cols;
    ptrdiff_t row_stride, col_stride;
    int is_f64;
    int narrow;
} am_matrix;

typedef struct am_kernels {
    /* Variant name: "portable", "avx2" or "avx512". */
    const char *name;
    /* Bytes of the packed form of a level with C codebooks and M outputs. */
    size_t (*packed_bytes)(int C, int M);
    /* Fill lv->packed-to-be `dst` (packed_bytes(C, M) bytes) from the other fields. */
    void (*pack)(const am_level_view *lv, uint8_t *dst);
    /* codes[n * C + c] for rows of x (x.cols == D): the encoder alone, for tests. Returns 0,
     * or -1 when out of memory. */
    int (*encode)(const am_level_view *lv, const am_matrix *x, uint8_t *codes, int nthreads);
    /* out (N, M) = dequantised table sums of the codes of x. 0, or -1 (out of memory).
     * With flags != NULL (N bytes) also the row flags: bit 0 when row n of x has a NaN or
     * +-inf in any of its D columns (its output row is then all NaN), bit 1 when the row is
     * finite and some split column lies outside the packed calibration range (levels with
     * ranges only). flags == NULL skips both (pure product). */
    int (*product)(const am_level_view *lv, const am_matrix *x, am_matrix *out, uint8_t *flags,
                   int nthreads);
} am_kernels;

/* The variants' tables (each defined by kernels_<name>.c, when built). */
extern const am_kernels am_kernels_portable;
extern const am_kernels am_kernels_avx2;
extern const am_kernels am_kernels_avx512;

/* Instruction sets (am_isa.c). */
/* Names of the variants this CPU and OS can run, best last; returns how many. */
int am_supported_variants(const char **names, int capacity);
/* The table of the named variant, or NULL when it is not built or not supported. */
const am_kernels *am_variant(const char *name);
/* The best supported variant, lowered to APPROXMAT_FORCE_ISA when that is set. */
const am_kernels *am_default_variant(const char **error);

/* Threads. */
int am_omp_enabled(void);
int am_omp_max_threads(void);
/* Runs a parallel region with `nthreads` and returns how many threads took part. */
int am_parallel_probe(int nthreads);

#ifdef __cplusplus
}
#endif
#endif
