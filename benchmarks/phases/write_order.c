/* Time to write an N x M float32 output once with non-temporal stores (two 32-byte
 * stores per 64-byte line, so that it runs with AVX2), in
 * the orders the AVX-512 table sums can produce it: row by row (memory order), and
 * in 16-column tiles (64 bytes of each row) down blocks of B rows, W adjacent tiles
 * per row at a time. No computation: the memory system alone.
 *
 * usage: write_order N M REPS
 * Prints one line per order: minimum over REPS passes, in ms.
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s N M REPS\n", argv[0]);
        return 2;
    }
    size_t N = (size_t)atol(argv[1]), M = (size_t)atol(argv[2]);
    int reps = atoi(argv[3]);
    if (M % 16 || N % 256) {
        fprintf(stderr, "M must be a multiple of 16 and N of 256\n");
        return 2;
    }
    size_t huge = (size_t)2 << 20, len = (N * M * 4 + huge - 1) / huge * huge;
    float *o = aligned_alloc(huge, len);
    if (!o)
        return 1;
    madvise(o, len, MADV_HUGEPAGE);
    memset(o, 0, len);
    const __m256 v = _mm256_set1_ps(1.0f); /* AVX2: a 64-byte line is two 32-byte stores */
    const size_t blocks[] = {0, 256, 64, 16}, widths[] = {1, 2, 4};
    for (size_t bi = 0; bi < sizeof blocks / sizeof *blocks; bi++)
        for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
            size_t B = blocks[bi], W = widths[wi];
            if (B == 0 && wi > 0)
                continue;
            double best = 1e30;
            for (int r = 0; r < reps; r++) {
                double t = now();
                if (B == 0) {
                    for (size_t i = 0; i < N * M; i += 16) {
                        _mm256_stream_ps(o + i, v);
                        _mm256_stream_ps(o + i + 8, v);
                    }
                } else {
                    for (size_t r0 = 0; r0 < N; r0 += B)
                        for (size_t t0 = 0; t0 < M / 16; t0 += W)
                            for (size_t row = r0; row < r0 + B; row++)
                                for (size_t t = t0; t < t0 + W && t < M / 16; t++) {
                                    _mm256_stream_ps(o + row * M + 16 * t, v);
                                    _mm256_stream_ps(o + row * M + 16 * t + 8, v);
                                }
                }
                _mm_sfence();
                t = now() - t;
                if (t < best)
                    best = t;
            }
            if (B == 0)
                printf("memory order                      %8.3f ms  %5.1f GB/s\n", best * 1e3,
                       (double)(N * M * 4) / best / 1e9);
            else
                printf("tiles, blocks of %3zu rows, %zu wide  %8.3f ms  %5.1f GB/s\n", B, W,
                       best * 1e3, (double)(N * M * 4) / best / 1e9);
        }
    return 0;
}
