"""asv benchmarks: approximate products (``x @ W``) against NumPy's exact ``x @ weights``.

Random (valid) levels, no fitting: the kernels' speed does not depend on the values.
``benchmarks/speed.py`` prints the same comparison as one interleaved table with the
memory floor; these are the regression-tracking counterparts.
"""

import numpy as np

import approxmat as am
from approxmat import _backend, _kernels
from approxmat._level import Level

CONFIGS = [
    "10000x512x10 C16",
    "10000x512x100 C16",
    "100000x512x10 C16",
    "100000x512x100 C16",
    "100000x512x100 C32",
    "10000x512x512 C32",
    "8192x768x3072 C64",
    "10000x512x1024 C32",  # the AVX-512 16 x 16 tile path, tables at its 512 KiB switch
    "1x512x100 C16",
    "32x512x100 C16",
]


def _parse(config):
    shape, c = config.split()
    N, D, M = (int(v) for v in shape.split("x"))
    return N, D, M, int(c[1:])


def _setup(config, order="C"):
    N, D, M, C = _parse(config)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D)).astype(np.float32)
    if order == "F":
        x = np.asfortranarray(x)
    weights = rng.standard_normal((D, M)).astype(np.float32)
    level = Level(
        rng.integers(0, D, size=(C, 4)).astype(np.int32),
        rng.standard_normal((C, 15)).astype(np.float32),
        rng.integers(0, 256, size=(C, 16, M), dtype=np.uint8),
        rng.uniform(1e-3, 1e-1, M),
        rng.standard_normal(M),
        split_low=np.full((C, 4), -4.0, np.float32),
        split_high=np.full((C, 4), 4.0, np.float32),
    )
    W = am.ApproxMatrix(weights)._with_levels([level])
    out = np.empty((N, M), np.float32)
    return x, weights, W, level, out


class ApproxProduct:
    """``x @ W`` through the public API, row-major float32 x, 1 and 2 kernel threads."""

    params = (CONFIGS, [1, 2])
    param_names = ["config", "threads"]
    timeout = 300

    def setup(self, config, threads):
        self.x, self.weights, self.W, self.level, self.out = _setup(config)
        np.matmul(self.x, self.W, out=self.out)  # packs the level once

    def time_approx(self, config, threads):
        with am.config(threads=threads):
            np.matmul(self.x, self.W, out=self.out)

    def time_numpy(self, config, threads):
        np.matmul(self.x, self.weights, out=self.out)

    def peakmem_approx(self, config, threads):
        with am.config(threads=threads):
            self.x @ self.W


class KernelColumnMajor:
    """The compiled kernel alone on column-major float32 x (the paper's layout)."""

    params = (CONFIGS[:5], [1, 2])
    param_names = ["config", "threads"]
    timeout = 300

    def setup(self, config, threads):
        x, _, _, level, self.out = _setup(config, order="F")
        self.x = x
        self.flags = np.empty(x.shape[0], np.uint8)
        packed = _backend.packed_level(level)
        self.prepared = _kernels.PreparedLevel(level.split_dims, level.thresholds, level.luts,
                                               level.scale, level.offset, packed)

    def time_kernel(self, config, threads):
        self.prepared.product(self.x, self.out, threads)

    def time_kernel_flags(self, config, threads):
        """With the row flags (a full finiteness pass over x, column by column)."""
        self.prepared.product(self.x, self.out, threads, self.flags)


class KernelRowMajor:
    """The kernel alone on row-major float32 x, with the fused row flags
    (``_backend.product``) and without them (``flags=None``)."""

    params = (CONFIGS[:5], [1, 2])
    param_names = ["config", "threads"]
    timeout = 300

    def setup(self, config, threads):
        self.x, _, _, self.level, self.out = _setup(config)
        packed = _backend.packed_level(self.level)
        self.prepared = _kernels.PreparedLevel(self.level.split_dims, self.level.thresholds,
                                               self.level.luts, self.level.scale,
                                               self.level.offset, packed)

    def time_product_flags(self, config, threads):
        _backend.product(self.x, self.level, self.out, threads)

    def time_product_noflags(self, config, threads):
        self.prepared.product(self.x, self.out, threads)


class StreamingFloor:
    """Reading x once and writing the output once: the memory floor of a call."""

    params = CONFIGS
    param_names = ["config"]
    timeout = 300

    def setup(self, config):
        self.x, _, _, _, self.out = _setup(config)

    def time_read_x(self, config):
        self.x.max()

    def time_write_out(self, config):
        self.out.fill(0.0)


def _narrow_setup(bench, config, dtype):
    """Row-major rows of ``dtype`` for ``config``, a random level and the result buffer
    (float16 rows: float16 weights and result; otherwise float32)."""
    x, weights, _, bench.level, _ = _setup(config)
    N, D, M, _ = _parse(config)
    rng = np.random.default_rng(1)
    if dtype == "float16":
        bench.x = x.astype(np.float16)
        bench.weights = weights.astype(np.float16)
        bench.out = np.empty((N, M), np.float16)
    else:
        info = np.iinfo(dtype)
        bench.x = rng.integers(info.min, info.max, (N, D), endpoint=True, dtype=dtype)
        bench.weights = weights
        bench.out = np.empty((N, M), np.float32)
    _backend.product(bench.x, bench.level, bench.out, 1)  # packs the level once


_NARROW_CONFIGS = ["200000x27x16 C16", "100000x192x64 C16"]


class NarrowRows:
    """The kernel on rows read as they are (row-major), one thread.

    ``benchmarks/narrow.py`` prints the same comparison with NumPy and the memory floor.
    """

    params = (_NARROW_CONFIGS, ["uint8", "int8", "uint16", "int16", "float16"])
    param_names = ["config", "dtype"]
    timeout = 300
    setup = _narrow_setup

    def time_kernel(self, config, dtype):
        _backend.product(self.x, self.level, self.out, 1)


class NarrowRowsNumPy:
    """NumPy's ``x @ weights`` on the integer rows of :class:`NarrowRows` (its float16
    loop takes seconds per call: ``benchmarks/narrow.py`` times it)."""

    params = (_NARROW_CONFIGS, ["uint8", "int8", "uint16", "int16"])
    param_names = ["config", "dtype"]
    timeout = 300
    setup = _narrow_setup

    def time_numpy(self, config, dtype):
        self.x @ self.weights
