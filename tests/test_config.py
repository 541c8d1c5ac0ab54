"""Settings: validation, nesting, isolation per thread and task; thread counts."""

import asyncio
import contextvars
import io
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import approxmat as am
from approxmat import _backend, _kernels
from approxmat._config import Config


def test_defaults():
    assert am.get_config() == Config(tolerance=None, threads=None)


def test_context_nests_and_restores():
    with am.config(tolerance=0.1) as outer:
        assert outer == am.get_config() == Config(tolerance=0.1, threads=None)
        with am.config(threads=2):
            assert am.get_config() == Config(tolerance=0.1, threads=2)
            with am.config(tolerance=None):
                assert am.get_config() == Config(tolerance=None, threads=2)
            assert am.get_config().tolerance == 0.1
        assert am.get_config() == Config(tolerance=0.1, threads=None)
    assert am.get_config() == Config()


def test_context_restores_after_exception():
    with pytest.raises(RuntimeError):
        with am.config(threads=1):
            raise RuntimeError
    assert am.get_config().threads is None


def test_same_instance_reentrant_and_as_decorator():
    ctx = am.config(tolerance=0.2)
    with ctx:
        with am.config(tolerance=0.3):
            with ctx:
                assert am.get_config().tolerance == 0.2
            assert am.get_config().tolerance == 0.3
        assert am.get_config().tolerance == 0.2
    assert am.get_config().tolerance is None

    @am.config(threads=1)
    def inner():
        return am.get_config().threads

    assert inner() == 1 and am.get_config().threads is None


@pytest.mark.parametrize(
    "settings, exc, match",
    [
        ({"tolerance": -0.1}, ValueError, "tolerance must be a finite number >= 0"),
        ({"tolerance": float("nan")}, ValueError, "tolerance must be a finite number >= 0"),
        ({"tolerance": float("inf")}, ValueError, "tolerance must be a finite number >= 0"),
        ({"tolerance": "0.1"}, TypeError, "tolerance must be a non-negative real number or None, got str"),
        ({"tolerance": True}, TypeError, "tolerance must be"),
        ({"threads": 0}, ValueError, r"threads must be >= 1 \(or None"),
        ({"threads": -3}, ValueError, "threads must be >= 1"),
        ({"threads": 1.5}, TypeError, "threads must be a positive integer or None, got float"),
        ({"threads": True}, TypeError, "threads must be a positive integer"),
        ({"thread": 1}, TypeError, "unknown approxmat setting.*'thread'.*valid settings are tolerance, threads"),
    ],
)
def test_invalid_values_rejected_at_entry(settings, exc, match):
    with pytest.raises(exc, match=match):
        am.config(**settings)  # fails on construction, before any block runs
    with pytest.raises(exc, match=match):
        am.set_config(**settings)
    assert am.get_config() == Config()


def test_numpy_scalars_accepted():
    import numpy as np

    with am.config(tolerance=np.float32(0.25), threads=np.int64(2)) as cfg:
        assert cfg.tolerance == 0.25 and type(cfg.threads) is int


def test_set_config_returns_previous_and_is_thread_local():
    seen = {}

    def worker():
        seen["worker_start"] = am.get_config()
        am.set_config(threads=3)
        seen["worker_end"] = am.get_config()

    previous = am.set_config(tolerance=0.5)
    try:
        assert previous == Config()
        t = threading.Thread(target=worker)
        t.start()
        t.join()
        assert seen["worker_start"] == Config()  # a new thread starts from the defaults
        assert seen["worker_end"].threads == 3
        assert am.get_config() == Config(tolerance=0.5)  # the worker did not leak into us
    finally:
        am.set_config(tolerance=previous.tolerance)


def test_isolated_per_thread_under_contention():
    barrier = threading.Barrier(4)
    errors = []

    def worker(i):
        with am.config(threads=i + 1, tolerance=i / 10):
            barrier.wait()
            for _ in range(200):
                cfg = am.get_config()
                if cfg != Config(tolerance=i / 10, threads=i + 1):
                    errors.append((i, cfg))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_executor_workers_get_settings_through_copy_context():
    with am.config(threads=1), ThreadPoolExecutor(1) as pool:
        plain = pool.submit(am.get_config).result()
        carried = pool.submit(contextvars.copy_context().run, am.get_config).result()
    assert plain.threads is None and carried.threads == 1


def test_isolated_per_asyncio_task():
    async def task(value):
        with am.config(tolerance=value):
            await asyncio.sleep(0.01)
            return am.get_config().tolerance

    async def main():
        return await asyncio.gather(*(task(v) for v in (0.1, 0.2, 0.3)))

    assert asyncio.run(main()) == [0.1, 0.2, 0.3]


def test_repr():
    assert repr(am.config(threads=2)) == "approxmat.config(threads=2)"


# ---------------------------------------------------------------- threads
def test_kernel_threads_rule():
    cores = _backend.available_cores()
    omp = _kernels.max_threads()
    assert _backend.kernel_threads() == min(cores, omp)
    assert _backend.kernel_threads(1) == 1
    assert _backend.kernel_threads(10_000) == omp
    with am.config(threads=1):
        assert _backend.kernel_threads() == 1


def test_extension_is_built_with_openmp_and_seen_by_threadpoolctl():
    assert _kernels.openmp_enabled()
    libs = [info for info in threadpool_info() if info["internal_api"] == "openmp"]
    assert libs, "threadpoolctl does not see the OpenMP runtime our extension links"


def test_threadpoolctl_limits_cap_kernel_threads():
    with threadpool_limits(limits=1):
        assert _kernels.max_threads() == 1
        assert _backend.kernel_threads() == 1
        with am.config(threads=2):
            assert _backend.kernel_threads() == 1
    assert _backend.kernel_threads(1) == 1


def test_parallel_region_runs_requested_threads():
    # Proves the count reaches a real OpenMP region in the extension.
    assert _kernels.parallel_probe(1) == 1
    assert _kernels.parallel_probe(2) == 2
    with threadpool_limits(limits=1):
        assert _kernels.parallel_probe(_backend.kernel_threads(2)) == 1


def test_show_config_reports_build_and_runtime():
    buf = io.StringIO()
    with am.config(threads=1):
        am.show_config(file=buf)
    text = buf.getvalue()
    assert text.startswith(f"approxmat {am.__version__}")
    assert "openmp          yes" in text
    assert f"simd in use     {_kernels.selected_variant()}" in text
    assert "kernel threads  1" in text
    assert "compiler        gcc" in text or "compiler        clang" in text


def test_variant_selection_api():
    variants = _kernels.supported_variants()
    assert variants[0] == "portable"
    forced = os.environ.get("APPROXMAT_FORCE_ISA")
    assert _kernels.selected_variant() == (forced or variants[-1])
    with pytest.raises(ValueError, match="kernel variant 'sse9' is not available"):
        _kernels.packed_bytes(1, 1, "sse9")


@pytest.mark.parametrize("variant", _kernels.supported_variants())
def test_force_isa_environment_variable(variant):
    code = "import approxmat; approxmat.show_config()"
    env = dict(os.environ, APPROXMAT_FORCE_ISA=variant)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"simd in use     {variant} " in out.stdout


def test_force_isa_unknown_fails_clearly():
    env = dict(os.environ, APPROXMAT_FORCE_ISA="sse9")
    out = subprocess.run(
        [sys.executable, "-c", "import approxmat"], env=env, capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "APPROXMAT_FORCE_ISA='sse9' cannot be used" in out.stderr
    assert "portable" in out.stderr


def test_entering_the_same_settings_again_gives_the_same_object():
    with am.config(tolerance=0.25, threads=1) as a:
        pass
    with am.config(threads=1, tolerance=0.25) as b:
        with am.config(tolerance=0.25, threads=1) as inner:
            assert inner is b  # the same settings over the same settings
    assert a is b
    with am.config(threads=1):
        with am.config(tolerance=0.25) as c:
            assert c == a and c.threads == 1
    with pytest.raises(TypeError, match="threads must be a positive integer"):
        am.config(threads=True)  # equal to 1 as a key, still rejected
    with am.config(verify=[1][0]):
        pass
