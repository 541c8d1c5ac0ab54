"""The settings of the learner that are choices, not contracts: :class:`FitOptions`.

Each default below was chosen by a measurement (or is the paper's value, kept
for comparison); the measurements are those of ``benchmarks/accuracy.py``
(rank-32 data, D = 512, M = 10, 20 000 calibration rows, seed 0) unless noted.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

__all__ = ["FitOptions", "TREE_MODES", "SPLIT_COLUMNS"]

#: Values of :attr:`FitOptions.tree_mode`.
TREE_MODES = ("residual", "reference")
#: Values of :attr:`FitOptions.split_columns`.
SPLIT_COLUMNS = ("all", "block")


@dataclass(frozen=True)
class FitOptions:
    """How :func:`~approxmat._fit.fit_levels` learns trees and chooses penalties.

    The defaults are the measured best; the other values are kept to compare
    with the paper's method (``tree_mode="reference"``, ``split_columns="block"``)
    or to trade accuracy for fit time (``tree_sample_rows``).

    Parameters
    ----------
    tree_mode : {"residual", "reference"}
        Criterion of the hash trees. ``"residual"``: each tree minimises the
        SSE of the current residual of ``X @ W`` (the trees are learnt one after
        the other on what the previous ones left unexplained, boosting), then
        ``backfit_sweeps`` sweeps relearn each tree against the residual of the
        others. ``"reference"``: the paper's criterion, the SSE of the block's
        own columns, with the ``ncandidates`` highest-SSE columns as candidates,
        contiguous blocks and no backfitting.
    backfit_sweeps : int
        Backfitting sweeps after the boosting sweep (``"residual"`` mode). Two
        rather than one: C = 32 test error 0.273 -> 0.265, seeds 0-3 all
        improve, for about 1.4x the tree time.
    split_columns : {"all", "block"}
        Which columns a codebook's tree may split on (``"residual"`` mode;
        ``"reference"`` mode always uses ``"block"``). ``"block"``: its
        contiguous block of ``D / C`` columns, as in the paper. ``"all"``: any
        of the ``D`` columns, ranked per tree level by a linear-fit proxy on a
        row sample, then an exact search on the best ``ncandidates_all``. The
        call-time contract allows any column and the refit prototypes are
        dense anyway; the test error went from 0.437 / 0.333 / 0.239 (C = 16 /
        32 / 64, blocks, one sweep) to 0.415 / 0.265 / 0.151 ("all", two
        sweeps; "block" with two sweeps: 0.436 / 0.313 / 0.187) for about 1.1x
        the CPU time of the default ladder.
    ncandidates : int or None
        ``"reference"`` mode: candidate split columns per tree level, the
        highest-SSE columns of the block (the paper uses 4). ``None``: every
        column of the block.
    ncandidates_block : int or None
        ``"residual"`` mode with ``"block"`` columns: candidates evaluated
        exactly per tree level, chosen by the linear-fit proxy. ``None``: every
        column of the block.
    ncandidates_all : int or None
        ``"all"`` columns: candidates evaluated exactly per tree level, chosen
        by the proxy. 4, 6 or 12 candidates all measured worse at C = 32 than 8
        on seed 0 (differences of the order of the seed-to-seed spread, about
        0.01-0.02); 4 candidates in the boosting sweep only, to save time, gave
        C = 32 0.265 -> 0.292. ``None``: every column.
    proxy_sample_rows : int
        ``"all"`` columns: the proxy is computed on at most this many evenly
        spaced train rows. 2048 or 8192 measured worse at C = 32 than 4096 on
        seed 0 (within the seed-to-seed spread).
    proxy_dims : int
        ``"all"`` columns: the proxy scores the fit of at most this many
        leading principal directions of the residual (its cost grows with
        their number; the exact search uses all of them).
    max_residual_dims : int
        ``"residual"`` mode: the residual is projected on at most this many
        principal directions before the tree search.
    tree_sample_rows : int or None
        ``"all"`` columns: the tree search runs on at most this many evenly
        spaced train rows (the train rows are already a random subset); the
        buckets of every train row then come from the exact encoding; the tables
        are still fitted on every fit row. ``None``: all train rows. Halving
        12 000 train rows cost accuracy (C = 32: 0.273 -> 0.287 with 6000), but
        beyond tens of thousands of rows the trees gain little: at 120 000 train
        rows (``benchmarks/fit_speed.py``'s recipe, D = 512, M = 100, C = 16, seed
        0) test errors were 0.4831 with all of them, 0.4871 with 65 536 and 0.4853
        with 32 768, within the spread of such runs, for 2.4x less fit time; so
        32 768 by default (calibration sets up to about 54 000 rows are not
        subsampled).
    lambda_grid : tuple of float
        Ridge penalties tried on the selection rows, in units of the mean
        number of train rows per leaf; the best one is then refined by factors
        of ``sqrt(10)`` either side.

    Raises
    ------
    ValueError
        If a mode is unknown or a count is not positive.

    Examples
    --------
    >>> FitOptions().tree_mode, FitOptions().split_columns
    ('residual', 'all')
    >>> FitOptions(split_columns="block").ncandidates_block
    8
    >>> FitOptions(tree_mode="residue")
    Traceback (most recent call last):
        ...
    ValueError: unknown tree mode 'residue'; expected one of ('residual', 'reference')
    """

    tree_mode: str = "residual"
    backfit_sweeps: int = 2
    split_columns: str = "all"
    ncandidates: int | None = 4
    ncandidates_block: int | None = 8
    ncandidates_all: int | None = 8
    proxy_sample_rows: int = 4096
    proxy_dims: int = 16
    max_residual_dims: int = 64
    tree_sample_rows: int | None = 32768
    lambda_grid: tuple = (1e-4, 1e-3, 1e-2, 0.1, 1.0)

    def __post_init__(self):
        if self.tree_mode not in TREE_MODES:
            raise ValueError(
                f"unknown tree mode {self.tree_mode!r}; expected one of {TREE_MODES}"
            )
        if self.split_columns not in SPLIT_COLUMNS:
            raise ValueError(
                f"unknown split-column mode {self.split_columns!r}; "
                f"expected one of {SPLIT_COLUMNS}"
            )
        _check_count("backfit_sweeps", self.backfit_sweeps, minimum=0)
        for name in ("ncandidates", "ncandidates_block", "ncandidates_all",
                     "tree_sample_rows"):
            _check_count(name, getattr(self, name), optional=True)
        for name in ("proxy_sample_rows", "proxy_dims", "max_residual_dims"):
            _check_count(name, getattr(self, name))
        grid = tuple(self.lambda_grid)
        if not grid or not all(
            isinstance(g, numbers.Real) and not isinstance(g, bool) and g > 0 for g in grid
        ):
            raise ValueError(
                f"lambda_grid must be a non-empty sequence of positive numbers, got {grid!r}"
            )
        object.__setattr__(self, "lambda_grid", grid)

    @property
    def tree_columns(self):
        """The split columns in effect: always ``"block"`` in ``"reference"`` mode."""
        return "block" if self.tree_mode == "reference" else self.split_columns


def _check_count(name, value, *, minimum=1, optional=False):
    if value is None and optional:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        kind = "an int" + (" or None" if optional else "")
        raise ValueError(f"{name} must be {kind} >= {minimum}, got {value!r}")
