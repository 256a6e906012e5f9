"""weightkit.formats: the registry of formats, detection by content, and a writer that never overwrites an input.

Issue #10: saving a model read from a sharded safetensors index onto one of its own shards
replaced the shard with a tiny file. `weightkit.formats.write` now refuses every file in
`Model.input_files()` (source, shards, external data) whatever the output format.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import weightkit
from weightkit import FileFormatError, UsageError, formats
from weightkit.model import Layer, Model, Tensor

from ..nets import keras_cnn, torch_cnn

WRITABLE = ["keras-weights", "keras-h5", "keras", "torch", "safetensors", "onnx"]


# ---- files -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """A real two-shard safetensors checkpoint of `torch_cnn` and its index."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("sharded")
    state = {k: v.contiguous() for k, v in torch_cnn().state_dict().items() if v.dtype.is_floating_point}
    keys = list(state)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for name, names in shards.items():
        save_file({k: state[k] for k in names}, folder / name)
    weight_map = {key: name for name, names in shards.items() for key in names}
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return index, [folder / name for name in shards]


@pytest.fixture(scope="module")
def onnx_external(tmp_path_factory):
    """An ONNX model whose weights are in ``net.onnx.data`` beside it."""
    import onnx
    import torch

    folder = tmp_path_factory.mktemp("external")
    exported = folder / "exported.onnx"
    torch.onnx.export(torch_cnn().eval(), (torch.randn(1, 3, 16, 16),), str(exported), dynamo=False)
    path = folder / "net.onnx"
    onnx.save_model(onnx.load(exported), path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="net.onnx.data", size_threshold=0)
    exported.unlink()
    return path, folder / "net.onnx.data"


@pytest.fixture(scope="module")
def samples(tmp_path_factory, sharded):
    """One real file per readable family: Keras .h5, torch .pt, safetensors, ONNX."""
    import torch
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("samples")
    net = torch_cnn().eval()
    keras_cnn().save(folder / "cnn.h5")
    torch.save(net.state_dict(), folder / "cnn.pt")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, folder / "cnn.safetensors")
    torch.onnx.export(net, (torch.randn(1, 3, 16, 16),), str(folder / "cnn.onnx"), dynamo=False)
    return {"keras-h5": folder / "cnn.h5", "torch": folder / "cnn.pt", "safetensors": folder / "cnn.safetensors",
            "onnx": folder / "cnn.onnx", "sharded": sharded[0]}


# ---- never overwrite an input --------------------------------------------------------------------------


@pytest.mark.parametrize("format", WRITABLE)
@pytest.mark.parametrize("shard", [0, 1])
def test_saving_onto_a_shard_is_refused(sharded, format, shard):
    index, shards = sharded
    target = shards[shard]
    before = target.read_bytes()
    with weightkit.load(index) as model:
        with pytest.raises(UsageError, match="is an input"):
            weightkit.save(model, target, format=format, force=True)
        assert all(t.read().size == t.size for t in model.tensors())  # the model still reads its shards
    assert target.read_bytes() == before
    with weightkit.load(target) as shard_model:  # still the safetensors file it was
        assert shard_model.format == "safetensors"


def test_saving_onto_the_index_is_refused(sharded):
    index, _ = sharded
    before = index.read_bytes()
    with weightkit.load(index) as model, pytest.raises(UsageError, match="is an input"):
        weightkit.save(model, index, format="safetensors", force=True)
    assert index.read_bytes() == before


@pytest.mark.parametrize("format", ["onnx", "safetensors", "torch"])
def test_saving_onto_onnx_external_data_is_refused(onnx_external, format):
    import onnx

    path, data = onnx_external
    before = data.read_bytes()
    with weightkit.load(path) as model:
        with pytest.raises(UsageError, match="is an input"):
            formats.write(model, data, format, force=True)
    assert data.read_bytes() == before
    onnx.checker.check_model(str(path))  # the model and its data still load


def test_saving_a_shard_elsewhere_works(sharded, tmp_path):
    import torch

    index, _ = sharded
    with weightkit.load(index) as model:
        weightkit.save(model, tmp_path / "model.pt", format="torch")
        expected = {t.name: t.read() for t in model.tensors()}
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(state) == set(expected)
    for name, value in state.items():
        np.testing.assert_array_equal(value.numpy(), expected[name])


# ---- the registry -----------------------------------------------------------------------------------


def test_registry_names_formats_once_with_onnx_sniffed_last():
    names = [f.name for f in formats.registry()]
    assert len(names) == len(set(names))
    assert set(WRITABLE) | {"sharded"} <= set(names)
    sniffed = [f.name for f in formats.registry() if f.sniff is not None]
    assert sniffed[-1] == "onnx"  # protobuf has no magic number: it is tried after every signature
    assert repr(formats.by_name("onnx")) == "<Format onnx>"


@pytest.mark.parametrize("family", ["keras-h5", "torch", "safetensors", "onnx", "sharded"])
def test_detect_goes_by_content_not_suffix(samples, tmp_path, family):
    source = samples[family]
    if family == "sharded":
        disguised = source  # an index names its shards relative to its folder: keep it there
    else:
        disguised = tmp_path / "weights.h5" if family != "keras-h5" else tmp_path / "weights.onnx"
        shutil.copyfile(source, disguised)
    chosen, _ = formats.detect(disguised)
    assert chosen.name == family
    with formats.read(disguised) as model:
        assert model.tensors()


@pytest.mark.parametrize("content, message", [(b"", "empty"), (b"hello, this is text\n", "not a weight file"),
                                              (bytes(range(200, 256)) * 4, "not a weight file")])
def test_detect_refuses_what_it_cannot_read(tmp_path, content, message):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(FileFormatError, match=message):
        formats.detect(path)


def test_detect_a_missing_file(tmp_path):
    with pytest.raises(FileFormatError):
        formats.detect(tmp_path / "absent.pt")


def test_writable_and_by_name():
    assert sorted(f.name for f in formats.writable()) == sorted(WRITABLE)
    assert formats.writable() == [f for f in formats.registry() if f.write is not None]  # in registry order
    assert all(f.write is not None for f in formats.writable())
    assert formats.by_name("torch").suffixes[0] == ".pt"
    with pytest.raises(UsageError, match="'sharded'") as refused:
        formats.by_name("sharded")  # read, never written
    assert "safetensors" in refused.value.hint


@pytest.mark.parametrize("read_as, written_as", [("keras-h5", "keras-h5"), ("keras-weights-h5", "keras-h5"),
                                                 ("keras-zip", "keras"), ("torch-legacy", "torch"),
                                                 ("torchscript", "torch"), ("onnx", "onnx"),
                                                 ("safetensors", "safetensors"), ("unknown", "safetensors")])
def test_output_format_for(read_as, written_as):
    assert formats.output_format_for(Model(format=read_as)).name == written_as


def _tiny_model() -> Model:
    weight = Tensor.from_array("fc.weight", np.arange(6, dtype=np.float32).reshape(2, 3), role="weight", layout="OI")
    return Model([Layer("fc", "dense", tensors={"weight": weight})], format="safetensors")


@pytest.mark.parametrize("name, expected", [("x.weights.h5", "keras-weights"), ("x.h5", "keras-h5"),
                                            ("X.HDF5", "keras-h5"), ("x.keras", "keras"), ("x.pth", "torch"),
                                            ("x.bin", "torch"), ("x.safetensors", "safetensors"), ("x.onnx", "onnx")])
def test_output_format_from_suffix(name, expected):
    assert formats._from_suffix(name).name == expected


def test_weights_h5_suffix_writes_a_keras_weight_store(samples, tmp_path):
    """``.weights.h5`` is Keras 3's weight store (Keras loads it), not a legacy .h5."""
    with weightkit.load(samples["keras-h5"]) as model:
        weightkit.save(model, tmp_path / "cnn.weights.h5")
    net = keras_cnn()
    net.load_weights(tmp_path / "cnn.weights.h5")
    import keras

    reference = keras.models.load_model(samples["keras-h5"], compile=False)
    for mine, theirs in zip(net.weights, reference.weights):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


def test_unknown_output_formats_are_usage_errors(tmp_path):
    model = _tiny_model()
    with pytest.raises(UsageError, match="cannot tell the output format"):
        formats.write(model, tmp_path / "model.xyz")
    with pytest.raises(UsageError, match="cannot write 'tflite'"):
        formats.write(model, tmp_path / "model.onnx", "tflite")
    assert not list(tmp_path.iterdir())
