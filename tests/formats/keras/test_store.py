"""Keras 3 stores (.weights.h5, .keras) made by real Keras 3: order, names, dtypes, nesting."""

from __future__ import annotations

import numpy as np
import pytest

import weightkit

keras = pytest.importorskip("keras")


class ManyWeights(keras.layers.Layer):
    """A custom layer with twelve variables, so that vars/10 and vars/11 exist."""

    def build(self, input_shape):
        self.parts = [self.add_weight(shape=(i + 1,), initializer="random_normal", name=f"w{i}") for i in range(12)]

    def call(self, x):
        return x


def test_vars_ten_and_up_keep_numeric_order(tmp_path):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), ManyWeights(name="many")])
    model.save_weights(tmp_path / "m.weights.h5")
    with weightkit.load(tmp_path / "m.weights.h5") as loaded:
        tensors = list(loaded.layer("many").tensors.values())
        assert [t.shape for t in tensors] == [(i + 1,) for i in range(12)]
        for tensor, expected in zip(tensors, model.layers[0].get_weights()):
            assert np.array_equal(tensor.read(), expected)


def test_bfloat16_variables_read_as_bfloat16(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, dtype="bfloat16", name="d")])
    model.save(tmp_path / "m.keras")
    with weightkit.load(tmp_path / "m.keras") as loaded:
        kernel = loaded.layer("d").tensors["weight"]
        assert kernel.dtype == "bfloat16"
        assert np.array_equal(kernel.read().astype(np.float32),
                              np.asarray(model.layers[0].kernel.numpy(), dtype=np.float32))


def test_nested_functional_and_sequential_models(tmp_path):
    inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, name="in_a"),
                              keras.layers.Dense(4, name="in_b")], name="block")
    x = keras.Input((6,), name="x")
    y = keras.layers.Dense(2, name="head")(inner(x))
    model = keras.Model(x, y)
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    for name in ("m.keras", "m.h5"):
        with weightkit.load(tmp_path / name) as loaded:
            block = loaded.layer("block")
            assert block.kind == "model" and [sub.name for sub in block.layers] == ["in_a", "in_b"]
            assert loaded.layer("block/in_b").tensors["weight"].shape == (5, 4)
            assert np.array_equal(loaded.layer("block/in_a").tensors["weight"].read(), inner.layers[0].kernel.numpy())
            assert loaded.outputs[0].shape == (None, 2)


def test_weights_file_without_config_names_layers_from_the_store(tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="stem"),
                              keras.layers.BatchNormalization(name="bn"), keras.layers.Flatten(),
                              keras.layers.Dense(2, name="fc")])
    model.save_weights(tmp_path / "m.weights.h5")
    with weightkit.load(tmp_path / "m.weights.h5") as loaded:
        assert loaded.layer("stem").type_name == "Conv2D" and loaded.layer("stem").kind == "conv2d"
        assert list(loaded.layer("bn").tensors) == ["weight", "bias", "running_mean", "running_var"]
        assert loaded.layer("stem").tensors["weight"].layout == "HWIO"


def test_compiled_model_keeps_optimizer_apart(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0, epochs=1)
    model.save(tmp_path / "m.keras")
    with weightkit.load(tmp_path / "m.keras") as loaded:
        assert loaded.num_params == model.count_params()
        assert loaded.extras["optimizer"]


def test_recurrent_cells_and_rms_layer_norm_get_their_variable_names(tmp_path):
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4, return_sequences=True, name="lstm"),
                              keras.layers.LayerNormalization(rms_scaling=True, name="rms"),
                              keras.layers.GRU(2, name="gru")])
    model.save(tmp_path / "m.keras")
    with weightkit.load(tmp_path / "m.keras") as loaded:
        cell = loaded.layer("lstm/cell")
        assert cell.type_name == "LSTMCell" and cell.kind == "lstm"
        assert list(cell.tensors) == ["weight", "recurrent_weight", "bias"]
        assert cell.tensors["recurrent_weight"].shape == (4, 16)
        assert np.array_equal(cell.tensors["weight"].read(), model.layers[0].cell.kernel.numpy())
        assert list(loaded.layer("gru/cell").tensors) == ["weight", "recurrent_weight", "bias"]
        assert list(loaded.layer("rms").tensors) == ["weight"]
        assert loaded.layer("rms").tensors["weight"].name == "rms/gamma"


def test_store_entries_that_are_datasets_where_groups_belong_are_skipped(tmp_path):
    """A crafted .weights.h5: a dataset among the layer groups and as ``vars`` (issue 13 item 7)."""
    import h5py

    path = tmp_path / "odd.weights.h5"
    with h5py.File(path, "w") as file:
        file.create_group("layers/dense/vars")["0"] = np.ones((2, 3), "float32")
        file["layers/stray"] = np.ones(2, "float32")
        file["layers/other/vars"] = np.ones(2, "float32")
        file["vars"] = np.ones(1, "float32")
    with weightkit.load(path) as loaded:
        assert [layer.name for layer in loaded.layers] == ["dense", "other"]
        assert loaded.layer("dense").tensors["weight"].shape == (2, 3)
        assert loaded.layer("other").tensors == {}
