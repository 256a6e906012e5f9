"""``weightkit inspect`` end to end: the views, JSON, and one clear line for every bad file."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.cli import run
from weightkit.cli import main
from weightkit.formats import _probe

CNN = "tfkeras/tfk_cnn_full.h5"



def test_table_shows_format_writer_layers_and_totals(capsys, fixtures):
    code, out, err = run(capsys, "inspect", str(fixtures / CNN))
    assert code == 0 and err == ""
    assert "keras-h5" in out and "tf.keras 2.21.0" in out and "tensorflow backend" in out
    assert "stem_conv" in out and "HWIO" in out
    assert "9,410" in out and "trainable 5,682" in out
    assert "optimizer" in out and "not counted above" in out
    assert "(None, 32, 32, 3)" in out and "(None, 10)" in out


def test_tree_expands_nested_models(capsys, fixtures):
    code, out, _ = run(capsys, "inspect", "--tree", str(fixtures / CNN))
    assert code == 0
    assert "inner_block" in out and "inner_conv" in out and "inner_conv/kernel:0" in out


def test_tensors_lists_every_tensor(capsys, fixtures):
    code, out, _ = run(capsys, "inspect", "--tensors", str(fixtures / CNN))
    assert code == 0
    assert "inner_block/inner_conv" in out and "stem_bn/moving_variance:0" in out and "iteration:0" in out


def test_json_is_one_document_matching_the_model(capsys, fixtures):
    code, out, err = run(capsys, "inspect", "--json", str(fixtures / CNN))
    assert code == 0 and err == ""
    document = json.loads(out)
    assert document["schema_version"] == 2
    assert document["format"] == "keras-h5" and document["has_graph"] is True
    assert document["totals"]["params"] == 9410
    assert document["inputs"][0]["shape"] == ["batch", 32, 32, 3]
    layer = next(layer for layer in document["layers"] if layer["path"] == "stem_conv")
    assert layer["tensors"][0] == {"name": "stem_conv/kernel:0", "role": "weight", "shape": [3, 3, 3, 8],
                                   "dtype": "float32", "layout": "HWIO", "trainable": True, "nbytes": 864}


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "inspect" in capsys.readouterr().out


# ---- bad input: exit 2, one line on stderr, no traceback -------------------------------------


def _truncated(tmp_path, fixtures):
    path = tmp_path / "truncated.h5"
    data = (fixtures / CNN).read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def _non_keras_hdf5(tmp_path, fixtures):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as file:
        file["images"] = np.zeros((4, 4))
        file.create_group("labels")
    return path


def _external_link(tmp_path, fixtures):
    target = tmp_path / "secret.h5"
    with h5py.File(target, "w") as file:
        file["x"] = np.zeros(3)
    path = tmp_path / "link.h5"
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = np.array([b"dense"])
        group = file.create_group("dense")
        group.attrs["weight_names"] = np.array([b"dense/kernel:0"])
        group["dense/kernel:0"] = h5py.ExternalLink(str(target), "/x")
    return path


def _random_bytes(tmp_path, fixtures):
    path = tmp_path / "random.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def _empty(tmp_path, fixtures):
    path = tmp_path / "empty.h5"
    path.write_bytes(b"")
    return path


def _text(tmp_path, fixtures):
    path = tmp_path / "notes.h5"
    path.write_text("this is not a weight file\n")
    return path


def _truncated_keras_zip(tmp_path, fixtures):
    path = tmp_path / "cut.keras"
    data = (fixtures / "tfkeras/tfk_cnn.keras").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _zip_of_something_else(tmp_path, fixtures):
    base = tmp_path / "docs"
    base.mkdir()
    (base / "readme.txt").write_text("hello")
    return shutil.make_archive(str(tmp_path / "docs"), "zip", base)


def _missing_dataset(tmp_path, fixtures):
    path = tmp_path / "missing.h5"
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = np.array([b"dense"])
        file.create_group("dense").attrs["weight_names"] = np.array([b"dense/kernel:0"])
    return path


def _missing_layer_group(tmp_path, fixtures):
    path = tmp_path / "nogroup.h5"
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = np.array([b"dense", b"ghost"])
        file.create_group("dense").attrs["weight_names"] = np.zeros(0)
    return path


def _bad_config_json(tmp_path, fixtures):
    path = tmp_path / "badconfig.h5"
    shutil.copy(fixtures / CNN, path)
    with h5py.File(path, "r+") as file:
        file.attrs["model_config"] = "{not json"
    return path


BAD_FILES = {
    "missing path": (lambda tmp_path, fixtures: tmp_path / "nope.h5", "no such file"),
    "directory": (lambda tmp_path, fixtures: tmp_path, "is a directory"),
    "empty file": (_empty, "is empty"),
    "random bytes": (_random_bytes, "not a weight file"),
    "text file": (_text, "not a weight file"),
    "truncated h5": (_truncated, "truncated"),
    "hdf5 that is not keras": (_non_keras_hdf5,
                               "not a Keras weight file: 1 groups and 1 datasets, top level: images, labels"),
    "external link": (_external_link, "external link"),
    "truncated .keras": (_truncated_keras_zip, "zip"),
    "zip of something else": (_zip_of_something_else, "neither a .keras model nor a checkpoint"),
    "weight without dataset": (_missing_dataset, "no such dataset"),
    "layer without group": (_missing_layer_group, "has no group"),
    "model_config not json": (_bad_config_json, "not valid JSON"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, fixtures, case):
    make, expected = BAD_FILES[case]
    path = make(tmp_path, fixtures)
    code, out, err = run(capsys, "inspect", str(path))
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("weightkit: error: ")
    assert expected in lines[0]
    assert "Traceback" not in err


def test_unreadable_file_is_one_line(capsys, tmp_path, fixtures, monkeypatch):
    path = tmp_path / "locked.h5"
    shutil.copy(fixtures / CNN, path)
    path.chmod(0)  # refused to every user but root, whom permission bits do not stop (CI runs as root)
    real_open = open

    def open_as_the_kernel_does_for_others(file, *args, **kwargs):
        if Path(file) == path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real_open(file, *args, **kwargs)

    # The probe's `open` is the first read of a file's bytes: refuse it there for root too.
    monkeypatch.setattr(_probe, "open", open_as_the_kernel_does_for_others, raising=False)
    code, out, err = run(capsys, "inspect", str(path))
    assert code == 2 and out == ""
    assert err == f"weightkit: error: {path}: cannot read it: Permission denied\n"
