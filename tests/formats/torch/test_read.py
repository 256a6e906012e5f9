"""PyTorch checkpoints written by real torch 2.13 read bit for bit as torch.load reads them."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import weightkit
from weightkit.cli import main
from weightkit.formats import detect

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::torch.serialization.SourceChangeWarning")

FLOAT8 = ["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu"]
NEW_DTYPES = ["uint16", "uint32", "uint64", *FLOAT8]
DTYPES = ["float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool",
          "complex64", "complex128", "uint16", "uint32", "uint64", *FLOAT8]


def raw_bytes(tensor) -> bytes:
    """The logical values of a torch tensor as bytes, in row-major order."""
    tensor = tensor.detach().resolve_conj().resolve_neg().contiguous().reshape(-1)
    return tensor.view(torch.uint8).numpy().tobytes()


def assert_same(ours: weightkit.Tensor, theirs) -> None:
    array = ours.read()
    assert tuple(array.shape) == tuple(theirs.shape), ours.name
    assert ours.dtype == str(theirs.dtype).removeprefix("torch."), ours.name
    assert np.ascontiguousarray(array).reshape(-1).view(np.uint8).tobytes() == raw_bytes(theirs), ours.name


def tensors_by_name(model: weightkit.Model) -> dict[str, weightkit.Tensor]:
    found = {t.name: t for t in model.tensors()}
    for group in model.extras.values():
        found.update({t.name: t for t in group})
    return found


def sample(dtype: str, shape=(3, 5)):
    generator = torch.Generator().manual_seed(hash(dtype) % 1000)
    values = torch.randn(shape, generator=generator) * 4
    torch_dtype = getattr(torch, dtype)
    if dtype == "bool":
        return values > 0
    if dtype.startswith("complex"):
        return torch.complex(values, -values).to(torch_dtype)
    if dtype.startswith(("int", "uint")):
        return values.abs().to(torch.int64).to(torch_dtype)
    return values.to(torch_dtype)


@pytest.fixture(scope="module")
def every_dtype():
    return OrderedDict((f"t_{name}", sample(name)) for name in DTYPES)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_every_dtype_reads_as_torch_load(tmp_path, every_dtype, legacy):
    path = tmp_path / "dtypes.pt"
    state = OrderedDict((k, v) for k, v in every_dtype.items() if not (legacy and k.removeprefix("t_") in NEW_DTYPES))
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    expected = torch.load(path, weights_only=True)
    with weightkit.load(path) as model:
        assert model.format == ("torch-legacy" if legacy else "torch-zip")
        found = tensors_by_name(model)
        assert list(found) == list(expected)
        for name, tensor in expected.items():
            assert_same(found[name], tensor)


def test_new_dtypes_in_legacy_files_torch_cannot_load_back(tmp_path, every_dtype):
    """torch 2.13 writes float8/uint16+ into legacy files as UntypedStorage but fails to load them."""
    state = OrderedDict((k, v) for k, v in every_dtype.items() if k.removeprefix("t_") in NEW_DTYPES)
    path = tmp_path / "new_dtypes_legacy.pt"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    with pytest.raises(AttributeError):
        torch.load(path, weights_only=True)
    with weightkit.load(path) as model:
        found = tensors_by_name(model)
        for name, tensor in state.items():
            assert_same(found[name], tensor)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_views_and_shared_storages(tmp_path, legacy):
    base = torch.arange(120, dtype=torch.float32).reshape(10, 12)
    complex_base = torch.complex(torch.randn(4, 4), torch.randn(4, 4))
    state = OrderedDict(
        base=base, row=base[3], column=base[:, 5], transposed=base.t(), sliced=base[2:7:2, 1:10:3],
        expanded=torch.ones(3, 1).expand(3, 4), scalar=base[4, 4], empty=base[:0], same=base,
        conj=complex_base.conj(), neg=torch._neg_view(torch.randn(3)),
        half_view=torch.arange(16, dtype=torch.float16)[5:11],
    )
    path = tmp_path / "views.pt"
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    expected = torch.load(path, weights_only=True)
    with weightkit.load(path) as model:
        found = tensors_by_name(model)
        for name, tensor in expected.items():
            assert_same(found[name], tensor)


def test_storage_is_read_only_where_a_tensor_lies(tmp_path):
    big = torch.arange(1_000_000, dtype=torch.float64)
    path = tmp_path / "window.pt"
    torch.save({"window": big[1000:1010]}, path)
    with weightkit.load(path) as model:
        tensor = model.tensors()[0]
        assert tensor.loader.count == 80
        np.testing.assert_array_equal(tensor.read(), np.arange(1000, 1010, dtype=np.float64))


def test_loading_reads_no_storage(tmp_path, monkeypatch):
    path = tmp_path / "lazy.pt"
    torch.save({"w": torch.randn(64, 64)}, path)
    from weightkit.formats.torch import data as _torch_data

    calls = []
    monkeypatch.setattr(_torch_data.StorageFile, "_read_at", lambda *a: calls.append(a))
    with weightkit.load(path) as model:
        assert model.tensors()[0].shape == (64, 64)
    assert calls == []


def _conv_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, groups=8), torch.nn.Flatten(), torch.nn.Linear(8, 4),
    )


def test_training_checkpoint_wrapping_a_state_dict(tmp_path):
    net = _conv_net()
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.randn(2, 3, 5, 5)).sum().backward()
    optimizer.step()
    checkpoint = {"epoch": 12, "arch": "convnet", "best_acc": 0.75, "state_dict": net.state_dict(),
                  "optimizer": optimizer.state_dict(), "ema": {k: v.clone() for k, v in net.state_dict().items()}}
    path = tmp_path / "checkpoint.pth"
    torch.save(checkpoint, path)
    expected = torch.load(path, weights_only=True)
    with weightkit.load(path) as model:
        assert model.metadata["contents"] == "checkpoint"
        assert model.metadata["weights_from"] == "state_dict"
        wrapper = model.metadata["checkpoint"]
        assert wrapper["epoch"] == 12 and wrapper["arch"] == "convnet" and wrapper["best_acc"] == 0.75
        assert wrapper["state_dict"].startswith("weights: 11 tensors")
        assert [t.name for t in model.tensors()] == list(expected["state_dict"])
        for tensor in model.tensors():
            assert_same(tensor, expected["state_dict"][tensor.name])
        optimizer_tensors = {t.name: t for t in model.extras["optimizer"]}
        assert_same(optimizer_tensors["optimizer.state.0.exp_avg"], expected["optimizer"]["state"][0]["exp_avg"])
        assert len(model.extras["ema"]) == 11
        assert model.layer("0").kind == "conv2d" and model.layer("0").tensors["weight"].layout == "OIHW"
        json.dumps(model.metadata)


def test_nested_checkpoint_with_model_key_and_plain_values(tmp_path):
    state = {"model": {"encoder": _conv_net().state_dict()}, "meta": {"step": 3, "lr": 0.1}, "note": None}
    path = tmp_path / "nested.ckpt"
    torch.save(state, path)
    with weightkit.load(path) as model:
        assert model.metadata["weights_from"] == "model"
        assert model.metadata["checkpoint"]["meta"] == {"step": 3, "lr": 0.1}
        assert model.tensors()[0].name == "encoder.0.weight"


def test_pickled_module_records_classes_and_reads_tensors(tmp_path):
    net = _conv_net().eval()
    path = tmp_path / "module.pt"
    torch.save(net, path)
    expected = net.state_dict()
    with weightkit.load(path) as model:
        assert model.metadata["contents"] == "pickled module"
        assert model.metadata["module_class"] == "torch.nn.modules.container.Sequential"
        assert [layer.type_name for layer in model.layers] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d",
                                                               "Flatten", "Linear"]
        assert [layer.kind for layer in model.layers] == ["conv2d", "batch_norm", "activation",
                                                          "depthwise_conv2d", "reshape", "dense"]
        assert model.layer("0").config["out_channels"] == 8
        assert model.layer("1").tensors["running_mean"].trainable is False
        assert model.layer("0").tensors["weight"].trainable is True
        for tensor in model.tensors():
            assert_same(tensor, expected[tensor.name])


def test_torchscript_archive_reads_parameters_buffers_and_constants(tmp_path):
    class WithConstant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = _conv_net()

        def forward(self, x):
            return self.body(x) + torch.tensor([1.0, 2.0, 3.0, 4.0])

    module = WithConstant().eval()
    traced = torch.jit.trace(module, torch.randn(1, 3, 5, 5))
    path = tmp_path / "scripted.pt"
    torch.jit.save(traced, path)
    loaded = torch.jit.load(path)
    with weightkit.load(path) as model:
        assert model.format == "torchscript"
        assert model.metadata["module_class"].startswith("__torch__.")
        found = {t.name: t for t in model.tensors()}
        for name, tensor in loaded.state_dict().items():
            assert_same(found[name], tensor)
        constants = model.extras["constants"]
        assert any(np.array_equal(t.read(), [1.0, 2.0, 3.0, 4.0]) for t in constants)


def test_scripted_module(tmp_path):
    path = tmp_path / "script.pt"
    torch.jit.save(torch.jit.script(_conv_net()), path)
    loaded = torch.jit.load(path)
    with weightkit.load(path) as model:
        assert [layer.type_name for layer in model.layers][:2] == ["Conv2d", "BatchNorm2d"]
        found = {t.name: t for t in model.tensors()}
        for name, tensor in loaded.state_dict().items():
            assert_same(found[name], tensor)


def test_single_tensor_and_list(tmp_path):
    torch.save(torch.arange(6).reshape(2, 3), tmp_path / "one.pt")
    torch.save([torch.ones(2), torch.zeros(3)], tmp_path / "list.pt")
    with weightkit.load(tmp_path / "one.pt") as model:
        np.testing.assert_array_equal(model.tensors()[0].read(), np.arange(6).reshape(2, 3))
    with weightkit.load(tmp_path / "list.pt") as model:
        assert [t.name for t in model.tensors()] == ["0", "1"]


def test_unsupported_tensors_are_named_not_fatal(tmp_path):
    state = {
        "q": torch.quantize_per_tensor(torch.rand(3), 0.1, 10, torch.qint8),
        "sparse": torch.eye(3).to_sparse(),
        "meta": torch.empty(2, 3, device="meta"),
        "plain": torch.ones(2),
    }
    path = tmp_path / "odd.pt"
    torch.save(state, path)
    with weightkit.load(path) as model:
        found = tensors_by_name(model)
        assert found["q"].loader is None and "quantized" in found["q"].note and found["q"].dtype == "qint8"
        assert found["sparse"].loader is None and "sparse" in found["sparse"].note
        assert found["sparse"].shape == (3, 3)
        assert found["meta"].loader is None and found["meta"].shape == (2, 3)
        np.testing.assert_array_equal(found["plain"].read(), [1, 1])
        assert model.metadata["unreadable_tensors"] == 3
    assert main(["inspect", str(path)]) == 0


def test_parameter_subclass_and_python_attributes(tmp_path):
    param = torch.nn.Parameter(torch.randn(3))
    param.custom = "hello"
    state = {"p": param, "buffer": torch.nn.Buffer(torch.ones(2)) if hasattr(torch.nn, "Buffer") else torch.ones(2)}
    path = tmp_path / "param.pt"
    torch.save(state, path)
    expected = torch.load(path, weights_only=False)
    with weightkit.load(path) as model:
        found = tensors_by_name(model)
        assert_same(found["p"], expected["p"])
        assert_same(found["buffer"], expected["buffer"])


# --- files real torch reads but does not write any more: built here by hand, checked by torch.load ---


def _handmade_zip(path, state, *, folder="archive", byteorder="little", keys=None, location="cpu",
                  compress=False):
    """A zip checkpoint as older or other writers make it: any folder, keys, device, byte order."""
    storages = {}

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, torch.storage.TypedStorage):
                if obj._cdata in storages:
                    key = storages[obj._cdata][0]
                else:
                    key = (keys or str)(len(storages))
                storages[obj._cdata] = (key, obj)
                return ("storage", getattr(torch, obj._pickle_storage_type()), key, location, obj._size())
            return None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(state)
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", mode) as archive:
        archive.writestr(f"{folder}/data.pkl", buffer.getvalue())
        if byteorder is not None:
            archive.writestr(f"{folder}/byteorder", byteorder)
        for key, storage in storages.values():
            data = bytes(storage._untyped_storage)
            if byteorder == "big":
                data = np.frombuffer(data, dtype=f"<u{storage.element_size()}").byteswap().tobytes()
            archive.writestr(f"{folder}/data/{key}", data)
        archive.writestr(f"{folder}/version", "3\n")


@pytest.mark.parametrize("variant", [
    {"folder": "my_model-v2"}, {"byteorder": None}, {"byteorder": "big"},
    {"keys": lambda i: str(94171660808640 + 37 * i)}, {"location": "cuda:0"}, {"compress": True},
], ids=["folder", "no-byteorder", "big-endian", "large-keys", "cuda", "deflated"])
def test_zip_variants_from_other_writers(tmp_path, variant):
    state = OrderedDict(w=torch.randn(4, 5), b=torch.arange(7, dtype=torch.int64),
                        h=torch.randn(3).to(torch.bfloat16), c=torch.randn(2, dtype=torch.complex64))
    state["view"] = state["w"][1:3, ::2]
    path = tmp_path / "variant.pt"
    _handmade_zip(path, state, **variant)
    expected = torch.load(path, weights_only=True, map_location="cpu")
    with weightkit.load(path) as model:
        found = tensors_by_name(model)
        for name, tensor in expected.items():
            assert_same(found[name], tensor)
        if "folder" in variant:
            assert model.metadata["archive_folder"] == "my_model-v2"
        if variant.get("location"):
            assert model.metadata["saved_on"] == ["cuda:0"]
        if variant.get("byteorder", "little") is None:
            assert "not recorded" in model.metadata["byteorder"]


def test_plain_dict_checkpoint_keeps_key_order(tmp_path):
    state = {"z.weight": torch.ones(2, 2), "a.weight": torch.zeros(3, 3)}
    torch.save(state, tmp_path / "plain.pt")
    with weightkit.load(tmp_path / "plain.pt") as model:
        assert [t.name for t in model.tensors()] == ["z.weight", "a.weight"]


# --- the real file from other people, and the command line ---


def test_torch_0_3_pickled_module(real_weights):
    path = real_weights / "torch" / "legacy_torch0.3_fullmodule__hls4ml_two_layer_model.pt"
    expected = torch.load(path, weights_only=False, map_location="cpu").state_dict()
    with weightkit.load(path) as model:
        assert model.format == "torch-legacy"
        assert model.metadata["saved_on"] == ["cuda:0"]
        assert [layer.type_name for layer in model.layers] == ["Linear", "ReLU", "Linear", "Sigmoid"]
        assert [t.name for t in model.tensors()] == list(expected)
        for tensor in model.tensors():
            assert_same(tensor, expected[tensor.name])


def test_inspect_real_torch_0_3_file(real_weights, capsys):
    path = real_weights / "torch" / "legacy_torch0.3_fullmodule__hls4ml_two_layer_model.pt"
    assert main(["inspect", "--json", str(path)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == "torch-legacy"
    assert document["totals"]["tensors"] == 4 and document["totals"]["params"] == 385
    assert document["metadata"]["module_class"] == "torch.nn.modules.container.Sequential"


@pytest.mark.parametrize("kind", ["zip", "legacy", "script", "module"])
def test_inspect_command(tmp_path, capsys, kind):
    path = tmp_path / f"{kind}.pt"
    net = _conv_net()
    if kind == "script":
        torch.jit.save(torch.jit.script(net), path)
    elif kind == "module":
        torch.save(net, path)
    else:
        torch.save(net.state_dict(), path, _use_new_zipfile_serialization=kind == "zip")
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "conv2d" in out and "batch_norm" in out
    assert main(["inspect", "--json", str(path)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == {"zip": "torch-zip", "legacy": "torch-legacy", "script": "torchscript",
                                  "module": "torch-zip"}[kind]
    assert document["totals"]["params"] == sum(p.numel() for p in net.parameters())
    assert document["totals"]["buffers"] == sum(b.numel() for b in net.buffers())


def test_detected_by_content_not_name(tmp_path):
    path = tmp_path / "weights.h5"
    torch.save({"w": torch.ones(1)}, path)
    chosen, _ = detect(path)
    assert chosen.name == "torch"


# --- the tar format (torch 0.1), from fixtures/torch ---


def test_tar_format_fixture_reads_as_torch_load(fixtures):
    path = fixtures / "torch" / "tar_format.pt"
    expected = json.loads((fixtures / "torch" / "tar_format.pt.expected.json").read_text())
    loaded = torch.load(path, weights_only=False, map_location="cpu")
    with weightkit.load(path) as model:
        assert model.format == "torch-tar"
        assert model.metadata["saved_on"] == ["cuda:0"]
        found = tensors_by_name(model)
        assert list(found) == list(expected)
        for name, facts in expected.items():
            assert found[name].read().tolist() == facts["values"]
            assert_same(found[name], loaded[name])


def test_broken_tar_checkpoint_is_one_clear_error(fixtures, tmp_path, capsys):
    data = (fixtures / "torch" / "tar_format.pt").read_bytes()
    path = tmp_path / "cut_tar.pt"
    path.write_bytes(data[:3000])
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken tar archive" in err


# --- numpy values beside the tensors ---


def test_numpy_values_in_a_checkpoint(tmp_path):
    state = {"state_dict": {"w": torch.ones(2)}, "best": np.float64(0.93), "step": np.int64(7),
             "flag": np.bool_(True), "history": np.arange(4.0).reshape(2, 2)}
    torch.save(state, tmp_path / "numpy.pt")
    with weightkit.load(tmp_path / "numpy.pt") as model:
        wrapper = model.metadata["checkpoint"]
        assert wrapper["best"] == 0.93 and wrapper["step"] == 7 and wrapper["flag"] is True
        assert wrapper["history"] == "<ndarray float64[2, 2]>"


def test_numpy_object_arrays_are_refused(tmp_path, capsys):
    torch.save({"w": torch.ones(1), "objects": np.array([print, None], dtype=object)}, tmp_path / "obj.pt")
    assert main(["inspect", str(tmp_path / "obj.pt")]) == 2
    assert "Python objects" in capsys.readouterr().err


@pytest.mark.parametrize("protocol", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_every_pickle_protocol(tmp_path, protocol, legacy):
    import argparse

    state = {"w": torch.randn(3, 4), "args": argparse.Namespace(lr=0.1, name="run"), "b": torch.arange(5)[1:4]}
    path = tmp_path / "protocol.pt"
    torch.save(state, path, pickle_protocol=protocol, _use_new_zipfile_serialization=not legacy)
    expected = torch.load(path, weights_only=False)
    with weightkit.load(path) as model:
        for tensor in model.tensors():
            assert_same(tensor, expected[tensor.name])
        assert model.metadata["checkpoint"]["args"] == {"class": "argparse.Namespace", "lr": 0.1, "name": "run"}


def test_reading_after_close_is_a_clear_error(tmp_path):
    torch.save({"w": torch.ones(3)}, tmp_path / "z.pt")
    torch.save({"w": torch.ones(3)}, tmp_path / "l.pt", _use_new_zipfile_serialization=False)
    for name in ("z.pt", "l.pt"):
        model = weightkit.load(tmp_path / name)
        tensor = model.tensors()[0]
        model.close()
        with pytest.raises(weightkit.ModelClosedError, match="closed"):
            tensor.read()



class TinyDetector(torch.nn.Module):
    """A user-defined module class, as in `torch.save({'model': model, ...})` checkpoints (YOLOv5 style)."""

    def __init__(self):
        super().__init__()
        self.backbone = _conv_net()
        self.head = torch.nn.ModuleList([torch.nn.Linear(4, 2), torch.nn.Linear(4, 3)])
        self.register_buffer("anchors", torch.arange(6.0).reshape(3, 2))
        self.stride = 8


def test_checkpoint_holding_a_pickled_user_module(tmp_path):
    model = TinyDetector().half()
    path = tmp_path / "detector.pt"
    torch.save({"epoch": 3, "model": model, "optimizer": None, "date": "2024-01-01"}, path)
    expected = model.state_dict()
    with weightkit.load(path) as loaded:
        assert loaded.metadata["weights_from"] == "model"
        assert loaded.metadata["checkpoint"]["model"] == f"weights: {len(expected)} tensors (pickled TinyDetector)"
        assert loaded.metadata["module_class"] == f"{__name__}.TinyDetector"
        assert [t.name for t in loaded.tensors()] == list(expected)
        for tensor in loaded.tensors():
            assert_same(tensor, expected[tensor.name])
        assert loaded.layer("head.1").type_name == "Linear"
        assert loaded.layer("anchors").tensors["anchors"].trainable is False
