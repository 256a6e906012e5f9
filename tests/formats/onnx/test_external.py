"""ONNX external data: read equal to onnx, and refused (exit 2) whenever it points outside the model's folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import weightkit
from tests.formats.onnx.test_read import _f32, _model, _value, assert_reads_like_onnx
from weightkit.cli import main
from weightkit.errors import FileFormatError, UnsafeFileError


def saved_with_external_data(folder: Path, **options) -> Path:
    """A model saved by onnx itself with its weights in external data."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"w1": _f32(32, 64), "b1": _f32(64), "w2": _f32(64, 8), "small": _f32(2)}
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("Add", ["h", "b1"], ["hb"], name="bias1"),
             helper.make_node("MatMul", ["hb", "w2"], ["y0"], name="fc2"),
             helper.make_node("Mul", ["y0", "k"], ["y"], name="scale")]
    constant = helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(_f32(8), "k"))
    proto = _model([constant, *nodes], [_value("x", [1, 32])], [_value("y", [1, 8])],
                   [numpy_helper.from_array(a, n) for n, a in arrays.items()])
    path = folder / "model.onnx"
    onnx.save_model(proto, path, save_as_external_data=True, size_threshold=0, **options)
    return path


def pointing_to(folder: Path, location: str, data: bytes | None = None, length: int | None = None,
                offset: int = 0) -> Path:
    """A one-tensor model whose tensor's external data is at ``location``."""
    folder.mkdir(parents=True, exist_ok=True)
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 4], data_location=TensorProto.EXTERNAL)
    entries = {"location": location, "offset": str(offset)}
    if length is not None:
        entries["length"] = str(length)
    for key, value in entries.items():
        tensor.external_data.add(key=key, value=value)
    proto = _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [_value("x", [1, 4])],
                   [_value("y", [1, 4])], [tensor])
    path = folder / "model.onnx"
    path.write_bytes(proto.SerializeToString())
    if data is not None:
        (folder / location).parent.mkdir(parents=True, exist_ok=True)
        (folder / location).write_bytes(data)
    return path


@pytest.mark.parametrize("options", [{}, {"all_tensors_to_one_file": False}, {"location": "sub/weights.bin"}],
                         ids=["one-file", "file-per-tensor", "subfolder"])
def test_external_data_reads_like_onnx(tmp_path, options):
    if "location" in options:
        (tmp_path / "m" / "sub").mkdir(parents=True)
    path = saved_with_external_data(tmp_path / "m", **options)
    with weightkit.load(path) as model:
        assert assert_reads_like_onnx(model, path) == 5
        assert model.layer("fc1").tensors["weight"].read().shape == (32, 64)
        assert model.metadata["external_data"]


def test_external_data_checks_happen_when_loading_and_reads_stay_lazy(tmp_path):
    path = pointing_to(tmp_path, "w.bin", np.arange(16, dtype=np.float32).tobytes())
    with weightkit.load(path) as model:
        weight = model.layer("mm").tensors["weight"]
        (tmp_path / "w.bin").write_bytes(np.ones(16, np.float32).tobytes())  # same file, new bytes
        assert weight.read().sum() == 16


@pytest.mark.parametrize("location", ["../outside.bin", "a/../../outside.bin", "sub/../../outside.bin",
                                      "..\\outside.bin", "/etc/passwd", "C:\\weights.bin", "", "."])
def test_locations_that_leave_the_folder_are_refused(tmp_path, capsys, location):
    (tmp_path / "outside.bin").write_bytes(bytes(64))
    path = pointing_to(tmp_path / "model", location)
    with pytest.raises(UnsafeFileError, match="refused"):
        weightkit.load(path)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused" in err and "Traceback" not in err


def test_symlink_to_a_file_outside_is_refused(tmp_path, capsys):
    (tmp_path / "secret.bin").write_bytes(bytes(64))
    path = pointing_to(tmp_path / "model", "w.bin")
    os.symlink(tmp_path / "secret.bin", tmp_path / "model" / "w.bin")
    assert main(["inspect", str(path)]) == 2
    assert "outside the model's folder" in capsys.readouterr().err


def test_symlink_inside_the_folder_reads_the_file_it_names(tmp_path):
    """weightkit's one rule for files beside a model: a regular file inside its folder once links are
    resolved (so a model in a Hugging Face cache, whose files are links into ``blobs``, reads)."""
    data = np.arange(16, dtype=np.float32)
    path = pointing_to(tmp_path, "real.bin", data.tobytes())
    os.symlink("real.bin", tmp_path / "w.bin")
    path = pointing_to(tmp_path, "w.bin")
    with weightkit.load(path) as model:
        np.testing.assert_array_equal(model.layer("mm").tensors["weight"].read().reshape(-1), data)


def test_symlinked_parent_folder_is_refused(tmp_path, capsys):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "w.bin").write_bytes(bytes(64))
    path = pointing_to(tmp_path / "model", "linked/w.bin")
    os.symlink(tmp_path / "elsewhere", tmp_path / "model" / "linked")
    assert main(["inspect", str(path)]) == 2
    assert "outside the model's folder" in capsys.readouterr().err


def test_non_regular_files_and_hard_links_are_refused(tmp_path):
    path = pointing_to(tmp_path / "a", "w.bin")
    (tmp_path / "a" / "w.bin").mkdir()
    with pytest.raises(UnsafeFileError, match="not a regular file"):
        weightkit.load(path)
    path = pointing_to(tmp_path / "b", "w.bin")
    os.mkfifo(tmp_path / "b" / "w.bin")
    with pytest.raises(UnsafeFileError, match="not a regular file"):
        weightkit.load(path)
    path = pointing_to(tmp_path / "c", "w.bin", bytes(64))
    os.link(tmp_path / "c" / "w.bin", tmp_path / "c" / "twin.bin")
    with pytest.raises(UnsafeFileError, match="hard links"):
        weightkit.load(path)


@pytest.mark.parametrize("data, length, offset, problem", [
    (bytes(40), None, 0, "need 64"),          # truncated data file
    (bytes(64), 64, 8, "has only 64"),        # range past the end
    (bytes(64), 32, 0, "need 64"),            # length that does not fit the shape
    (None, None, 0, "does not exist"),        # no data file at all
])
def test_broken_external_references_are_one_clear_error(tmp_path, capsys, data, length, offset, problem):
    path = pointing_to(tmp_path, "w.bin", data, length=length, offset=offset)
    with pytest.raises(FileFormatError, match=problem):
        weightkit.load(path)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "w.bin" in err


def test_bad_offsets_are_refused(tmp_path):
    tensor_path = pointing_to(tmp_path, "w.bin", bytes(64))
    proto = onnx.load(tensor_path, load_external_data=False)
    proto.graph.initializer[0].external_data[1].value = "-8"
    tensor_path.write_bytes(proto.SerializeToString())
    with pytest.raises(FileFormatError, match="not a non-negative integer of at most 19 ASCII digits"):
        weightkit.load(tensor_path)


def test_a_file_swapped_after_loading_is_not_read(tmp_path):
    path = pointing_to(tmp_path, "w.bin", bytes(64))
    (tmp_path / "secret.bin").write_bytes(np.ones(16, np.float32).tobytes())
    with weightkit.load(path) as model:
        os.unlink(tmp_path / "w.bin")
        os.symlink(tmp_path / "secret.bin", tmp_path / "w.bin")
        with pytest.raises(UnsafeFileError):
            model.layer("mm").tensors["weight"].read()


@pytest.mark.parametrize("offset", ["\u0660", "\u00b2", "9" * 5000, "\uff10", "0_0", " 0", "99999999999999999999"])
def test_offsets_are_plain_ascii_numbers_only(tmp_path, offset):
    """int() reads Arabic-Indic and fullwidth digits, refuses '²' with a raw ValueError, and 5,000 digits."""
    path = pointing_to(tmp_path, "w.bin", bytes(64))
    proto = onnx.load(path, load_external_data=False)
    proto.graph.initializer[0].external_data[1].value = offset
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(FileFormatError, match="ASCII digits"):
        weightkit.load(path)


def test_model_in_a_hugging_face_cache_reads_its_external_data(tmp_path):
    """Model and data are relative links into the repository's ``blobs``: allowed, and read."""
    from tests.hostile.onnx_cases import _hf_cache

    with weightkit.load(_hf_cache(tmp_path)) as model:
        np.testing.assert_array_equal(model.layer("mm").tensors["weight"].read(), np.eye(4, dtype=np.float32))


def test_hugging_face_layout_with_blobs_linked_elsewhere_is_refused(tmp_path):
    from tests.hostile.onnx_cases import _hf_cache_escape

    with pytest.raises(UnsafeFileError, match="outside the model's folder"):
        weightkit.load(_hf_cache_escape(tmp_path))
