"""keras-yolo2's files as users get them: the detector's shapes through its space_to_depth Lambda, cutting it
at its nested feature extractor, and a weights-only extractor told apart from a whole network."""

from __future__ import annotations

import json

import numpy as np
import pytest

import weightkit
from tests.cli import run
from weightkit.ops.inspect import HeadlessBackbone, headless_backbone

from ..nets import keras_cnn
from ..yolo_nets import CUSTOM_OBJECTS, sample_images, save_legacy_weights, save_yolo_files

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def yolo(tmp_path_factory):
    return save_yolo_files(tmp_path_factory.mktemp("yolo"))



@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_inspect_shows_the_detector_output_shape_keras_computes(yolo, capsys, suffix):
    path = yolo.detector_h5 if suffix == ".h5" else yolo.detector_keras
    expected = yolo.detector.output_shape  # (None, 3, 3, 5, 8)
    code, out, err = run(capsys, "inspect", path)
    assert code == 0 and err == ""
    assert f"reshape_1 {expected}" in out
    code, out, _ = run(capsys, "inspect", "--json", path)
    assert json.loads(out)["outputs"][0]["shape"] == ["batch", *expected[1:]]


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_the_detector_splits_at_its_feature_extractor_into_parts_that_chain_in_keras(yolo, tmp_path, suffix):
    path = yolo.detector_h5 if suffix == ".h5" else yolo.detector_keras
    parts = weightkit.split(path, at="model")
    with parts.backbone as backbone, parts.head as head:
        assert parts.boundary.shape == yolo.extractor.output_shape
        weightkit.save(backbone, tmp_path / f"backbone{suffix}")
        weightkit.save(head, tmp_path / f"head{suffix}")
    x = sample_images()
    backbone = keras.saving.load_model(tmp_path / f"backbone{suffix}", custom_objects=CUSTOM_OBJECTS)
    head = keras.saving.load_model(tmp_path / f"head{suffix}", custom_objects=CUSTOM_OBJECTS)
    features = backbone.predict(x, verbose=0)
    assert np.array_equal(features, yolo.extractor.predict(x, verbose=0))
    assert np.array_equal(head.predict(features, verbose=0), yolo.detector.predict(x, verbose=0))


def test_inspect_says_the_weights_only_extractor_is_a_backbone_without_a_head(yolo, capsys):
    channels = yolo.extractor.output_shape[-1]
    with weightkit.load(yolo.backend_h5) as model:
        assert headless_backbone(model) == HeadlessBackbone("norm_22", channels)
    code, out, _ = run(capsys, "inspect", yolo.backend_h5)
    assert code == 0
    assert ("a backbone (feature extractor) without a head: its last weighted layer 'norm_22' puts out "
            f"{channels} channels") in out
    code, out, _ = run(capsys, "inspect", "--json", yolo.backend_h5)
    assert json.loads(out)["backbone_without_head"] == {"layer": "norm_22", "channels": channels}


def weights_only_detector(folder, yolo):
    return save_legacy_weights(yolo.detector, folder / "detector_weights.h5")


def weights_only_classifier(folder, yolo):
    keras.utils.set_random_seed(0)
    return save_legacy_weights(keras_cnn(), folder / "cnn_weights.h5")


@pytest.mark.parametrize("make", [weights_only_detector, weights_only_classifier])
def test_a_whole_network_saved_as_weights_is_not_called_a_backbone(yolo, tmp_path, capsys, make):
    """The detector ends in DetectionLayer (a 1x1 conv with the only bias), the classifier in a Dense."""
    path = make(tmp_path, yolo)
    with weightkit.load(path) as model:
        assert not model.has_graph and headless_backbone(model) is None
    code, out, _ = run(capsys, "inspect", path)
    assert code == 0 and "weights only" in out and "backbone" not in out
    code, out, _ = run(capsys, "inspect", "--json", path)
    assert json.loads(out)["backbone_without_head"] is None


def test_a_super_resolution_net_ending_in_an_image_is_not_a_backbone(real_weights):
    """Convolutions only, but the last narrows 64 channels to the image's 3."""
    with weightkit.load(real_weights / "keras_h5" / "keras2.1.1_weights__isr_DistilledResNetSR_2X.h5") as model:
        assert headless_backbone(model) is None


def test_files_with_an_architecture_state_their_output_instead(yolo):
    with weightkit.load(yolo.detector_h5) as model:
        assert headless_backbone(model) is None
