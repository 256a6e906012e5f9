"""Identity-at-inference layers, and Lambda layers: only space_to_depth is recognised, by name."""

from __future__ import annotations

import numpy as np
import pytest

from weightkit.keras2onnx.layers.core import function_name


def space_to_depth_x2(x):
    import keras

    n, h, w, c = x.shape
    x = keras.ops.reshape(x, (-1, h // 2, 2, w // 2, 2, c))
    x = keras.ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return keras.ops.reshape(x, (-1, h // 2, w // 2, 4 * c))


def test_dropouts_are_identities(keras, check):
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Dropout(0.5)(inputs)
    x = keras.layers.SpatialDropout2D(0.5)(x)
    x = keras.layers.GaussianNoise(1.0)(x)
    x = keras.layers.GaussianDropout(0.3)(x)
    x = keras.layers.AlphaDropout(0.3)(x)
    x = keras.layers.ActivityRegularization(0.1)(x)
    check(keras.Model(inputs, keras.layers.Identity()(x)))


def test_space_to_depth_lambda_matches_tensorflow_order(keras, tmp_path):
    """The keras-yolo2 passthrough: channel (by*2 + bx)*C + c, computed by the real function in Keras."""
    from ..conftest import convert_to_file, keras_outputs

    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 8, 3))
    skip = keras.layers.Conv2D(3, 1)(inputs)
    reorg = keras.layers.Lambda(space_to_depth_x2, name="reorg")(skip)
    pooled = keras.layers.MaxPooling2D(2)(keras.layers.Conv2D(5, 3, padding="same")(inputs))
    model = keras.Model(inputs, keras.layers.Concatenate()([reorg, pooled]))
    model.save(tmp_path / "yolo.keras")
    x = np.random.default_rng(0).standard_normal((2, 6, 8, 3)).astype(np.float32)
    result = convert_to_file(tmp_path / "yolo.keras", tmp_path)
    assert "SpaceToDepth" in [n.op_type for n in result.model.graph.node]
    np.testing.assert_allclose(result.run([x])[0], keras_outputs(model, [x])[0], atol=1e-5)


@pytest.mark.parametrize("config, name", [
    ({"function": {"module": "__main__", "class_name": "function", "config": "space_to_depth_x2"}},
     "space_to_depth_x2"),
    ({"function": ["YW55dGhpbmcgc3BhY2VfdG9fZGVwdGhfeDQgZWxzZQ==", None, None], "function_type": "lambda"},
     "space_to_depth_x4"),
    ({"function": {"class_name": "__lambda__", "config": {"code": "bm90aGluZw=="}}}, ""),
    ({"function": "space_to_depth", "function_type": "function"}, "space_to_depth"),
    ({"function": ["%%% not base64"], "function_type": "lambda"}, ""),
])
def test_lambda_function_names_read_as_data(config, name):
    assert function_name(config) == name
