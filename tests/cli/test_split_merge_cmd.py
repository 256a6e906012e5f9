"""``weightkit split`` and ``weightkit merge`` from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli import run

keras = pytest.importorskip("keras")



@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_split")
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=4, alpha=0.35)
    model.save(folder / "m.keras")
    return folder / "m.keras"


def test_list_boundaries_shows_cut_points_with_shapes(capsys, model_file):
    code, out, _ = run(capsys, "split", model_file, "--list-boundaries")
    assert code == 0
    assert "out_relu" in out and "(None, 1, 1, 1280)" in out and "block_16_project_BN" in out


def test_split_proposes_writes_and_merge_rejoins(capsys, tmp_path, model_file):
    code, out, _ = run(capsys, "split", model_file, "--out", tmp_path)
    assert code == 0 and "cutting after 'out_relu'" in out
    assert (tmp_path / "backbone.keras").exists() and (tmp_path / "head.keras").exists()
    backbone, head = tmp_path / "backbone.keras", tmp_path / "head.keras"
    code, out, _ = run(capsys, "merge", backbone, head, "-o", tmp_path / "m.keras")
    assert code == 0 and "cut from this very backbone" in out
    x = np.random.default_rng(0).standard_normal((1, 32, 32, 3)).astype("float32")
    original = keras.saving.load_model(model_file).predict(x, verbose=0)
    assert np.array_equal(keras.saving.load_model(tmp_path / "m.keras").predict(x, verbose=0), original)


def test_split_into_another_format_and_json(capsys, tmp_path, model_file):
    code, out, _ = run(capsys, "split", model_file, "--at", "block_16_project_BN", "--out", tmp_path,
                       "--format", "keras-h5", "--json")
    document = json.loads(out)
    assert code == 0 and document["at"] == "block_16_project_BN" and document["backbone"].endswith("backbone.h5")
    assert (tmp_path / "head.h5").exists()


def test_existing_outputs_are_kept_without_force(capsys, tmp_path, model_file):
    (tmp_path / "backbone.keras").write_bytes(b"mine")
    code, _, err = run(capsys, "split", model_file, "--out", tmp_path)
    assert code == 2 and "already exists" in err
    assert (tmp_path / "backbone.keras").read_bytes() == b"mine"


def test_bad_cut_and_misfit_merge_exit_2(capsys, tmp_path, model_file):
    code, _, err = run(capsys, "split", model_file, "--at", "no_such_layer", "--out", tmp_path)
    assert code == 2 and "no such top-level layer" in err
    head = keras.Sequential([keras.Input((7,)), keras.layers.Dense(2, name="tiny")])
    head.save(tmp_path / "tiny.keras")
    run(capsys, "split", model_file, "--out", tmp_path / "parts")
    code, _, err = run(capsys, "merge", tmp_path / "parts" / "backbone.keras", tmp_path / "tiny.keras",
                       "-o", tmp_path / "x.keras")
    assert code == 2 and "does not fit" in err and "--ignore-junction" in err
    assert not (tmp_path / "x.keras").exists()
