/* The learner's split search: the best threshold of candidate columns for every bucket
 * of a tree level (approxmat/_fit/_trees.py, _split_candidates). */
#ifndef AM_SPLIT_SEARCH_H
#define AM_SPLIT_SEARCH_H

#include <stddef.h>
#include <stdint.h>

/* For each candidate column j = cand[i] and each bucket b of the rows (bucket[r] < nb),
 * the split of the column's values that maximises  |S_L|^2 / n_L + |S_R|^2 / n_R  over
 * the features `feats` (n x f, float32, row-major), where S_L is the sum of the
 * features of the bucket's rows with value <= the split and S_R that of the others
 * (S_R = tot[b] - S_L); tt[b] = |tot[b]|^2. Only positions between two distinct values
 * count; the first best one wins.
 *
 * order[j * n + .] (n per column): the rows sorted by column j's value; values[j * n +
 * .]: the values in that order. Outputs, (k, nb) row-major, per candidate and bucket:
 * gain (-inf when the bucket has no valid split), lo and hi (the values either side of
 * the split), vmax (the bucket's largest value; untouched for an empty bucket).
 * Candidates run on up to `nthreads` OpenMP threads. Returns 0, or -1 when out of
 * memory. */
int am_best_splits(const float *feats, ptrdiff_t n, ptrdiff_t f, const int32_t *order,
                   const double *values, const intptr_t *cand, int k,
                   const uint8_t *bucket, int nb, const float *tot, const double *tt,
                   double *gain, double *lo, double *hi, double *vmax, int nthreads);

#endif
