"""Backbones and heads in files tf.keras 2.21 wrote (fixtures/tfkeras_backbone_head): keras-yolo2's detector and
the extractor weights it ships, a VGG-style classifier with a Flatten, and a MobileNetV2 nested in a Sequential.

TensorFlow is absent here, so its numbers come from the fixtures' ``.io.npz`` files (TensorFlow's own predictions)
and ONNX Runtime runs weightkit's conversions of the parts; Keras 3 runs the files it can build (the VGG classifier
and its parts, the heads).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

import weightkit
from tests.cli import run
from tests.conftest import FIXTURES

FOLDER = FIXTURES / "tfkeras_backbone_head"
DETECTOR = FOLDER / "tfk_yolo_detector.h5"
BACKEND = FOLDER / "tfk_full_yolo_backend.h5"
VGG = FOLDER / "tfk_vgg_flatten.h5"
TRANSFER = FOLDER / "tfk_transfer.h5"
BASE = "mobilenetv2_0.10_32"  # the MobileNetV2 nested in tfk_transfer.h5
ATOL = 1e-4


def io(path: Path) -> dict[str, np.ndarray]:
    """What TensorFlow computed when the fixture was made: ``input``, ``output`` (and the detector's ``features``)."""
    with np.load(f"{path}.io.npz") as data:
        return dict(data)


def onnx_run(path: Path, x: np.ndarray, folder: Path) -> np.ndarray:
    """``weightkit.convert`` the Keras file at ``path``, then run it in ONNX Runtime on ``x``."""
    import onnxruntime

    onnx_path = folder / f"{path.stem}.onnx"
    weightkit.convert(path, onnx_path)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: x})
    return output


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def split_with_cli(capsys, path: Path, folder: Path, *at: str) -> tuple[Path, Path, str]:
    code, out, err = run(capsys, "split", path, *at, "--out", folder)
    assert code == 0 and err == "", err
    return folder / "backbone.h5", folder / "head.h5", " ".join(out.split())


def model_config(path: Path) -> dict:
    with h5py.File(path, "r") as file:
        return json.loads(file.attrs["model_config"])["config"]


@pytest.fixture(scope="module")
def detector_parts(tmp_path_factory) -> tuple[Path, Path]:
    """``weightkit split tfk_yolo_detector.h5`` with no --at, as the library writes it."""
    folder = tmp_path_factory.mktemp("tfk_yolo_parts")
    parts = weightkit.split(DETECTOR)
    with parts.backbone as backbone, parts.head as head:
        assert parts.boundary.at == "model"
        weightkit.save(backbone, folder / "backbone.h5")
        weightkit.save(head, folder / "head.h5")
    return folder / "backbone.h5", folder / "head.h5"


# keras-yolo2: the extractor's weights and the detector


def test_the_backend_weights_are_named_as_the_detector_nested_model_with_the_call_that_loads_them(capsys):
    code, out, _ = run(capsys, "check", BACKEND, "--into", DETECTOR)
    out = " ".join(out.split())
    assert code == 1
    assert "the file holds the weights of 'model', a model nested in this one: all 44 of its weighted layers" in out
    assert "DetectionLayer (Conv2D, 1,320 parameters)" in out
    assert "model.get_layer('model').load_weights(path)" in out and "another architecture" not in out
    code, out, _ = run(capsys, "check", "--json", BACKEND, "--into", DETECTOR)
    (finding,) = json.loads(out)["findings"]
    assert code == 1 and finding["kind"] == "nested" and finding["severity"] == "error"
    assert set(finding["tensors"]) == {"DetectionLayer/kernel:0", "DetectionLayer/bias:0"}


def test_the_backend_holds_exactly_the_values_tf_keras_saved_in_the_detector_nested_model():
    """What check claims, against the files themselves: each weight the weights-only file lists (group
    ``conv_1``, dataset ``conv_1/kernel:0``) is the nested model's (``model_weights/model/conv_1/kernel:0``)."""
    with h5py.File(BACKEND, "r") as backend, h5py.File(DETECTOR, "r") as detector:
        nested = detector["model_weights"]["model"]
        pairs = [(backend[layer][weight], nested[weight]) for layer in backend.attrs["layer_names"]
                 for weight in backend[layer].attrs["weight_names"]]
        assert len(pairs) == 22 * 5  # conv_N kernels and norm_N's four tensors
        assert len(nested.attrs["weight_names"]) == len(pairs)
        for ours, theirs in pairs:
            assert np.array_equal(ours[()], theirs[()]), ours.name


def test_inspect_shows_the_detector_output_shape(capsys):
    code, out, err = run(capsys, "inspect", DETECTOR)
    assert code == 0 and err == ""
    assert "reshape_1 (None, 3, 3, 5, 8)" in out
    code, out, _ = run(capsys, "inspect", "--json", DETECTOR)
    document = json.loads(out)
    assert document["outputs"][0]["shape"] == ["batch", *io(DETECTOR)["output"].shape[1:]] == ["batch", 3, 3, 5, 8]
    assert document["backbone_without_head"] is None


def test_inspect_says_the_backend_is_a_backbone_without_a_head(capsys):
    channels = io(DETECTOR)["features"].shape[-1]  # 32
    code, out, _ = run(capsys, "inspect", BACKEND)
    assert code == 0
    assert ("a backbone (feature extractor) without a head: its last weighted layer 'norm_22' puts out "
            f"{channels} channels") in " ".join(out.split())
    code, out, _ = run(capsys, "inspect", "--json", BACKEND)
    assert json.loads(out)["backbone_without_head"] == {"layer": "norm_22", "channels": channels}


def test_split_without_at_cuts_the_detector_after_its_feature_extractor(capsys, tmp_path):
    backbone, head, out = split_with_cli(capsys, DETECTOR, tmp_path)
    assert "cutting after 'model'" in out and "cut after model (None, 3, 3, 32)" in out
    assert "backbone.h5 (53,372 parameters)" in out and "head.h5 (1,320 parameters)" in out
    with weightkit.load(backbone) as first, weightkit.load(head) as second:
        assert [layer.name for layer in first.layers] == ["input_image", "model"]
        assert [layer.name for layer in second.layers] == ["model", "DetectionLayer", "reshape_1"]


def test_the_detector_backbone_converted_reproduces_tensorflow_features(detector_parts, tmp_path):
    backbone, _ = detector_parts
    data = io(DETECTOR)
    assert_close(onnx_run(backbone, data["input"], tmp_path), data["features"])


def test_the_detector_head_converted_reproduces_tensorflow_output_from_the_features(detector_parts, tmp_path):
    _, head = detector_parts
    data = io(DETECTOR)
    assert_close(onnx_run(head, data["features"], tmp_path), data["output"])


def test_keras3_runs_the_detector_head_on_tensorflow_features(detector_parts):
    """The head has no Lambda, so Keras 3 can build it (the detector and its backbone need TensorFlow to run)."""
    keras = pytest.importorskip("keras")
    _, head = detector_parts
    data = io(DETECTOR)
    model = keras.saving.load_model(head, compile=False)
    assert_close(model.predict(data["features"], verbose=0), data["output"])


def test_the_detector_backbone_refers_to_the_nested_model_call_as_tf_keras_does(detector_parts):
    backbone, _ = detector_parts
    (consumer,) = [entry for entry in model_config(DETECTOR)["layers"] if entry["name"] == "DetectionLayer"]
    ((reference,),) = consumer["inbound_nodes"]
    assert reference[:3] == ["model", 1, 0]  # how tf.keras wrote the call
    assert model_config(backbone)["output_layers"] == [reference[:3]]


def test_the_detector_parts_merge_back_into_the_detector_tensorflow_ran(capsys, detector_parts, tmp_path):
    backbone, head = detector_parts
    code, out, _ = run(capsys, "merge", backbone, head, "-o", tmp_path / "merged.h5")
    out = " ".join(out.split())
    assert code == 0 and "the head was cut from this very backbone" in out
    data = io(DETECTOR)
    assert_close(onnx_run(tmp_path / "merged.h5", data["input"], tmp_path), data["output"])


# a VGG-style classifier: the head starts with Flatten


def test_the_vgg_classifier_is_cut_at_its_last_pool_checked_and_merged_back(capsys, tmp_path):
    backbone, head, out = split_with_cli(capsys, VGG, tmp_path, "--at", "block3_pool")
    assert "cut after block3_pool (None, 4, 4, 16)" in out
    code, out, _ = run(capsys, "check", backbone, head)
    out = " ".join(out.split())
    assert code == 0 and "fits" in out and "4·4·16 = 256 values after 'flatten'" in out
    report = weightkit.check(backbone, head)
    assert report.errors() == []
    code, out, _ = run(capsys, "merge", backbone, head, "-o", tmp_path / "merged.h5")
    assert code == 0
    data = io(VGG)
    assert_close(onnx_run(tmp_path / "merged.h5", data["input"], tmp_path), data["output"])
    features = onnx_run(backbone, data["input"], tmp_path)
    assert features.shape == (2, 4, 4, 16)
    assert_close(onnx_run(head, features, tmp_path), data["output"])


def test_split_proposes_the_vgg_cut_before_flatten(capsys, tmp_path):
    _, _, out = split_with_cli(capsys, VGG, tmp_path)
    assert "cutting after 'block3_pool': flatten (Flatten) starts the classifier" in out


def test_keras3_runs_the_vgg_file_and_its_merged_parts_as_tensorflow_did(tmp_path):
    keras = pytest.importorskip("keras")
    data = io(VGG)
    original = keras.saving.load_model(VGG, compile=False)
    assert_close(original.predict(data["input"], verbose=0), data["output"])
    parts = weightkit.split(VGG, at="block3_pool")
    with parts.backbone as backbone, parts.head as head:
        weightkit.save(backbone, tmp_path / "backbone.h5")
        weightkit.save(head, tmp_path / "head.h5")
    weightkit.merge(tmp_path / "backbone.h5", tmp_path / "head.h5", tmp_path / "merged.h5").close()
    merged = keras.saving.load_model(tmp_path / "merged.h5", compile=False)
    assert_close(merged.predict(data["input"], verbose=0), data["output"])
    features = keras.saving.load_model(tmp_path / "backbone.h5", compile=False).predict(data["input"], verbose=0)
    head = keras.saving.load_model(tmp_path / "head.h5", compile=False)
    assert_close(head.predict(features, verbose=0), data["output"])


# transfer learning: an applications backbone nested in a Sequential


def test_the_transfer_model_splits_after_its_nested_backbone_and_merges_back(capsys, tmp_path):
    backbone, head, out = split_with_cli(capsys, TRANSFER, tmp_path)
    assert f"cutting after '{BASE}'" in out and f"cut after {BASE} (None, 1, 1, 1280)" in out
    code, out, _ = run(capsys, "check", backbone, head)
    assert code == 0 and "fits" in out
    code, out, _ = run(capsys, "merge", backbone, head, "-o", tmp_path / "merged.h5")
    assert code == 0
    with weightkit.load(tmp_path / "merged.h5") as merged:
        assert [layer.name for layer in merged.layers] == [BASE, "global_average_pooling2d", "dense"]
        assert merged.num_params == 98_436
    data = io(TRANSFER)
    assert_close(onnx_run(tmp_path / "merged.h5", data["input"], tmp_path), data["output"])
    features = onnx_run(backbone, data["input"], tmp_path)
    assert features.shape == (2, 1, 1, 1280)
    assert_close(onnx_run(head, features, tmp_path), data["output"])


def test_keras3_runs_the_transfer_head_on_the_converted_backbone_features(tmp_path):
    """Keras 3 cannot rebuild the nested MobileNetV2 of this tf.keras file (its legacy loader fails to deserialize
    the BatchNormalization layers inside), but it runs the head split wrote."""
    keras = pytest.importorskip("keras")
    parts = weightkit.split(TRANSFER)
    with parts.backbone as backbone, parts.head as head:
        weightkit.save(backbone, tmp_path / "backbone.h5")
        weightkit.save(head, tmp_path / "head.h5")
    data = io(TRANSFER)
    features = onnx_run(tmp_path / "backbone.h5", data["input"], tmp_path)
    model = keras.saving.load_model(tmp_path / "head.h5", compile=False)
    assert [layer.name for layer in model.layers] == ["global_average_pooling2d", "dense"]
    assert_close(model.predict(features, verbose=0), data["output"])
