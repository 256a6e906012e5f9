"""Every keras.applications architecture, saved as .h5 and .keras, converted to an
ONNX file (read back by onnx, checked with ``full_check``), and that file run by ONNX Runtime against Keras
on random inputs (seeded weights, batch-norm statistics randomized: means N(0, 0.1), variances U(1, 2) —
enough to matter, not so much that EfficientNetV2M's 80 blocks amplify float32 rounding into chaos, as
means N(0, 0.2) with variances U(0.5, 1.5) did).

Outputs are compared before the softmax (``classifier_activation=None``); the tolerance is 1e-4,
relative where outputs exceed 1. The fast subset runs by default; the rest are marked ``slow``.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.tools.catalog.keras_apps import application

from .conftest import assert_close, convert_to_file, keras_outputs

FAST = ["MobileNetV2", "ResNet50", "EfficientNetB0", "DenseNet121", "Xception", "ConvNeXtTiny"]
SLOW = [
    "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtXLarge", "DenseNet169", "DenseNet201",
    "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetB4", "EfficientNetB5", "EfficientNetB6",
    "EfficientNetB7", "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3",
    "EfficientNetV2L", "EfficientNetV2M", "EfficientNetV2S", "InceptionResNetV2", "InceptionV3", "MobileNet",
    "MobileNetV3Large", "MobileNetV3Small", "NASNetLarge", "NASNetMobile", "ResNet101", "ResNet101V2", "ResNet152",
    "ResNet152V2", "ResNet50V2", "VGG16", "VGG19",
]
#: The smallest input each architecture accepts (32 for the others).
MIN_SIZE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}


def build(keras, name):
    """The architecture with seeded weights and random batch-norm statistics (variance positive)."""
    keras.utils.set_random_seed(0)
    size = MIN_SIZE.get(name, 32)
    # NASNetMobile, which Keras refuses on its torch backend, through the builder keras.applications calls.
    model = application(name)(weights=None, input_shape=(size, size, 3), classes=10, classifier_activation=None)
    rng = np.random.default_rng(0)
    for layer in _leaf_layers(keras, model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(1.0, 2.0, layer.moving_variance.shape).astype(np.float32))
    return model, size


def _leaf_layers(keras, model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(keras, layer)
        else:
            yield layer


def check_application(keras, name, tmp_path):
    model, size = build(keras, name)
    x = np.random.default_rng(1).standard_normal((2, size, size, 3)).astype(np.float32)
    expected = keras_outputs(model, [x])
    for suffix in (".h5", ".keras"):
        path = tmp_path / f"{name}{suffix}"
        model.save(path)
        written = convert_to_file(path, tmp_path)
        assert_close(written.run([x]), expected, atol=1e-4)
        path.unlink()
        written.path.unlink()
        del written


@pytest.mark.parametrize("name", FAST)
def test_application(keras, name, tmp_path):
    check_application(keras, name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_application_slow(keras, name, tmp_path):
    check_application(keras, name, tmp_path)


def test_every_application_is_listed(keras):
    names = {n for n in dir(keras.applications) if n[:1].isupper()}
    assert names == set(FAST) | set(SLOW)
