"""dask arrays on the left of an :class:`~approxmat.ApproxMatrix`: lazy, block by block.

``dask_x @ W``, ``np.matmul(dask_x, W)``, ``np.dot(dask_x, W)`` and
``da.matmul(dask_x, W)`` return lazy dask arrays. Each block of rows is multiplied by
``W`` with NumPy's ``block @ W``, so it takes the operating point the accuracy budget
picks for that block's rows, and equals, bit for bit, what the NumPy path gives for
the same block. Requires the ``dask`` extra (``pip install approxmat[dask]``).

How the graph is built:

* The contraction axis (the last one of ``x``) is rechunked to one chunk when it is
  chunked: a block needs whole rows. Blocks of rows stay as they are.
* ``W`` is one key of the graph (a :func:`dask.delayed` of the matrix) that every
  block's task depends on. On a ``dask.distributed`` cluster it is sent to a worker
  once and kept there for all of that worker's tasks; it pickles to its weights, its
  fitted points and their cost curves (measured once per machine, so workers on the
  machine that fitted ``W`` measure nothing).
* The settings of :func:`approxmat.config` in force when the product is *built* are
  stored in the graph and entered in each task, so a budget and a thread count set
  around ``x @ W`` hold in worker processes too. With ``threads=None`` a task's kernels
  use the cores of its process divided by the tasks that run at once in it (a
  distributed worker's ``nthreads``, or the pool of dask's threaded scheduler), so
  that concurrent tasks do not oversubscribe the cores.
* ``da.matmul`` converts ``W`` with :meth:`~approxmat.ApproxMatrix.to_dask_array`: a
  one-chunk dask array whose chunk keeps ``W``'s products. dask splits that chunk
  itself when ``x``'s contraction axis is chunked, and the pieces are multiplied
  exactly; rechunk first (``x.rechunk({-1: -1})``) or write ``x @ W``.

Examples
--------
>>> import numpy as np, dask.array as da, approxmat as am
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((2000, 16)) @ rng.standard_normal((16, 16))
>>> W = am.ApproxMatrix(rng.standard_normal((16, 4))).fit(X, [4], random_state=0)
>>> x = da.from_array(X, chunks=(500, 8))
>>> y = x @ W
>>> y
dask.array<approxmat-matmul, shape=(2000, 4), dtype=float64, chunksize=(500, 4), chunktype=numpy.ndarray>
>>> bool((y.compute() == np.concatenate([X[i:i + 500] @ W for i in range(0, 2000, 500)])).all())
True
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np

from . import _backend, _config

__all__ = ["WeightsChunk", "lmatmul", "matmul", "task_threads", "to_dask_array"]


def _modules():
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - dask is an optional extra
        raise ImportError(
            "multiplying a dask array by an ApproxMatrix needs dask: "
            "pip install 'approxmat[dask]' (or dask[array])"
        ) from exc
    return dask, da


def matmul(x, W, kwargs=None, *, name="matmul"):
    """``x @ W`` for a dask array ``x``: a lazy dask array, computed block by block.

    This is what ``x @ W``, ``np.matmul(x, W)`` and ``np.dot(x, W)`` call for a dask
    ``x``; see the module documentation for how the graph is built.

    Parameters
    ----------
    x : dask.array.Array, shape (..., D)
        The left operand, of real numbers. 1-D ``x`` gives a 1-D result, as NumPy's.
    W : ApproxMatrix, shape (D, M)
    kwargs : dict, optional
        The ufunc's keyword arguments: none is supported (``out=`` needs a computed
        result; compute first, then ``np.matmul(x.compute(), W, out=...)``).
    name : {"matmul", "dot"}
        The operation, for error messages.

    Returns
    -------
    dask.array.Array, shape (..., M)
        Of NumPy's result dtype for ``x @ weights``.
    """
    dask, da = _modules()
    D, M = W.shape
    _check_operand(x, kwargs, name, axis=x.ndim - 1, size=D, what="W has D=%d rows" % D,
                   shapes=(x.shape, W.shape))
    result = np.result_type(x.dtype, W.dtype)
    axis = x.ndim - 1
    if len(x.chunks[axis]) > 1:
        x = x.rechunk({axis: -1})
    settings = _config.get_config()
    weights = _graph_key(W)
    # The output keeps x's index, the one chunk of its last axis resized to M: a
    # contracted index (a new output axis) would have dask concatenate each block's
    # single chunk along the contraction axis, i.e. copy every block before the task.
    index = tuple(range(x.ndim))
    return da.blockwise(
        _block, index, x, index, weights, None, settings, None,
        adjust_chunks={axis: M}, dtype=result,
        meta=np.empty((0,) * x.ndim, dtype=result), token=f"approxmat-{name}",
    )


def lmatmul(W, x, kwargs=None, *, name="matmul"):
    """``W @ x`` for a dask array ``x``: a lazy dask array, block of columns by block.

    What ``W @ x``, ``np.matmul(W, x)`` and ``np.dot(W, x)`` call for a dask ``x``
    once ``W.fit(..., side="left")`` has been called. ``x``'s contraction axis (the
    second to last; the only one of a 1-D ``x``) is rechunked to one chunk; each
    task computes ``W @ block`` with the settings in force now, as :func:`matmul`.

    Parameters
    ----------
    W : ApproxMatrix, shape (D, M)
    x : dask.array.Array, shape (M,) or (..., M, N)
    kwargs : dict, optional
        None is supported, as for :func:`matmul`.
    name : {"matmul", "dot"}

    Returns
    -------
    dask.array.Array, shape (D,) or (..., D, N)

    Examples
    --------
    >>> import numpy as np, dask.array as da, approxmat as am
    >>> rng = np.random.default_rng(0)
    >>> W = am.ApproxMatrix(rng.standard_normal((6, 16)))
    >>> x_cal = rng.standard_normal((16, 3)) @ rng.standard_normal((3, 2000))
    >>> _ = W.fit(x_cal, [4], random_state=0, side="left")
    >>> x = da.from_array(x_cal[:, :900], chunks=(8, 300))
    >>> y = W @ x
    >>> y.chunks
    ((6,), (300, 300, 300))
    >>> bool((y.compute() == W @ x_cal[:, :900]).all())
    True
    """
    dask, da = _modules()
    D, M = W.shape
    _check_operand(x, kwargs, name, axis=0 if x.ndim == 1 else x.ndim - 2, size=M,
                   what="W has M=%d columns" % M, shapes=(W.shape, x.shape))
    result = np.result_type(W.dtype, x.dtype)
    axis = 0 if x.ndim == 1 else x.ndim - 2
    if len(x.chunks[axis]) > 1:
        x = x.rechunk({axis: -1})
    weights = _graph_key(W)
    index = tuple(range(x.ndim))  # kept, the contraction axis resized: see matmul
    return da.blockwise(
        _left_block, index, weights, None, x, index, _config.get_config(), None,
        adjust_chunks={axis: D}, dtype=result,
        meta=np.empty((0,) * x.ndim, dtype=result), token=f"approxmat-l{name}",
    )


def _graph_key(W):
    """``W`` as one key of a graph, that every task depends on (sent once to each
    worker that needs it): a snapshot of its current points, so that a graph built
    before a refit computes what it was built for, named by ``W``'s token (the same
    expression built twice has the same name; a refit gives a new one)."""
    import dask

    snapshot = W.__copy__()
    snapshot._token = (snapshot._product, snapshot._left, W.__dask_tokenize__()[1])
    return dask.delayed(snapshot, pure=True, traverse=False)


def _check_operand(x, kwargs, name, *, axis, size, what, shapes):
    if kwargs:
        raise TypeError(
            f"{name} of a dask array by an ApproxMatrix takes no keyword arguments, got "
            f"{', '.join(sorted(kwargs))}: out= needs a computed result (compute x first)"
        )
    if x.ndim == 0:
        raise ValueError(f"{name}: the dask operand is 0-d; multiply by W only arrays of "
                         f"at least one dimension")
    if not _backend.is_real(x.dtype):
        raise TypeError(f"{name}: a dask array of dtype {x.dtype} cannot be multiplied by "
                        f"an ApproxMatrix (real numbers only)")
    if x.shape[axis] != size:
        raise ValueError(
            f"{name}: the contraction axis of the dask array has {x.shape[axis]} values but "
            f"{what} (shapes {shapes[0]} and {shapes[1]})"
        )


def _left_block(W, block, settings):
    """One block's ``W @ block`` under the settings of the graph's builder."""
    threads = settings.threads if settings.threads is not None else task_threads()
    with _config.config(**{**dataclasses.asdict(settings), "threads": threads}):
        return np.matmul(W, block)


def _block(block, W, settings):
    """One block's ``block @ W`` under the settings of the graph's builder."""
    threads = settings.threads if settings.threads is not None else task_threads()
    with _config.config(**{**dataclasses.asdict(settings), "threads": threads}):
        return np.matmul(block, W)


def task_threads() -> int:
    """Kernel threads of a task that runs now, in this thread, with ``threads=None``.

    The cores this process may use (:func:`approxmat._backend.kernel_threads`) divided
    by the tasks that run at once beside this one: a ``dask.distributed`` worker's
    ``nthreads``; dask's threaded scheduler's pool (``num_workers``, or its CPU count)
    when called outside the main thread; otherwise 1 (the synchronous scheduler).
    Never less than one.

    Examples
    --------
    >>> task_threads() >= 1
    True
    """
    cores = _backend.kernel_threads(None)
    slots = 1
    worker = _distributed_worker()
    if worker is not None:
        slots = worker.state.nthreads
    elif threading.current_thread() is not threading.main_thread():
        import dask
        from dask.system import CPU_COUNT

        slots = dask.config.get("num_workers", None) or CPU_COUNT
    return max(1, cores // max(1, int(slots)))


def _distributed_worker():
    import sys

    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def to_dask_array(W):
    """``W`` as a one-chunk dask array whose chunk keeps ``W``'s products.

    What :func:`dask.array.asarray` and :func:`dask.array.matmul` make of an
    :class:`~approxmat.ApproxMatrix` (they call ``W.to_dask_array()``). The chunk is
    a :class:`WeightsChunk`: the read-only weights, whose product ``block @ chunk``
    is ``block @ W``. dask computes everything else on it (and on pieces of it) as on
    the weights themselves.

    Examples
    --------
    >>> import numpy as np, dask.array as da, approxmat as am
    >>> w = da.asarray(am.ApproxMatrix(np.eye(3)))
    >>> w.chunks, type(w.compute()).__name__
    (((3,), (3,)), 'WeightsChunk')
    """
    dask, da = _modules()
    weights = _graph_key(W)
    chunk = dask.delayed(_weights_chunk, pure=True, traverse=False)(weights)
    return da.from_delayed(chunk, shape=W.shape, dtype=W.dtype,
                           meta=np.empty((0, 0), dtype=W.dtype))


def _weights_chunk(W):
    return WeightsChunk._of(W)


class WeightsChunk(np.ndarray):
    """The chunk of :func:`to_dask_array`: ``W``'s weights, multiplied as ``W``.

    An ndarray (read-only, the matrix's own weights) that remembers its
    :class:`~approxmat.ApproxMatrix`. ``np.matmul(block, chunk)``, with the whole
    chunk on the right (or the chunk with leading axes of length one, as
    ``da.matmul`` makes for stacked operands), is ``np.matmul(block, W)``. Every
    other operation, and any product with a piece of the chunk (dask's rechunking
    cuts it when the other operand's contraction axis is chunked), is NumPy's on the
    weights, with plain ndarray results.
    """

    _matrix = None
    _verdict = None  # whether this chunk holds W's weights, once checked

    @classmethod
    def _of(cls, W):
        chunk = np.asarray(W).view(cls)
        chunk._matrix = W
        chunk._verdict = True
        return chunk

    def __array_finalize__(self, obj):
        # Views and copies (dask's own, slices, transposes) remember the matrix; whether
        # they still hold its weights is checked on first use.
        self._matrix = getattr(obj, "_matrix", None)
        self._verdict = None

    def _whole(self):
        """Whether this chunk is ``W``'s weights (with leading axes of length one)."""
        if self._verdict is None:
            W = self._matrix
            self._verdict = bool(
                W is not None and self.shape[-2:] == W.shape
                and all(n == 1 for n in self.shape[:-2])
                and np.array_equal(self.view(np.ndarray).reshape(W.shape), np.asarray(W))
            )
        return self._verdict

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if (ufunc is np.matmul and method == "__call__" and len(inputs) == 2
                and inputs[1] is self and not isinstance(inputs[0], WeightsChunk)
                and np.ndim(inputs[0]) >= self.ndim and self._whole()):
            return np.matmul(inputs[0], self._matrix, **kwargs)
        inputs = _plain(inputs)
        if "out" in kwargs:
            kwargs["out"] = _plain(kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return func(*_plain(args), **_plain(kwargs))

    def __reduce__(self):
        if self._whole() and self.ndim == 2:
            return _weights_chunk, (self._matrix,)
        return np.array, (self.view(np.ndarray),)


def _plain(obj):
    """``obj`` with every :class:`WeightsChunk` (also in lists, tuples, dicts) a
    plain ndarray view."""
    if isinstance(obj, WeightsChunk):
        return obj.view(np.ndarray)
    if isinstance(obj, (list, tuple)):
        items = [_plain(item) for item in obj]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, dict):
        return {key: _plain(value) for key, value in obj.items()}
    return obj
