"""approxmat: fast approximate matrix products when the right operand is known ahead.

>>> import numpy as np
>>> import approxmat as am
>>> rng = np.random.default_rng(0)
>>> W = am.ApproxMatrix(rng.standard_normal((64, 8)))
>>> x = rng.standard_normal((5, 64))
>>> np.allclose(x @ W, x @ np.asarray(W))   # exact until fitted
True
"""

try:
    from ._build_info import version as __version__
except ImportError:  # an unbuilt source checkout shadows the installed package
    from ._source_tree import redirect

    redirect(__file__)  # replaces this module in sys.modules with the installed one
else:
    from ._budget import ApproxAccuracyError, ApproxMatrixWarning, CallReport, DriftWarning, last_call
    from ._config import Config, config, get_config, set_config
    from ._matrix import ApproxMatrix, LevelInfo, Levels, load
    from ._show import show_config

__all__ = [
    "ApproxAccuracyError",
    "ApproxMatrix",
    "ApproxMatrixWarning",
    "CallReport",
    "Config",
    "DriftWarning",
    "LevelInfo",
    "Levels",
    "last_call",
    "config",
    "get_config",
    "load",
    "set_config",
    "show_config",
    "__version__",
]
