"""The catalog's Keras sources: keras.applications and keras-yolo2 entries, regenerated for a few small models.

Each entry must split its tokens the way Keras does: what ``include_top=False`` drops is the head,
and a no-top ``.h5`` written by Keras has exactly the entry's backbone tokens.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import pytest

import weightkit
from tests.tools.catalog import Built, entry_of, keras_apps, yolo2
from weightkit.catalog import BACKBONE, FOLDS, HEAD, PREPROCESSING, Entry
from weightkit.ops.signature import signature


def _only(module, key: str) -> Built:
    """The one entry ``module.builds`` yields for ``key``, its temporary files kept in a folder we can look into."""
    found = list(module.builds({key}))
    assert len(found) == 1, f"{key}: {len(found)} entries"
    return found[0]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """The temporary folder the builds write their ``.h5`` files under (to check they are gone)."""
    folder = tmp_path_factory.mktemp("catalog-scratch")
    saved, tempfile.tempdir = tempfile.tempdir, str(folder)
    yield folder
    tempfile.tempdir = saved


@pytest.fixture(scope="module")
def mobilenet_v2(scratch) -> Built:
    return _only(keras_apps, "keras.applications.MobileNetV2(alpha=0.35)")  # by constructor


@pytest.fixture(scope="module")
def tiny_yolo(scratch) -> Built:
    return _only(yolo2, "Tiny YOLO backend")  # by name


def _roles(entry: Entry, *roles: int) -> Counter[str]:
    return Counter(t for t, c in zip(entry.tokens, entry.codes) if c & 3 in roles)


def test_mobilenet_v2_entry_describes_the_keras_model(mobilenet_v2):
    built = mobilenet_v2
    entry = entry_of(built)
    assert (entry.name, entry.family, entry.variant, entry.source) == (
        "MobileNetV2 α=0.35", "MobileNetV2", "α=0.35", "keras.applications")
    assert entry.tokens[-1] == "k:1000x1280" and entry.codes[-1] & 3 == HEAD
    assert entry.head_kernels == Counter({"k:1000x1280": 1})
    assert built.head == {"predictions"} and not built.aux
    assert Counter(c & 3 for c in entry.codes)[FOLDS] == len(built.folds) == 52  # every batch norm follows a conv
    assert "bn_Conv1" in built.folds  # Conv1 → bn_Conv1, and Conv1's output feeds nothing else
    assert (entry.stride, entry.backbone_end, entry.channels, entry.input_size) == (32, "Conv_1_bn", 1280, (224, 224))
    assert entry.preprocessing == PREPROCESSING["tf"]
    assert entry.epsilon == pytest.approx(1e-3)
    assert (entry.head, entry.classes) == ("classifier", 1000)


def _no_top_tokens(folder: Path, function: str, **arguments) -> Counter[str]:
    """The tokens of a no-top ``.h5`` written by Keras."""
    keras = keras_apps.import_keras()
    getattr(keras.applications, function)(include_top=False, weights=None, **arguments).save(folder / "no_top.h5")
    with weightkit.load(folder / "no_top.h5") as no_top:
        return Counter(part.token for part in signature(no_top))


def test_no_top_file_has_exactly_the_backbone_tokens(mobilenet_v2, tmp_path):
    tokens = _no_top_tokens(tmp_path, "MobileNetV2", alpha=0.35)
    assert tokens == _roles(entry_of(mobilenet_v2), BACKBONE, FOLDS)


def test_convnext_keeps_its_head_layernorm_without_top(scratch, tmp_path):
    """ConvNeXt without its top still applies the head's LayerNorm (renamed): only the Dense is head."""
    built = _only(keras_apps, "ConvNeXtTiny")
    entry = entry_of(built)
    assert built.head == {"convnext_tiny_head_dense"}
    assert (entry.backbone_end, entry.channels, entry.stride) == ("convnext_tiny_head_layernorm", 768, 32)
    assert entry.epsilon == pytest.approx(1e-6) and not built.folds
    assert _no_top_tokens(tmp_path, "ConvNeXtTiny") == _roles(entry, BACKBONE, FOLDS)


def test_mobilenet_v3_head_is_its_last_two_convolutions(scratch):
    built = _only(keras_apps, "MobileNetV3Small minimalistic")
    entry = entry_of(built)
    assert built.head == {"conv_2", "logits"}  # Keras keeps conv_1 without its top, drops conv_2 and the logits
    assert entry.head_kernels == Counter({"k:1024x576x1x1": 1, "k:1000x1024x1x1": 1})
    assert (entry.family, entry.variant, entry.backbone_end, entry.channels) == (
        "MobileNetV3", "Small minimalistic", "conv_1_bn", 576)
    assert entry.preprocessing == PREPROCESSING["inside"] and entry.input_size == (224, 224)


def test_tiny_yolo_is_a_backbone_without_head(tiny_yolo):
    entry = entry_of(tiny_yolo)
    assert not entry.head_kernels and not _roles(entry, HEAD)
    assert tiny_yolo.folds == {f"norm_{i}" for i in range(1, 9)}
    assert entry.backbone == Counter(f"k:{o}x{i}x3x3" for i, o in zip(
        (3, 16, 32, 64, 128, 256, 512, 1024), (16, 32, 64, 128, 256, 512, 1024, 1024)))
    assert (entry.family, entry.variant, entry.source) == ("YOLOv2", "Tiny YOLO backend", "keras-yolo2")
    assert (entry.stride, entry.backbone_end, entry.channels, entry.input_size) == (32, "norm_8", 1024, (416, 416))
    assert entry.preprocessing == PREPROCESSING["raw"]
    assert (entry.head, entry.classes) == (None, None)


def test_builds_leave_no_files_behind(mobilenet_v2, tiny_yolo, scratch):
    """Each build's temporary ``.h5`` is deleted once weightkit has read it."""
    assert not list(scratch.iterdir())
