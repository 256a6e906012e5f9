"""The PyTorch writer: files torch.load(weights_only=True) reads back bit for bit."""

from __future__ import annotations

import gc
import weakref
import zipfile
from collections import OrderedDict

import ml_dtypes
import numpy as np
import pytest

import weightkit
from weightkit import Layer, Model, Tensor, UnsupportedError, UsageError
from weightkit.formats._parsers.zip import member_offset
from weightkit.formats.torch import write as torch_write

from .test_read import DTYPES, assert_same, sample

torch = pytest.importorskip("torch")


def test_every_dtype_round_trips_through_torch_load(tmp_path):
    state = OrderedDict((f"layer{i}.{name}", sample(name, shape)) for i, (name, shape) in
                        enumerate((n, s) for n in DTYPES for s in [(3, 5), (), (0, 4)]))
    source = tmp_path / "source.pt"
    torch.save(state, source)
    with weightkit.load(source) as model:
        weightkit.save(model, tmp_path / "copy.pt")
    loaded = torch.load(tmp_path / "copy.pt", weights_only=True)
    assert type(loaded) is OrderedDict
    assert list(loaded) == list(state)
    with weightkit.load(tmp_path / "copy.pt") as copy:
        found = {t.name: t for t in copy.tensors()}
        for name, tensor in state.items():
            assert loaded[name].dtype == tensor.dtype and loaded[name].shape == tensor.shape
            assert_same(found[name], loaded[name])
            assert_same(found[name], tensor)


def test_arrays_from_any_reader_and_mmap_loading(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "conv1/kernel:0": rng.standard_normal((3, 3, 2, 4)).astype(np.float32),
        "dense.bias": rng.standard_normal(7).astype(np.float64),
        "emb.weight": rng.standard_normal((5, 2)).astype(ml_dtypes.bfloat16),
        "fp8": rng.standard_normal(9).astype(ml_dtypes.float8_e4m3fn),
        "non_contiguous": np.arange(24, dtype=np.int32).reshape(4, 6)[:, ::2],
        "flags": np.array([True, False, True]),
    }
    model = Model(layers=[Layer("all", tensors={name: Tensor.from_array(name, a) for name, a in arrays.items()})])
    path = tmp_path / "arrays.pth"
    torch_write.write(model, path)
    for mmap in (False, True):
        loaded = torch.load(path, weights_only=True, mmap=mmap)
        assert list(loaded) == list(arrays)
        for name, array in arrays.items():
            theirs = loaded[name].contiguous().view(torch.uint8).numpy().tobytes()
            assert np.ascontiguousarray(array).tobytes() == theirs, name


def test_layout_matches_torch_save(tmp_path):
    path = tmp_path / "my.model.pt"
    model = Model(layers=[Layer("x", tensors={"w": Tensor.from_array("x.w", np.ones((10, 3), np.float32)),
                                              "b": Tensor.from_array("x.b", np.ones(3, np.float16))})])
    weightkit.save(model, path)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert names == ["my.model/data.pkl", "my.model/byteorder", "my.model/data/0", "my.model/data/1",
                         "my.model/version"]
        for info in archive.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            assert member_offset(archive, info, path) % 64 == 0
        assert archive.read("my.model/byteorder") == b"little"


def test_many_tensors_cross_the_setitems_batch(tmp_path):
    tensors = {f"t{i}": Tensor.from_array(f"t{i}", np.full(2, i, np.int16)) for i in range(2100)}
    path = tmp_path / "many.pt"
    torch_write.write(Model(layers=[Layer("all", tensors=tensors)]), path)
    loaded = torch.load(path, weights_only=True)
    assert len(loaded) == 2100 and loaded["t2099"].tolist() == [2099, 2099]


def test_streams_one_tensor_at_a_time(tmp_path):
    live, peak = [0], [0]

    def loader(i):
        def load():
            array = np.full((256, 256), i, np.float32)
            live[0] += 1
            peak[0] = max(peak[0], live[0])
            weakref.finalize(array, lambda: live.__setitem__(0, live[0] - 1))
            return array
        return load

    tensors = {f"t{i}": Tensor(f"t{i}", (256, 256), "float32", loader=loader(i)) for i in range(20)}
    gc.collect()
    torch_write.write(Model(layers=[Layer("all", tensors=tensors)]), tmp_path / "stream.pt")
    assert peak[0] <= 2
    assert torch.load(tmp_path / "stream.pt", weights_only=True)["t19"][0, 0] == 19


def test_refusals(tmp_path):
    duplicate = Model(layers=[Layer("a", tensors={"w": Tensor.from_array("w", np.ones(1))}),
                              Layer("b", tensors={"w": Tensor.from_array("w", np.ones(1))})])
    with pytest.raises(UnsupportedError, match="two tensors are named 'w'"):
        torch_write.write(duplicate, tmp_path / "dup.pt")
    packed = Model(layers=[Layer("a", tensors={"w": Tensor("w", (4,), "int4", loader=lambda: None)})])
    with pytest.raises(UnsupportedError, match="int4"):
        torch_write.write(packed, tmp_path / "int4.pt")
    unreadable = Model(layers=[Layer("a", tensors={"q": Tensor("q", (4,), "float32", note="quantized")})])
    with pytest.raises(UnsupportedError, match="no readable data"):
        torch_write.write(unreadable, tmp_path / "q.pt")
    assert not list(tmp_path.iterdir())


def test_never_overwrites(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, path)
    with weightkit.load(path) as model:
        with pytest.raises(UsageError):
            weightkit.save(model, path, force=True)
        (tmp_path / "taken.pt").write_bytes(b"keep")
        with pytest.raises(UsageError, match="already exists"):
            weightkit.save(model, tmp_path / "taken.pt")
        weightkit.save(model, tmp_path / "other.bin")
    assert (tmp_path / "taken.pt").read_bytes() == b"keep"
    assert torch.load(tmp_path / "other.bin", weights_only=True)["w"].tolist() == [1.0, 1.0]
