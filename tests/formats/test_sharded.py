"""Hugging Face sharded checkpoints open as one model; broken or hostile indexes fail clearly."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

import weightkit
from weightkit import Model
from weightkit.cli import main
from weightkit.formats import detect, sharded

INDEX = "model.safetensors.index.json"


def _state_dict() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(8 * 30 * 30, 16), torch.nn.Linear(16, 4),
    )
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def _shard(state: dict[str, torch.Tensor], count: int) -> list[dict[str, torch.Tensor]]:
    """Split a state dict into ``count`` shards of consecutive keys, like a size-limited split."""
    names = list(state)
    cuts = np.array_split(np.arange(len(names)), count)
    return [{names[i]: state[names[i]] for i in cut} for cut in cuts]


def _write_checkpoint(folder: Path, state: dict[str, torch.Tensor], count: int = 3, *, suffix: str = "safetensors",
                      save=None) -> dict:
    """Shards named as huggingface_hub names them, and the index it writes beside them."""
    folder.mkdir(parents=True, exist_ok=True)
    save = save or (lambda tensors, path: safetensors.torch.save_file(tensors, path, metadata={"format": "pt"}))
    weight_map = {}
    for number, tensors in enumerate(_shard(state, count), start=1):
        name = f"model-{number:05d}-of-{count:05d}.{suffix}"
        save(tensors, folder / name)
        weight_map.update({key: name for key in tensors})
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    index_name = INDEX if suffix == "safetensors" else "pytorch_model.bin.index.json"
    (folder / index_name).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return index


def test_three_shards_open_as_one_model(tmp_path):
    state = _state_dict()
    index = _write_checkpoint(tmp_path, state)
    with weightkit.load(tmp_path / INDEX) as model:
        assert model.format == "sharded-safetensors" and model.framework == "pytorch"
        assert [t.name for t in model.tensors()] == list(index["weight_map"])
        for tensor in model.tensors():
            assert np.array_equal(tensor.read(), state[tensor.name].numpy()), tensor.name
        assert model.metadata["total_size"] == index["metadata"]["total_size"]
        assert model.metadata["shards"] == 3
        assert model.metadata["safetensors_metadata"] == {"format": "pt"}
        assert {layer.name: layer.kind for layer in model.layers} == {"0": "conv2d", "1": "batch_norm",
                                                                      "4": "dense", "5": "dense"}
        assert model.layer("0").tensors["weight"].layout == "OIHW"
        assert not model.extras


def test_closing_the_model_closes_every_shard(tmp_path):
    _write_checkpoint(tmp_path, _state_dict())
    model = weightkit.load(tmp_path / INDEX)
    assert len(model.resources(Model)) == 3
    shards = model.resources(Model)
    model.close()
    assert all(not shard.resources(object) for shard in shards)
    with pytest.raises(weightkit.ModelClosedError, match="closed"):
        model.tensors()[0].read()


def test_sharded_checkpoint_saves_as_one_file_but_never_over_a_shard(tmp_path):
    state = _state_dict()
    _write_checkpoint(tmp_path, state)
    with weightkit.load(tmp_path / INDEX) as model:
        with pytest.raises(weightkit.UsageError, match="is an input"):
            weightkit.save(model, tmp_path / "model-00002-of-00003.safetensors", force=True)
        weightkit.save(model, tmp_path / "merged.safetensors")
    merged = safetensors.numpy.load_file(tmp_path / "merged.safetensors")
    assert sorted(merged) == sorted(state)
    assert all(np.array_equal(merged[name], tensor.numpy()) for name, tensor in state.items())


def test_inspect_shows_the_checkpoint(tmp_path, capsys):
    _write_checkpoint(tmp_path, _state_dict())
    assert main(["inspect", str(tmp_path / INDEX)]) == 0
    out = capsys.readouterr().out
    assert "sharded-safetensors" in out and "total size" in out and "shards" in out
    assert main(["inspect", "--json", str(tmp_path / INDEX)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["metadata"]["shards"] == 3


def test_index_found_by_content_under_any_name(tmp_path):
    _write_checkpoint(tmp_path, _state_dict())
    (tmp_path / INDEX).rename(tmp_path / "weights.json")
    assert detect(tmp_path / "weights.json")[0] is sharded.FORMAT
    (tmp_path / "other.json").write_text('{"architectures": ["Bert"], "hidden_size": 8}')
    with pytest.raises(weightkit.FileFormatError, match="not a weight file"):
        detect(tmp_path / "other.json")


def test_index_with_long_metadata_is_still_found(tmp_path):
    index = _write_checkpoint(tmp_path, _state_dict())
    index["metadata"]["notes"] = "x" * 10_000
    (tmp_path / "renamed.json").write_text(json.dumps({"metadata": index["metadata"],
                                                       "weight_map": index["weight_map"]}))
    with weightkit.load(tmp_path / "renamed.json") as model:
        assert model.metadata["index_metadata"] == {"notes": "x" * 10_000}


def test_hugging_face_cache_links_into_blobs_are_followed(tmp_path):
    repo = tmp_path / "models--org--name"
    _write_checkpoint(repo / "blobs", _state_dict())
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    for file in (repo / "blobs").iterdir():
        (snapshot / file.name).symlink_to(os.path.relpath(file, snapshot))
    with weightkit.load(snapshot / INDEX) as model:
        assert model.metadata["shards"] == 3


def test_unlisted_shard_tensors_are_kept_apart_and_reported(tmp_path):
    state = _state_dict()
    index = _write_checkpoint(tmp_path, state)
    del index["weight_map"]["5.bias"]
    (tmp_path / INDEX).write_text(json.dumps(index))
    with weightkit.load(tmp_path / INDEX) as model:
        assert "5.bias" not in [t.name for t in model.tensors()]
        assert [t.name for t in model.extras["not_in_index"]] == ["5.bias"]
        assert "1 shard tensor(s) missing from weight_map: 5.bias" in model.metadata["not_in_index"]


@pytest.mark.skipif(importlib.util.find_spec("weightkit.formats.torch.read") is None,
                    reason="weightkit.formats.torch.read (PyTorch checkpoints) is not written yet")
def test_bin_shards_are_read_through_the_torch_reader(tmp_path):
    state = _state_dict()
    _write_checkpoint(tmp_path, state, suffix="bin", save=lambda tensors, path: torch.save(tensors, path))
    with weightkit.load(tmp_path / "pytorch_model.bin.index.json") as model:
        assert model.metadata["shards"] == 3
        for tensor in model.tensors():
            assert np.array_equal(tensor.read(), state[tensor.name].numpy()), tensor.name


# --------------------------------------------------------------------------- broken and hostile indexes


def _edit_index(folder: Path, edit) -> Path:
    index = json.loads((folder / INDEX).read_text())
    edit(index)
    (folder / INDEX).write_text(json.dumps(index))
    return folder / INDEX


def _missing_shard(folder: Path) -> Path:
    (folder / "model-00002-of-00003.safetensors").unlink()
    return folder / INDEX


def _escaping_symlink(folder: Path) -> Path:
    outside = folder.parent / "outside.safetensors"
    safetensors.numpy.save_file({"x": np.ones(1, np.float32)}, outside)
    shard = folder / "model-00001-of-00003.safetensors"
    shard.unlink()
    shard.symlink_to(outside)
    return folder / INDEX


def _overwrite(path: Path, data: bytes, folder: Path) -> Path:
    path.write_bytes(data)
    return folder / INDEX


def _set(key: str, file: str):
    return lambda index: index["weight_map"].__setitem__(key, file)


BROKEN = {
    "missing_shard": (_missing_shard, "'model-00002-of-00003.safetensors' listed in the index does not exist"),
    "absolute_path": (lambda f: _edit_index(f, _set("0.weight", "/etc/passwd")), "is an absolute path"),
    "parent_path": (lambda f: _edit_index(f, _set("0.weight", "../model-00001-of-00003.safetensors")),
                    "climbs out of the model's folder"),
    "windows_drive": (lambda f: _edit_index(f, _set("0.weight", "C:\\weights.safetensors")), "absolute path"),
    "escaping_symlink": (_escaping_symlink, "outside the model's folder"),
    "listed_but_absent": (lambda f: _edit_index(f, _set("0.extra", "model-00001-of-00003.safetensors")),
                          "'0.extra' (not in model-00001-of-00003.safetensors)"),
    "in_another_shard": (lambda f: _edit_index(f, _set("5.bias", "model-00001-of-00003.safetensors")),
                         "it is in model-00003-of-00003.safetensors"),
    "shard_not_a_string": (lambda f: _edit_index(f, _set("0.weight", 3)), "must name a shard file"),
    "no_weight_map": (lambda f: _edit_index(f, lambda index: index.pop("weight_map")), 'no "weight_map" object'),
    "bad_json": (lambda f: _overwrite(f / INDEX, b'{"weight_map": {"a": ', f), "not valid JSON"),
    "nested_index": (lambda f: _edit_index(f, _set("0.weight", INDEX)), "is itself an index"),
    "broken_shard": (lambda f: _overwrite(f / "model-00003-of-00003.safetensors", b"\x10" + bytes(7) + b"{}", f),
                     "model-00003-of-00003.safetensors: safetensors header length is 16 bytes but only 2"),
}
UNSAFE = {"absolute_path", "parent_path", "windows_drive", "escaping_symlink"}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_index_is_one_clear_line_and_exit_2(tmp_path, capsys, case):
    folder = tmp_path / "checkpoint"
    _write_checkpoint(folder, _state_dict())
    make, message = BROKEN[case]
    path = make(folder)
    assert main(["inspect", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("weightkit: error: ")
    assert message in err
    assert "--debug" not in err
    if case in UNSAFE:
        with pytest.raises(weightkit.UnsafeFileError):
            weightkit.load(path)


def test_shards_opened_before_an_error_are_closed(tmp_path, monkeypatch):
    _write_checkpoint(tmp_path, _state_dict())
    (tmp_path / "model-00003-of-00003.safetensors").write_bytes(b"broken.safetensors")
    opened = []
    original = weightkit.formats.safetensors.file._Source.__init__

    def tracking(self, path):
        original(self, path)
        opened.append(self)

    monkeypatch.setattr(weightkit.formats.safetensors.file._Source, "__init__", tracking)
    with pytest.raises(weightkit.FileFormatError):
        weightkit.load(tmp_path / INDEX)
    assert opened and all(source.handle.closed for source in opened)


@pytest.mark.parametrize("name", ["hf-cache-blobs-to-root", "hf-cache-blobs-elsewhere", "hf-cache-blobs-to-root-passwd",
                                  "shard-link-to-passwd", "shard-hard-link", "shard-fifo", "shard-parent-name",
                                  "shard-nested-parent-name", "shard-absolute-name"])
def test_shards_outside_the_folder_are_refused_whatever_the_layout(tmp_path, name):
    """One rule with ONNX external data: ``repo/blobs -> /`` no longer makes every path an allowed root."""
    from tests.hostile.sharded_cases import CASES

    case = next(c for c in CASES if c.name == f"sharded/{name}")
    with pytest.raises(weightkit.UnsafeFileError, match=case.match):
        weightkit.load(case.build(tmp_path))


def test_real_hugging_face_cache_layout_still_reads(tmp_path):
    from tests.hostile.sharded_cases import _hf_cache

    with weightkit.load(_hf_cache(tmp_path)) as model:
        assert bytes(model.tensors()[0].read()) == b"SECRET!!"
