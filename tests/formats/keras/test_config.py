"""parse_config: one tree for Keras 1, Keras 2, tf.keras and Keras 3 configs, in Keras 2/3 spelling;
architecture: a model's config parsed once."""

from __future__ import annotations

import copy
import gc
import json

import pytest

import weightkit
from weightkit.errors import FileFormatError
from weightkit.formats.keras import architecture, parse_config
from weightkit.model import Model

keras = pytest.importorskip("keras")


def record(model):
    """What Keras 2 / tf.keras write as ``model_config``: ``{"class_name", "config"}`` from get_config()."""
    return json.loads(json.dumps({"class_name": type(model).__name__, "config": model.get_config()}))


def small_functional():
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    y = keras.layers.Conv2D(4, 3, name="side")(inputs)
    x = keras.layers.Add(name="add")([x, y])
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(x), name="net")


def test_keras3_sequential_from_get_config():
    model = keras.Sequential([keras.Input((5,), name="x"), keras.layers.Dense(3, name="d1"),
                              keras.layers.Dense(2, name="d2")])
    root = parse_config(record(model))
    assert root.class_name == "Sequential" and root.is_model
    assert [layer.name for layer in root.layers] == ["x", "d1", "d2"]
    assert root.by_name()["d2"].inbound == ["d1"]
    assert [(spec.name, spec.shape) for spec in root.input_specs()] == [("x", (None, 5))]


def test_keras3_functional_from_serialize_keras_object():
    data = json.loads(json.dumps(keras.saving.serialize_keras_object(small_functional())))
    root = parse_config(data, data.get("build_config"))
    assert root.name == "net"
    assert root.input_names == ["image"] and root.output_names == ["head"]
    layers = root.by_name()
    assert layers["add"].inbound == ["conv", "side"]
    assert layers["conv"].config["filters"] == 4 and layers["conv"].module == "keras.layers"
    assert root.input_specs()[0].shape == (None, 8, 8, 3)


def test_nested_models_carry_their_own_layers():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="inner_dense")], name="inner")
    inputs = keras.Input((4,), name="x")
    outer = keras.Model(inputs, keras.layers.Dense(1, name="out")(inner(inputs)), name="outer")
    root = parse_config(record(outer))
    nested = root.by_name()["inner"]
    assert nested.is_model and [layer.name for layer in nested.layers][-1] == "inner_dense"
    assert root.by_name()["out"].inbound == ["inner"]


def test_tf_keras_2_config_with_inbound_node_lists():
    """tf.keras 2.x: Sequential as {"layers": [...]} with batch_input_shape, functional inbound nodes as lists."""
    data = {"class_name": "Functional", "config": {
        "name": "model", "input_layers": [["in", 0, 0]], "output_layers": [["dense", 0, 0]],
        "layers": [
            {"class_name": "InputLayer", "name": "in", "inbound_nodes": [],
             "config": {"batch_input_shape": [None, 6], "dtype": "float32", "name": "in"}},
            {"class_name": "Dense", "name": "dense", "inbound_nodes": [[["in", 0, 0, {}]]],
             "config": {"name": "dense", "units": 2, "use_bias": True}},
        ]}}
    root = parse_config(data)
    assert root.by_name()["dense"].inbound == ["in"]
    assert [(s.name, s.shape, s.dtype) for s in root.input_specs()] == [("in", (None, 6), "float32")]


def test_keras2_sequential_as_a_bare_list():
    data = [{"class_name": "Dense", "config": {"name": "a", "units": 3, "batch_input_shape": [None, 2]}},
            {"class_name": "Dense", "config": {"name": "b", "units": 1}}]
    root = parse_config(data)
    assert root.class_name == "Sequential"
    assert root.by_name()["b"].inbound == ["a"]
    assert root.input_specs()[0].shape == (None, 2)


def test_real_keras1_config(real_weights):
    text = (real_weights / "keras_h5/keras1_weights__ddpg_actormodel.json").read_text()
    data = json.loads(json.loads(text))  # written with json.dump(model.to_json())
    pristine = copy.deepcopy(data)
    root = parse_config(data)
    dense = root.by_name()["dense_1"]
    assert dense.config["units"] == 300 and dense.config["use_bias"] is True
    assert dense.config["kernel_initializer"] == "glorot_uniform"
    assert not {"output_dim", "init", "bias", "W_regularizer", "input_dim"} & set(dense.config)
    assert dense.raw["output_dim"] == 300  # the file's own dict, untouched
    assert data == pristine
    assert root.input_specs()[0].shape == (None, 29)


def keras1_layer(class_name, **config):
    return parse_config({"class_name": "Model", "config": {"layers": [
        {"class_name": class_name, "name": "x", "config": {"name": "x", **config}, "inbound_nodes": []}]}}).layers[0]


@pytest.mark.parametrize(("class_name", "old", "new"), [
    ("Convolution2D", {"nb_filter": 8, "nb_row": 3, "nb_col": 5, "subsample": [2, 2], "border_mode": "same",
                       "dim_ordering": "th", "init": "he_normal", "bias": False, "W_regularizer": None},
     {"filters": 8, "kernel_size": [3, 5], "strides": [2, 2], "padding": "same", "data_format": "channels_first",
      "kernel_initializer": "he_normal", "use_bias": False, "kernel_regularizer": None}),
    ("AtrousConvolution2D", {"atrous_rate": [2, 2], "dim_ordering": "tf"},
     {"dilation_rate": [2, 2], "data_format": "channels_last"}),
    ("Convolution1D", {"filter_length": 3, "subsample_length": 2}, {"kernel_size": [3], "strides": [2]}),
    ("Convolution3D", {"kernel_dim1": 1, "kernel_dim2": 2, "kernel_dim3": 3}, {"kernel_size": [1, 2, 3]}),
    ("MaxPooling1D", {"pool_length": 2, "stride": None, "border_mode": "valid"},
     {"pool_size": [2], "strides": None, "padding": "valid"}),
    ("Dense", {"output_dim": 5, "input_dim": 7, "b_regularizer": None},
     {"units": 5, "input_shape": [7], "bias_regularizer": None}),
    ("LSTM", {"output_dim": 4, "inner_init": "orthogonal", "dropout_W": 0.1, "dropout_U": 0.2, "consume_less": "gpu"},
     {"units": 4, "recurrent_initializer": "orthogonal", "dropout": 0.1, "recurrent_dropout": 0.2,
      "implementation": 2}),
    ("Embedding", {"input_dim": 100, "output_dim": 8, "init": "uniform"},
     {"input_dim": 100, "output_dim": 8, "embeddings_initializer": "uniform"}),
    ("Dropout", {"p": 0.5}, {"rate": 0.5}),
    ("GaussianNoise", {"sigma": 0.1}, {"stddev": 0.1}),
    ("BatchNormalization", {"beta_init": "zero", "gamma_init": "one", "mode": 0},
     {"beta_initializer": "zero", "gamma_initializer": "one", "mode": 0}),
    ("ZeroPadding2D", {"padding": {"top_pad": 1, "bottom_pad": 2, "left_pad": 3, "right_pad": 4}},
     {"padding": [[1, 2], [3, 4]]}),
    ("UpSampling1D", {"length": 3}, {"size": 3}),
])
def test_keras1_spellings_are_translated(class_name, old, new):
    layer = keras1_layer(class_name, **old)
    assert layer.config == {"name": "x", **new}
    assert layer.raw == {"name": "x", **old}


def test_wrapped_layers_are_translated():
    layer = keras1_layer("Bidirectional", layer={"class_name": "LSTM", "config": {"output_dim": 3}})
    assert layer.config["layer"] == {"class_name": "LSTM", "config": {"units": 3}}


def test_keras2_names_win_and_modern_configs_are_not_copied():
    layer = keras1_layer("Dense", units=3, output_dim=9)
    assert layer.config["units"] == 3
    modern = keras1_layer("Conv2D", filters=2, kernel_size=[1, 1], padding="same")
    assert modern.config is modern.raw


def test_other_classes_keep_names_that_are_old_spellings_elsewhere():
    layer = keras1_layer("MyEmbedding", output_dim=4, p=0.3, bias=[1, 2])
    assert layer.config == layer.raw


def test_architecture_parses_once_and_again_when_the_config_is_replaced():
    config = record(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="d")]))
    model = Model(framework="keras", config=config)
    root = architecture(model)
    assert architecture(model) is root
    model.config = copy.deepcopy(config)
    again = architecture(model)
    assert again is not root and [layer.name for layer in again.layers] == [layer.name for layer in root.layers]
    assert architecture(Model()) is None


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_architecture_is_what_the_reader_parsed(tmp_path, monkeypatch, suffix):
    from weightkit.formats.keras import config as config_module

    path = tmp_path / f"m{suffix}"
    small_functional().save(path)
    with weightkit.load(path) as model:
        monkeypatch.setattr(config_module, "parse_config", None)  # parsing again would fail
        root = architecture(model)
        assert architecture(model) is root and root.output_names == ["head"]


def test_architecture_does_not_keep_models_alive():
    from weightkit.formats.keras import config as config_module

    model = Model(framework="keras", config={"class_name": "Sequential", "config": {"layers": []}})
    architecture(model)
    count = len(config_module._PARSED)
    del model
    gc.collect()
    assert len(config_module._PARSED) == count - 1


def test_architecture_of_a_broken_config_is_a_file_format_error():
    with pytest.raises(FileFormatError, match="not a Keras config"):
        architecture(Model(framework="keras", config="nonsense"))  # type: ignore[arg-type]  # a config that is not a dict, on purpose
