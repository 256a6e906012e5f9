"""Architecture and weights from different files: --arch with JSON configs and full models, every weights layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from weightkit.errors import FileFormatError, UnsupportedError, UsageError
from weightkit.keras2onnx import convert_keras

from .conftest import assert_close, convert_to_file, keras_outputs, random_inputs


@pytest.fixture
def small_model(keras):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(scale=False, name="bn")(x)
    x = keras.layers.DepthwiseConv2D(3, name="dw")(x)
    block = keras.Sequential([keras.layers.Conv2D(4, 1, name="inner_conv"), keras.layers.ReLU()], name="block")
    x = block(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
    rng = np.random.default_rng(1)
    bn = model.get_layer("bn")
    bn.moving_mean.assign(rng.normal(0, 0.5, 4).astype(np.float32))
    bn.moving_variance.assign(rng.uniform(0.5, 2, 4).astype(np.float32))
    return model


def _compare(model, result):
    inputs = random_inputs(model)
    assert_close(result.run(inputs), keras_outputs(model, inputs))


def test_keras3_weights_file_with_keras_or_json_architecture(small_model, tmp_path):
    weights = tmp_path / "m.weights.h5"
    small_model.save_weights(weights)
    small_model.save(tmp_path / "arch.keras")
    (tmp_path / "arch.json").write_text(small_model.to_json())
    for arch in ("arch.keras", "arch.json"):
        _compare(small_model, convert_to_file(weights, tmp_path, arch=tmp_path / arch))


def test_legacy_weights_file_with_json_architecture(keras, small_model, tmp_path):
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(tmp_path / "legacy.h5", "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, small_model)
    (tmp_path / "arch.json").write_text(small_model.to_json())
    _compare(small_model, convert_to_file(tmp_path / "legacy.h5", tmp_path, arch=tmp_path / "arch.json"))


def test_keras1_weights_with_its_json(real_weights, tmp_path):
    """DDPG actor (Keras 1.1): Dense with ``output_dim``/``bias``, a ``Merge`` concat; the JSON is double-encoded."""
    import h5py

    folder = real_weights / "keras_h5"
    result = convert_to_file(folder / "keras1_weights__ddpg_actormodel.h5", tmp_path,
                             arch=folder / "keras1_weights__ddpg_actormodel.json")
    x = np.random.default_rng(0).standard_normal((3, 29)).astype(np.float32)
    with h5py.File(folder / "keras1_weights__ddpg_actormodel.h5") as file:
        def dense(name, value):
            return value @ file[f"{name}/{name}_W:0"][()] + file[f"{name}/{name}_b:0"][()]
        hidden = np.maximum(dense("dense_2", np.maximum(dense("dense_1", x), 0)), 0)
        sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731  # the formula, named for the lines below
        expected = np.concatenate([np.tanh(dense("dense_3", hidden)), sigmoid(dense("dense_4", hidden)),
                                   sigmoid(dense("dense_5", hidden))], axis=-1)
    np.testing.assert_allclose(result.run([x])[0], expected, atol=1e-5)
    assert result.report.keras_major == 1


def test_keras2_weights_with_its_json(real_weights, tmp_path):
    import h5py

    folder = real_weights / "keras_h5"
    result = convert_to_file(folder / "keras2.0.0_weights__hls4ml_KERAS_3layer_weights.h5", tmp_path,
                             arch=folder / "keras2.0.0_weights__hls4ml_KERAS_3layer.json")
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    with h5py.File(folder / "keras2.0.0_weights__hls4ml_KERAS_3layer_weights.h5") as file:
        value = x
        for name in ("fc1_relu", "fc2_relu", "fc3_relu", "output_softmax"):
            value = value @ file[f"{name}/{name}/kernel:0"][()] + file[f"{name}/{name}/bias:0"][()]
            value = np.maximum(value, 0) if name != "output_softmax" else value
        expected = np.exp(value - value.max(-1, keepdims=True))
        expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(result.run([x])[0], expected, atol=1e-6)


def test_weights_only_needs_an_architecture(small_model, tmp_path):
    small_model.save_weights(tmp_path / "m.weights.h5")
    with pytest.raises(UsageError, match="weights only"):
        convert_keras(tmp_path / "m.weights.h5")
    with pytest.raises(UsageError, match="holds no Keras architecture"):
        convert_keras(tmp_path / "m.weights.h5", arch=tmp_path / "m.weights.h5")


def test_weights_that_do_not_fit_are_named(keras, small_model, tmp_path):
    small_model.save_weights(tmp_path / "m.weights.h5")
    other = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(5, 3, name="elsewhere")])
    other.save(tmp_path / "other.keras")
    with pytest.raises(FileFormatError, match=r"'elsewhere'.*\(3, 3, 3, 4\).*\(3, 3, 3, 5\)"):
        convert_keras(tmp_path / "m.weights.h5", arch=tmp_path / "other.keras")


def test_bad_architecture_files(small_model, tmp_path):
    small_model.save_weights(tmp_path / "m.weights.h5")
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "other.json").write_text(json.dumps({"weights": [1, 2]}))
    with pytest.raises(FileFormatError, match="not valid JSON"):
        convert_keras(tmp_path / "m.weights.h5", arch=tmp_path / "broken.json")
    with pytest.raises(FileFormatError, match="not a Keras architecture"):
        convert_keras(tmp_path / "m.weights.h5", arch=tmp_path / "other.json")


def test_only_keras_files_convert(tmp_path):
    safetensors = pytest.importorskip("safetensors.numpy")
    safetensors.save_file({"w": np.zeros((2, 2), np.float32)}, tmp_path / "w.safetensors")
    with pytest.raises(UnsupportedError, match="Keras"):
        convert_keras(tmp_path / "w.safetensors")


# ---- weights the architecture does not use -------------------------------------------------------------


@pytest.fixture
def with_top(keras, small_model, tmp_path):
    """``small_model`` with a classifier on top (``predictions``), its weights in every layout, and the no-top
    architecture: a .keras model and its JSON."""
    top = keras.Model(small_model.inputs, keras.layers.Dense(3, name="predictions")(small_model.output))
    top.save_weights(tmp_path / "top.weights.h5")
    top.save(tmp_path / "top.h5")
    top.save(tmp_path / "top.keras")
    small_model.save(tmp_path / "notop.keras")
    (tmp_path / "notop.json").write_text(small_model.to_json())
    return top


@pytest.mark.parametrize("weights, arch", [("top.weights.h5", "notop.keras"), ("top.weights.h5", "notop.json"),
                                           ("top.h5", "notop.json"), ("top.keras", "notop.keras")])
def test_weights_the_architecture_does_not_use_are_reported(small_model, with_top, tmp_path, weights, arch):
    """Converted (as Keras 3's load_weights and a by-name load would), but named in the report and its warnings;
    the file holds the no-top model only."""
    result = convert_to_file(tmp_path / weights, tmp_path, arch=tmp_path / arch, allow_unused=True)
    [unused] = result.report.unused_weights
    assert unused.path == "predictions" and unused.params == 2 * 3 + 3 and len(unused.tensors) == 2
    assert any("2 tensor(s) (9 parameters) of 1 layer(s)" in w and "predictions" in w for w in result.report.warnings)
    assert not [init.name for init in result.model.graph.initializer if "predictions" in init.name]
    _compare(small_model, result)


def test_nothing_unused_when_the_architecture_is_the_file_s_own(with_top, tmp_path):
    for weights, arch in (("top.weights.h5", "top.keras"), ("top.h5", None), ("top.keras", None)):
        result = convert_to_file(tmp_path / weights, tmp_path, arch=tmp_path / arch if arch else None)
        assert result.report.unused_weights == [] and result.report.warnings == []
