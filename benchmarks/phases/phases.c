/* Phase timings of one kernel call, without Python: links the AVX-512 (or AVX2) kernel
 * table of _ext/src/kernels_avx512.c (kernels_avx2.c) directly. Built three times by
 * run.sh: as shipped, with -DAM_PROFILE_ENCODE_ONLY (stop after the encoder) and with
 * -DAM_PROFILE_NO_STORE (table sums without dequantisation or stores), so that the
 * differences between the three builds split a call into encode, sums and output.
 *
 * usage: phases N D M C {C|F} REPS [THREADS]
 * environment: AVX2=1 (AVX2 table), FLAGS=1 (compute row flags, as the package does),
 * MISALIGN=k (x starts k bytes past a 2 MiB boundary).
 * Prints the minimum over REPS calls, in ms, as "time_ms <value>".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "am_kernels.h"

extern const am_kernels am_kernels_avx512, am_kernels_avx2;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Zeroed memory on 2 MiB boundaries, with transparent huge pages asked for (as NumPy
 * asks for them for large arrays). */
static void *big_alloc(size_t n)
{
    size_t huge = (size_t)2 << 20, len = (n + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, len);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    madvise(p, len, MADV_HUGEPAGE);
    memset(p, 0, len);
    return p;
}

static uint64_t state = 88172645463325252ull;
static uint64_t next(void) /* xorshift64 */
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)((next() >> 40) * 0x1p-24); }

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s N D M C {C|F} REPS [THREADS]\n", argv[0]);
        return 2;
    }
    ptrdiff_t N = atol(argv[1]), D = atol(argv[2]);
    int M = atoi(argv[3]), C = atoi(argv[4]), fortran = argv[5][0] == 'F';
    int reps = atoi(argv[6]), threads = argc > 7 ? atoi(argv[7]) : 1;
    const am_kernels *k = getenv("AVX2") ? &am_kernels_avx2 : &am_kernels_avx512;
    size_t mis = getenv("MISALIGN") ? (size_t)atol(getenv("MISALIGN")) : 0;

    float *x = (float *)((char *)big_alloc((size_t)N * D * 4 + mis) + mis);
    for (size_t i = 0; i < (size_t)N * D; i++)
        x[i] = uniform(-2.0f, 2.0f);

    int32_t *split = malloc(sizeof(int32_t) * 4 * C);
    float *thr = malloc(sizeof(float) * 15 * C), *lo = malloc(sizeof(float) * 4 * C),
          *hi = malloc(sizeof(float) * 4 * C);
    uint8_t *luts = malloc((size_t)C * 16 * M);
    double *scale = malloc(sizeof(double) * M), *offset = malloc(sizeof(double) * M);
    for (int i = 0; i < 4 * C; i++) {
        split[i] = (int32_t)(next() % (uint64_t)D);
        lo[i] = -5.0f;
        hi[i] = 5.0f;
    }
    for (int i = 0; i < 15 * C; i++)
        thr[i] = uniform(-2.0f, 2.0f);
    for (size_t i = 0; i < (size_t)C * 16 * M; i++)
        luts[i] = (uint8_t)next();
    for (int m = 0; m < M; m++) {
        scale[m] = 0.01;
        offset[m] = 1.0;
    }
    am_level_view lv = {C, M, split, thr, luts, scale, offset, NULL, lo, hi};
    size_t packed_bytes = (k->packed_bytes(C, M) + 63) / 64 * 64;
    uint8_t *packed = aligned_alloc(64, packed_bytes);
    k->pack(&lv, packed);
    lv.packed = packed;

    am_matrix xm = {(char *)x, N, D, fortran ? 4 : D * 4, fortran ? N * 4 : 4, 0};
    float *out = big_alloc((size_t)N * M * 4);
    am_matrix om = {(char *)out, N, M, (ptrdiff_t)M * 4, 4, 0};
    uint8_t *flags = getenv("FLAGS") ? malloc((size_t)N) : NULL;

    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = now();
        if (k->product(&lv, &xm, &om, flags, threads)) {
            fprintf(stderr, "kernel failed\n");
            return 1;
        }
        t = now() - t;
        if (t < best)
            best = t;
    }
    printf("time_ms %.3f\n", best * 1e3);
    return 0;
}
