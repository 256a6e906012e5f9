"""``weightkit check BACKBONE HEAD`` and ``merge`` at the junction, from the command line: what the user reads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli import run
from weightkit.cli import main

keras = pytest.importorskip("keras")



@pytest.fixture(scope="module")
def mobilenet_parts(tmp_path_factory):
    """MobileNetV2 (alpha 0.35, 32×32) cut at out_relu by ``weightkit split``: the head declares [None, 1, 1, 1280]."""
    folder = tmp_path_factory.mktemp("mnv2")
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=4, alpha=0.35)
    model.save(folder / "m.keras")
    assert main(["split", str(folder / "m.keras"), "--at", "out_relu", "--out", str(folder)]) == 0
    return folder / "backbone.keras", folder / "head.keras"


def test_an_input_shape_of_another_rank_is_one_line_naming_the_models_input(capsys, mobilenet_parts):
    backbone, head = mobilenet_parts
    code, out, err = run(capsys, "check", backbone, head, "--input-shape", "128,128")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "the input shape 128,128 has 2 dimension(s)" in err and "is [None, 32, 32, 3]" in err
    assert "it needs all 3 besides the batch" in err and "e.g. 128,128,3" in err


def test_an_input_shape_with_a_zero_size_is_a_usage_error(capsys, mobilenet_parts):
    backbone, head = mobilenet_parts
    code, _, err = run(capsys, "check", backbone, head, "--input-shape", "128,128,0")
    assert code == 2 and err.startswith("weightkit: error: --input-shape '128,128,0': every size must be a positive")


def test_an_input_shape_with_into_is_refused_not_ignored(capsys, mobilenet_parts):
    backbone, head = mobilenet_parts
    code, _, err = run(capsys, "check", backbone, "--into", backbone, "--input-shape", "64,64,3")
    assert code == 2 and "with --into it would change nothing" in err and len(err.strip().splitlines()) == 1


def test_a_full_input_shape_shows_the_feature_map_and_the_grid_the_head_needs(capsys, mobilenet_parts):
    backbone, head = mobilenet_parts
    code, out, _ = run(capsys, "check", backbone, head, "--input-shape", "128,128,3")
    assert code == 1
    assert "[None, 4, 4, 1280]" in out and "a 4×4 grid where the head needs 1×1" in out
    assert "32×32 inputs" in out  # the fix: the size at which this backbone puts out 1×1, checked on its config


def vgg_like_parts(folder, seed: int = 0):
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    inputs = keras.Input((32, 32, 3))
    x = layers.MaxPooling2D(name="block1_pool")(layers.Conv2D(8, 3, padding="same", name="block1_conv1")(inputs))
    x = layers.MaxPooling2D(name="block2_pool")(layers.Conv2D(16, 3, padding="same", name="block2_conv1")(x))
    x = layers.Dense(10, name="fc1")(layers.Flatten(name="flatten")(x))
    keras.Model(inputs, x).save(folder / "vgg.keras")
    assert main(["split", str(folder / "vgg.keras"), "--at", "block2_pool", "--out", str(folder)]) == 0
    return folder / "backbone.keras", folder / "head.keras"


def test_a_vgg_like_head_that_flattens_checks_and_merges(capsys, tmp_path):
    backbone, head = vgg_like_parts(tmp_path)
    capsys.readouterr()
    code, out, _ = run(capsys, "check", backbone, head)
    assert code == 0 and "fits" in out and "8·8·16 = 1024 values after 'flatten'" in out
    code, out, _ = run(capsys, "merge", backbone, head, "-o", tmp_path / "merged.keras")
    assert code == 0 and (tmp_path / "merged.keras").exists()
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(keras.saving.load_model(tmp_path / "merged.keras").predict(x, verbose=0),
                                  keras.saving.load_model(tmp_path / "vgg.keras").predict(x, verbose=0))


def test_a_junction_error_is_never_next_to_loading_will_succeed(capsys, tmp_path):
    _, head = vgg_like_parts(tmp_path)
    keras.utils.set_random_seed(1)
    inputs = keras.Input((48, 48, 3))  # 48 → 24 → 12: a 12×12 grid under a head built for 8×8
    x = keras.layers.MaxPooling2D(name="pool")(keras.layers.Conv2D(16, 3, strides=2, padding="same")(inputs))
    keras.Model(inputs, x).save(tmp_path / "other.keras")
    capsys.readouterr()
    code, out, _ = run(capsys, "check", tmp_path / "other.keras", head)
    assert code == 1 and "error junction" in out and "warning provenance" in out
    assert "loading will succeed" not in out
    code, out, _ = run(capsys, "check", "--json", tmp_path / "other.keras", head)
    finding = json.loads(out)["findings"][0]
    assert finding["severity"] == "error" and "a 12×12 grid where the head needs 8×8" in finding["message"]
    assert finding["tensors"] == ["pool", "block2_pool"] and "or use a head built for a 12×12 grid" in \
        finding["fix"]
    code, _, err = run(capsys, "merge", tmp_path / "other.keras", head, "-o", tmp_path / "merged.keras")
    assert code == 2 and "a 12×12 grid where the head needs 8×8" in err and err.count("\n") == 1
