"""Shared fixtures: random fitted levels built directly (no learner needed).

The levels come from :mod:`approxmat._testing`, the factory the tests and the
benchmarks share; these fixtures only wrap it.
"""

import numpy as np
import pytest

from approxmat import _testing


def _plain_level(D, M, C, rng, *, error=0.1, x_for_thresholds=None):
    """:func:`approxmat._testing.random_level` without saturated table entries and with
    unit-variance offsets; thresholds spread over ``x_for_thresholds`` if given."""
    return _testing.random_level(D, M, C, rng, x=x_for_thresholds, error=error,
                                 saturated=0.0, offset_scale=1.0)


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
    levels = [_plain_level(D, M, 4, rng, error=0.3), _plain_level(D, M, 8, rng, error=0.1)]
    return weights, _testing.with_costs(W._with_levels(levels))


@pytest.fixture
def make_level():
    """A random-level factory ``make_level(D, M, C, rng, *, error=0.1,
    x_for_thresholds=None)`` (tests cannot import conftest directly)."""
    return _plain_level
