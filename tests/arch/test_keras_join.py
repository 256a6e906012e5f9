"""weightkit.arch.keras.join_configs: complete graphs whatever the parts' classes and Keras generation.

Configs come from files real Keras wrote (Keras 3 here, tf.keras 2.21 in fixtures/tfkeras); Keras
itself rebuilds the joined configs, and tf.keras's own outputs check a joined Keras 2 model.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

import weightkit
from weightkit.arch.keras import cut_config, graph_problems, join_configs
from weightkit.errors import UsageError

keras = pytest.importorskip("keras")

LAYERS = keras.layers


def keras_builds(config):
    """The model Keras builds from ``config`` (a ``.keras`` record, or the legacy config of a ``.h5``)."""
    if "module" in config:
        return keras.saving.deserialize_keras_object(copy.deepcopy(config))
    from keras.src.legacy.saving import saving_utils

    return saving_utils.model_from_config(copy.deepcopy(config))


def config_of(path):
    with weightkit.load(path) as model:
        return model.config


def by_name(config):
    return {entry["name"]: entry for entry in config["config"]["layers"]}


@pytest.fixture(scope="module")
def keras3_parts(tmp_path_factory):
    """A functional backbone (16x16x16 features) and a Sequential head, each saved as .keras and .h5."""
    from tests.nets import keras_cnn

    folder = tmp_path_factory.mktemp("join")
    keras.utils.set_random_seed(0)
    cnn = keras_cnn()
    backbone = keras.Model(cnn.input, cnn.get_layer("relu2").output, name="cnn_backbone")
    head = keras.Sequential([LAYERS.GlobalAveragePooling2D(name="join_pool"), LAYERS.Dense(5, name="join_logits")])
    head.build((None, 16, 16, 16))
    for suffix in (".keras", ".h5"):
        backbone.save(folder / f"backbone{suffix}")
        head.save(folder / f"head{suffix}")
    return folder


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_keras3_sequential_head_gets_names_and_keras_history_calls(keras3_parts, suffix):
    backbone, head = config_of(keras3_parts / f"backbone{suffix}"), config_of(keras3_parts / f"head{suffix}")
    untouched = copy.deepcopy((backbone, head))
    joined = join_configs(backbone, head)
    assert (backbone, head) == untouched
    entries = by_name(joined)
    pool, logits = entries["join_pool"], entries["join_logits"]
    [pool_call], [logits_call] = pool["inbound_nodes"], logits["inbound_nodes"]
    assert pool_call["args"][0]["config"]["keras_history"] == ["relu2", 0, 0]
    assert pool_call["args"][0]["config"]["shape"] == [None, 16, 16, 16]
    assert logits_call["args"][0]["config"]["keras_history"] == ["join_pool", 0, 0]
    assert logits_call["args"][0]["config"]["shape"] == [None, 16]
    assert joined["config"]["output_layers"] == ["join_logits", 0, 0]  # one output, spelled as the backbone does
    assert graph_problems(joined) == []
    model = keras_builds(joined)
    assert model.output_shape == (None, 5) and [layer.name for layer in model.layers][-2:] == ["join_pool",
                                                                                             "join_logits"]


def test_a_sequential_head_without_an_input_layer_joins_the_same(keras3_parts):
    """Older Sequential configs give no InputLayer entry, only ``build_input_shape``."""
    backbone, head = config_of(keras3_parts / "backbone.h5"), config_of(keras3_parts / "head.h5")
    bare = copy.deepcopy(head)
    bare["config"]["layers"] = [e for e in bare["config"]["layers"] if e["class_name"] != "InputLayer"]
    joined = join_configs(backbone, bare)
    assert joined == join_configs(backbone, head) and graph_problems(joined) == []


def _keras2_sequential_head(head):
    """The functional head cut from a tf.keras file, as tf.keras writes a Sequential: no entry names, no calls."""
    entries = head.config["config"]["layers"]
    layers = [{"class_name": e["class_name"], "config": copy.deepcopy(e["config"])} for e in entries]
    layers[0]["config"]["name"] = "input_2"
    sequential = {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}
    without_input = [layer for layer in head.layers if layer.type_name != "InputLayer"]
    return dataclasses.replace(head, layers=without_input, config=sequential, _held=[])


def test_a_keras2_sequential_head_joins_in_keras2_spelling_and_computes_what_tensorflow_did(fixtures, tmp_path):
    import onnxruntime as ort

    path = fixtures / "tfkeras" / "tfk_mobilenetv2_full.h5"
    with weightkit.load(path) as model, weightkit.split(model, "out_relu") as parts:
        weightkit.save(parts.backbone, tmp_path / "backbone.h5")
        weightkit.save(_keras2_sequential_head(parts.head), tmp_path / "head.h5")
    weightkit.merge(tmp_path / "backbone.h5", tmp_path / "head.h5", tmp_path / "merged.h5").close()
    entries = by_name(config_of(tmp_path / "merged.h5"))
    assert entries["global_average_pooling2d"]["inbound_nodes"] == [[["out_relu", 0, 0, {}]]]
    assert entries["predictions"]["inbound_nodes"] == [[["global_average_pooling2d", 0, 0, {}]]]
    assert config_of(tmp_path / "merged.h5")["config"]["output_layers"] == [["predictions", 0, 0]]
    weightkit.convert(tmp_path / "merged.h5", tmp_path / "merged.onnx")
    io = np.load(f"{path}.io.npz")
    session = ort.InferenceSession(tmp_path / "merged.onnx")
    got = session.run(None, {session.get_inputs()[0].name: io["input"]})[0]
    np.testing.assert_allclose(got, io["output"], atol=1e-5)


@pytest.mark.parametrize("back_suffix, head_suffix", [(".keras", ".keras"), (".h5", ".h5"), (".keras", ".h5")])
def test_a_sequential_backbone_takes_a_functional_head(tmp_path, back_suffix, head_suffix):
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential([keras.Input((16, 16, 3)), LAYERS.Conv2D(4, 3, name="seq_conv"),
                                 LAYERS.BatchNormalization(name="seq_bn"), LAYERS.ReLU(name="seq_relu")])
    inputs = keras.Input((14, 14, 4))
    head = keras.Model(inputs, LAYERS.Dense(3, name="fhead_fc")(LAYERS.GlobalAveragePooling2D(name="fhead_pool")(
        inputs)))
    backbone.save(tmp_path / f"backbone{back_suffix}")
    head.save(tmp_path / f"head{head_suffix}")
    out = tmp_path / f"merged{back_suffix}"
    weightkit.merge(tmp_path / f"backbone{back_suffix}", tmp_path / f"head{head_suffix}", out).close()
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype("float32")
    expected = head.predict(backbone.predict(x, verbose=0), verbose=0)
    np.testing.assert_allclose(keras.saving.load_model(out).predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_a_keras2_sequential_backbone_without_an_input_layer_gets_one(fixtures):
    """tf.keras Sequential models may declare their input on the first layer (``batch_input_shape``)."""
    tfk = by_name(config_of(fixtures / "tfkeras" / "tfk_cnn_full.h5"))
    conv = {"class_name": "Conv2D", "config": {**tfk["stem_conv"]["config"], "batch_input_shape": [None, 8, 8, 3]}}
    bn = {"class_name": "BatchNormalization", "config": tfk["stem_bn"]["config"]}
    backbone = {"class_name": "Sequential", "config": {"name": "k2_features", "layers": [conv, bn]}}
    _, head = cut_config(config_of(fixtures / "tfkeras" / "tfk_mobilenetv2_full.h5"), "out_relu")
    joined = join_configs(backbone, head)
    first, second = joined["config"]["layers"][:2]
    assert first["class_name"] == "InputLayer" and first["config"]["batch_input_shape"] == [None, 8, 8, 3]
    assert second["inbound_nodes"] == [[[first["name"], 0, 0, {}]]]
    assert "batch_input_shape" not in second["config"]
    assert joined["class_name"] == head["class_name"] and joined["config"]["name"] == "k2_features"
    assert graph_problems(joined) == []
    assert keras_builds(joined).output_shape == (None, 10)


def test_a_sequential_backbone_without_an_input_shape_is_refused():
    backbone = {"class_name": "Sequential", "config": {"name": "unbuilt", "layers": [
        {"class_name": "Dense", "config": {"name": "d", "units": 4}}]}}
    head = {"class_name": "Functional", "config": {"name": "h", "layers": [
        {"class_name": "InputLayer", "config": {"name": "x", "batch_input_shape": [None, 4]}, "name": "x",
         "inbound_nodes": []},
        {"class_name": "Dense", "config": {"name": "y", "units": 2}, "name": "y",
         "inbound_nodes": [[["x", 0, 0, {}]]]}],
        "input_layers": [["x", 0, 0]], "output_layers": [["y", 0, 0]]}}
    with pytest.raises(UsageError, match="states no input shape"):
        join_configs(backbone, head)


def test_two_sequential_parts_stay_one_sequential(keras3_parts, tmp_path):
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential([keras.Input((8,)), LAYERS.Dense(4, name="s_first")])
    backbone.save(tmp_path / "b.keras")
    head = keras.Sequential([keras.Input((4,)), LAYERS.Dense(2, name="s_second")])
    head.save(tmp_path / "h.keras")
    joined = join_configs(config_of(tmp_path / "b.keras"), config_of(tmp_path / "h.keras"))
    assert joined["class_name"] == "Sequential" and graph_problems(joined) == []
    assert [layer.name for layer in keras_builds(joined).layers] == ["s_first", "s_second"]


def test_clashing_names_and_a_second_head_input_are_refused(keras3_parts):
    backbone, head = config_of(keras3_parts / "backbone.keras"), config_of(keras3_parts / "head.keras")
    clashing = copy.deepcopy(head)
    clashing["config"]["layers"][1]["config"]["name"] = "relu2"
    with pytest.raises(UsageError, match=r"both have layers named relu2 \(rename the head's layers"):
        join_configs(backbone, clashing)
    second_input = copy.deepcopy(head["config"]["layers"][0])
    second_input["config"]["name"] = "another_input"
    head["config"]["layers"].insert(1, second_input)
    with pytest.raises(UsageError, match="several inputs"):
        join_configs(backbone, head)


def test_graph_problems_names_what_the_old_join_wrote(keras3_parts):
    """Today's bug as data: head entries without names or calls, an output that no layer produces."""
    backbone = config_of(keras3_parts / "backbone.keras")
    assert graph_problems(backbone) == []
    broken = copy.deepcopy(backbone)
    entries = broken["config"]["layers"]
    del entries[-1]["inbound_nodes"]
    assert graph_problems(broken) == ["layer 'relu2' has no inbound nodes: nothing calls it"]
    broken["config"]["output_layers"] = ["nothing", 0, 0]
    assert "the model's output 'nothing' is not one of its layers" in graph_problems(broken)
    del entries[-1]["name"]
    assert graph_problems(broken) == [f"layer {len(entries) - 1} (ReLU) has no name"]
    unnamed = [{"class_name": "Dense", "config": {}}]
    sequential = {"class_name": "Sequential", "config": {"name": "s", "layers": unnamed}}
    assert graph_problems(sequential) == ["layer 0 (Dense) has no name"]
