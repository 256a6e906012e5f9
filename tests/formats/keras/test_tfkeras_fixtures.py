"""Files written by real tf.keras 2.21 read as Keras itself reported them (fixtures/tfkeras)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import weightkit

FILES = ["tfk_cnn_full.h5", "tfk_cnn_weights.h5", "tfk_cnn.keras", "tfk_mobilenetv2_full.h5"]


def _expected(fixtures, name):
    return json.loads((fixtures / "tfkeras" / f"{name}.expected.json").read_text())


def _keras_layers(expected):
    """Keras's layers by path, leaving out nested models (their weights are their sublayers')."""
    return {layer["path"]: layer for layer in expected["layers"]
            if layer["class_name"] not in ("Functional", "Sequential", "Model")}


@pytest.mark.parametrize("name", FILES)
def test_parameter_counts_match_keras(fixtures, name):
    expected = _expected(fixtures, name)
    with weightkit.load(fixtures / "tfkeras" / name) as model:
        assert model.num_params == expected["count_params"]
        if model.has_graph:
            from weightkit.ops.inspect import totals

            total = totals(model)
            assert (total.trainable, total.non_trainable) == (expected["trainable_params"],
                                                              expected["non_trainable_params"])


@pytest.mark.parametrize("name", FILES)
def test_every_layer_has_keras_shapes_and_values(fixtures, name):
    expected = _expected(fixtures, name)
    with weightkit.load(fixtures / "tfkeras" / name) as model:
        ours = {path: layer for path, layer in model.walk()}
        for path, layer in _keras_layers(expected).items():
            if not layer["weights"]:
                continue
            tensors = list(ours[path].tensors.values())
            assert [list(t.shape) for t in tensors] == [w[1] for w in layer["weights"]], path
            sums = [float(np.asarray(t.read(), dtype=np.float64).sum()) for t in tensors]
            assert sums == pytest.approx(layer["weight_sums"], rel=1e-6, abs=1e-6), path


@pytest.mark.parametrize("name", ["tfk_cnn_full.h5", "tfk_cnn_weights.h5"])
def test_tf_weight_names_are_kept(fixtures, name):
    expected = _expected(fixtures, name)
    with weightkit.load(fixtures / "tfkeras" / name) as model:
        ours = {path: layer for path, layer in model.walk()}
        for path, layer in _keras_layers(expected).items():
            if not layer["weights"]:
                continue  # without a config, a weightless sublayer leaves no trace in the file
            names = [t.name for t in ours[path].tensors.values()]
            assert names == [w[0] for w in layer["weights"]]


def test_full_model_reports_writer_inputs_and_optimizer(fixtures):
    with weightkit.load(fixtures / "tfkeras" / "tfk_cnn_full.h5") as model:
        assert model.format == "keras-h5"
        assert model.has_graph
        assert model.metadata["writer"] == "tf.keras 2.21.0"
        assert model.metadata["backend"] == "tensorflow"
        assert model.inputs[0].shape == (None, 32, 32, 3)
        assert "optimizer" in model.extras
        assert model.extras["optimizer"][0].name == "iteration:0"


def test_weights_only_file_says_it_has_no_architecture(fixtures):
    with weightkit.load(fixtures / "tfkeras" / "tfk_cnn_weights.h5") as model:
        assert model.format == "keras-weights-h5"
        assert not model.has_graph
        assert model.layer("stem_conv").kind == "conv2d"
