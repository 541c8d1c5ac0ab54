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

__all__ = ["Config", "config", "get_config", "set_config"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Immutable settings of approximate products.

    Attributes
    ----------
    tolerance : float or None
        Bound on the relative error ``||x @ W_approx - x @ W||_F / ||x @ W||_F``
        as validated at fit time. The cheapest fitted operating point whose
        validated error is within the bound is used, else the exact product.
        ``0`` always gives the exact product; ``None`` (default) uses the most
        accurate fitted operating point and never falls back.
    threads : int or None
        Threads of the kernels. ``None`` (default) uses every core this process
        may use, capped by OpenMP's limit (so ``threadpoolctl.threadpool_limits``
        applies).
    """

    tolerance: float | None = None
    threads: int | None = None


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


_VALIDATORS = {"tolerance": _check_tolerance, "threads": _check_threads}
_current = contextvars.ContextVar("approxmat_config", default=Config())


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


def get_config() -> Config:
    """The settings in force in the calling thread or task.

    Returns
    -------
    Config

    Examples
    --------
    >>> import approxmat as am
    >>> am.get_config()
    Config(tolerance=None, threads=None)
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
    tolerance : float or None, optional
        See :class:`Config`. Left unchanged when not given.
    threads : int or None, optional
        See :class:`Config`. Left unchanged when not given.

    Examples
    --------
    >>> import approxmat as am
    >>> with am.config(tolerance=0.05, threads=1):
    ...     am.get_config()
    Config(tolerance=0.05, threads=1)
    >>> am.get_config().tolerance is None
    True
    """

    def __init__(self, **settings):
        _updated(Config(), settings)  # validate now, apply on entry
        self._settings = settings
        self._tokens = []

    def __enter__(self) -> Config:
        new = _updated(_current.get(), self._settings)
        self._tokens.append(_current.set(new))
        return new

    def __exit__(self, *exc_info):
        _current.reset(self._tokens.pop())
        return False

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._settings.items())
        return f"approxmat.config({args})"
