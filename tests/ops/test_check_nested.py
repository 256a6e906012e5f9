"""`check --into` when the file holds the weights of a model nested in the target (a backbone in a detector)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import weightkit
from weightkit.ops.check import check_into
from weightkit.ops.split import propose_boundary

keras = pytest.importorskip("keras")


def extractor():
    layers = keras.layers
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv_1")(inputs)
    x = layers.BatchNormalization(name="norm_1")(x)
    x = layers.LeakyReLU(0.1)(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv_2")(x)
    x = layers.BatchNormalization(name="norm_2")(x)
    x = layers.LeakyReLU(0.1)(x)
    return keras.Model(inputs, x, name="model")


def detector(features):
    inputs = keras.Input((32, 32, 3), name="input_image")
    x = features(inputs)
    x = keras.layers.Conv2D(5 * 8, 1, name="DetectionLayer")(x)
    outputs = keras.layers.Reshape((16, 16, 5, 8))(x)
    return keras.Model(inputs, outputs)


def save_legacy_weights(model, path):
    """What keras-yolo2 users download: ``feature_extractor.save_weights("full_yolo_backend.h5")`` (legacy layout)."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("nested")
    keras.utils.set_random_seed(3)
    trained = extractor()
    save_legacy_weights(trained, root / "backend.h5")
    trained.save_weights(root / "backend.weights.h5")
    detector(extractor()).save(root / "detector.keras")
    detector(extractor()).save(root / "detector.h5")
    return root, trained


@pytest.mark.parametrize("weights", ["backend.h5", "backend.weights.h5"])
@pytest.mark.parametrize("target", ["detector.keras", "detector.h5"])
def test_file_that_fits_the_nested_backbone_is_named_and_the_given_call_loads_it(files, weights, target):
    root, trained = files
    with weightkit.load(root / weights) as checkpoint, weightkit.load(root / target) as model:
        report = check_into(checkpoint, model)
    finding = report.findings[0]
    assert finding.kind == "nested" and finding.severity == "error"
    assert "'model'" in finding.message and "all 4 of its weighted layers pair" in finding.message
    assert "DetectionLayer" in finding.message and "another architecture" not in finding.message
    assert "model.get_layer('model').load_weights(path)" in finding.fix
    # the whole-model load fails as reported; the call given loads every backbone weight
    loaded = keras.saving.load_model(root / target)
    with pytest.raises(ValueError):
        loaded.load_weights(root / weights)
    loaded = keras.saving.load_model(root / target)
    loaded.get_layer("model").load_weights(root / weights)
    for got, want in zip(loaded.get_layer("model").weights, trained.weights):
        assert np.array_equal(np.asarray(got), np.asarray(want))


@pytest.fixture(scope="module")
def yolo(tmp_path_factory):
    from tests.yolo_nets import save_yolo_files

    return save_yolo_files(tmp_path_factory.mktemp("yolo"))


@pytest.mark.parametrize("backend", ["backend_h5", "backend_weights_h5"])
def test_full_yolo_backend_into_the_detector_names_the_feature_extractor(yolo, backend, capsys):
    """keras-yolo2: full_yolo_backend.h5 is the extractor's weights; the detector nests the extractor as 'model'."""
    from weightkit.cli import main

    path = getattr(yolo, backend)
    assert main(["check", str(path), "--into", str(yolo.detector_h5)]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "the file holds the weights of 'model', a model nested in this one: all 44 of its weighted layers" in out
    assert "DetectionLayer (Conv2D," in out and "model.get_layer('model').load_weights(path)" in out
    assert "another architecture" not in out
    from tests.yolo_nets import CUSTOM_OBJECTS

    detector = keras.saving.load_model(yolo.detector_h5, custom_objects=CUSTOM_OBJECTS, safe_mode=False)
    detector.get_layer("model").load_weights(path)  # the call check gives
    for got, want in zip(detector.get_layer("model").weights, yolo.extractor.weights):
        assert np.array_equal(np.asarray(got), np.asarray(want))


def test_split_without_at_cuts_the_detector_after_its_feature_extractor(yolo):
    with weightkit.load(yolo.detector_h5) as model:
        boundary = propose_boundary(model)
    assert boundary.at == "model" and boundary.head_params > 0
