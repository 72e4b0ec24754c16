"""xpnet.sklearn: scikit-learn's own estimator checks, pipelines, searches, labels, pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn not installed: pip install 'xpnet[sklearn]'")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_blobs, make_regression  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from xpnet.sklearn import XpnetClassifier, XpnetRegressor  # noqa: E402

# Small and quick, yet trained enough for the checks' accuracy (> 0.83) and R^2 (> 0.5) bars.
FAST = {"hidden_sizes": (8,), "epochs": 20, "lr": 0.02, "random_state": 0}


# Every check passes, so no expected_failed_checks (scikit-learn >= 1.6) is passed: a check
# that starts failing fails this test rather than being skipped quietly.
@parametrize_with_checks([XpnetClassifier(**FAST), XpnetRegressor(**FAST)])
def test_sklearn_estimator_checks(estimator: object, check: object) -> None:
    check(estimator)  # type: ignore[operator]


def _blobs() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_blobs(n_samples=120, centers=3, n_features=4, random_state=0)
    return X * 10.0 + 5.0, y  # far from unit scale: the pipeline's scaler has work to do


def test_string_labels_and_classes() -> None:
    X, y = _blobs()
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = make_pipeline(StandardScaler(), XpnetClassifier(**FAST)).fit(X, names)
    est = clf[-1]
    assert list(est.classes_) == ["setosa", "versicolor", "virginica"]
    assert est.n_features_in_ == 4
    proba = clf.predict_proba(X)
    assert proba.shape == (120, 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert set(clf.predict(X)) <= set(names)
    assert clf.score(X, names) > 0.9


def test_grid_search_and_cross_val_score() -> None:
    X, y = _blobs()
    pipe = make_pipeline(StandardScaler(), XpnetClassifier(**FAST))
    assert cross_val_score(pipe, X, y, cv=3).mean() > 0.8
    grid = GridSearchCV(pipe, {"xpnetclassifier__hidden_sizes": [(4,), (8,)],
                               "xpnetclassifier__lr": [0.01, 0.03]}, cv=2)
    grid.fit(X, y)
    assert grid.best_params_["xpnetclassifier__hidden_sizes"] in [(4,), (8,)]
    assert grid.score(X, y) > 0.8


def test_regressor_multi_output_and_r2() -> None:
    X, y = make_regression(n_samples=100, n_features=5, n_targets=2, noise=1.0, random_state=0)
    y = y / y.std(axis=0)
    reg = make_pipeline(StandardScaler(), XpnetRegressor(**{**FAST, "epochs": 40}))
    reg.fit(X, y)
    pred = reg.predict(X)
    assert pred.shape == (100, 2) and pred.dtype == np.float64
    assert reg.score(X, y) > 0.8
    assert reg[-1].n_outputs_ == 2
    one = clone(reg).fit(X, y[:, 0])
    assert one.predict(X).shape == (100,)


def test_clone_get_set_params_and_pickle() -> None:
    X, y = _blobs()
    clf = XpnetClassifier(**FAST)
    assert clf.get_params()["hidden_sizes"] == (8,)
    clf.set_params(hidden_sizes=(5, 3), activation="tanh", optimizer="momentum")
    fitted = clone(clf).fit(StandardScaler().fit_transform(X), y)
    assert fitted.model_.summary().count("Dense") == 3
    again = pickle.loads(pickle.dumps(fitted))
    Xs = StandardScaler().fit_transform(X)
    np.testing.assert_array_equal(again.predict_proba(Xs), fitted.predict_proba(Xs))
    assert again.get_params() == fitted.get_params()


def test_dtype_follows_X_unless_given() -> None:
    X, y = _blobs()
    assert XpnetClassifier(**FAST).fit(X, y).model_.backend.dtype_name == "float64"
    X32 = X.astype(np.float32)
    assert XpnetClassifier(**FAST).fit(X32, y).model_.backend.dtype_name == "float32"
    clf = XpnetClassifier(**FAST, dtype="float32").fit(X, y)
    assert clf.model_.backend.dtype_name == "float32"
    assert clf.predict_proba(X).dtype == np.float64


@pytest.mark.parametrize(
    ("param", "value", "error", "words"),
    [
        ("hidden_sizes", (4, 0), ValueError, "hidden_sizes"),
        ("hidden_sizes", "wide", TypeError, "hidden_sizes"),
        ("activation", "gelu", ValueError, "'gelu'"),
        ("dropout", 1.0, ValueError, "dropout"),
        ("optimizer", "lbfgs", ValueError, "'lbfgs'"),
        ("lr", -1.0, ValueError, "lr"),
        ("epochs", 0, ValueError, "epochs"),
        ("batch_size", 2.5, TypeError, "batch_size"),
        ("dtype", "float16", ValueError, "'float16'"),
        ("verbose", "yes", TypeError, "verbose"),
    ],
)
def test_bad_hyper_parameters_fail_in_fit_naming_them(
    param: str, value: object, error: type[Exception], words: str
) -> None:
    clf = XpnetClassifier(**{**FAST, param: value})  # scikit-learn: __init__ never validates
    assert clf.get_params()[param] == value
    X, y = _blobs()
    with pytest.raises(error, match=words):
        clf.fit(X, y)


def test_one_class_is_a_clear_error() -> None:
    X, _ = _blobs()
    with pytest.raises(ValueError, match="at least 2 classes in y, got 1 class: 'only'"):
        XpnetClassifier(**FAST).fit(X, np.array(["only"] * len(X)))


def test_the_fitted_network_exports_to_onnx(tmp_path: object) -> None:
    ort = pytest.importorskip("onnxruntime", reason="needs xpnet[onnx]")
    pytest.importorskip("onnx", reason="needs xpnet[onnx]")
    X, y = _blobs()
    X = StandardScaler().fit_transform(X).astype(np.float32)
    clf = XpnetClassifier(**FAST).fit(X, np.array(["a", "b", "c"])[y])
    path = clf.model_.export_onnx(f"{tmp_path}/clf.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (proba,) = sess.run(None, {"input": X})
    np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=1e-5, atol=1e-6)
    assert list(clf.classes_[proba.argmax(axis=1)]) == list(clf.predict(X))
