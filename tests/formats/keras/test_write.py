"""Models written back as Keras files load in real Keras and predict exactly as the original."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import weightkit
from weightkit.errors import UnsupportedError
from weightkit.records import PROVENANCE_KEY

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kw")
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((8, 8, 8)), keras.layers.Conv2D(8, 3, padding="same", name="ic"),
                              keras.layers.BatchNormalization(name="ibn")], name="block")
    x = keras.Input((16, 16, 3), name="image")
    y = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="stem")(x)
    y = keras.layers.BatchNormalization(name="bn")(y)
    y = inner(y)
    y = keras.layers.GlobalAveragePooling2D(name="pool")(y)
    y = keras.layers.Dense(4, name="fc")(y)
    model = keras.Model(x, y)
    inner.layers[1].trainable = False
    for layer in model.layers + inner.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.random.default_rng(1).standard_normal(layer.moving_mean.shape))
            layer.moving_variance.assign(np.random.default_rng(2).uniform(0.5, 2, layer.moving_variance.shape))
    model.save(folder / "m.keras")
    model.save(folder / "m.h5")
    x = np.random.default_rng(3).standard_normal((2, 16, 16, 3)).astype("float32")
    return folder, x, model.predict(x, verbose=0)


@pytest.mark.parametrize("src,dst", [("m.h5", "out.h5"), ("m.keras", "out.h5"), ("m.keras", "out.keras")])
def test_full_model_round_trip_predicts_identically(source, tmp_path, src, dst):
    folder, x, expected = source
    with weightkit.load(folder / src) as model:
        weightkit.save(model, tmp_path / dst)
    assert np.array_equal(keras.saving.load_model(tmp_path / dst).predict(x, verbose=0), expected)


@pytest.mark.parametrize("src", ["m.h5", "m.keras"])
def test_weights_files_load_with_load_weights(source, tmp_path, src):
    folder, x, expected = source
    with weightkit.load(folder / src) as model:
        weightkit.save(model, tmp_path / "w.weights.h5")
        weightkit.save(model, tmp_path / "w.h5", format="keras-h5")
    for name in ("w.weights.h5", "w.h5"):
        fresh = keras.saving.load_model(folder / "m.keras")
        for weight in fresh.weights:
            weight.assign(np.zeros(weight.shape, weight.dtype))
        fresh.load_weights(tmp_path / name)
        assert np.array_equal(fresh.predict(x, verbose=0), expected), name


def test_keras_file_from_a_legacy_config_is_refused(source, tmp_path):
    folder, _, _ = source
    with weightkit.load(folder / "m.h5") as model, pytest.raises(UnsupportedError, match="write a .h5"):
        weightkit.save(model, tmp_path / "x.keras")
    assert not (tmp_path / "x.keras").exists()


def test_provenance_is_recorded_and_read_back(source, tmp_path):
    folder, _, _ = source
    for name in ("p.h5", "p.keras"):
        with weightkit.load(folder / "m.keras") as model:
            model.metadata[PROVENANCE_KEY] = "sha256:abc"
            weightkit.save(model, tmp_path / name)
        with weightkit.load(tmp_path / name) as model:
            assert model.metadata[PROVENANCE_KEY] == "sha256:abc"
    with h5py.File(tmp_path / "p.h5") as file:
        assert file.attrs[PROVENANCE_KEY] == "sha256:abc"
