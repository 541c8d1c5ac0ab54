"""The entry of ``x @ W``: :meth:`approxmat.ApproxMatrix.__array_ufunc__`, compiled.

NumPy hands every ufunc call with an :class:`~approxmat.ApproxMatrix` operand to
``__array_ufunc__``. Most calls of a one-row product whose answer is NumPy's own (an
unfitted matrix, ``tolerance=0``, a budget no point meets) would spend more time in the
Python checks than in the product, so this function does the checks of those calls in
C: ``matmul`` with ``W`` on the right, a 2-D ndarray ``x``, no keyword but a plain
``out=``, and a product that the cached decision of :class:`approxmat._call.Product`
says is exact. Other such calls go straight to :meth:`Product.fast`; everything else
(and whatever ``fast`` declines) to ``W._array_ufunc_python`` unchanged.

It decides nothing itself: the decision is the one :meth:`Product.fast` cached (its
entry tagged exact-only) or ``Product.plain`` (an unfitted matrix whose results are
never float16).
"""

cimport numpy as cnp
from cpython.contextvars cimport PyContextVar_Set, get_value
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

import numpy as np

from . import _backend, _budget, _call, _config
from ._points import EXACT

cnp.import_array()

cdef object _MATMUL = np.matmul
cdef object _ndarray = np.ndarray
cdef object _CONFIG = _config._current
cdef object _LAST = _budget._last
cdef object _EXACT = EXACT
# Tags of approxmat._call's fast-path entries.
cdef int _EXACT_ONLY = _call._EXACT_ONLY
cdef int _SCHEDULED = _call._SCHEDULED
cdef int _FIXED = _call._FIXED
cdef Py_ssize_t _SMALL_OUTPUT_BYTES = _backend.ALIGNED_OUTPUT_MIN_BYTES
cdef object _empty_output = _backend.empty_output
cdef object _account = _budget.account
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define am_dispatch_max_threads() omp_get_max_threads()
    #else
    #define am_dispatch_max_threads() 1
    #endif
    """
    int am_dispatch_max_threads() nogil
cdef Py_ssize_t _CORES = _backend._CORES


cdef inline Py_ssize_t _threads(object requested):
    """:func:`approxmat._backend.kernel_threads` of a call."""
    cdef Py_ssize_t limit = am_dispatch_max_threads()  # what threadpool_limits lowers
    if requested is None:
        return _CORES if _CORES < limit else limit
    if requested >= limit:  # compared as Python ints: any size is fine
        return limit
    return <Py_ssize_t>requested


cdef inline Py_ssize_t _schedule_key(cnp.ndarray x, Py_ssize_t threads):
    """Product.fast's key of a schedule: ``2 * threads + (layout == "F")``."""
    cdef int flags = cnp.PyArray_FLAGS(x)
    if (flags & cnp.NPY_ARRAY_F_CONTIGUOUS) and not (flags & cnp.NPY_ARRAY_C_CONTIGUOUS):
        return 2 * threads + 1
    return 2 * threads


cdef Py_ssize_t _interval(tuple bounds, Py_ssize_t n):
    """The last position ``k`` with ``bounds[k] <= n`` (``bounds[0]`` is 0)."""
    cdef Py_ssize_t lo = 0, hi = len(bounds), mid
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if <Py_ssize_t>bounds[mid] <= n:
            lo = mid
        else:
            hi = mid
    return lo


cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + 1e-9 * ts.tv_nsec


def array_ufunc(self, ufunc, method, *inputs, **kwargs):
    """``__array_ufunc__`` of :class:`~approxmat.ApproxMatrix` (see the module docs)."""
    cdef object x, product, out, reason, entry, config, y, sched, flags, point, descr, hot
    cdef object pred = None
    cdef Py_ssize_t index, threads, nrows, skey
    cdef int tag
    cdef cnp.npy_intp dims[2]
    cdef double t0, t1
    if not (ufunc is _MATMUL and len(inputs) == 2 and inputs[1] is self
            and type(inputs[0]) is _ndarray and method == "__call__"):
        return self._array_ufunc_python(ufunc, method, inputs, kwargs)
    x = inputs[0]
    if cnp.PyArray_NDIM(<cnp.ndarray>x) != 2:
        return self._array_ufunc_python(ufunc, method, inputs, kwargs)
    out = None
    if kwargs:
        if len(kwargs) != 1:
            return self._array_ufunc_python(ufunc, method, inputs, kwargs)
        out = kwargs.get("out")
        if not (type(out) is tuple and len(<tuple>out) == 1
                and type((<tuple>out)[0]) is _ndarray):
            return self._array_ufunc_python(ufunc, method, inputs, kwargs)
    product = self._product
    nrows = cnp.PyArray_DIM(<cnp.ndarray>x, 0)
    if product.plain:
        reason = "not fitted"
    else:
        config = get_value(_CONFIG)
        descr = <object>cnp.PyArray_DESCR(<cnp.ndarray>x)
        hot = product._hot
        if hot is not None and (<tuple>hot)[0] is config and (<tuple>hot)[1] is descr:
            entry = (<tuple>hot)[2]
        else:
            entry = product._fast.get((config.tolerance, descr, config.check_finite))
            if entry is not None:
                hot = product._hot = (config, descr, entry)
        tag = -1 if entry is None else entry[0]
        if tag == _EXACT_ONLY:
            reason = entry[1]
        else:
            # The cached decision; Product.fast decides (and caches) what C does not.
            if (tag != _FIXED and tag != _SCHEDULED) or config.verify is not None:
                return _python_fast(self, product, x, out, ufunc, method, inputs, kwargs)
            threads = _threads(config.threads)
            if tag == _FIXED:
                index = entry[1]
            else:
                skey = _schedule_key(<cnp.ndarray>x, threads)
                if len(<tuple>hot) == 5 and (<tuple>hot)[3] == skey and (<tuple>hot)[2] is entry:
                    sched = (<tuple>hot)[4]
                else:
                    sched = (<dict>entry[1]).get(skey)
                    if sched is not None:
                        product._hot = (config, descr, entry, skey, sched)
                if sched is None:
                    return _python_fast(self, product, x, out, ufunc, method, inputs,
                                        kwargs)
                index = sched.indices[_interval(sched.bounds, nrows)]
                pred = (sched.curve, index)
            if index != 0:
                # An approximate point; only a new result here (out= is checked in Python).
                if out is not None or cnp.PyArray_DIM(<cnp.ndarray>x, 1) != product.weights.shape[0]:
                    return _python_fast(self, product, x, out, ufunc, method, inputs,
                                        kwargs)
                dims[0] = nrows
                dims[1] = product.weights.shape[1]
                if nrows * dims[1] * 8 < _SMALL_OUTPUT_BYTES:
                    y = cnp.PyArray_EMPTY(2, dims, (<cnp.dtype>entry[3]).type_num, 0)
                else:
                    y = _empty_output(nrows, dims[1], entry[3])
                point = product.points[index]
                t0 = _now()
                flags = entry[2][index](x, y, threads)
                t1 = _now()
                if flags is not None:
                    _account(product, x, y, point, config, flags, t1 - t0, pred)
                else:
                    PyContextVar_Set(_LAST, (point, nrows, t1 - t0, pred, None))
                return y
            reason = None
    t0 = _now()
    if out is None:
        y = _MATMUL(x, product.weights)
    else:
        y = _MATMUL(x, product.weights, out=out)
    t1 = _now()
    PyContextVar_Set(_LAST, (_EXACT, nrows, t1 - t0, pred, reason))
    return y


cdef object _python_fast(self, product, x, out, ufunc, method, inputs, kwargs):
    y = product.fast(x, out)
    if y is None:
        return self._array_ufunc_python(ufunc, method, inputs, kwargs)
    return y
