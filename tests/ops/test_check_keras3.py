"""`check --into` with Keras 3 stores (.weights.h5, .keras): verdicts that agree with Keras 3's load_weights."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import weightkit
from weightkit.ops.check import check_into

keras = pytest.importorskip("keras")


def mobilenet(top: bool, classes: int = 10):
    return keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, include_top=top,
                                          classes=classes)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """MobileNetV2 with and without its classifier, as users save them."""
    root = tmp_path_factory.mktemp("keras3")
    keras.utils.set_random_seed(1)
    top, notop, top5 = mobilenet(True), mobilenet(False), mobilenet(True, classes=5)
    paths = {
        "top.weights.h5": top.save_weights, "notop.weights.h5": notop.save_weights,
        "top5.weights.h5": top5.save_weights, "top.keras": top.save, "notop.keras": notop.save,
    }
    for name, save in paths.items():
        save(root / name)
    return root


def keras_load(model_path, weights_path) -> str | None:
    """What Keras 3 says when loading: None if it loads, else its error."""
    model = keras.saving.load_model(model_path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.load_weights(weights_path)
    except ValueError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("weights, model", [
    ("top.weights.h5", "notop.keras"),  # Keras 3 ignores the file's extra classifier
    ("notop.weights.h5", "top.keras"),  # the model's classifier finds no variables
    ("top5.weights.h5", "top.keras"),  # 5-class classifier into a 10-class model
    ("top.keras", "notop.keras"),
    ("notop.keras", "top.keras"),
])
def test_verdicts_follow_keras3(files, weights, model):
    error = keras_load(files / model, files / weights)
    with weightkit.load(files / weights) as checkpoint, weightkit.load(files / model) as target:
        report = check_into(checkpoint, target)
    assert report.semantics == "keras3"
    assert bool(report.errors()) == (error is not None), (error, report.findings)
    if error is not None:
        assert "predictions" in error and all("predictions" in f.message for f in report.errors())
        assert not any("position" in f.message for f in report.findings)
        # the suggested call loads, leaving only the classifier at its initialization
        target_model = keras.saving.load_model(files / model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            target_model.load_weights(files / weights, skip_mismatch=True)
        assert "skip_mismatch=True" in report.errors()[0].fix


def test_missing_classifier_quotes_keras3s_error(files):
    error = keras_load(files / "top.keras", files / "notop.weights.h5")
    with weightkit.load(files / "notop.weights.h5") as checkpoint, weightkit.load(files / "top.keras") as target:
        report = check_into(checkpoint, target)
    assert "Layer 'predictions' expected 2 variables, but received 0 variables during loading" in error
    assert "Layer 'predictions' expected 2 variables, but received 0 variables during loading" in \
        report.errors()[0].message


def test_extra_classifier_is_reported_as_ignored(files):
    with weightkit.load(files / "top.weights.h5") as checkpoint, weightkit.load(files / "notop.keras") as target:
        report = check_into(checkpoint, target)
    assert report.ok
    ignored = [f for f in report.findings if f.kind == "unexpected"]
    assert ignored and "predictions" in ignored[0].message and "ignores" in ignored[0].message


def test_pairs_are_the_tensors_keras3_loads(files):
    """Every model tensor is paired with the file tensor that Keras 3 assigns to it."""
    model = keras.saving.load_model(files / "notop.keras")
    model.load_weights(files / "top.weights.h5")
    expected = {v.path: np.asarray(v) for v in model.weights}
    with weightkit.load(files / "top.weights.h5") as checkpoint, weightkit.load(files / "notop.keras") as target:
        report = check_into(checkpoint, target)
        loaded = {want.name: np.asarray(have.read()) for want, have in report.pairs}
    assert len(loaded) == len(expected)
    for path, value in expected.items():
        assert np.array_equal(loaded[path], value), path
