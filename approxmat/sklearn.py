"""Fitted scikit-learn estimators whose products go through :class:`~approxmat.ApproxMatrix`.

:func:`approximate` takes an estimator that is already fitted and whose prediction is
a chain of linear maps, each followed by a known elementwise or row-wise operation, and
returns an estimator with the same prediction methods in which every linear map is an
``x @ W`` with a fitted ``W``. Each ``W`` is calibrated on the rows that reach it when
the *exact* model is run on the calibration rows you give, so a later layer learns from
the activations it will really see.

Supported estimators (their attributes are read, never changed):

=================================================  =========================================
estimator                                          methods
=================================================  =========================================
linear classifiers (``LogisticRegression``,        ``predict``, ``decision_function``;
``LinearSVC``, ``RidgeClassifier``,                ``predict_proba`` for
``SGDClassifier``, ``Perceptron``...)               ``LogisticRegression``
linear regressors (``LinearRegression``,           ``predict``
``Ridge``, ``Lasso``, ``ElasticNet``,
``SGDRegressor``...)
``PCA``, ``TruncatedSVD``                          ``transform``
``MLPClassifier``, ``MLPRegressor``                ``predict``; ``predict_proba`` for
                                                   ``MLPClassifier``
=================================================  =========================================

Estimators whose prediction is not a chain of such maps (generalised linear models with
a link, one-vs-one ``SVC``, a sparse ``coef_``) are refused with a ``TypeError``.

The accuracy budget is the one in force when a method is called
(``with approxmat.config(tolerance=...)``), for every layer. After each call,
``last_calls_`` holds the :class:`~approxmat.CallReport` of every layer's product (which
operating point it used, and why).

The estimator follows scikit-learn's conventions: its parameters are the estimator and
the fit options (``get_params``), ``fit(X)`` calibrates and sets attributes with
trailing underscores, and it works as a step of a ``Pipeline`` (``fit`` ignores ``y``:
the wrapped estimator stays as it was fitted). Like any meta-estimator, ``clone``
clones the wrapped estimator *unfitted*; wrap it in ``sklearn.frozen.FrozenEstimator``
to keep it fitted through ``clone`` (cross-validation, grid searches).
"""

from __future__ import annotations

import numpy as np

try:
    from scipy.special import expit, softmax
    from sklearn.base import BaseEstimator
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.validation import check_array, check_is_fitted
except ImportError as exc:  # pragma: no cover - the optional extra
    raise ImportError(
        "approxmat.sklearn needs scikit-learn: pip install 'approxmat[sklearn]'"
    ) from exc

from ._budget import last_call
from ._matrix import ApproxMatrix

__all__ = ["ApproximatedEstimator", "approximate"]


def _identity(z):
    return z


def _relu(z):
    return np.maximum(z, 0, out=z)


def _softmax_rows(z):
    return softmax(z, axis=1)


#: Activations of scikit-learn's neural networks, by name.
_ACTIVATIONS = {
    "identity": _identity,
    "logistic": expit,
    "tanh": np.tanh,
    "relu": _relu,
    "softmax": _softmax_rows,
    "exp": np.exp,  # MLPRegressor(loss="poisson")
}


def _layers(estimator):
    """``(family, [(name, weights (d, k), bias (k,), activation), ...])`` of a fitted
    estimator; ``TypeError`` for estimators this module does not know."""
    from sklearn.decomposition import PCA, TruncatedSVD
    from sklearn.linear_model import SGDRegressor
    from sklearn.linear_model._base import LinearClassifierMixin, LinearModel
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    if isinstance(estimator, (MLPClassifier, MLPRegressor)):
        n = len(estimator.coefs_)
        layers = []
        for i, (W, b) in enumerate(zip(estimator.coefs_, estimator.intercepts_)):
            name = estimator.out_activation_ if i == n - 1 else estimator.activation
            if name not in _ACTIVATIONS:
                raise TypeError(f"approxmat.sklearn does not know the activation {name!r}")
            layers.append((f"layer {i}", np.asarray(W), np.asarray(b), _ACTIVATIONS[name]))
        return "mlp", layers
    if isinstance(estimator, PCA):
        W = np.asarray(estimator.components_).T
        if estimator.whiten:
            scale = np.sqrt(np.asarray(estimator.explained_variance_, dtype=np.float64))
            eps = np.finfo(scale.dtype).eps
            scale[scale < eps] = eps  # as PCA.transform clamps it
            W = W / scale
        mean = np.asarray(estimator.mean_)
        return "transform", [("components", W, -(mean @ W), _identity)]
    if isinstance(estimator, TruncatedSVD):
        W = np.asarray(estimator.components_).T
        return "transform", [("components", W, np.zeros(W.shape[1]), _identity)]
    coef = getattr(estimator, "coef_", None)
    if (isinstance(estimator, (LinearClassifierMixin, LinearModel, SGDRegressor))
            and coef is not None and not hasattr(coef, "tocsr")):
        coef = np.asarray(coef)
        W = np.atleast_2d(coef).T if coef.ndim == 1 else coef.T
        intercept = np.broadcast_to(np.asarray(getattr(estimator, "intercept_", 0.0),
                                               dtype=np.float64), (W.shape[1],))
        family = "classifier" if hasattr(estimator, "classes_") else "regressor"
        return family, [("coef", W, np.array(intercept), _identity)]
    raise TypeError(
        f"approxmat.sklearn does not know how {type(estimator).__name__} predicts: it "
        "supports linear models whose prediction is X @ coef_.T + intercept_ (with a "
        "dense coef_; not generalised linear models with a link), PCA, TruncatedSVD, "
        "MLPClassifier and MLPRegressor"
    )


def _unfrozen(estimator):
    """The estimator inside a ``sklearn.frozen.FrozenEstimator``, else ``estimator``."""
    try:
        from sklearn.frozen import FrozenEstimator
    except ImportError:  # scikit-learn < 1.6
        return estimator
    return estimator.estimator if isinstance(estimator, FrozenEstimator) else estimator


def _has(*families):
    def check(self):
        family = getattr(self, "family_", None)
        if family is None:
            try:
                family = _layers(_unfrozen(self.estimator))[0]
            except (TypeError, AttributeError):  # unknown or not fitted: fit says so
                return False
        return family in families

    return check


def _has_proba(self):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    return isinstance(_unfrozen(self.estimator), (LogisticRegression, MLPClassifier))


class ApproximatedEstimator(BaseEstimator):
    """A fitted estimator whose linear maps are approximated products ``x @ W``.

    Parameters
    ----------
    estimator : fitted scikit-learn estimator
        See the module documentation for the supported ones (also inside a
        ``FrozenEstimator``). It is read, not changed.
    ncodebooks, ranks, prune : optional
        Passed to :meth:`ApproxMatrix.fit` for every layer (default: its default
        ladder). Sizes that do not fit a layer (more codebooks than its ``D``, a rank
        not below ``min(D, M)``) are left out for that layer; a layer left with none
        computes exactly.
    random_state : int or None
        Seed of every layer's fit.

    Attributes
    ----------
    estimator_ : estimator
        The wrapped estimator.
    family_ : str
        ``"classifier"``, ``"regressor"``, ``"transform"`` or ``"mlp"``.
    matrices_ : list of ApproxMatrix
        One fitted matrix per linear map, in the order they are applied.
    n_features_in_ : int
    last_calls_ : list of (str, CallReport)
        After a prediction, each layer's name and the report of its product.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> import approxmat as am
    >>> from approxmat.sklearn import approximate
    >>> X, y = load_digits(return_X_y=True)
    >>> model = LogisticRegression(max_iter=2000).fit(X[:1200], y[:1200])
    >>> fast = approximate(model, X[:1200], ncodebooks=[8, 16], ranks=[4], random_state=0)
    >>> with am.config(tolerance=0):  # exact: the model's own predictions
    ...     bool((fast.predict(X[1200:]) == model.predict(X[1200:])).all())
    True
    >>> agree = (fast.predict(X[1200:]) == model.predict(X[1200:])).mean()
    >>> bool(agree > 0.8), fast.last_calls_[0][0]
    (True, 'coef')
    """

    def __init__(self, estimator, *, ncodebooks=None, ranks=None, prune=None,
                 random_state=None):
        self.estimator = estimator
        self.ncodebooks = ncodebooks
        self.ranks = ranks
        self.prune = prune
        self.random_state = random_state

    def fit(self, X, y=None):
        """Calibrate every layer on ``X`` (``y`` is ignored).

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            Rows like those the estimator will predict on (at least 200).
        y : ignored

        Returns
        -------
        self
        """
        estimator = _unfrozen(self.estimator)
        check_is_fitted(estimator)
        family, layers = _layers(estimator)
        X = check_array(X, dtype=(np.float64, np.float32))
        if X.shape[1] != layers[0][1].shape[0]:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(estimator).__name__} "
                f"expects {layers[0][1].shape[0]}"
            )
        matrices = []
        h = X
        for _, W, b, activation in layers:
            matrices.append(self._fitted_layer(W, h))
            h = activation(h @ W + b)  # the exact activations calibrate the next layer
        self.estimator_ = estimator
        self.family_ = family
        self.matrices_ = matrices
        self._biases = [b for _, _, b, _ in layers]
        self._activations = [a for _, _, _, a in layers]
        self._names = [name for name, _, _, _ in layers]
        self.n_features_in_ = X.shape[1]
        return self

    def _fitted_layer(self, W, rows):
        """``ApproxMatrix(W)`` fitted on ``rows``; sizes that do not fit this layer
        (codebooks > D, ranks >= min(D, M)) are left out, and a layer left with none
        stays exact."""
        D, M = W.shape
        ncodebooks, ranks = self.ncodebooks, self.ranks
        if ncodebooks is None and ranks is None:
            return ApproxMatrix(W).fit(rows, prune=self.prune, random_state=self.random_state)
        ncodebooks = [c for c in np.atleast_1d(ncodebooks if ncodebooks is not None else [])
                      if c <= D]
        ranks = [r for r in np.atleast_1d(ranks if ranks is not None else []) if r < min(D, M)]
        if not ncodebooks and not ranks:
            return ApproxMatrix(W)
        return ApproxMatrix(W).fit(rows, [int(c) for c in ncodebooks],
                                   ranks=[int(r) for r in ranks], prune=self.prune,
                                   random_state=self.random_state)

    def _forward(self, X):
        check_is_fitted(self, "matrices_")
        X = check_array(X, dtype=(np.float64, np.float32))
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but this estimator expects "
                f"{self.n_features_in_}"
            )
        reports = []
        h = X
        for name, W, b, activation in zip(self._names, self.matrices_, self._biases,
                                          self._activations):
            z = h @ W
            reports.append((name, last_call()))
            z += b
            h = activation(z)
        self.last_calls_ = reports
        return h

    @property
    def classes_(self):
        """The wrapped classifier's classes."""
        return self.estimator_.classes_

    @available_if(_has("classifier"))
    def decision_function(self, X):
        """The linear classifier's scores, computed through ``x @ W``."""
        scores = self._forward(X)
        return scores.ravel() if scores.shape[1] == 1 else scores

    @available_if(_has("classifier", "regressor", "mlp"))
    def predict(self, X):
        """The estimator's predictions, computed through ``x @ W``."""
        out = self._forward(X)
        if self.family_ == "classifier":
            binarizer = getattr(self.estimator_, "_label_binarizer", None)
            if binarizer is not None and binarizer.y_type_.startswith("multilabel"):
                return binarizer.inverse_transform(2 * (out > 0) - 1)  # as RidgeClassifier
            index = (out[:, 0] > 0).astype(int) if out.shape[1] == 1 else out.argmax(axis=1)
            return self.classes_[index]
        if self.family_ == "mlp" and hasattr(self.estimator_, "classes_"):
            if out.shape[1] == 1:
                out = out.ravel()
            return self.estimator_._label_binarizer.inverse_transform(out)
        one = np.ndim(getattr(self.estimator_, "coef_", None)) == 1 or (
            self.family_ == "mlp" and self.estimator_.n_outputs_ == 1)
        return out.ravel() if one and out.shape[1] == 1 else out

    @available_if(_has_proba)
    def predict_proba(self, X):
        """Class probabilities, computed through ``x @ W``."""
        out = self._forward(X)
        if self.family_ == "classifier":
            if out.shape[1] == 1:  # binary: the logistic of the one score
                p = expit(out[:, 0])
                return np.column_stack([1 - p, p])
            return softmax(out, axis=1)
        if out.shape[1] == 1:
            return np.column_stack([1 - out[:, 0], out[:, 0]])
        return out

    @available_if(_has("transform"))
    def transform(self, X):
        """The projection, computed through ``x @ W``."""
        return self._forward(X)

    @available_if(_has("transform"))
    def fit_transform(self, X, y=None):
        """:meth:`fit` then :meth:`transform` on the same rows."""
        return self.fit(X, y).transform(X)


def approximate(estimator, X_calibration, **options):
    """An :class:`ApproximatedEstimator` of a fitted ``estimator``, calibrated on
    ``X_calibration``.

    Parameters
    ----------
    estimator : fitted scikit-learn estimator
    X_calibration : array_like, shape (n_samples, n_features)
        Rows like those the estimator will predict on (at least 200).
    **options
        ``ncodebooks``, ``ranks``, ``prune``, ``random_state``: see
        :class:`ApproximatedEstimator`.

    Returns
    -------
    ApproximatedEstimator
    """
    return ApproximatedEstimator(estimator, **options).fit(X_calibration)
