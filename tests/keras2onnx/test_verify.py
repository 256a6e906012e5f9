"""--verify: Keras and ONNX Runtime on the same seeded input; skipped (with the reason) when Keras cannot load, refused
when building the model would run code the file names; judged against the outputs' scale, with the known reasons."""

from __future__ import annotations

import base64
import json
import marshal
import shutil
import zipfile

import h5py
import numpy as np
import onnx
import pytest

from weightkit import convert
from weightkit.errors import UnsupportedError
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


# --- no code from the file runs (issue #12) ----------------------------------------------------------------

def hostile_space_to_depth_x2(x):
    """What a crafted file's Lambda could hold: it names tf.space_to_depth, and does something else first."""
    import os

    with open(os.environ["WEIGHTKIT_CANARY"], "w") as canary:  # proof that the file's code ran
        canary.write("ran")
    return tf.space_to_depth(x, block_size=2)  # noqa: F821


def yolo_space_to_depth_x2(x):
    """keras-yolo2's passthrough, exactly as keras-yolo2 writes it (never run here: `tf` is not defined)."""
    return tf.space_to_depth(x, block_size=2)  # noqa: F821


def _encoded(function) -> str:
    return base64.b64encode(marshal.dumps(function.__code__)).decode("ascii")


def with_lambda_code(source, target, function, form: str):
    """A copy of ``source`` (.h5 or .keras) whose Lambda layers hold ``function``'s marshalled code instead.

    ``form``: "keras3" (``{"class_name": "__lambda__", ...}``, what Keras 3 writes for a Python lambda) or
    "keras2" (``[code, defaults, closure]`` with ``function_type: "lambda"``, what Keras 2 and tf.keras write).
    """
    def rewrite(config):
        for node in _nodes(config):
            if node.get("class_name") == "Lambda":
                if form == "keras3":
                    node["config"]["function"] = {"class_name": "__lambda__", "config": {
                        "code": _encoded(function), "defaults": None, "closure": None}}
                else:
                    node["config"].update(function=[_encoded(function), None, None], function_type="lambda",
                                          module="__main__")
        return config

    if str(source).endswith(".h5"):
        shutil.copy(source, target)
        with h5py.File(target, "r+") as file:
            text = file.attrs["model_config"]
            file.attrs["model_config"] = json.dumps(rewrite(json.loads(text)))
        return target
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            new.writestr(item, json.dumps(rewrite(json.loads(data))) if item.filename == "config.json" else data)
    return target


def _nodes(value):
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _nodes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _nodes(item)


@pytest.fixture(scope="module")
def yolo(tmp_path_factory):
    from ..yolo_nets import save_yolo_files

    return save_yolo_files(tmp_path_factory.mktemp("yolo"))


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_verify_runs_no_code_from_the_file_even_under_a_keras_that_would(keras, yolo, tmp_path, monkeypatch, suffix):
    """A crafted Lambda whose code names space_to_depth, under a Keras that ignores safe mode for it.

    Keras before 3.11.3 ran a legacy .h5 Lambda's bytecode whatever ``safe_mode`` said (CVE-2025-9905). The
    Keras installed here has the fix, so the test takes it out again (its safe-mode check becomes a no-op),
    and spies on ``load_model``: verify must not hand the file to Keras's loader, and the canary, which the
    file's code writes if it ever runs, must not appear.
    """
    canary = tmp_path / "canary"
    monkeypatch.setenv("WEIGHTKIT_CANARY", str(canary))
    monkeypatch.setattr(keras.layers.Lambda, "_raise_for_lambda_deserialization", classmethod(lambda *args: None))
    loaded = []
    real_load_model = keras.saving.load_model

    def spy(*args, **kwargs):
        loaded.append(args)
        return real_load_model(*args, **kwargs)

    monkeypatch.setattr(keras.saving, "load_model", spy)
    monkeypatch.setattr(keras.models, "load_model", spy)
    source = yolo.detector_h5 if suffix == ".h5" else yolo.detector_keras
    hostile = with_lambda_code(source, tmp_path / f"hostile{suffix}", hostile_space_to_depth_x2, "keras3")
    result = verify(hostile, convert_keras(source).model)
    assert not canary.exists() and not loaded
    assert not result.ran and result.passed is None
    assert result.reason.startswith("refused: Lambda layer 'lambda_1' is not one weightkit knows")
    assert "would run the file's code" in result.reason
    with pytest.raises(UnsupportedError, match="not exactly"):  # nor does the converter take it for space_to_depth
        convert_keras(hostile)


@pytest.mark.parametrize("form, suffix", [("keras2", ".h5"), ("keras3", ".h5"), ("keras3", ".keras")])
def test_keras_yolo2_lambda_code_is_verified_with_weightkits_own_space_to_depth(yolo, tmp_path, form, suffix):
    """Keras never sees the file's code, so it can build the model: the Lambda runs as weightkit's space_to_depth."""
    source = yolo.detector_h5 if suffix == ".h5" else yolo.detector_keras
    path = with_lambda_code(source, tmp_path / f"yolo{suffix}", yolo_space_to_depth_x2, form)
    result = verify(path, convert_keras(path).model)
    assert result.ran and result.passed, result
    assert result.substituted == ["lambda_1: space_to_depth, block size 2"]


def test_a_lambda_given_by_name_is_verified_with_weightkits_own_space_to_depth(yolo):
    """The .keras file names space_to_depth_x2 (no code); Keras would need it registered, weightkit supplies it."""
    result = verify(yolo.detector_keras, convert_keras(yolo.detector_keras).model)
    assert result.ran and result.passed and result.substituted, result


def test_a_config_naming_code_outside_keras_is_refused(keras, tmp_path):
    """An initializer from another module: the converter ignores it, but Keras would import and build it."""
    path = small_model(keras, tmp_path)
    onnx_model = convert_keras(path).model
    foreign = tmp_path / "foreign.keras"
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(foreign, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                for node in _nodes(config):
                    if node.get("class_name") == "Conv2D":
                        node["config"]["kernel_initializer"] = {"module": "weightkit_canary_module",
                                                                "class_name": "Planted", "config": {}}
                data = json.dumps(config)
            new.writestr(item, data)
    result = verify(foreign, onnx_model)
    assert not result.ran and "refused" in result.reason and "'weightkit_canary_module'" in result.reason


# --- agreement relative to the outputs' scale, and the differences weightkit knows ------------------------------

def tiny_model(keras, tmp_path):
    """Outputs around 1e-11, as a random-init network's can be: every absolute tolerance passes them."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    conv = keras.layers.Conv2D(4, 3, padding="same", kernel_initializer=keras.initializers.RandomNormal(0, 1e-11))
    model = keras.Model(inputs, conv(inputs))
    model.save(tmp_path / "tiny.keras")
    return tmp_path / "tiny.keras"


def test_agreement_is_judged_against_the_outputs_scale(keras, tmp_path):
    path = tiny_model(keras, tmp_path)
    faithful = verify(path, convert_keras(path).model)
    assert faithful.passed and faithful.max_abs_output < 1e-9 and faithful.max_rel_diff < 1e-5, faithful
    model = convert_keras(path).model
    kernel = next(init for init in model.graph.initializer if "kernel" in init.name)
    values = onnx.numpy_helper.to_array(kernel).copy() * 1.1  # every weight 10% off
    kernel.CopyFrom(onnx.numpy_helper.from_array(values, kernel.name))
    wrong = verify(path, model)
    assert wrong.passed is False and wrong.max_abs_diff < 1e-9 and wrong.max_rel_diff > 0.01, wrong
    assert "of the output's scale" in wrong.summary() and "absolute" in wrong.summary()


def pooling_model(keras, tmp_path, size: int):
    """AveragePooling2D(3, strides=2, 'same') inside a nested model: uneven padding on an even input."""
    keras.utils.set_random_seed(0)
    inner_input = keras.Input((size, size, 4))
    inner = keras.Model(inner_input, keras.layers.AveragePooling2D(3, strides=2, padding="same", name="pool")(
        inner_input), name="inner")
    inputs = keras.Input((size, size, 3))
    model = keras.Model(inputs, inner(keras.layers.Conv2D(4, 1, name="conv")(inputs)))
    model.save(tmp_path / f"pool{size}.keras")
    return tmp_path / f"pool{size}.keras"


def test_a_failure_where_keras_torch_backend_departs_from_tensorflow_names_the_layer(keras, tmp_path):
    path = pooling_model(keras, tmp_path, 8)
    result = verify(path, convert_keras(path).model)
    assert result.passed is False and result.max_rel_diff > 1e-2
    assert [(d.layer, d.class_name, d.where) for d in result.differences] == [
        ("inner/pool", "AveragePooling2D", "'same' padding 0+1 rows, 0+1 columns")]
    assert "TensorFlow's semantics, which the ONNX follows" in result.reason
    assert "torch backend pads by repeating the edge values" in result.reason and "inner/pool" in result.summary()


def test_even_same_padding_is_no_difference(keras, tmp_path):
    path = pooling_model(keras, tmp_path, 7)  # 7 → 4 with a 3-wide window, stride 2: one cell on each side
    result = verify(path, convert_keras(path).model)
    assert result.passed and result.differences == [] and result.reason == "", result


@pytest.mark.parametrize("version, kernel, named", [("3.14.0", 3, True), ("3.14.0", 4, False), ("3.15.1", 3, False)])
def test_transposed_convolutions_differ_only_where_keras_before_3_15_warned(keras, version, kernel, named):
    """Keras < 3.15's torch backend warned "inconsistencies across backends" for these; 3.15 crops as TF does."""
    from types import SimpleNamespace

    from weightkit.formats.keras import parse_config
    from weightkit.keras2onnx.verify import known_differences

    inputs = keras.Input((7, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2DTranspose(4, kernel, strides=2, padding="same", name="up")(inputs))
    root = parse_config(json.loads(json.dumps(keras.saving.serialize_keras_object(model))))
    installed = SimpleNamespace(__version__=version, backend=SimpleNamespace(backend=lambda: "torch"))
    found = known_differences(installed, root, [(2, 7, 8, 3)])
    assert [d.layer for d in found] == (["up"] if named else [])
