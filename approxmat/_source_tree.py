"""Redirect an import of the unbuilt source checkout to the installed package.

``python -m approxmat demo`` run from a source checkout puts the checkout first on
``sys.path``; its ``approxmat/`` has no compiled extension. Rather than fail (as
NumPy does), the checkout's ``approxmat/__init__.py`` calls :func:`redirect`, which
loads the installed copy of approxmat in its place, or raises an ImportError that
says how to build it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def redirect(package_file: str):
    """Load the installed approxmat instead of the source tree holding ``package_file``."""
    checkout = os.path.realpath(os.path.dirname(os.path.dirname(package_file)))
    others = [p for p in sys.path if os.path.realpath(p or os.curdir) != checkout]
    spec = None
    for finder in sys.meta_path:  # also finds editable installs, whose finders sit here
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        if finder is importlib.machinery.PathFinder:
            found = find_spec("approxmat", others)
        else:
            found = find_spec("approxmat", None)
        origin = getattr(found, "origin", None)
        if origin and os.path.realpath(origin) != os.path.realpath(package_file):
            spec = found
            break
    if spec is None:
        raise ImportError(
            "approxmat is imported from its source checkout "
            f"({checkout}), which has no compiled extension, and no installed approxmat "
            "was found. Install it first: pip install .  (or, for development: "
            "pip install --no-build-isolation -e .)"
        )
    module = importlib.util.module_from_spec(spec)
    sys.modules["approxmat"] = module  # the import system returns what sys.modules holds
    spec.loader.exec_module(module)
    return module
