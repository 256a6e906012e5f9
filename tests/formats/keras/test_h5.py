"""Legacy Keras HDF5 details that real files use: chunked name lists, nested groups, old layouts."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import weightkit

keras = pytest.importorskip("keras")


def test_layer_names_split_into_chunks_are_reassembled(tmp_path):
    """Over 64 KB of layer names: Keras writes layer_names0, layer_names1, ..."""
    from keras.src.legacy.saving import legacy_h5_format

    names = [f"a_rather_long_layer_name_so_the_attribute_needs_chunks_{i:04d}_" + "x" * 40 for i in range(700)]
    model = keras.Sequential([keras.Input((1,))] + [keras.layers.Dense(1, name=n) for n in names])
    path = tmp_path / "chunked.h5"
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)
        assert "layer_names" not in file.attrs and "layer_names0" in file.attrs
    with weightkit.load(path) as loaded:
        assert [layer.name for layer in loaded.layers] == names
        assert loaded.num_params == model.count_params()


def test_pre_1_0_layout(tmp_path):
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as file:
        file.attrs["nb_layers"] = 2
        first = file.create_group("layer_0")
        first.attrs["nb_params"] = 2
        first["param_0"] = np.ones((3, 4), "float32")
        first["param_1"] = np.zeros(4, "float32")
        file.create_group("layer_1").attrs["nb_params"] = 0
    with weightkit.load(path) as loaded:
        assert [layer.name for layer in loaded.layers] == ["layer_0", "layer_1"]
        assert loaded.num_params == 16
        assert np.array_equal(loaded.layer("layer_0").tensors["param_0"].read(), np.ones((3, 4)))


def test_layer_names_with_a_slash_make_nested_groups(tmp_path):
    """keras-yolo2's SqueezeNet names layers fire2/squeeze1x1: Keras 2 writes nested groups, the layer stays one.

    Keras 3 forbids '/' in names, so the file is written the way Keras 2's save_weights lays it out.
    """
    path = tmp_path / "slash.h5"
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = np.array([b"fire2/squeeze1x1"])
        file.attrs["keras_version"] = b"2.0.8"
        file.attrs["backend"] = b"tensorflow"
        group = file.create_group("fire2/squeeze1x1")
        group.attrs["weight_names"] = np.array([b"fire2/squeeze1x1/kernel:0", b"fire2/squeeze1x1/bias:0"])
        group["fire2/squeeze1x1/kernel:0"] = np.ones((1, 1, 64, 16), "float32")
        group["fire2/squeeze1x1/bias:0"] = np.zeros(16, "float32")
    with weightkit.load(path) as loaded:
        assert [layer.name for layer in loaded.layers] == ["fire2/squeeze1x1"]
        layer = loaded.layers[0]
        assert layer.kind == "conv2d" and not layer.layers
        assert layer.tensors["weight"].shape == (1, 1, 64, 16)


@pytest.mark.parametrize("suffix", [".h5", ".weights.h5", ".keras"])
def test_reading_after_close_is_a_model_closed_error(tmp_path, suffix):
    """A tensor read once its model was closed names the cause, not h5py's 'invalid identifier'."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    path = tmp_path / f"model{suffix}"
    if suffix == ".weights.h5":
        model.save_weights(path)
    else:
        model.save(path)
    loaded = weightkit.load(path)
    tensor = loaded.tensors()[0]
    assert tensor.read().shape == tensor.shape
    loaded.close()
    with pytest.raises(weightkit.ModelClosedError, match="the model was closed"):
        tensor.read()


# Issue 13 item 7: broken Keras structure is one clear error (or a correct result), never a raw exception.

@pytest.mark.parametrize("nb_layers", ["many", float("nan"), np.arange(3), -1])
def test_nb_layers_that_is_not_a_count_is_refused(tmp_path, nb_layers):
    from tests.hostile.hdf5_cases import _pre_1_0

    with pytest.raises(weightkit.errors.FileFormatError, match="'nb_layers' of '/' is .*, not a count"):
        weightkit.load(_pre_1_0(tmp_path, "nb.h5", nb_layers))


def test_nb_layers_as_a_one_element_array_reads(tmp_path):
    from tests.hostile.hdf5_cases import _pre_1_0

    with weightkit.load(_pre_1_0(tmp_path, "nb.h5", np.array([1]))) as loaded:
        assert [layer.name for layer in loaded.layers] == ["layer_0"]


def test_empty_layer_names_is_a_model_without_layers(tmp_path):
    from tests.hostile.hdf5_cases import empty_layer_names

    with weightkit.load(empty_layer_names(tmp_path)) as loaded:
        assert loaded.layers == []


def test_weight_names_naming_a_missing_dataset_is_refused(tmp_path):
    from tests.hostile.hdf5_cases import missing_weight

    with pytest.raises(weightkit.errors.FileFormatError, match="lists weight 'dense/kernel:0' but the file has no"):
        weightkit.load(missing_weight(tmp_path))


def test_a_layer_that_is_a_dataset_is_refused(tmp_path):
    path = tmp_path / "flat.h5"
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = np.array([b"dense"])
        file["dense"] = np.ones(2, "float32")
    with pytest.raises(weightkit.errors.FileFormatError, match="'dense' is listed in layer_names but has no group"):
        weightkit.load(path)


def test_null_dataspace_and_deep_nesting_are_refused(tmp_path):
    from tests.hostile.hdf5_cases import deep_nesting, null_dataspace

    with pytest.raises(weightkit.errors.FileFormatError, match="null dataspace"):
        weightkit.load(null_dataspace(tmp_path))
    with pytest.raises(weightkit.errors.UnsafeFileError, match="limit 'nesting'"):
        weightkit.load(deep_nesting(tmp_path, depth=1000))


def test_version_with_non_ascii_digits_is_shown(tmp_path):
    from tests.hostile.hdf5_cases import keras_file

    path = keras_file(tmp_path / "v.h5")
    with h5py.File(path, "a") as file:
        file.attrs["keras_version"] = "2.²"
    with weightkit.load(path) as loaded:
        assert loaded.metadata["writer"] == "Keras 2.²"
