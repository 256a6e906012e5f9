"""check_junction follows the backbone's output shape through the head, and says what Keras itself does when chained.

Every verdict "Keras would fail" is proven by calling Keras: ``head(backbone.output)``
(what a user writes to put a head on a backbone) or ``head.predict(backbone.predict(x))``.
"""

from __future__ import annotations

import numpy as np
import pytest

import weightkit
from weightkit.errors import UsageError
from weightkit.model import Layer, Tensor
from weightkit.ops.canonical import Unit, in_channels, out_channels
from weightkit.ops.junction import check_junction

keras = pytest.importorskip("keras")
layers = keras.layers

_RNG = np.random.default_rng(0)


def images(size: tuple[int, int], count: int = 2) -> np.ndarray:
    return _RNG.standard_normal((count, *size, 3)).astype("float32")


def conv_backbone(channels: int, size: tuple[int, int] = (16, 16), downsamplings: int = 2,
                  pooling: bool = False) -> keras.Model:
    """Strided 'same' convolutions: each halves the grid; the last puts out ``channels``."""
    inputs = keras.Input((*size, 3))
    x = inputs
    for index in range(downsamplings):
        filters = channels if index == downsamplings - 1 else 8
        x = layers.Conv2D(filters, 3, strides=2, padding="same", name=f"conv_{index + 1}")(x)
    if pooling:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, x, name="backbone")


def vgg_like() -> keras.Model:
    """VGG's shape at test size: conv blocks ending in a pool, then Flatten → fc1 → predictions."""
    inputs = keras.Input((32, 32, 3))
    x = inputs
    for block, filters in ((1, 8), (2, 16)):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv1")(x)
        x = layers.MaxPooling2D(name=f"block{block}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(32, activation="relu", name="fc1")(x)
    return keras.Model(inputs, layers.Dense(10, name="predictions")(x), name="vgg_like")


def saved(model: keras.Model, path):
    model.save(path)
    return path


def junction(backbone, head, **kwargs):
    """The junction finding (the first one) of ``check(backbone, head)``, and the whole report."""
    report = weightkit.check(backbone, head, **kwargs)
    return report.findings[0], report


def keras_refuses(backbone: keras.Model, head: keras.Model) -> None:
    """Keras raises when the head runs on what the backbone computes."""
    x = images(tuple(backbone.input.shape[1:3]))
    with pytest.raises(ValueError):
        head.predict(backbone.predict(x, verbose=0), verbose=0)


# ---- a head that flattens: the element count, not the channels -----------------------------------


def split_check_merge(path, at: str, tmp_path, expected: np.ndarray, x: np.ndarray) -> None:
    """weightkit.split at ``at``, check and merge the parts back; the merged file predicts as the original."""
    suffix = path.suffix
    with weightkit.split(path, at) as parts:
        weightkit.save(parts.backbone, tmp_path / f"backbone{suffix}")
        weightkit.save(parts.head, tmp_path / f"head{suffix}")
    finding, report = junction(tmp_path / f"backbone{suffix}", tmp_path / f"head{suffix}")
    assert report.ok and finding.kind == "fits", finding.message
    assert "'flatten'" in finding.message and "'fc1'" in finding.message
    with weightkit.merge(tmp_path / f"backbone{suffix}", tmp_path / f"head{suffix}", tmp_path / f"merged{suffix}"):
        pass
    merged = keras.saving.load_model(tmp_path / f"merged{suffix}")
    np.testing.assert_array_equal(merged.predict(x, verbose=0), expected)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_vgg_like_split_at_its_last_pool_fits_and_merges_back(tmp_path, suffix):
    keras.utils.set_random_seed(0)
    model = vgg_like()
    x = images((32, 32))
    path = saved(model, tmp_path / f"vgg{suffix}")
    split_check_merge(path, "block2_pool", tmp_path, model.predict(x, verbose=0), x)
    finding, _ = junction(tmp_path / f"backbone{suffix}", tmp_path / f"head{suffix}")
    assert "[None, 8, 8, 16]" in finding.message and "8·8·16 = 1024" in finding.message


@pytest.mark.slow
def test_keras_applications_vgg16_split_at_block5_pool_fits_and_merges_back(tmp_path):
    """VGG16's fc1 takes 2·2·512 = 2048 values at 64×64 (25088 = 7·7·512 at 224×224), its pool puts out 512 channels."""
    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(weights=None, input_shape=(64, 64, 3), classes=10)
    x = images((64, 64))
    path = saved(model, tmp_path / "vgg16.keras")
    split_check_merge(path, "block5_pool", tmp_path, model.predict(x, verbose=0), x)
    finding, _ = junction(tmp_path / "backbone.keras", tmp_path / "head.keras")
    assert "2·2·512 = 2048" in finding.message


def test_a_weights_only_head_that_flattens_fits_by_its_element_count(tmp_path):
    keras.utils.set_random_seed(0)
    path = saved(vgg_like(), tmp_path / "vgg.keras")
    with weightkit.split(path, "block2_pool") as parts:
        weightkit.save(parts.backbone, tmp_path / "backbone.keras")
        weightkit.save(parts.head, tmp_path / "head.keras")
    keras.saving.load_model(tmp_path / "head.keras").save_weights(tmp_path / "head.weights.h5")
    finding, report = junction(tmp_path / "backbone.keras", tmp_path / "head.weights.h5")
    assert report.ok and finding.kind == "fits"
    assert "[None, 8, 8, 16] = 1024 values" in finding.message and "if the head flattens" in finding.message


# ---- the grid: a head's declared input, a Reshape -------------------------------------------------


@pytest.mark.parametrize("declared", [(3, 3, 64), (None, None, 64)])
def test_a_head_built_for_a_3x3_grid_on_a_backbone_giving_4x4_is_refused(tmp_path, declared):
    backbone = conv_backbone(64)  # 16 → 8 → 4
    head = keras.Sequential([keras.Input(declared), layers.Reshape((9, 64), name="reshape"),
                             layers.Dense(10, name="fc")], name="head")
    keras_refuses(backbone, head)
    finding, report = junction(saved(backbone, tmp_path / "b.keras"), saved(head, tmp_path / "h.keras"))
    assert not report.ok and finding.kind == "junction" and finding.severity == "error"
    assert "[None, 4, 4, 64]" in finding.message
    if declared[0] is None:
        assert "head layer 'reshape' needs 9·64 = 576 values per sample" in finding.message
        assert "= 1024" in finding.message
    else:
        assert "is declared [None, 3, 3, 64]" in finding.message
        assert "a 4×4 grid where the head needs 3×3" in finding.message
        assert "12×12 inputs" in finding.fix  # 12 → 6 → 3, checked on the backbone's own config


def test_a_nested_head_is_followed_into_its_inner_model(tmp_path):
    backbone = conv_backbone(64)
    inner = keras.Sequential([keras.Input((3, 3, 64)), layers.Reshape((9, 64)), layers.Dense(10, name="fc")],
                             name="inner")
    inputs = keras.Input((None, None, 64))
    head = keras.Model(inputs, layers.Softmax(name="probs")(inner(inputs)), name="head")
    keras_refuses(backbone, head)
    finding, _ = junction(saved(backbone, tmp_path / "b.keras"), saved(head, tmp_path / "h.keras"))
    assert finding.severity == "error"
    assert "'inner/" in finding.message and "a 4×4 grid where the head needs 3×3" in finding.message


@pytest.mark.parametrize("declared", [(1, 1, 1280), (None, None, 1280)])
def test_a_pooled_backbone_under_a_head_that_pools_is_refused(tmp_path, declared):
    """MobileNetV2(pooling="avg") puts out (None, 1280): a head starting with GlobalAveragePooling2D needs rank 4."""
    backbone = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(32, 32, 3), alpha=0.35,
                                              pooling="avg")
    head = keras.Sequential([keras.Input(declared), layers.GlobalAveragePooling2D(), layers.Dense(10, name="logits")])
    keras_refuses(backbone, head)
    finding, report = junction(saved(backbone, tmp_path / "b.keras"), saved(head, tmp_path / "h.keras"))
    assert not report.ok and finding.severity == "error"
    assert "puts out [None, 1280], already pooled: rank 2 where the head needs rank 4" in finding.message
    assert "pooling=None" in finding.fix


def yolo_backbone() -> keras.Model:
    """A stride-32 extractor ending in 1024 channels: 128×128 → 4×4 (416×416 would give keras-yolo2's 13×13)."""
    return conv_backbone(1024, size=(128, 128), downsamplings=5)


def yolo_head(declared: tuple, grid: tuple[int, int] = (13, 13)) -> keras.Model:
    """keras-yolo2's detector after its extractor: a 1×1 convolution, then Reshape to (grid, 5 boxes, 4 + 1 + 20)."""
    return keras.Sequential([keras.Input(declared), layers.Conv2D(5 * 25, 1, name="DetectionLayer"),
                             layers.Reshape((*grid, 5, 25), name="reshape")], name="detector")


@pytest.mark.parametrize("declared", [(13, 13, 1024), (None, None, 1024)])
def test_a_yolo_head_for_a_13x13_grid_on_a_backbone_giving_4x4_is_refused(tmp_path, declared):
    backbone, head = yolo_backbone(), yolo_head(declared)
    keras_refuses(backbone, head)
    finding, report = junction(saved(backbone, tmp_path / "b.keras"), saved(head, tmp_path / "h.keras"))
    assert not report.ok and finding.severity == "error"
    assert "[None, 4, 4, 1024]" in finding.message
    if declared[0] is None:
        assert "head layer 'reshape' needs 13·13·5·25 = 21125 values per sample" in finding.message
        assert "it gets [None, 4, 4, 125] = 2000: the head was built for a 13×13 grid and gets 4×4" in finding.message
    else:
        assert "a 4×4 grid where the head needs 13×13" in finding.message
    assert "416×416 inputs" in finding.fix and "--input-shape 416,416,3" in finding.fix


def test_a_reshape_with_the_right_count_but_another_grid_is_refused_though_keras_runs(tmp_path):
    """2×8 cells reshaped as 4×4: Keras raises nothing, but output cell (1, 0) is the backbone's cell (0, 4)."""
    backbone, head = conv_backbone(1024, size=(64, 256), downsamplings=5), yolo_head((None, None, 1024), (4, 4))
    features = backbone.predict(images((64, 256)), verbose=0)
    assert features.shape[1:3] == (2, 8)
    boxes = head.predict(features, verbose=0)  # Keras computes it
    detection = keras.Model(head.inputs, head.get_layer("DetectionLayer").output).predict(features, verbose=0)
    np.testing.assert_allclose(boxes[:, 1, 0], detection[:, 0, 4].reshape(-1, 5, 25), rtol=1e-6)
    finding, _ = junction(saved(backbone, tmp_path / "b.keras"), saved(head, tmp_path / "h.keras"))
    assert finding.severity == "error"
    assert "lays a 4×4 grid over [None, 2, 8, 125], a 2×8 grid" in finding.message
    assert "its cell (1, 0) holds the values of cell (0, 4)" in finding.message
    assert "128×128 inputs" in finding.fix


def test_a_channels_first_head_on_a_channels_last_backbone_is_refused(tmp_path):
    backbone = conv_backbone(64)
    head = keras.Sequential([keras.Input((64, 4, 4)), layers.Conv2D(8, 1, data_format="channels_first", name="conv")])
    with pytest.raises(ValueError):
        head(backbone.output)
    finding, _ = junction(saved(backbone, tmp_path / "b.keras"), saved(head, tmp_path / "h.keras"))
    assert finding.severity == "error"
    assert "[None, 64, 4, 4]" in finding.message and "the head takes channels first" in finding.message


# ---- --input-shape: the backbone's input, every axis --------------------------------------------


@pytest.mark.parametrize("shape", [(128, 128), (1, 128, 128, 3)])
def test_an_input_shape_without_the_backbones_rank_is_refused(tmp_path, shape):
    path = saved(conv_backbone(64), tmp_path / "b.keras")
    head = saved(keras.Sequential([keras.Input((None, None, 64)), layers.Conv2D(5, 1)]), tmp_path / "h.keras")
    with weightkit.load(path) as backbone, weightkit.load(head) as top:
        with pytest.raises(UsageError, match=r"has \d dimension\(s\); the backbone's input .* is \[None, 16, 16, 3\]: "
                           r"it needs all 3 besides the batch") as raised:
            check_junction(backbone, top, input_shape=shape)
        assert "height, width and channels" in (raised.value.hint or "")
        finding = check_junction(backbone, top, input_shape=(128, 128, 3)).findings[0]
    assert finding.kind == "fits" and "[None, 32, 32, 64]" in finding.message


def test_an_input_shape_for_a_backbone_without_an_architecture_is_refused(tmp_path):
    backbone = conv_backbone(64)
    backbone.save_weights(tmp_path / "b.weights.h5")
    head = saved(keras.Sequential([keras.Input((None, None, 64)), layers.Conv2D(5, 1)]), tmp_path / "h.keras")
    with pytest.raises(UsageError, match="needs the backbone's Keras architecture"):
        weightkit.check(tmp_path / "b.weights.h5", head, input_shape=(128, 128, 3))
    finding, _ = junction(tmp_path / "b.weights.h5", head)
    assert finding.kind == "fits"  # without it, the channels are compared


# ---- depthwise layers take the channels they get ------------------------------------------------


def test_depthwise_in_channels_are_the_kernels_channels_not_times_the_multiplier():
    keras_kernel = Tensor("dw", (3, 3, 4, 2), "float32", layout="HWCM")  # (h, w, channels, multiplier)
    keras_unit = Unit("dw", Layer("dw", kind="depthwise_conv2d", tensors={"weight": keras_kernel}), "depthwise_conv2d",
                      {"weight": keras_kernel})
    assert (in_channels(keras_unit), out_channels(keras_unit)) == (4, 8)
    torch_kernel = Tensor("dw.weight", (8, 1, 3, 3), "float32", layout="OIHW")  # nn.Conv2d(4, 8, 3, groups=4)
    torch_layer = Layer("dw", kind="depthwise_conv2d", config={"groups": 4}, tensors={"weight": torch_kernel})
    torch_unit = Unit("dw", torch_layer, "depthwise_conv2d", {"weight": torch_kernel})
    assert (in_channels(torch_unit), out_channels(torch_unit)) == (4, 8)


def test_grouped_convolutions_take_all_their_groups_channels():
    kernel = Tensor("conv", (3, 3, 2, 6), "float32", layout="HWIO")  # Conv2D(6, 3, groups=4) on 8 channels
    unit = Unit("conv", Layer("conv", kind="conv2d", config={"groups": 4}, tensors={"weight": kernel}), "conv2d",
                {"weight": kernel})
    assert (in_channels(unit), out_channels(unit)) == (8, 6)


@pytest.mark.parametrize("head_file", ["dw.keras", "dw.weights.h5"])
def test_a_depthwise_head_with_a_multiplier_fits_the_channels_it_takes(tmp_path, head_file):
    inputs = keras.Input((8, 8, 3))
    backbone = keras.Model(inputs, layers.Conv2D(4, 3, padding="same", name="conv4")(inputs))
    head = keras.Sequential([keras.Input((8, 8, 4)), layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")])
    head(backbone.output)  # Keras takes it
    head.save(tmp_path / "dw.keras")
    head.save_weights(tmp_path / "dw.weights.h5")
    finding, report = junction(saved(backbone, tmp_path / "b.keras"), tmp_path / head_file)
    assert report.ok and finding.kind == "fits", finding.message
    assert "'dw'" in finding.message and "4" in finding.message


# ---- one verdict per report ---------------------------------------------------------------------


def test_a_head_from_another_backbone_that_does_not_fit_promises_no_loading(tmp_path):
    keras.utils.set_random_seed(0)
    with weightkit.split(saved(vgg_like(), tmp_path / "a.keras"), "block2_pool") as parts:
        weightkit.save(parts.head, tmp_path / "head.keras")
    keras.utils.set_random_seed(1)
    other = conv_backbone(16, size=(48, 48))  # 48 → 24 → 12
    finding, report = junction(saved(other, tmp_path / "other.keras"), tmp_path / "head.keras")
    assert finding.severity == "error" and "a 12×12 grid where the head needs 8×8" in finding.message
    provenance = [f for f in report.findings if f.kind == "provenance"]
    assert provenance and provenance[0].severity == "warning"
    assert not any("loading will succeed" in f.message for f in report.findings)


def test_a_head_from_another_backbone_that_fits_still_warns_that_loading_is_not_accuracy(tmp_path):
    keras.utils.set_random_seed(0)
    with weightkit.split(saved(vgg_like(), tmp_path / "a.keras"), "block2_pool") as parts:
        weightkit.save(parts.head, tmp_path / "head.keras")
    keras.utils.set_random_seed(1)
    with weightkit.split(saved(vgg_like(), tmp_path / "b.keras"), "block2_pool") as parts:
        weightkit.save(parts.backbone, tmp_path / "backbone.keras")
    finding, report = junction(tmp_path / "backbone.keras", tmp_path / "head.keras")
    assert finding.kind == "fits"
    assert [f.message for f in report.findings if f.kind == "provenance" and "loading will succeed" in f.message]
