"""asv: accuracy (relative test error) and fit time of the learner.

Fixed, seeded low-rank data smaller than ``benchmarks/accuracy.py`` so that a
quick asv run stays short: rank 16, D = 128, 4 000 calibration rows, 2 000 test
rows, M = 10.
"""

import numpy as np

from approxmat._fit import FitOptions, fit_levels
from approxmat._reference import approx_matmul

_CS = [4, 8, 16, 32]
#: Split columns restricted to each codebook's contiguous block, as in the paper.
_BLOCK = FitOptions(split_columns="block")
#: The paper's tree criterion.
_REFERENCE = FitOptions(tree_mode="reference")


def _problem(seed=0, n_cal=4000, n_test=2000, D=128, M=10, rank=16):
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((rank, D))

    def draw(n):
        z = rng.standard_normal((n, rank))
        return (z @ basis + 0.1 * rng.standard_normal((n, D))).astype(np.float32)

    return draw(n_cal), draw(n_test), rng.standard_normal((D, M))


class AccuracySuite:
    """``track_*``: relative Frobenius error on test rows; lower is better."""

    params = [_CS]
    param_names = ["ncodebooks"]
    unit = "relative error"
    timeout = 300

    def setup_cache(self):
        X_cal, X_test, W = _problem()
        levels = fit_levels(X_cal, W, _CS, random_state=0)
        Y = X_test.astype(np.float64) @ W
        out = {}
        for lv in levels:
            err = np.linalg.norm(approx_matmul(X_test, lv, np.float64) - Y) / np.linalg.norm(Y)
            out[lv.ncodebooks] = (float(err), float(lv.error))
        return out

    def track_test_error(self, cache, ncodebooks):
        return cache[ncodebooks][0]

    def track_validated_error(self, cache, ncodebooks):
        return cache[ncodebooks][1]

    def track_block_columns_test_error(self, cache, ncodebooks):
        """Split columns restricted to each codebook's contiguous block."""
        X_cal, X_test, W = _problem()
        lv = fit_levels(X_cal, W, ncodebooks, random_state=0, options=_BLOCK)[0]
        Y = X_test.astype(np.float64) @ W
        return float(np.linalg.norm(approx_matmul(X_test, lv, np.float64) - Y) / np.linalg.norm(Y))

    def track_reference_criterion_test_error(self, cache, ncodebooks):
        X_cal, X_test, W = _problem()
        lv = fit_levels(X_cal, W, ncodebooks, random_state=0, options=_REFERENCE)[0]
        Y = X_test.astype(np.float64) @ W
        return float(np.linalg.norm(approx_matmul(X_test, lv, np.float64) - Y) / np.linalg.norm(Y))


class FitTimeSuite:
    params = [[8, 32]]
    param_names = ["ncodebooks"]
    timeout = 300

    def setup(self, ncodebooks):
        self.X_cal, _, self.W = _problem()

    def time_fit(self, ncodebooks):
        fit_levels(self.X_cal, self.W, ncodebooks, random_state=0)

    def peakmem_fit(self, ncodebooks):
        fit_levels(self.X_cal, self.W, ncodebooks, random_state=0)
