"""`fixed_checkpoint` into a Keras model writes the model's own layout: the plain Keras load takes the file.

Every test loads the written file the way a user would (``model.load_weights(OUT)``, or
``keras.saving.load_model(OUT)`` for ``.keras``) and compares the weights Keras ends up
with against the source's.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import weightkit
from tests.nets import keras_cnn, torch_cnn
from weightkit.errors import UnsupportedError, UsageError
from weightkit.ops.check import check_into
from weightkit.ops.fix import fixed_checkpoint, kept_layers
from weightkit.records import FIXED_FROM_KEY, LAYOUT_OF_KEY, WRITER_KEY

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

OUTS = [".h5", ".weights.h5", ".keras"]


def mobilenet(seed: int, **kwargs):
    """MobileNetV2 as users build it, every weight random (so that copied and initial values differ)."""
    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.35, **kwargs)
    randomize(model, seed)
    return model


def randomize(model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype(weight.dtype))


def fix(checkpoint, target, out) -> list[str]:
    """Write ``checkpoint`` fixed into ``target`` to ``out``; the layers that kept the target's values."""
    with weightkit.load(checkpoint) as a, weightkit.load(target) as b:
        report = check_into(a, b)
        with fixed_checkpoint(a, b, report) as fixed:
            weightkit.save(fixed, out)
        return kept_layers(b, report)


def load_fixed(target, out):
    """The user's load: ``load_model(OUT)`` for a .keras, else ``target.load_weights(OUT)``.

    ``target`` is a model Keras loaded from the target file (or its path); its weights are
    zeroed first, so that every value it ends up with comes from OUT.
    """
    if str(out).endswith(".keras"):
        return keras.saving.load_model(out)
    model = keras.saving.load_model(target) if not isinstance(target, keras.Model) else target
    for weight in model.weights:
        weight.assign(np.zeros(weight.shape, weight.dtype))
    model.load_weights(out)
    return model


def weights_by_layer(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: [np.asarray(w) for w in layer.weights] for layer in model.layers if layer.weights}


def assert_same_weights(model, want: dict[str, list[np.ndarray]], skip: tuple[str, ...] = ()) -> None:
    got = weights_by_layer(model)
    for name, values in want.items():
        if name in skip:
            continue
        assert len(got[name]) == len(values), name
        for have, value in zip(got[name], values):
            assert np.array_equal(have, value), name


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """MobileNetV2 files: the sources, the target (another initialization), and each one's weights by layer."""
    folder = tmp_path_factory.mktemp("fix")
    weights = {}
    for name, seed, kwargs, suffixes in (("top", 1, {"classes": 10}, (".h5", ".keras")),
                                         ("notop", 1, {"include_top": False}, (".keras", ".h5")),
                                         ("five", 1, {"classes": 5}, (".h5",)),
                                         ("target", 2, {"classes": 10}, (".keras",))):
        model = mobilenet(seed, **kwargs)
        for suffix in suffixes:
            model.save(folder / f"{name}{suffix}")
        weights[name] = weights_by_layer(model)
    return folder, weights


@pytest.fixture(scope="module")
def target(nets):
    """The target as Keras loads it from target.keras (each test zeroes its weights before loading OUT)."""
    return keras.saving.load_model(nets[0] / "target.keras")


@pytest.mark.parametrize("out", OUTS)
@pytest.mark.parametrize("source", ["top.h5", "top.keras"])
def test_keras_checkpoint_into_keras_model_loads_with_the_plain_call(nets, target, tmp_path, source, out):
    folder, weights = nets
    kept = fix(folder / source, folder / "target.keras", tmp_path / f"fixed{out}")
    model = load_fixed(target, tmp_path / f"fixed{out}")
    assert_same_weights(model, weights["top"])
    assert kept == []


@pytest.mark.parametrize("out", OUTS)
@pytest.mark.parametrize("source", ["notop.keras", "notop.h5"])  # Keras 3 paths; legacy layer names (by_name)
def test_missing_head_keeps_the_model_values(nets, target, tmp_path, source, out):
    folder, weights = nets
    kept = fix(folder / source, folder / "target.keras", tmp_path / f"fixed{out}")
    model = load_fixed(target, tmp_path / f"fixed{out}")
    assert_same_weights(model, weights["notop"])
    assert_same_weights(model, {"predictions": weights["target"]["predictions"]})
    assert kept == ["predictions"]


@pytest.mark.parametrize("out", [".h5", ".weights.h5"])
def test_classifier_of_another_size_keeps_the_model_values(nets, target, tmp_path, out):
    folder, weights = nets
    kept = fix(folder / "five.h5", folder / "target.keras", tmp_path / f"fixed{out}")
    model = load_fixed(target, tmp_path / f"fixed{out}")
    assert_same_weights(model, weights["five"], skip=("predictions",))
    assert_same_weights(model, {"predictions": weights["target"]["predictions"]})
    assert kept == ["predictions"]


def nested(seed: int):
    """A Functional model with a Sequential block inside it and a frozen layer in the block."""
    keras.utils.set_random_seed(seed)
    block = keras.Sequential([keras.Input((8, 8, 8)), keras.layers.Conv2D(8, 3, padding="same", name="ic"),
                              keras.layers.BatchNormalization(name="ibn")], name="block")
    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(block(x))
    model = keras.Model(inputs, keras.layers.Dense(4, name="fc")(x))
    block.layers[0].trainable = False
    randomize(model, seed)
    return model


def sequential(seed: int):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(8, 3, name="conv"),
                              keras.layers.BatchNormalization(name="bn"), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3, name="fc")])
    model.layers[0].trainable = False
    randomize(model, seed)
    return model


@pytest.mark.parametrize("out", OUTS)
@pytest.mark.parametrize("suffix", [".h5", ".keras"])
@pytest.mark.parametrize("build", [nested, sequential])
def test_nested_and_sequential_models(tmp_path, build, suffix, out):
    source = build(1)
    source.save(tmp_path / f"source{suffix}")
    build(2).save(tmp_path / "target.keras")
    fix(tmp_path / f"source{suffix}", tmp_path / "target.keras", tmp_path / f"fixed{out}")
    model = load_fixed(tmp_path / "target.keras", tmp_path / f"fixed{out}")
    for have, want in zip(model.weights, source.weights, strict=True):
        assert np.array_equal(np.asarray(have), np.asarray(want)), want.path


def tfkeras_weights(path) -> dict[str, list[np.ndarray]]:
    """Each layer's weights as tf.keras saved them, read with h5py (in the file's weight_names order)."""
    def text(value):
        return value.decode() if isinstance(value, bytes) else str(value)

    with h5py.File(path) as file:
        group = file["model_weights"]
        return {text(name): [np.asarray(group[text(name)][text(w)]) for w in group[text(name)].attrs["weight_names"]]
                for name in group.attrs["layer_names"]}


@pytest.fixture(scope="module")
def tfkeras_target(tmp_path_factory):
    """Keras 3's MobileNetV2 of the tf.keras fixture's size, saved as .keras, and as Keras loads it."""
    path = tmp_path_factory.mktemp("tfk") / "target.keras"
    keras.utils.set_random_seed(2)
    keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=10).save(path)
    return path, keras.saving.load_model(path)


@pytest.mark.parametrize("out", OUTS)
def test_tfkeras_checkpoint_into_keras3_model(fixtures, tfkeras_target, tmp_path, out):
    source = fixtures / "tfkeras" / "tfk_mobilenetv2_full.h5"
    path, target = tfkeras_target
    fix(source, path, tmp_path / f"fixed{out}")
    model = load_fixed(target, tmp_path / f"fixed{out}")
    saved = tfkeras_weights(source)
    for layer in model.layers:
        values = [np.asarray(w) for w in layer.trainable_weights + layer.non_trainable_weights]
        assert len(values) == len(saved.get(layer.name, [])), layer.name
        assert all(np.array_equal(a, b) for a, b in zip(values, saved.get(layer.name, []))), layer.name
    io = np.load(f"{source}.io.npz")
    assert np.abs(model.predict(io["input"], verbose=0) - io["output"]).max() < 1e-4


@pytest.fixture(scope="module")
def torch_pair(tmp_path_factory):
    """A random torch_cnn state_dict, the same net in Keras as the target, and the torch output on one input."""
    folder = tmp_path_factory.mktemp("torchfix")
    module = torch_cnn(classes=16)  # a square classifier: only the layouts tell that it needs transposing
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for value in module.state_dict().values():
            if value.dtype.is_floating_point:
                value.copy_(torch.randn(value.shape, generator=generator) * 0.3)
        for norm in (module.bn1, module.bn2):
            norm.running_var.copy_(torch.rand(norm.running_var.shape, generator=generator) + 0.5)
    for norm in (module.bn1, module.bn2):
        norm.eps = 1e-3  # Keras's default; the weights are what is compared
    module.eval()
    torch.save(module.state_dict(), folder / "cnn.pt")
    keras.utils.set_random_seed(0)
    keras_cnn(classes=16).save(folder / "target.keras")
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype("float32")
    with torch.no_grad():
        expected = module(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    return folder, x, expected


@pytest.mark.parametrize("out", OUTS)
def test_torch_checkpoint_into_keras_model_predicts_as_torch(torch_pair, tmp_path, out):
    folder, x, expected = torch_pair
    kept = fix(folder / "cnn.pt", folder / "target.keras", tmp_path / f"fixed{out}")
    model = load_fixed(folder / "target.keras", tmp_path / f"fixed{out}")
    assert np.abs(model.predict(x, verbose=0) - expected).max() < 1e-4
    assert kept == []


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """keras_cnn as the source (.h5, .keras) and, initialized otherwise, as the target (.h5, .keras)."""
    folder = tmp_path_factory.mktemp("small")
    for name, seed in (("source", 1), ("target", 2)):
        keras.utils.set_random_seed(seed)
        model = keras_cnn()
        model.save(folder / f"{name}.h5")
        model.save(folder / f"{name}.keras")
    return folder


def test_the_file_names_weightkit_and_the_target_keras(small, tmp_path):
    fix(small / "source.keras", small / "target.h5", tmp_path / "fixed.h5")
    with h5py.File(tmp_path / "fixed.h5") as file:
        assert file.attrs["keras_version"] == keras.__version__
        assert file.attrs["backend"] == "torch"  # the target's backend, not "tensorflow"
        assert file.attrs[WRITER_KEY].startswith("weightkit ")
        assert file.attrs[FIXED_FROM_KEY] == "source.keras"
        assert file.attrs[LAYOUT_OF_KEY] == f"target.h5 (keras-h5, Keras {keras.__version__})"
    fix(small / "source.h5", small / "target.keras", tmp_path / "no_backend.h5")
    with h5py.File(tmp_path / "no_backend.h5") as file:
        assert "backend" not in file.attrs  # a .keras records no backend: none is claimed
    fix(small / "source.h5", small / "target.keras", tmp_path / "fixed.weights.h5")
    with h5py.File(tmp_path / "fixed.weights.h5") as file:
        assert file.attrs[LAYOUT_OF_KEY] == f"target.keras (keras-zip, Keras {keras.__version__})"
    fix(small / "source.h5", small / "target.keras", tmp_path / "fixed.keras")
    with weightkit.load(tmp_path / "fixed.keras") as model:
        assert model.framework_version == keras.__version__ and model.metadata[FIXED_FROM_KEY] == "source.h5"


def test_target_saved_as_weights_only_store(small, tmp_path):
    """A Keras 3 .weights.h5 target has no config: the fix goes back into its own groups; a legacy .h5 is refused."""
    keras.utils.set_random_seed(2)
    model = keras_cnn()
    model.save_weights(tmp_path / "target.weights.h5")
    fix(small / "source.h5", tmp_path / "target.weights.h5", tmp_path / "fixed.weights.h5")
    loaded = load_fixed(model, tmp_path / "fixed.weights.h5")
    source = keras.saving.load_model(small / "source.h5")
    for have, want in zip(loaded.weights, source.weights, strict=True):
        assert np.array_equal(np.asarray(have), np.asarray(want)), want.path
    with pytest.raises(UnsupportedError, match="records no layer order"):
        fix(small / "source.h5", tmp_path / "target.weights.h5", tmp_path / "fixed.h5")
    assert not (tmp_path / "fixed.h5").exists()


def test_keras_archive_from_an_h5_config_is_refused_with_the_reason(small, tmp_path):
    with pytest.raises(UnsupportedError, match="'module'") as error:
        fix(small / "source.keras", small / "target.h5", tmp_path / "fixed.keras")
    assert f"Keras {keras.__version__}'s .h5 spelling" in error.value.message and error.value.hint
    assert not (tmp_path / "fixed.keras").exists()


def test_nothing_that_fits_is_refused(small, tmp_path):
    other = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 5, name="a"),
                              keras.layers.Flatten(), keras.layers.Dense(3, name="b")])
    other.save(tmp_path / "other.h5")
    with pytest.raises(UsageError, match="no tensor of other.h5 fits target.keras"):
        fix(tmp_path / "other.h5", small / "target.keras", tmp_path / "fixed.h5")
    assert not (tmp_path / "fixed.h5").exists()
