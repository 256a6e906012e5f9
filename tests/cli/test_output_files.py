"""Writers never replace a file their inputs were read from, whatever --force says and however it is named
(issue 13 item 4), and output folders that cannot be made are one line (item 9)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.cli import run


@pytest.fixture
def parts(tmp_path):
    """A two-layer checkpoint, its backbone and its head (torch zips), and a copy of the backbone."""
    from weightkit import save
    from weightkit.model import Layer, Model, Tensor

    def model(*names):
        layers = [Layer(name, "dense", tensors={
            "weight": Tensor.from_array(f"{name}.weight", np.ones((4, 4), "float32"), role="weight", layout="OI"),
            "bias": Tensor.from_array(f"{name}.bias", np.zeros(4, "float32"), role="bias")}) for name in names]
        return Model(layers=layers, format="state-dict", framework="pytorch")

    save(model("0", "1"), tmp_path / "whole.pt")
    save(model("0"), tmp_path / "A.pt")
    save(model("1"), tmp_path / "B.pt")
    save(model("0"), tmp_path / "M.pt")
    return tmp_path


def _same_bytes(parts, name, before):
    return (parts / name).read_bytes() == before


@pytest.mark.parametrize("alias", ["same", "dot", "symlink", "hardlink"])
def test_merge_never_replaces_either_part(capsys, parts, alias, monkeypatch):
    before = (parts / "A.pt").read_bytes()
    source = {"same": "A.pt", "dot": "./A.pt", "symlink": "S.pt", "hardlink": "L.pt"}[alias]
    if alias == "symlink":
        (parts / "S.pt").symlink_to(parts / "A.pt")
    if alias == "hardlink":
        os.link(parts / "A.pt", parts / "L.pt")
    monkeypatch.chdir(parts)
    for backbone, head in (("A.pt", "B.pt"), ("B.pt", "A.pt")):
        code, _, err = run(capsys, "merge", source if backbone == "A.pt" else backbone,
                           source if head == "A.pt" else head, "-o", "A.pt", "--force", "--ignore-junction")
        assert code == 2 and "is an input" in err and len(err.splitlines()) == 1
    assert _same_bytes(parts, "A.pt", before)


@pytest.mark.parametrize("target", ["C.pt", "M.pt"])
def test_check_fix_never_replaces_the_checkpoint_or_the_model(capsys, parts, target):
    os.rename(parts / "A.pt", parts / "C.pt")
    os.link(parts / target, parts / "out.pt")  # the output is the input under another name
    before = (parts / target).read_bytes()
    code, _, err = run(capsys, "check", parts / "C.pt", "--into", parts / "M.pt", "--fix", parts / "out.pt", "--force")
    assert code == 2 and "is an input" in err and len(err.splitlines()) == 1
    assert _same_bytes(parts, target, before)


def test_split_never_replaces_its_input(capsys, parts):
    before = (parts / "whole.pt").read_bytes()
    code, _, err = run(capsys, "split", parts / "whole.pt", "--head-prefix", "1", "--out", parts,
                       "--backbone-name", "whole", "--force")
    assert code == 2 and "is an input" in err
    assert _same_bytes(parts, "whole.pt", before)


def test_split_refuses_one_name_for_both_parts(capsys, parts, tmp_path):
    code, _, err = run(capsys, "split", parts / "whole.pt", "--head-prefix", "1", "--out", tmp_path / "o",
                       "--backbone-name", "x", "--head-name", "x")
    assert code == 2 and "both be written" in err and not (tmp_path / "o" / "x.pt").exists()


def test_split_out_under_a_regular_file_is_one_line(capsys, parts):
    (parts / "file").write_bytes(b"")
    for out in (parts / "file", parts / "file" / "sub"):
        code, stdout, err = run(capsys, "split", parts / "whole.pt", "--head-prefix", "1", "--out", out)
        assert code == 2 and len(err.splitlines()) == 1 and "cannot create the folder" in err
        assert "unexpected" not in err
    assert (parts / "file").read_bytes() == b""


def test_save_refuses_a_file_the_model_was_read_from_and_a_part_of_it(parts):
    import weightkit

    os.link(parts / "whole.pt", parts / "alias.pt")
    with weightkit.load(parts / "whole.pt") as model:
        with pytest.raises(weightkit.UsageError, match="is an input"):
            weightkit.save(model, parts / "alias.pt", force=True)
        with weightkit.split(model, head_prefixes=["1"]) as result:
            with pytest.raises(weightkit.UsageError, match="is an input"):
                weightkit.save(result.head, parts / "alias.pt", force=True)


def test_the_architecture_file_is_an_input_too(tmp_path):
    keras = pytest.importorskip("keras")
    import weightkit

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    model.save(tmp_path / "arch.h5")
    model.save_weights(tmp_path / "w.weights.h5")
    with weightkit.load(tmp_path / "w.weights.h5", arch=tmp_path / "arch.h5") as loaded:
        assert tmp_path / "arch.h5" in loaded.input_files()
        with pytest.raises(weightkit.UsageError, match="is an input"):
            weightkit.save(loaded, tmp_path / "arch.h5", force=True)


def test_fix_keeps_a_renamed_tensor_that_does_not_fit_as_it_is(capsys, tmp_path):
    """A prefix rename onto a kernel of another shape (and layout) is written as the checkpoint has it; it used to
    be declared with the model's shape and refused by the writer as a corrupted source file."""
    from weightkit import save
    from weightkit.model import Layer, Model, Tensor

    def model(name, shape):
        tensors = {"weight": Tensor.from_array(f"{name}.weight", np.ones(shape, "float32"), role="weight"),
                   "bias": Tensor.from_array(f"{name}.bias", np.ones(shape[0], "float32"), role="bias")}
        return Model(layers=[Layer(name, "dense", tensors=tensors)])

    save(model("hidden", (2, 2)), tmp_path / "checkpoint.safetensors")
    save(model("conv", (4, 3, 3, 3)), tmp_path / "model.safetensors")
    code, out, err = run(capsys, "check", tmp_path / "checkpoint.safetensors", "--into", tmp_path / "model.safetensors",
                         "--fix", tmp_path / "fixed.safetensors")
    assert code == 1 and not err and "size mismatch for conv.weight" in out
