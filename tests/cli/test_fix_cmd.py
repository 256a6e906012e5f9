"""``weightkit check CKPT --into KERAS_MODEL --fix OUT``: OUT loads with the plain Keras call, and the output
says which layers kept the model's own values."""

from __future__ import annotations

import numpy as np
import pytest

from tests.cli import run
from tests.nets import keras_cnn, torch_cnn

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")



def zeroed(model):
    for weight in model.weights:
        weight.assign(np.zeros(weight.shape, weight.dtype))
    return model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """keras_cnn as the checkpoint (.h5) and, with another initialization, as the target (.keras);
    the checkpoint without its classifier; and torch_cnn's state_dict."""
    folder = tmp_path_factory.mktemp("fixcmd")
    keras.utils.set_random_seed(1)
    source = keras_cnn()
    source.save(folder / "ckpt.h5")
    keras.Model(source.input, source.get_layer("pool").output).save(folder / "notop.keras")
    keras.utils.set_random_seed(2)
    keras_cnn().save(folder / "model.keras")
    torch.save(torch_cnn().state_dict(), folder / "ckpt.pt")
    return folder, source


@pytest.mark.parametrize("out", ["fixed.h5", "fixed.weights.h5"])
def test_fix_into_a_keras_model_loads_with_load_weights(capsys, files, tmp_path, out):
    folder, source = files
    code, text, _ = run(capsys, "check", folder / "ckpt.h5", "--into", folder / "model.keras", "--fix", tmp_path / out)
    assert code == 0 and f"wrote {tmp_path / out}" in text and "kept" not in text
    model = zeroed(keras.saving.load_model(folder / "model.keras"))
    model.load_weights(tmp_path / out)
    for have, want in zip(model.weights, source.weights, strict=True):
        assert np.array_equal(np.asarray(have), np.asarray(want)), want.path


def test_fix_as_keras_archive_loads_with_load_model(capsys, files, tmp_path):
    folder, source = files
    code, _, _ = run(capsys, "check", folder / "ckpt.h5", "--into", folder / "model.keras", "--fix",
                     tmp_path / "fixed.keras")
    assert code == 0
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype("float32")
    loaded = keras.saving.load_model(tmp_path / "fixed.keras")
    assert np.array_equal(loaded.predict(x, verbose=0), source.predict(x, verbose=0))


def test_a_head_the_checkpoint_lacks_keeps_the_model_values_and_the_output_says_so(capsys, files, tmp_path):
    folder, source = files
    code, text, _ = run(capsys, "check", folder / "notop.keras", "--into", folder / "model.keras", "--fix",
                        tmp_path / "fixed.weights.h5")
    assert code == 1  # the check itself found the head missing
    assert "kept the model's own values for 1 layer(s) the checkpoint has no fitting weights for: fc\n" in text
    model = zeroed(keras.saving.load_model(folder / "model.keras"))
    model.load_weights(tmp_path / "fixed.weights.h5")  # the plain call: no skip_mismatch
    target = keras.saving.load_model(folder / "model.keras")
    for layer in model.layers:
        expected = target if layer.name == "fc" else source
        for have, want in zip(layer.weights, expected.get_layer(layer.name).weights, strict=True):
            assert np.array_equal(np.asarray(have), np.asarray(want)), have.path


def test_torch_checkpoint_into_a_keras_model(capsys, files, tmp_path):
    folder, _ = files
    code, text, _ = run(capsys, "check", folder / "ckpt.pt", "--into", folder / "model.keras", "--fix",
                        tmp_path / "fixed.h5")
    assert f"wrote {tmp_path / 'fixed.h5'}" in text and "kept" not in text and code == 0  # relaid: it loads
    model = keras.saving.load_model(folder / "model.keras")
    model.load_weights(tmp_path / "fixed.h5")
    expected = torch_cnn().state_dict()["fc.weight"].numpy()
    assert np.array_equal(np.asarray(model.get_layer("fc").kernel), expected.T)


def test_keras_archive_into_an_h5_model_is_refused_in_one_line(capsys, files, tmp_path):
    folder, _ = files
    code, out, err = run(capsys, "check", folder / "notop.keras", "--into", folder / "ckpt.h5", "--fix",
                         tmp_path / "fixed.keras")
    assert code == 2 and not out and len(err.strip().splitlines()) == 1
    assert "'module'" in err and "write a .h5 file instead" in err and "Traceback" not in err
