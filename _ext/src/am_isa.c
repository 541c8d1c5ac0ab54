/* Instruction sets: which kernel variants are built, which ones this CPU runs, the one
 * chosen at import (APPROXMAT_FORCE_ISA lowers it), and the OpenMP facts the Python
 * side needs. Compiled once, with the baseline flags. */
#include <stdlib.h>
#include <string.h>

#include "am_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__)
#define AM_ISA_UNUSED __attribute__((unused))
#else
#define AM_ISA_UNUSED
#endif

/* CPU checks. __builtin_cpu_supports also checks that the OS saves the wide registers. */
AM_ISA_UNUSED static int am_cpu_any(void) { return 1; }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
AM_ISA_UNUSED static int am_cpu_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c");
}

AM_ISA_UNUSED static int am_cpu_avx512(void)
{
    return am_cpu_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vbmi") &&
           __builtin_cpu_supports("avx512vnni");
}
#endif

typedef struct {
    const char *name;
    const am_kernels *table;
    int (*cpu_runs)(void);
} am_entry;

/* Built variants (meson defines AM_HAVE_<NAME> for each), from the most portable to the
 * widest: a new instruction set is one more entry. */
static const am_entry am_built[] = {
#if defined(AM_HAVE_PORTABLE)
    {"portable", &am_kernels_portable, am_cpu_any},
#endif
#if defined(AM_HAVE_AVX2)
    {"avx2", &am_kernels_avx2, am_cpu_avx2},
#endif
#if defined(AM_HAVE_AVX512)
    {"avx512", &am_kernels_avx512, am_cpu_avx512},
#endif
};
#define AM_NBUILT ((int)(sizeof(am_built) / sizeof(am_built[0])))

int am_supported_variants(const char **names, int capacity)
{
    int n = 0;
    for (int i = 0; i < AM_NBUILT; i++)
        if (am_built[i].cpu_runs() && n < capacity)
            names[n++] = am_built[i].name;
    return n;
}

const am_kernels *am_variant(const char *name)
{
    for (int i = 0; i < AM_NBUILT; i++)
        if (strcmp(am_built[i].name, name) == 0)
            return am_built[i].cpu_runs() ? am_built[i].table : NULL;
    return NULL;
}

const am_kernels *am_default_variant(const char **error)
{
    const char *forced = getenv("APPROXMAT_FORCE_ISA");
    *error = NULL;
    if (forced != NULL && forced[0] != '\0') {
        const am_kernels *table = am_variant(forced);
        if (table == NULL)
            *error = "APPROXMAT_FORCE_ISA names a variant that is not built or that this CPU "
                     "cannot run";
        return table;
    }
    for (int i = AM_NBUILT - 1; i >= 0; i--)
        if (am_built[i].cpu_runs())
            return am_built[i].table;
    return NULL;
}

int am_omp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int am_omp_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int am_parallel_probe(int nthreads)
{
    int seen = 1;
#ifdef _OPENMP
    if (nthreads < 1)
        nthreads = 1;
#pragma omp parallel num_threads(nthreads)
    {
#pragma omp single
        seen = omp_get_num_threads();
    }
#else
    (void)nthreads;
#endif
    return seen;
}
