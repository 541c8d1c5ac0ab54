"""asv benchmarks of the public API: ``fit``, the whole ``x @ W`` call, its memory.

What each family measures (through the public API, with fitted levels):

* ``Fit.time_fit_default_ladder``: ``ApproxMatrix(weights).fit(X_cal)``, the call
  users make (every level of the default ladder, validation included).
* ``Product.time_approx`` / ``Product.time_numpy``: the whole ``y = x @ W`` call
  (dispatch, level choice, kernel, allocation of the result) and NumPy's
  ``x @ weights`` on the same rows, over shapes, codebook counts and rows. Their
  ratio is the speedup a user sees. ``Product.peakmem_approx``: peak memory of a
  process that made the call.
* ``CallVariants``: the same product for inputs that take other paths through the
  NumPy surface (float64, Fortran order, strided rows, stacked 3-D, ``np.dot``,
  ``out=``), so a slow conversion shows up.
* ``SmallCall``: one 1-D row, the fixed cost of a call.
* ``Budgeted``: 2-D calls of 1 to 10 000 rows unfitted, exact, under a budget (the
  point predicted fastest) and with the most accurate point, against NumPy.
* ``PhotoAccuracy.track_*``: relative error per level on the demo's real data
  (patches of scikit-learn's sample photographs); skipped when scikit-learn or
  Pillow is missing.

Not here: kernel timings with ``out=`` over many shapes and threads
(``bench_speed.py``) and the learner's accuracy and fit time on synthetic data
(``bench_accuracy.py``).

Synthetic data are seeded (rows from a low-rank model plus noise, the structure
learned lookup tables exploit), so the suite runs offline.
"""

import numpy as np

import approxmat as am


def _rows(n, d, seed):
    """``n`` float32 rows of width ``d`` lying near a 16-dimensional subspace."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(1234 + d).standard_normal((min(16, d), d))
    latent = rng.standard_normal((n, basis.shape[0]))
    noise = rng.standard_normal((n, d))
    return (latent @ basis + 0.3 * noise).astype(np.float32)


def _weights(d, m):
    return np.random.default_rng(4321 + d * 1000 + m).standard_normal((d, m)).astype(np.float32)


#: (D, M) of the weights in the product benchmarks.
SHAPES = ["64x16", "192x64"]
#: Codebooks of the fitted level in the product benchmarks.
CODEBOOKS = [8, 32]
#: Left-operand rows in the product benchmarks.
ROWS = [1_000, 100_000]
#: Calibration rows of the fits made for the product benchmarks (quality does not
#: matter there, only the level's shape).
_PRODUCT_CALIBRATION_ROWS = 1_000


def _shape(text):
    d, m = (int(v) for v in text.split("x"))
    return d, m


class Fit:
    """Time of the user's ``fit`` call: the default ladder of levels."""

    number = 1
    repeat = (1, 3, 60.0)
    timeout = 300

    def setup(self):
        self.weights = _weights(64, 16)
        self.X_cal = _rows(2_000, 64, seed=0)

    def time_fit_default_ladder(self):
        am.ApproxMatrix(self.weights).fit(self.X_cal, random_state=0)


class Product:
    """The whole ``x @ W`` call against NumPy's ``x @ weights``."""

    params = (SHAPES, CODEBOOKS, ROWS)
    param_names = ["D x M", "ncodebooks", "N"]
    timeout = 600

    def setup_cache(self):
        # One fit per (shape, codebooks), shared by every parameter set and process.
        fitted = {}
        for shape in SHAPES:
            d, m = _shape(shape)
            X_cal = _rows(_PRODUCT_CALIBRATION_ROWS, d, seed=1)
            for c in CODEBOOKS:
                W = am.ApproxMatrix(_weights(d, m)).fit(X_cal, ncodebooks=[c], random_state=0)
                fitted[shape, c] = W
        return fitted

    def setup(self, fitted, shape, ncodebooks, n):
        d, _ = _shape(shape)
        self.W = fitted[shape, ncodebooks]
        self.weights = np.asarray(self.W)
        self.x = _rows(n, d, seed=2)
        self.x @ self.W  # warm-up: kernels may pack their tables on the first call

    def time_approx(self, fitted, shape, ncodebooks, n):
        self.x @ self.W

    def time_numpy(self, fitted, shape, ncodebooks, n):
        self.x @ self.weights

    def peakmem_approx(self, fitted, shape, ncodebooks, n):
        self.x @ self.W


class SmallCall:
    """One row: the fixed cost of a call (argument checks, level choice, dispatch)."""

    params = ([8],)
    param_names = ["ncodebooks"]

    def setup_cache(self):
        d, m = 64, 16
        W = am.ApproxMatrix(_weights(d, m)).fit(_rows(1_000, d, seed=3), ncodebooks=[8],
                                                random_state=0)
        return W

    def setup(self, W, ncodebooks):
        self.W = W
        self.weights = np.asarray(W)
        self.x = _rows(1, W.shape[0], seed=4)[0]
        self.x @ self.W

    def time_approx(self, W, ncodebooks):
        self.x @ self.W

    def time_numpy(self, W, ncodebooks):
        self.x @ self.weights

    def time_approx_with_config(self, W, ncodebooks):
        with am.config(tolerance=1.0, threads=1):
            self.x @ self.W


class Budgeted:
    """A 2-D call under each kind of setting against NumPy: unfitted, ``tolerance=0``
    (exact), a budget every point meets (the call takes the point predicted fastest
    for its rows, exact included) and ``tolerance=None`` (the most accurate point)."""

    params = (["unfitted", "tolerance=0", "tolerance=1", "tolerance=None"], [1, 16, 10_000])
    param_names = ["setting", "N"]

    def setup_cache(self):
        d, m = 64, 16
        return am.ApproxMatrix(_weights(d, m)).fit(_rows(2_000, d, seed=5), random_state=0)

    def setup(self, W, setting, n):
        self.weights = np.asarray(W)
        self.W = am.ApproxMatrix(self.weights) if setting == "unfitted" else W
        tolerance = {"tolerance=0": 0, "tolerance=1": 1.0}.get(setting)
        self.config = am.config(tolerance=tolerance)
        self.x = _rows(n, W.shape[0], seed=6)
        self.config.__enter__()
        self.x @ self.W  # decides and caches the decision for this dtype and layout

    def teardown(self, W, setting, n):
        self.config.__exit__(None, None, None)

    def time_approx(self, W, setting, n):
        self.x @ self.W

    def time_numpy(self, W, setting, n):
        self.x @ self.weights


class CallVariants:
    """``x @ W`` for inputs that take other paths through NumPy's surface."""

    params = (["float32 C", "float64 C", "float32 F", "float32 strided", "stacked 3-D",
               "np.dot", "matmul out="],)
    param_names = ["input"]
    timeout = 300
    N, D, M, C = 100_000, 192, 64, 16

    def setup_cache(self):
        return am.ApproxMatrix(_weights(self.D, self.M)).fit(
            _rows(_PRODUCT_CALIBRATION_ROWS, self.D, seed=1), ncodebooks=[self.C],
            random_state=0)

    def setup(self, W, variant):
        self.W = W
        x = _rows(self.N, self.D, seed=2)
        if variant == "float64 C":
            x = x.astype(np.float64)
        elif variant == "float32 F":
            x = np.asfortranarray(x)
        elif variant == "float32 strided":
            x = _rows(2 * self.N, self.D, seed=2)[::2]
        elif variant == "stacked 3-D":
            x = x.reshape(8, self.N // 8, self.D)
        self.x = x
        self.weights = np.asarray(W).astype(x.dtype)
        self.out = np.empty(x.shape[:-1] + (self.M,), dtype=x.dtype)
        if variant == "np.dot":
            self.approx = lambda: np.dot(self.x, self.W)
            self.exact = lambda: np.dot(self.x, self.weights)
        elif variant == "matmul out=":
            self.approx = lambda: np.matmul(self.x, self.W, out=self.out)
            self.exact = lambda: np.matmul(self.x, self.weights, out=self.out)
        else:
            self.approx = lambda: self.x @ self.W
            self.exact = lambda: self.x @ self.weights
        self.approx()

    def time_approx(self, W, variant):
        self.approx()

    def time_numpy(self, W, variant):
        self.exact()


class PhotoAccuracy:
    """Relative error per level on the demo's photograph patches (real data)."""

    params = ([8, 16, 32],)
    param_names = ["ncodebooks"]
    unit = "relative error"
    timeout = 600

    def setup_cache(self):
        try:
            from approxmat._demo import load_patch_problem

            problem = load_patch_problem(calibration_rows=4_000, test_rows=20_000,
                                         new_rows=20_000, seed=0)
        except ImportError:
            return None  # scikit-learn or Pillow missing: the benchmarks skip
        W = am.ApproxMatrix(problem.weights).fit(problem.X_cal, ncodebooks=[8, 16, 32],
                                                 random_state=0)
        result = {}
        for info, level in zip(W.levels, W._levels):
            errors = [info.error]
            W_level = W._with_levels([level])  # exactly this level
            for x in (problem.X_test, problem.X_new):
                exact = (x @ problem.weights).astype(np.float64)
                approx = x @ W_level
                errors.append(float(np.linalg.norm(approx - exact) / np.linalg.norm(exact)))
            result[info.ncodebooks] = errors
        return result

    def setup(self, result, ncodebooks):
        if result is None:
            raise NotImplementedError("needs scikit-learn and Pillow (the demo's data)")

    def track_validated_error(self, result, ncodebooks):
        return result[ncodebooks][0]

    def track_test_error_same_photo(self, result, ncodebooks):
        return result[ncodebooks][1]

    def track_error_new_photo(self, result, ncodebooks):
        return result[ncodebooks][2]
