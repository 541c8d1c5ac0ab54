"""The learner: fit MADDNESS hash trees, prototypes and 8-bit lookup tables.

Everything here runs once, at fit time, in NumPy/SciPy. The output is a list of
:class:`~approxmat._level.Level` objects whose call-time semantics are defined in
:mod:`approxmat._level` and implemented by :mod:`approxmat._reference`.

Modules: :mod:`._driver` (input checks, the split of the calibration rows, the
fit of each level, progress), :mod:`._trees` (split search, proxies, tree
learning), :mod:`._tables` (leaf means, ridge refit, choice of its penalty),
:mod:`._quantise` (8-bit tables, least-squares correction),
:mod:`._lowrank` (low-rank points by reduced-rank regression) and
:mod:`._options` (:class:`FitOptions`, the settings that are choices).

Outline of :func:`fit_levels` (see ``design/algorithm.md``):

1. The calibration rows are split at random (seeded by ``random_state``) into
   three disjoint parts: 60 % *train* rows (trees, leaf means, ridge refit,
   quantisation), 20 % *selection* rows (choice of the ridge penalty only) and
   20 % *validation* rows, which take part in no fitting decision and only
   measure :attr:`Level.error`.
2. For each number of codebooks ``C``: one depth-4 hash tree per codebook
   learnt on the train rows with the SSE criterion (one split column per
   level, a threshold per node at the midpoint of the best O(n log n)
   cumulative-sum split), thresholds rounded to float32 and the rows
   re-bucketed with exactly the call-time encoding rule. By default
   (``FitOptions.tree_mode = "residual"``) the SSE is that of the current
   residual of ``X @ W`` rather than of a block's own columns: trees are
   learnt one after the other on what the previous ones left unexplained
   (boosting), then ``backfit_sweeps = 2`` sweeps relearn every tree against
   the others' jointly refit tables. ``tree_mode = "reference"`` is the
   paper's criterion (SSE over the block's columns, 4 highest-SSE candidates,
   contiguous blocks).

   **Measured deviation from design/algorithm.md (split columns).** The paper
   restricts codebook ``c`` to a contiguous block of ``D / C`` columns. The
   call-time contract (:mod:`approxmat._level`) allows any column, and in
   residual mode nothing ties a tree to its block (the refit prototypes are
   dense anyway), so by default (``split_columns = "all"``) every tree may
   split on any of the ``D`` columns: per level, all ``D`` columns are ranked
   by a cheap proxy (the residual variance explained by a per-bucket linear
   fit on the column, one GEMM on 4096 sampled train rows) and the exact SSE
   search runs on the best 8. ``split_columns = "block"`` keeps the
   contiguous blocks (proxy over the block's columns). On
   ``benchmarks/accuracy.py`` (rank-32 data, D = 512, M = 10, seed 0) the
   test error went from 0.437 / 0.333 / 0.239 (C = 16 / 32 / 64; blocks, one
   backfitting sweep) to 0.415 / 0.265 / 0.151 ("all", two sweeps; "block"
   with two sweeps: 0.436 / 0.313 / 0.187), for about 1.1x the CPU time of
   the default ladder (the exact split search was also made faster).
3. Prototypes: leaf means (of each codebook's contiguous-block partial
   product ``X[:, block] @ W[block]``, also in "all" mode, where it is only
   the centre of the ridge penalty), then the joint ridge refit of all ``C * 16``
   prototypes on the one-hot codes. Since the tables are ``T = P @ W`` and both
   the refit and the table product are linear, the refit is computed directly
   on the tables (target ``X @ W``, ``M`` right-hand sides instead of ``D``);
   this is algebraically the same ridge solution. The penalty is chosen on the
   selection rows from a small grid, then the refit is repeated on train plus
   selection rows.
4. 8-bit quantisation with a per-output-column scale and a per-(codebook,
   column) offset folded into ``offset[m]``, followed by a per-column
   least-squares correction of ``scale``/``offset`` (the sums are exact, so the
   only error is the rounding of the tables). The reference scheme (one global
   scale, per-codebook offsets) is also computed and the more accurate of the
   two on the fitting rows is kept.
"""

from ._driver import (
    DEFAULT_LADDER,
    MIN_CALIBRATION_ROWS,
    SELECT_FRACTION,
    VALIDATE_FRACTION,
    default_ncodebooks,
    fit_levels,
    fit_points,
)
from ._lowrank import default_ranks, fit_lowrank
from ._options import FitOptions
from ._quantise import quantize_tables

__all__ = [
    "DEFAULT_LADDER",
    "FitOptions",
    "MIN_CALIBRATION_ROWS",
    "SELECT_FRACTION",
    "VALIDATE_FRACTION",
    "default_ncodebooks",
    "default_ranks",
    "fit_levels",
    "fit_lowrank",
    "fit_points",
    "quantize_tables",
]
