"""HDF5 safety: data that lives elsewhere or does not exist is refused before anything is read."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import weightkit
from weightkit.errors import FileFormatError, UnsafeFileError


def _keras_file(path, make_dataset):
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = np.array([b"dense"])
        file.attrs["keras_version"] = b"2.2.4"
        group = file.create_group("dense")
        group.attrs["weight_names"] = np.array([b"dense/kernel:0"])
        make_dataset(group.create_group("dense"), "kernel:0")
    return path


def test_dataset_declaring_more_bytes_than_stored_is_refused_on_read(tmp_path):
    path = _keras_file(tmp_path / "huge.h5", lambda g, n: g.create_dataset(n, shape=(10**10,), dtype="float32"))
    with weightkit.load(path) as model:
        tensor = model.tensors()[0]
        assert tensor.shape == (10**10,)  # looking is fine: nothing is allocated
        with pytest.raises(FileFormatError, match="declares 40000000000 bytes but the file stores 0"):
            tensor.read()


def test_external_storage_is_refused(tmp_path):
    raw = tmp_path / "raw.bin"
    raw.write_bytes(np.zeros(4, "float32").tobytes())
    path = _keras_file(tmp_path / "ext.h5", lambda g, n: g.create_dataset(n, shape=(4,), dtype="float32",
                                                                           external=[(str(raw), 0, 16)]))
    with weightkit.load(path) as model, pytest.raises(UnsafeFileError, match="external files"):
        model.tensors()[0].read()


def test_virtual_dataset_is_refused(tmp_path):
    source = tmp_path / "src.h5"
    with h5py.File(source, "w") as file:
        file["x"] = np.arange(4, dtype="float32")

    def virtual(group, name):
        layout = h5py.VirtualLayout(shape=(4,), dtype="float32")
        layout[:] = h5py.VirtualSource(str(source), "x", shape=(4,))
        group.create_virtual_dataset(name, layout)

    path = _keras_file(tmp_path / "virtual.h5", virtual)
    with weightkit.load(path) as model, pytest.raises(UnsafeFileError, match="virtual dataset"):
        model.tensors()[0].read()


def test_compressed_dataset_reads(tmp_path):
    data = np.random.default_rng(0).standard_normal((64, 64)).astype("float32")
    path = _keras_file(tmp_path / "gz.h5", lambda g, n: g.create_dataset(n, data=data, compression="gzip"))
    with weightkit.load(path) as model:
        assert np.array_equal(model.tensors()[0].read(), data)
