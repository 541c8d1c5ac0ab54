/* approxmat compiled core: the table of kernels each instruction-set variant provides.
 *
 * am_kernels_body.c is compiled once per variant with AM_VARIANT=<name>; it defines
 * `am_kernels_<name>`, an am_kernels table. am_dispatch.c chooses one table at import.
 */
#ifndef AM_KERNELS_H
#define AM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct am_kernels {
    /* Variant name: "portable", "avx2" or "avx512". */
    const char *name;
    /* Output columns processed together by the variant's inner loop (diagnostics). */
    int vector_bytes;
} am_kernels;

#define AM_CAT_(a, b) a##b
#define AM_CAT(a, b) AM_CAT_(a, b)
#define AM_TABLE_NAME(variant) AM_CAT(am_kernels_, variant)

#if defined(AM_HAVE_PORTABLE)
extern const am_kernels am_kernels_portable;
#endif
#if defined(AM_HAVE_AVX2)
extern const am_kernels am_kernels_avx2;
#endif
#if defined(AM_HAVE_AVX512)
extern const am_kernels am_kernels_avx512;
#endif

/* Dispatch (am_dispatch.c). */
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
