"""Settings for approximate products: accuracy budget and kernel threads.

Settings live in a :class:`contextvars.ContextVar`, so they are isolated per thread
and per asyncio task, and :class:`config` blocks nest. A new thread starts from the
defaults (or from what :func:`set_config` set *in that thread*). To hand the caller's
settings to a :class:`concurrent.futures.ThreadPoolExecutor` worker, submit
``contextvars.copy_context().run`` with your function.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import numbers
import math

import numpy as np

__all__ = ["Config", "config", "get_config", "set_config"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Immutable settings of approximate products.

    Attributes
    ----------
    tolerance : float or None
        Bound on the relative error ``||x @ W_approx - x @ W||_F / ||x @ W||_F``
        as validated at fit time. Each call uses the operating point predicted
        fastest for it (by the costs measured on this machine) among those whose
        validated error is within the bound, the exact product included. ``0``
        always gives the exact product; ``None`` (default) uses the most accurate
        fitted operating point and never falls back.
    threads : int or None
        Threads of the kernels. ``None`` (default) uses every core this process
        may use, capped by OpenMP's limit (so ``threadpoolctl.threadpool_limits``
        applies).
    verify : int, float or None
        Check each approximate call against the exact product on a random sample
        of its rows: an int is a row count, a float in ``(0, 1]`` a fraction of
        the rows. ``None`` (default) checks nothing. The check costs
        ``rows x D x M`` multiply-adds and yields an upper confidence bound on
        the call's relative error (see :func:`approxmat.last_call`).
    on_violation : {"exact", "warn", "raise"}
        What a verified call does when the bound exceeds ``tolerance``:
        ``"exact"`` (default) returns the exact product instead and warns once
        per matrix; ``"warn"`` returns the approximation and warns;
        ``"raise"`` raises :class:`approxmat.ApproxAccuracyError`.
    drift_fraction : float or None
        Warn (:class:`approxmat.DriftWarning`, once per matrix) when more than
        this fraction of a call's rows has a split column outside the range
        seen at fit time (widened by 10 % of its width on each side). Default 0.05; ``None`` disables the warning (rows are
        still counted in :func:`approxmat.last_call`).
    check_finite : bool
        ``True`` (default): approximate calls scan their rows for NaN and
        infinity (such rows give NaN output rows, as NumPy's product does) and
        for split columns outside the calibrated range (the drift warning).
        ``False`` skips both scans, SciPy's convention for callers who know
        their inputs are finite: rows with NaN or infinity then give
        unspecified finite values, no drift is counted or warned about, and a
        column-major call reads only the columns its codes need. Exact products
        are unaffected.
    """

    tolerance: float | None = None
    threads: int | None = None
    verify: int | float | None = None
    on_violation: str = "exact"
    drift_fraction: float | None = 0.05
    check_finite: bool = True


def _check_tolerance(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"tolerance must be a non-negative real number or None, got "
            f"{type(value).__name__} {value!r}"
        )
    value = float(value)
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(
            f"tolerance must be a finite number >= 0 (a bound on relative error, e.g. 0.05) "
            f"or None, got {value!r}"
        )
    return value


def _check_threads(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"threads must be a positive integer or None, got {type(value).__name__} {value!r}"
        )
    if value < 1:
        raise ValueError(
            f"threads must be >= 1 (or None for every available core), got {value!r}"
        )
    return int(value)


def _check_verify(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"verify must be a row count (int >= 1), a fraction in (0, 1] (float) or None, "
            f"got {type(value).__name__} {value!r}"
        )
    if isinstance(value, numbers.Integral):
        if value < 1:
            raise ValueError(f"verify as a row count must be >= 1, got {value!r}")
        return int(value)
    value = float(value)
    if not 0 < value <= 1:
        raise ValueError(
            f"verify as a fraction of rows must be in (0, 1], got {value!r}; "
            "pass an int for a row count"
        )
    return value


_ON_VIOLATION = ("exact", "warn", "raise")


def _check_on_violation(value):
    if value not in _ON_VIOLATION:
        raise ValueError(
            f"on_violation must be one of {', '.join(map(repr, _ON_VIOLATION))}, got {value!r}"
        )
    return value


def _check_drift_fraction(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"drift_fraction must be a fraction in [0, 1) or None, got "
            f"{type(value).__name__} {value!r}"
        )
    value = float(value)
    if not 0 <= value < 1:
        raise ValueError(f"drift_fraction must be in [0, 1) or None, got {value!r}")
    return value


def _check_finite_flag(value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"check_finite must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


_VALIDATORS = {
    "tolerance": _check_tolerance,
    "threads": _check_threads,
    "verify": _check_verify,
    "on_violation": _check_on_violation,
    "drift_fraction": _check_drift_fraction,
    "check_finite": _check_finite_flag,
}
_DEFAULT = Config()
_current = contextvars.ContextVar("approxmat_config", default=_DEFAULT)


def _updated(base: Config, changes: dict) -> Config:
    unknown = sorted(set(changes) - set(_VALIDATORS))
    if unknown:
        raise TypeError(
            f"unknown approxmat setting(s) {', '.join(map(repr, unknown))}; "
            f"valid settings are {', '.join(_VALIDATORS)}"
        )
    return dataclasses.replace(
        base, **{name: _VALIDATORS[name](value) for name, value in changes.items()}
    )


#: Settings made by entering a block, by (settings in force, block's settings): the
#: same block entered again under the same settings gives the same (immutable) object,
#: which costs less to make and lets a product find its cached decision by identity.
_ENTERED = {}
_ENTERED_MAX = 256


_VALID = set()


def _validated(settings: dict) -> tuple:
    """``settings`` checked (as :func:`_updated` would) and frozen into sorted
    ``(name, type, value)`` triples (the type keeps ``True`` apart from ``1``)."""
    key = tuple((k, type(v), v) for k, v in sorted(settings.items(), key=lambda kv: kv[0]))
    try:
        if key in _VALID:
            return key
    except TypeError:  # an unhashable value: check it (and fail) below
        _updated(_DEFAULT, settings)
        return key
    _updated(_DEFAULT, settings)
    if len(_VALID) >= _ENTERED_MAX:
        _VALID.clear()
    _VALID.add(key)
    return key


def get_config() -> Config:
    """The settings in force in the calling thread or task.

    Returns
    -------
    Config

    Examples
    --------
    >>> import approxmat as am
    >>> am.get_config()  # doctest: +NORMALIZE_WHITESPACE
    Config(tolerance=None, threads=None, verify=None, on_violation='exact',
           drift_fraction=0.05, check_finite=True)
    """
    return _current.get()


def set_config(**settings) -> Config:
    """Change settings for the rest of the calling thread or task.

    Parameters
    ----------
    **settings
        Any field of :class:`Config`, e.g. ``tolerance=0.05`` or ``threads=1``.

    Returns
    -------
    Config
        The previous settings (pass them to ``set_config(**dataclasses.asdict(...))``
        to restore).

    Examples
    --------
    >>> import approxmat as am
    >>> previous = am.set_config(threads=1)
    >>> am.get_config().threads
    1
    >>> _ = am.set_config(threads=previous.threads)
    """
    previous = _current.get()
    _current.set(_updated(previous, settings))
    return previous


class config(contextlib.ContextDecorator):
    """Context manager (and decorator) that changes settings inside a block.

    Values are validated on construction, so a bad value fails before the block runs.
    Blocks nest; on exit the settings in force before the block come back.

    Parameters
    ----------
    tolerance, threads, verify, on_violation, drift_fraction : optional
        See :class:`Config`. Settings not given are left unchanged.

    Examples
    --------
    >>> import approxmat as am
    >>> with am.config(tolerance=0.05, threads=1):
    ...     (am.get_config().tolerance, am.get_config().threads)
    (0.05, 1)
    >>> am.get_config().tolerance is None
    True
    """

    def __init__(self, **settings):
        self._settings = _validated(settings)  # validate now, apply on entry
        self._tokens = []

    def __enter__(self) -> Config:
        current = _current.get()
        # verify=1 (one row) and verify=1.0 (every row) are equal as numbers: the key
        # keeps their types apart.
        key = (current, type(current.verify), self._settings)
        try:
            new = _ENTERED[key]
        except (KeyError, TypeError):  # TypeError: an unhashable setting value
            new = _updated(current, {k: v for k, _, v in self._settings})
            if new == current and type(new.verify) is type(current.verify):
                new = current  # nothing changes: keep the object (and what is cached on it)
            if len(_ENTERED) >= _ENTERED_MAX:
                _ENTERED.clear()
            try:
                _ENTERED[key] = new
            except TypeError:
                pass
        self._tokens.append(_current.set(new))
        return new

    def __exit__(self, *exc_info):
        _current.reset(self._tokens.pop())
        return False

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, _, v in self._settings)
        return f"approxmat.config({args})"
