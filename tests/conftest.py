"""Shared fixtures: random fitted levels built directly (no learner needed)."""

import numpy as np
import pytest

from approxmat._level import Level


def random_level(D, M, C, rng, *, error=0.1, x_for_thresholds=None):
    """A valid Level with random parameters; thresholds spread over the data if given."""
    split_dims = rng.integers(0, D, size=(C, 4)).astype(np.int32)
    if x_for_thresholds is not None and len(x_for_thresholds):
        pool = np.asarray(x_for_thresholds, dtype=np.float64).ravel()
        thresholds = rng.choice(pool, size=(C, 15)).astype(np.float32)
    else:
        thresholds = rng.standard_normal((C, 15)).astype(np.float32)
    luts = rng.integers(0, 256, size=(C, 16, M), dtype=np.uint8)
    scale = rng.uniform(1e-3, 1e-1, size=M)
    offset = rng.standard_normal(M)
    return Level(split_dims, thresholds, luts, scale, offset, error=error)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def fitted_pair(rng):
    """(weights, W) with W carrying two random levels (C=4 err .3, C=8 err .1)."""
    import approxmat as am

    D, M = 24, 5
    weights = rng.standard_normal((D, M))
    W = am.ApproxMatrix(weights)
    levels = [random_level(D, M, 4, rng, error=0.3), random_level(D, M, 8, rng, error=0.1)]
    return weights, W._with_levels(levels)


@pytest.fixture
def make_level():
    """The :func:`random_level` factory (tests cannot import conftest directly)."""
    return random_level
