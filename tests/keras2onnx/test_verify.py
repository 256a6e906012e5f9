"""--verify: Keras and ONNX Runtime on the same seeded input; skipped (with the reason) when Keras cannot load."""

from __future__ import annotations

import numpy as np
import onnx

from weightkit import convert
from weightkit.keras2onnx import convert_keras
from weightkit.keras2onnx.verify import verify


def small_model(keras, tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    model = keras.Model(inputs, [keras.layers.GlobalAveragePooling2D()(x), x])
    model.save(tmp_path / "m.keras")
    return tmp_path / "m.keras"


def test_verify_passes_on_a_faithful_conversion(keras, tmp_path):
    path = small_model(keras, tmp_path)
    for nchw in (False, True):
        convert(path, tmp_path / "m.onnx", nchw=nchw, force=True)
        result = verify(path, tmp_path / "m.onnx", nchw=nchw)
        assert result.ran and result.passed and result.max_abs_diff < 1e-5, result
        assert "Keras 3" in result.keras and "torch backend" in result.keras


def test_verify_catches_a_wrong_weight(keras, tmp_path):
    path = small_model(keras, tmp_path)
    model = convert_keras(path).model
    kernel = next(init for init in model.graph.initializer if "kernel" in init.name)
    values = onnx.numpy_helper.to_array(kernel).copy()
    values.flat[0] += 1.0
    kernel.CopyFrom(onnx.numpy_helper.from_array(values, kernel.name))
    result = verify(path, model)
    assert result.ran and result.passed is False and result.max_abs_diff > 1e-3


def test_verify_with_separate_architecture(keras, tmp_path):
    path = small_model(keras, tmp_path)
    model = keras.saving.load_model(path)
    model.save_weights(tmp_path / "w.weights.h5")
    (tmp_path / "arch.json").write_text(model.to_json())
    converted = convert_keras(tmp_path / "w.weights.h5", arch=tmp_path / "arch.json").model
    result = verify(tmp_path / "w.weights.h5", converted, arch=tmp_path / "arch.json")
    assert result.passed, result


def test_verify_is_skipped_when_keras_cannot_load(fixtures):
    path = fixtures / "tfkeras" / "tfk_cnn_full.h5"  # tf.keras configs Keras 3 refuses (DepthwiseConv2D 'groups')
    result = verify(path, convert_keras(path).model)
    assert not result.ran and result.passed is None and "cannot load" in result.reason


def test_verify_is_skipped_without_keras(fixtures, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_keras(name, *args, **kwargs):
        if name == "keras":
            raise ImportError("No module named 'keras'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_keras)
    result = verify(fixtures / "tfkeras" / "tfk_cnn_full.h5", onnx.ModelProto())
    assert not result.ran and "not importable" in result.reason
    assert np.isnan(result.max_abs_diff or np.nan)
