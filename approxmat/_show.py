"""``show_config()``: what this build of approxmat is and how it will run."""

from __future__ import annotations

import platform
import sys

import numpy as np

from . import _backend, _build_info, _kernels
from ._config import get_config

__all__ = ["show_config", "build_facts"]


def build_facts() -> dict:
    """Facts about the build and the current settings, as a dict.

    Examples
    --------
    >>> from approxmat._show import build_facts
    >>> sorted(build_facts())  # doctest: +NORMALIZE_WHITESPACE
    ['compiler', 'config', 'kernel_threads', 'numpy', 'openmp', 'platform', 'python',
     'simd_available', 'simd_in_use', 'version']
    """
    return {
        "version": _build_info.version,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": f"{platform.system()} {platform.machine()}",
        "compiler": _build_info.compiler,
        "openmp": _kernels.openmp_enabled(),
        "simd_in_use": _kernels.selected_variant(),
        "simd_available": _kernels.supported_variants(),
        "kernel_threads": _backend.kernel_threads(),
        "config": get_config(),
    }


def show_config(file=None) -> None:
    """Print version, compiler, OpenMP, SIMD variant in use and thread count.

    Parameters
    ----------
    file : file-like, optional
        Where to print (default: ``sys.stdout``).

    Examples
    --------
    >>> import approxmat as am
    >>> am.show_config()  # doctest: +ELLIPSIS
    approxmat ...
    """
    facts = build_facts()
    lines = [
        f"approxmat {facts['version']}",
        f"  python          {facts['python']} (numpy {facts['numpy']})",
        f"  platform        {facts['platform']}",
        f"  compiler        {facts['compiler']}",
        f"  openmp          {'yes' if facts['openmp'] else 'no'}",
        f"  simd in use     {facts['simd_in_use']}  (available: "
        f"{', '.join(facts['simd_available'])}; set APPROXMAT_FORCE_ISA to lower it)",
        f"  kernel threads  {facts['kernel_threads']}",
        f"  config          {facts['config']}",
    ]
    print("\n".join(lines), file=file if file is not None else sys.stdout)
