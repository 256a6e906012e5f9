"""The catalog's PyTorch sources: a sample of torchvision and timm models, as `identify` will compare them.

The meta-device builds must read as weightkit reads a real ``torch.save`` of the same model,
or the catalog would describe files no user has.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

import weightkit
from tests.tools.catalog import Built, entry_of
from tests.tools.catalog.torch_models import builds
from weightkit.catalog import AUX, FOLDS, HEAD, PREPROCESSING
from weightkit.ops.signature import signature

RESNET18 = "torchvision.models.resnet18()"
RESNET50 = "torchvision.models.resnet50()"
MOBILENET = "torchvision.models.mobilenet_v3_small()"
GOOGLENET = "torchvision.models.googlenet(aux_logits=True, init_weights=False)"
DENSENET = "torchvision.models.densenet121()"
TIMM_RESNET50 = "timm.create_model('resnet50')"
TIMM_EFFICIENTNET = "timm.create_model('efficientnet_b0')"
SAMPLE = {RESNET18, RESNET50, MOBILENET, GOOGLENET, DENSENET, TIMM_RESNET50, TIMM_EFFICIENTNET}


@pytest.fixture(scope="module")
def built() -> dict[str, Built]:
    """The sample, built once for the module (on the meta device: seconds, no memory)."""
    found = {b.constructor: b for b in builds(SAMPLE)}
    assert set(found) == SAMPLE
    return found


def _tokens(built: Built, role: int) -> Counter[str]:
    entry = entry_of(built)
    return Counter(t for t, c in zip(entry.tokens, entry.codes) if c & 3 == role)


def test_meta_build_reads_as_a_real_torch_save_file(built: dict[str, Built], tmp_path: Path) -> None:
    import torchvision.models

    path = tmp_path / "resnet18.pt"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    ours = built[RESNET18].model
    with weightkit.load(path) as real:
        assert signature(ours) == signature(real)
        assert [(t.name, t.shape, t.dtype, t.role) for layer in ours.layers for t in layer.tensors.values()] == [
            (t.name, t.shape, t.dtype, t.role) for layer in real.layers for t in layer.tensors.values()]
        assert [layer.kind for layer in ours.layers] == [layer.kind for layer in real.layers]


def test_resnet18_head_folds_and_facts(built: dict[str, Built]) -> None:
    resnet = built[RESNET18]
    assert _tokens(resnet, HEAD) == Counter({"k:1000x512": 1})
    assert _tokens(resnet, FOLDS) == Counter({"bn:64": 5, "bn:128": 5, "bn:256": 5, "bn:512": 5})  # every BN: 20
    assert not _tokens(resnet, AUX)
    assert (resnet.name, resnet.family, resnet.variant, resnet.source) == ("ResNet18", "ResNet", "18", "torchvision")
    assert (resnet.input_size, resnet.preprocessing, resnet.epsilon) == ((224, 224), PREPROCESSING["torch"], 1e-5)
    assert (resnet.stride, resnet.backbone_end, resnet.channels, resnet.classes) == (32, "layer4.1.bn2", 512, 1000)


def test_googlenet_auxiliary_classifiers(built: dict[str, Built]) -> None:
    googlenet = built[GOOGLENET]
    assert googlenet.aux == {"aux1", "aux2"}
    aux = _tokens(googlenet, AUX)
    assert aux == Counter({"k:128x512x1x1": 1, "k:128x528x1x1": 1, "bn:128": 2, "k:1024x2048": 2, "k:1000x1024": 2})
    assert _tokens(googlenet, HEAD) == Counter({"k:1000x1024": 1})
    assert googlenet.epsilon == 1e-3


def test_mobilenet_v3_head_is_the_whole_classifier(built: dict[str, Built]) -> None:
    mobilenet = built[MOBILENET]
    assert _tokens(mobilenet, HEAD) == Counter({"k:1024x576": 1, "k:1000x1024": 1})
    assert (mobilenet.family, mobilenet.variant, mobilenet.stride, mobilenet.channels) == (
        "MobileNetV3", "Small", 32, 576)
    assert not [t for t in _tokens(mobilenet, 0) if t.startswith("bn:")]  # every batch norm follows a conv


def test_densenet_norms_after_a_concat_do_not_fold(built: dict[str, Built]) -> None:
    folds = built[DENSENET].folds
    assert "features.norm0" in folds
    assert "features.denseblock1.denselayer1.norm2" in folds
    assert "features.denseblock1.denselayer1.norm1" not in folds  # its input is the block's concatenation
    assert "features.transition1.norm" not in folds
    assert "features.norm5" not in folds
    assert len(folds) == 59


def test_torchvision_and_timm_resnet50_are_one_architecture(built: dict[str, Built]) -> None:
    ours, theirs = built[RESNET50], built[TIMM_RESNET50]
    assert (ours.family, ours.variant) == (theirs.family, theirs.variant) == ("ResNet", "50")
    assert entry_of(ours).backbone == entry_of(theirs).backbone
    assert entry_of(ours).head_kernels == entry_of(theirs).head_kernels == Counter({"k:1000x2048": 1})


def test_timm_efficientnet_facts_come_from_its_config(built: dict[str, Built]) -> None:
    efficientnet = built[TIMM_EFFICIENTNET]
    assert (efficientnet.name, efficientnet.family, efficientnet.variant) == ("EfficientNet-B0", "EfficientNet", "B0")
    assert _tokens(efficientnet, HEAD) == Counter({"k:1000x1280": 1})
    assert (efficientnet.input_size, efficientnet.stride, efficientnet.channels) == ((224, 224), 32, 1280)
    assert efficientnet.folds and not [t for t in _tokens(efficientnet, 0) if t.startswith("bn:")]


def test_only_also_takes_display_names() -> None:
    assert {(b.source, b.constructor) for b in builds({"ResNet18"})} == {
        ("torchvision", RESNET18), ("timm", "timm.create_model('resnet18')")}
