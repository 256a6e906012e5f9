"""weightkit.arch.keras: Keras graphs cut by config surgery, checked by loading the parts in Keras."""

from __future__ import annotations

import numpy as np
import pytest

import weightkit
from weightkit.arch import architecture_of
from weightkit.arch.keras import KerasGraph
from weightkit.errors import UsageError

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from tests.nets import keras_cnn

    folder = tmp_path_factory.mktemp("arch_keras")
    keras.utils.set_random_seed(0)
    model = keras_cnn()
    model.save(folder / "cnn.keras")
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype("float32")
    return folder / "cnn.keras", x, model.predict(x, verbose=0)


def test_a_keras_model_with_its_config_gets_the_keras_architecture(saved):
    with weightkit.load(saved[0]) as model:
        assert isinstance(architecture_of(model), KerasGraph)


def test_boundaries_in_layer_order_with_shapes_and_sides(saved):
    with weightkit.load(saved[0]) as model:
        cuts = {c.at: c for c in KerasGraph().boundaries(model)}
        names = [layer.name for layer in model.layers]
    assert list(cuts) == [n for n in names if n in cuts]
    assert cuts["relu2"].shape == (None, 16, 16, 16) and cuts["pool"].shape == (None, 16)
    assert cuts["relu2"].head == ["pool", "fc"]
    assert cuts["fc"].head == []  # the architecture says so; ops.split refuses such a cut
    for cut in cuts.values():
        assert sorted(cut.backbone + cut.head) == sorted(names)


def test_proposal_ends_before_global_pooling(saved):
    with weightkit.load(saved[0]) as model:
        proposal = KerasGraph().propose(model)
    assert proposal.at == "relu2" and proposal.reason.startswith("pool (GlobalAveragePooling2D) starts")


def test_parts_load_in_keras_and_join_back_to_the_original(saved, tmp_path):
    path, x, expected = saved
    with weightkit.load(path) as model:
        backbone, head = KerasGraph().cut(model, "bn2")
        assert [layer.name for layer in head.layers] == ["bn2", "relu2", "pool", "fc"]
        assert head.inputs[0].shape == (None, 16, 16, 16)
        weightkit.save(backbone, tmp_path / "b.keras")
        weightkit.save(head, tmp_path / "h.keras")
    with weightkit.load(tmp_path / "b.keras") as b, weightkit.load(tmp_path / "h.keras") as h:
        weightkit.save(KerasGraph().join(b, h), tmp_path / "joined.keras")
    features = keras.saving.load_model(tmp_path / "b.keras").predict(x, verbose=0)
    assert np.array_equal(keras.saving.load_model(tmp_path / "h.keras").predict(features, verbose=0), expected)
    assert np.array_equal(keras.saving.load_model(tmp_path / "joined.keras").predict(x, verbose=0), expected)


def test_unknown_layer_and_a_part_without_architecture_are_refused(saved, tmp_path):
    with weightkit.load(saved[0]) as model:
        with pytest.raises(UsageError, match="no such top-level layer"):
            KerasGraph().cut(model, "nothing")
        keras.saving.load_model(saved[0]).save_weights(tmp_path / "w.weights.h5")
        with weightkit.load(tmp_path / "w.weights.h5") as weights, pytest.raises(UsageError, match="architecture"):
            KerasGraph().join(model, weights)
