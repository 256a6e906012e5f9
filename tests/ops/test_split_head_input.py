"""Cutting where the config cannot tell the shape (a layer weightkit has no rule for): --head-input-shape."""

from __future__ import annotations

import numpy as np
import pytest

import weightkit
from weightkit.cli import main
from weightkit.errors import UsageError

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A CNN whose feature map passes an anonymous Lambda: its output shape is unknown to weightkit."""
    layers = keras.layers
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = layers.Lambda(lambda t: t * 2.0, name="double")(x)
    x = layers.Conv2D(4, 1, name="mix")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(3, name="fc")(x)
    model = keras.Model(inputs, outputs)
    path = tmp_path_factory.mktemp("lambda") / "net.keras"
    model.save(path)
    return path, model


def test_an_unknown_shape_at_the_cut_asks_for_the_override(model_file, capsys):
    path, _ = model_file
    with pytest.raises(UsageError) as raised:
        weightkit.split(path, at="mix")
    assert "cannot tell the shape of 'mix'" in str(raised.value) and "--head-input-shape" in raised.value.hint
    assert main(["split", str(path), "--at", "mix", "--out", str(path.parent / "x")]) == 2
    assert "--head-input-shape H,W,C" in capsys.readouterr().err


def test_the_given_shape_makes_a_head_that_loads_and_chains(model_file, tmp_path):
    path, model = model_file
    assert main(["split", str(path), "--at", "mix", "--head-input-shape", "16,16,4", "--out", str(tmp_path)]) == 0
    backbone = keras.saving.load_model(tmp_path / "backbone.keras", safe_mode=False)  # it keeps the Lambda
    head = keras.saving.load_model(tmp_path / "head.keras")
    assert head.input_shape == (None, 16, 16, 4)
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(head.predict(backbone.predict(x, verbose=0), verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


def test_a_shape_the_config_contradicts_is_refused(model_file):
    path, _ = model_file
    with pytest.raises(UsageError, match=r"'conv' puts out \[None, 16, 16, 8\] by the config"):
        weightkit.split(path, at="conv", head_input_shape=(16, 16, 4))


def test_other_formats_need_no_override(tmp_path):
    import torch

    from tests.nets import torch_cnn

    torch.save(torch_cnn().state_dict(), tmp_path / "cnn.pt")
    with pytest.raises(UsageError, match="for Keras models"):
        weightkit.split(tmp_path / "cnn.pt", at="bn2", head_input_shape=(16,))
