"""`check --into` when the file holds the weights of a model nested in the target (a backbone in a detector)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import weightkit
from weightkit.ops.check import check_into

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
