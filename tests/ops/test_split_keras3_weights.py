"""Splitting a Keras 3 .weights.h5: refused without its architecture (it records no layer order), cut with --arch."""

from __future__ import annotations

import numpy as np
import pytest

import weightkit
from weightkit.cli import main
from weightkit.errors import UsageError

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("k3split")
    keras.utils.set_random_seed(5)
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10)
    model.save_weights(root / "trained.weights.h5")
    keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10).save(
        root / "arch.keras")  # the same architecture, other (random) weights
    return root, model


def test_without_architecture_says_what_it_cannot_know(files, capsys):
    root, _ = files
    with weightkit.load(root / "trained.weights.h5") as model, pytest.raises(UsageError) as raised:
        weightkit.split(model)
    assert "records no layer order" in str(raised.value) and "--arch" in raised.value.hint
    for extra in ([], ["--list-boundaries"]):
        assert main(["split", str(root / "trained.weights.h5"), "--out", str(root / "x"), *extra]) == 2
        err = capsys.readouterr().err
        assert "records no layer order" in err and "backbone alone" not in err


def test_with_architecture_the_parts_load_and_chain_to_the_trained_model(files, capsys):
    root, trained = files
    out = root / "parts"
    assert main(["split", str(root / "trained.weights.h5"), "--arch", str(root / "arch.keras"), "--out", str(out),
                 "--format", "keras"]) == 0
    assert "cutting after 'out_relu'" in capsys.readouterr().out
    backbone = keras.saving.load_model(out / "backbone.keras")
    head = keras.saving.load_model(out / "head.keras")
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype("float32")
    expected = trained.predict(x, verbose=0)
    np.testing.assert_allclose(head.predict(backbone.predict(x, verbose=0), verbose=0), expected, atol=1e-5)


def test_boundaries_follow_the_architecture_order(files, capsys):
    root, _ = files
    assert main(["split", str(root / "trained.weights.h5"), "--arch", str(root / "arch.keras"),
                 "--list-boundaries", "--json"]) == 0
    import json

    cuts = json.loads(capsys.readouterr().out)["boundaries"]
    names = [cut["at"] for cut in cuts]
    assert names[0] == "Conv1" and names[-1].startswith("global_average_pooling2d")
    totals = [cut["backbone_params"] for cut in cuts]
    assert totals == sorted(totals)  # running totals grow along the graph
