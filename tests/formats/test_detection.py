"""Files weightkit cannot read are named for what they are: a truncated ONNX model, a TensorFlow SavedModel
(its saved_model.pb or its folder); a TorchScript archive is a module whose architecture is code."""

from __future__ import annotations

import json

import pytest

import weightkit
from tests.cli import run
from tests.nets import torch_cnn

torch = pytest.importorskip("torch")


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def saved_model_pb() -> bytes:
    """``SavedModel {saved_model_schema_version: 1, meta_graphs: [MetaGraphDef {meta_info_def {tags: "serve",
    tensorflow_version: "2.15.0"}, graph_def {versions {producer: 1700}}}]}``, field numbers from
    tensorflow/core/protobuf/saved_model.proto and meta_graph.proto."""
    meta_info = length_delimited(4, b"serve") + length_delimited(5, b"2.15.0")
    graph_def = length_delimited(4, varint(1 << 3) + varint(1700))
    meta_graph = length_delimited(1, meta_info) + length_delimited(2, graph_def)
    return varint(1 << 3) + varint(1) + length_delimited(2, meta_graph)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("detection")
    torch.onnx.export(torch_cnn().eval(), (torch.zeros(1, 3, 16, 16),), folder / "cnn.onnx", dynamo=False)
    return folder / "cnn.onnx"


@pytest.mark.parametrize("kept", [0.5, 100])
def test_a_truncated_onnx_model_is_named_as_one(capsys, tmp_path, exported, kept):
    with weightkit.load(exported) as whole:
        assert whole.format == "onnx" and whole.has_graph
    data = exported.read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * kept) if kept < 1 else kept])
    code, out, err = run(capsys, "inspect", path)
    assert code == 2 and not out and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "a truncated ONNX model" in err and "fetch the file again" in err and "starts with text" not in err
    with pytest.raises(weightkit.FileFormatError, match="truncated ONNX model"):
        weightkit.load(path)


def test_a_savedmodel_protobuf_and_its_folder_are_named_as_such(capsys, tmp_path):
    folder = tmp_path / "exported_model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(saved_model_pb())
    for path in (folder / "saved_model.pb", folder):
        code, out, err = run(capsys, "inspect", path)
        assert code == 2 and not out and len(err.strip().splitlines()) == 1
        assert "TensorFlow SavedModel" in err and "ONNX protobuf" not in err and "tf2onnx" in err
        with pytest.raises(weightkit.UnsupportedError, match="TensorFlow SavedModel"):
            weightkit.load(path)
    assert "SavedModel folder" in run(capsys, "inspect", folder)[2]


def test_a_torchscript_archive_is_a_module_whose_architecture_is_code(capsys, tmp_path):
    torch.jit.script(torch_cnn().eval()).save(tmp_path / "cnn_script.pt")
    code, out, _ = run(capsys, "inspect", tmp_path / "cnn_script.pt")
    format_line = next(line for line in out.splitlines() if line.startswith("format"))
    assert code == 0 and "TorchScript module" in format_line and "architecture as TorchScript code" in format_line
    assert "weights only" not in out and "no architecture" not in out
    code, out, _ = run(capsys, "inspect", tmp_path / "cnn_script.pt", "--json")
    metadata = json.loads(out)["metadata"]
    assert code == 0 and "TorchScript module" in metadata["description"]
