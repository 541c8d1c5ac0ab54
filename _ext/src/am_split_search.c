/* The learner's split search (see am_split_search.h). Portable C: the loops over the
 * features are `omp simd` (the sums of a row's features are independent), compiled
 * with the baseline flags of the build. */
#include "am_split_search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int am_best_splits(const float *feats, ptrdiff_t n, ptrdiff_t f, const int32_t *order,
                   const double *values, const uint8_t *bucket, int nb,
                   const float *tot, const double *tt, double *gain, double *lo,
                   double *hi, double *vmax)
{
    ptrdiff_t starts[257], fill[257];
    int32_t *rows = malloc((size_t)(n > 0 ? n : 1) * sizeof *rows);
    double *vals = malloc((size_t)(n > 0 ? n : 1) * sizeof *vals);
    float *sums = malloc((size_t)(f > 0 ? f : 1) * sizeof *sums);
    if (!rows || !vals || !sums) {
        free(rows);
        free(vals);
        free(sums);
        return -1;
    }
    /* Stable counting sort of the value-sorted rows by bucket: (bucket, value) order. */
    memset(starts, 0, sizeof starts);
    for (ptrdiff_t i = 0; i < n; i++)
        starts[bucket[order[i]] + 1]++;
    for (int b = 0; b < nb; b++)
        starts[b + 1] += starts[b];
    memcpy(fill, starts, sizeof fill);
    for (ptrdiff_t i = 0; i < n; i++) {
        ptrdiff_t at = fill[bucket[order[i]]]++;
        rows[at] = order[i];
        vals[at] = values[i];
    }
    for (int b = 0; b < nb; b++) {
        ptrdiff_t start = starts[b], count = starts[b + 1] - starts[b];
        const float *total = tot + (ptrdiff_t)b * f;
        double best = -INFINITY;
        ptrdiff_t at = -1;
        gain[b] = -INFINITY;
        if (count == 0)
            continue;
        vmax[b] = vals[start + count - 1];
        memset(sums, 0, (size_t)f * sizeof *sums);
        for (ptrdiff_t i = 0; i + 1 < count; i++) {
            const float *row = feats + (ptrdiff_t)rows[start + i] * f;
            float ll = 0.0f, tl = 0.0f;
#pragma omp simd reduction(+ : ll, tl)
            for (ptrdiff_t k = 0; k < f; k++) {
                float s = sums[k] + row[k];
                sums[k] = s;
                ll += s * s;
                tl += s * total[k];
            }
            if (vals[start + i] < vals[start + i + 1]) {
                double nl = (double)(i + 1), nr = (double)(count - i - 1);
                double g = (double)ll / nl + (tt[b] - 2.0 * (double)tl + (double)ll) / nr;
                if (g > best) {
                    best = g;
                    at = start + i;
                }
            }
        }
        if (at >= 0) {
            gain[b] = best;
            lo[b] = vals[at];
            hi[b] = vals[at + 1];
        }
    }
    free(rows);
    free(vals);
    free(sums);
    return 0;
}
