"""approxmat.sklearn: fitted scikit-learn estimators through ApproxMatrix products."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, RidgeClassifier
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

import approxmat as am
from approxmat.sklearn import ApproximatedEstimator, approximate

# Two small points per layer keep the fits quick (the default ladder is tested elsewhere).
FEW = {"ncodebooks": [8], "ranks": [4], "random_state": 0}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:1300], y[:1300], X[1300:], y[1300:]


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return X[:450], y[:450], X[450:], y[450:]


def _exact(fast, method, X):
    with am.config(tolerance=0):
        out = getattr(fast, method)(X)
    assert all(r.kind == "exact" for _, r in fast.last_calls_)
    return out


@pytest.mark.parametrize("make", [
    lambda: LogisticRegression(max_iter=3000),
    lambda: LinearSVC(max_iter=5000),
    lambda: RidgeClassifier(),
])
def test_linear_classifiers_multiclass(digits, make):
    Xtr, ytr, Xte, yte = digits
    model = make().fit(Xtr, ytr)
    fast = approximate(model, Xtr, **FEW)
    np.testing.assert_allclose(_exact(fast, "decision_function", Xte),
                               model.decision_function(Xte), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(_exact(fast, "predict", Xte), model.predict(Xte))
    approx = fast.predict(Xte)  # the most accurate fitted point
    assert fast.last_calls_[0][1].kind in ("lut", "lowrank")
    # 8 codebooks or rank 4 for 64 -> 10: well above chance (0.1), not the model itself
    assert (approx == model.predict(Xte)).mean() > 0.5
    assert set(approx) <= set(model.classes_)
    if hasattr(model, "predict_proba"):
        np.testing.assert_allclose(_exact(fast, "predict_proba", Xte),
                                   model.predict_proba(Xte), rtol=1e-8, atol=1e-10)
        p = fast.predict_proba(Xte)
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
    else:
        assert not hasattr(fast, "predict_proba")
    assert not hasattr(fast, "transform")


def test_binary_logistic_regression(cancer):
    Xtr, ytr, Xte, yte = cancer
    model = LogisticRegression(max_iter=3000).fit(Xtr, ytr)
    fast = approximate(model, Xtr, **FEW)
    assert fast.decision_function(Xte).shape == (len(Xte),)
    np.testing.assert_allclose(_exact(fast, "predict_proba", Xte), model.predict_proba(Xte),
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(_exact(fast, "predict", Xte), model.predict(Xte))
    assert (fast.predict(Xte) == yte).mean() > 0.85


@pytest.mark.parametrize("make", [LinearRegression, Ridge])
def test_linear_regressors(make):
    X, y = load_diabetes(return_X_y=True)
    model = make().fit(X, y)
    fast = approximate(model, X, **FEW)
    got = _exact(fast, "predict", X)
    assert got.shape == (len(X),)
    np.testing.assert_allclose(got, model.predict(X), rtol=1e-9)
    Y = np.column_stack([y, 2 * y])
    model2 = make().fit(X, Y)
    fast2 = approximate(model2, X, **FEW)
    assert _exact(fast2, "predict", X).shape == (len(X), 2)


@pytest.mark.parametrize("make", [lambda: PCA(16), lambda: PCA(16, whiten=True),
                                  lambda: TruncatedSVD(16, random_state=0)])
def test_projections(digits, make):
    Xtr, _, Xte, _ = digits
    model = make().fit(Xtr)
    fast = approximate(model, Xtr, **FEW)
    np.testing.assert_allclose(_exact(fast, "transform", Xte), model.transform(Xte),
                               rtol=1e-7, atol=1e-8)
    Z = fast.transform(Xte)
    exact = model.transform(Xte)
    err = np.linalg.norm(Z - exact) / np.linalg.norm(exact)
    assert err < 1.5 * fast.matrices_[0].levels[-1].error + 0.05
    assert not hasattr(fast, "predict")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_mlp_classifier_and_regressor(digits):
    Xtr, ytr, Xte, yte = digits
    model = MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=100, random_state=0).fit(Xtr / 16, ytr)
    fast = approximate(model, Xtr / 16, **FEW)
    assert len(fast.matrices_) == 3 and [m.shape for m in fast.matrices_] == [
        (64, 64), (64, 32), (32, 10)]
    np.testing.assert_array_equal(_exact(fast, "predict", Xte / 16), model.predict(Xte / 16))
    np.testing.assert_allclose(_exact(fast, "predict_proba", Xte / 16),
                               model.predict_proba(Xte / 16), rtol=1e-7, atol=1e-9)
    assert (fast.predict(Xte / 16) == model.predict(Xte / 16)).mean() > 0.8
    assert [name for name, _ in fast.last_calls_] == ["layer 0", "layer 1", "layer 2"]
    reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=50, random_state=0).fit(Xtr / 16, ytr.astype(float))
    fast_reg = approximate(reg, Xtr / 16, **FEW)
    got = _exact(fast_reg, "predict", Xte / 16)
    assert got.shape == (len(Xte),)
    np.testing.assert_allclose(got, reg.predict(Xte / 16), rtol=1e-7, atol=1e-9)


def test_budget_per_call_and_conventions(digits):
    Xtr, ytr, Xte, _ = digits
    model = LogisticRegression(max_iter=3000).fit(Xtr, ytr)
    fast = ApproximatedEstimator(model, ncodebooks=[8], random_state=0)
    assert fast.get_params()["ncodebooks"] == [8]
    with pytest.raises(Exception):  # not fitted yet
        fast.predict(Xte)
    fast.fit(Xtr)
    assert [(p.kind, p.size) for p in fast.matrices_[0].levels] == [("lut", 8)]
    with am.config(tolerance=1e-6):  # no point is this accurate: exact
        fast.predict(Xte)
    assert fast.last_calls_[0][1].kind == "exact"
    # clone() clones the wrapped estimator unfitted, as for any meta-estimator; a
    # FrozenEstimator keeps it fitted through clone (cross-validation, grid search).
    with pytest.raises(Exception, match="not fitted"):
        clone(fast).fit(Xtr)
    from sklearn.frozen import FrozenEstimator

    frozen = clone(ApproximatedEstimator(FrozenEstimator(model), ncodebooks=[8],
                                         random_state=0)).fit(Xtr)
    assert not hasattr(clone(frozen), "matrices_")
    with am.config(tolerance=0):
        np.testing.assert_array_equal(frozen.predict(Xte), model.predict(Xte))
    pipe = make_pipeline(StandardScaler(), PCA(20), )
    pipe.fit(Xtr)
    scaled = pipe[0].transform(Xtr)
    fast_pca = approximate(pipe[1], scaled, **FEW)
    with am.config(tolerance=0):
        np.testing.assert_allclose(make_pipeline(pipe[0], fast_pca).transform(Xte),
                                   pipe.transform(Xte), rtol=1e-7, atol=1e-8)
    with pytest.raises(ValueError, match="features"):
        fast.predict(Xte[:, :10])
    with pytest.raises(TypeError, match="does not know how"):
        approximate(StandardScaler().fit(Xtr), Xtr)
    with pytest.raises(Exception, match="not fitted"):
        approximate(LogisticRegression(), Xtr)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimators_that_predict_otherwise_are_refused_or_handled(digits):
    from sklearn.linear_model import PoissonRegressor, SGDRegressor
    from sklearn.svm import SVC

    Xtr, ytr, Xte, _ = digits
    X, y = load_diabetes(return_X_y=True)
    with pytest.raises(TypeError, match="does not know how PoissonRegressor"):
        approximate(PoissonRegressor().fit(X, y), X)  # exp(X w + b): a link
    with pytest.raises(TypeError, match="does not know how SVC"):
        approximate(SVC(kernel="linear").fit(Xtr, ytr), Xtr)  # one-vs-one
    sgd = SGDRegressor(random_state=0).fit(X, y)
    np.testing.assert_allclose(_exact(approximate(sgd, X, **FEW), "predict", X),
                               sgd.predict(X), rtol=1e-9)
    # multilabel RidgeClassifier: labels per column, as the model gives them
    Y = np.column_stack([ytr % 2, ytr > 4, ytr == 3]).astype(int)
    ridge = RidgeClassifier().fit(Xtr, Y)
    np.testing.assert_array_equal(_exact(approximate(ridge, Xtr, **FEW), "predict", Xte),
                                  ridge.predict(Xte))
    # whitened PCA with components of zero variance (digits has constant pixels)
    pca = PCA(whiten=True).fit(Xtr)
    got = _exact(approximate(pca, Xtr, **FEW), "transform", Xte)
    want = pca.transform(Xte)
    kept = pca.explained_variance_ > 1e-6
    np.testing.assert_allclose(got[:, kept], want[:, kept], rtol=1e-6, atol=1e-6)
    reg = MLPRegressor(hidden_layer_sizes=(16,), loss="poisson", max_iter=30,
                       random_state=0).fit(Xtr / 16, ytr + 1.0)
    np.testing.assert_allclose(_exact(approximate(reg, Xtr / 16, **FEW), "predict", Xte / 16),
                               reg.predict(Xte / 16), rtol=1e-7)
