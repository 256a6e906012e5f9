"""The stored catalog is what its script makes: a sample of every source, rebuilt from the real libraries, gives
the stored entries exactly; and the catalog covers what the issue asks for and stays small."""

from __future__ import annotations

import importlib
from collections import Counter

import pytest

from tests.tools.catalog import CATALOG_PATH, entry_of
from weightkit.catalog import entries

# One architecture or more per source, quick to build (the whole catalog takes minutes).
SAMPLE = {
    "keras_apps": {"MobileNetV2 α=0.35", "NASNetMobile", "ResNet50V2"},
    "yolo2": {"Tiny YOLO backend", "SqueezeNet backend"},
    "torch_models": {"torchvision.models.resnet18()", "torchvision.models.mobilenet_v3_small()",
                     "timm.create_model('efficientnet_b0')", "timm.create_model('vit_tiny_patch16_224')"},
}


@pytest.fixture(scope="module")
def stored():
    return {(e.source, e.name): e for e in entries()}


@pytest.mark.parametrize("source", sorted(SAMPLE))
def test_regenerating_a_sample_gives_the_stored_entries(source, stored):
    module = importlib.import_module(f"tests.tools.catalog.{source}")
    rebuilt = [entry_of(built) for built in module.builds(SAMPLE[source])]
    assert len(rebuilt) >= len(SAMPLE[source])
    for entry in rebuilt:
        assert stored[(entry.source, entry.name)] == entry, entry.name


def test_the_catalog_covers_every_source_and_family(stored):
    families = Counter((source, entry.family) for (source, _), entry in stored.items())
    keras = {family for (source, family) in families if source == "keras.applications"}
    assert keras >= {"MobileNet", "MobileNetV2", "MobileNetV3", "ResNet", "ResNetV2", "VGG",
                     "DenseNet", "InceptionV3", "InceptionResNetV2", "Xception", "NASNet", "EfficientNet",
                     "EfficientNetV2", "ConvNeXt"}
    names = {name for (_, name) in stored}
    assert {"MobileNetV2 α=0.35", "MobileNetV2 α=1.4", "NASNetMobile", "NASNetLarge", "EfficientNetB7",
            "EfficientNetV2L", "ConvNeXtXLarge", "MobileNetV3Small α=0.75 minimalistic"} <= names
    assert sum(source == "keras-yolo2" for (source, _) in stored) == 7
    timm = {family for (source, family) in families if source == "timm"}
    assert {"ResNet", "EfficientNet", "ConvNeXt", "MobileNetV3", "RegNetX", "RegNetY", "ViT"} <= timm
    torchvision = {family for (source, family) in families if source == "torchvision"}
    assert len(torchvision) >= 20


def test_the_catalog_is_small():
    assert CATALOG_PATH.stat().st_size < 100 * 1024
