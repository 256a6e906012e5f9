"""``weightkit diff`` and ``weightkit check`` from the command line: exit codes, views, JSON, --fix."""

from __future__ import annotations

import json

import pytest

from tests.cli import run
from tests.nets import keras_cnn, torch_resnet

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")



@pytest.fixture
def two_keras(tmp_path):
    keras.utils.set_random_seed(0)
    keras_cnn().save(tmp_path / "a.h5")
    keras_cnn().save(tmp_path / "same.keras")
    keras_cnn(classes=5).save(tmp_path / "b.h5")
    return tmp_path


def test_diff_exit_0_when_architectures_match(capsys, two_keras):
    code, out, _ = run(capsys, "diff", two_keras / "a.h5", two_keras / "same.keras")
    assert code == 0 and "the two match" in out


def test_diff_exit_1_and_names_the_difference(capsys, two_keras):
    code, out, _ = run(capsys, "diff", two_keras / "a.h5", two_keras / "b.h5")
    assert code == 1
    assert "fc" in out and "reshaped" in out and "the two differ" in out


def test_diff_json(capsys, two_keras):
    code, out, _ = run(capsys, "diff", "--json", two_keras / "a.h5", two_keras / "b.h5")
    document = json.loads(out)
    assert code == 1 and document["differs"] is True and document["schema_version"] == 2
    fc = next(p for p in document["pairs"] if p["a"] and p["a"]["path"] == "fc")
    assert fc["matched_by"] == "name" and fc["changes"][0]["what"] == "reshaped"


def test_check_into_with_fix_writes_a_loadable_checkpoint(capsys, tmp_path):
    torch.save({f"module.{k}": v for k, v in torch_resnet().state_dict().items()}, tmp_path / "ckpt.pt")
    torch.save(torch_resnet().state_dict(), tmp_path / "model.pt")
    code, out, _ = run(capsys, "check", tmp_path / "ckpt.pt", "--into", tmp_path / "model.pt",
                       "--fix", tmp_path / "fixed.pt")
    assert code == 0 and "strip 'module.'" in out and "fix:" in out  # the fix loads
    state = torch.load(tmp_path / "fixed.pt", weights_only=True)
    torch_resnet().load_state_dict(state, strict=True)
    code, out, _ = run(capsys, "check", tmp_path / "fixed.pt", "--into", tmp_path / "model.pt")
    assert code == 0 and "fits" in out


def test_check_junction_json(capsys, tmp_path):
    keras.utils.set_random_seed(0)
    keras_cnn().save(tmp_path / "a.h5")
    head = keras.Sequential([keras.Input((32,)), keras.layers.Dense(3, name="head_fc")])
    head.save(tmp_path / "head.h5")
    code, out, _ = run(capsys, "check", "--json", tmp_path / "a.h5", tmp_path / "head.h5")
    document = json.loads(out)
    assert code == 1 and document["ok"] is False
    finding = document["findings"][0]
    assert finding["kind"] == "junction" and "'head_fc' expects 32" in finding["message"]


@pytest.mark.parametrize("argv", [
    ["check", "only-one.h5"],
    ["check", "a.h5", "b.h5", "--into", "c.h5"],
    ["check", "a.h5", "b.h5", "--fix", "out.pt"],
])
def test_check_usage_errors_exit_2(capsys, tmp_path, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.startswith("weightkit: error:") and len(err.strip().splitlines()) == 1


def test_fix_never_overwrites_without_force(capsys, tmp_path):
    torch.save(torch_resnet().state_dict(), tmp_path / "model.pt")
    (tmp_path / "out.pt").write_bytes(b"keep me")
    code, _, err = run(capsys, "check", tmp_path / "model.pt", "--into", tmp_path / "model.pt",
                       "--fix", tmp_path / "out.pt")
    assert code == 2 and "already exists" in err
    assert (tmp_path / "out.pt").read_bytes() == b"keep me"
