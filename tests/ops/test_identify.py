"""identify names architectures from files the real libraries write, in every format and the ways real files
change them (prefixes, wrappers, fp16, replaced, removed and truncated heads, ONNX exports), and names
nothing for networks that are in no catalog."""

from __future__ import annotations

import collections

import pytest
import torch
import torchvision

import weightkit
from weightkit.ops.identify import identify_document, identify_model


def _named(path, **kwargs):
    found = weightkit.identify(path, **kwargs)
    assert found.named is not None, found.summary()
    return found.named


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18().eval()


def _save_state(tmp_path, name, state, **kwargs):
    path = tmp_path / name
    torch.save(state, path, **kwargs)
    return path


# ---- PyTorch files ------------------------------------------------------------------------------------


def test_a_torchvision_state_dict_is_named_with_its_head(tmp_path, resnet18):
    named = _named(_save_state(tmp_path, "resnet18.pth", resnet18.state_dict()))
    assert (named.family, named.variant, named.relation) == ("ResNet", "18", "complete")
    assert "torchvision" in named.sources
    assert named.head.present and named.head.classes == 1000
    assert named.backbone_end.channels == 512 and named.backbone_end.stride == 32
    assert named.confidence > 0.95


@pytest.mark.parametrize("wrap", ["state_dict", "model", "ema"])
def test_wrapping_dicts_and_prefixes_change_nothing(tmp_path, resnet18, wrap):
    state = {f"module.{key}": value for key, value in resnet18.state_dict().items()}
    path = _save_state(tmp_path, "ckpt.pth", {wrap: state, "epoch": 3})
    named = _named(path)
    assert (named.family, named.variant, named.relation) == ("ResNet", "18", "complete")
    assert any("module." in difference for difference in named.differences)


def test_a_legacy_torch_file_in_float16(tmp_path, resnet18):
    state = {key: value.half() if value.is_floating_point() else value for key, value in resnet18.state_dict().items()}
    path = _save_state(tmp_path, "legacy.pt", state, _use_new_zipfile_serialization=False)
    named = _named(path)
    assert (named.family, named.variant) == ("ResNet", "18")


def test_safetensors_with_a_backbone_prefix(tmp_path, resnet18):
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file({f"backbone.{k}": v.contiguous() for k, v in resnet18.state_dict().items()}, str(path))
    named = _named(path)
    assert (named.family, named.variant) == ("ResNet", "18")
    assert any("backbone." in difference for difference in named.differences)


def test_a_replaced_head_is_named_with_its_own_class_count(tmp_path):
    net = torchvision.models.resnet50()
    net.fc = torch.nn.Linear(2048, 7)
    named = _named(_save_state(tmp_path, "r50_7.pth", net.state_dict()))
    assert (named.family, named.variant, named.relation) == ("ResNet", "50", "replaced head")
    assert named.head.present and named.head.classes == 7
    assert "7 classes" in named.describe()


def test_a_removed_head_is_a_backbone(tmp_path, resnet18):
    state = {k: v for k, v in resnet18.state_dict().items() if not k.startswith("fc.")}
    named = _named(_save_state(tmp_path, "backbone.pth", state))
    assert (named.variant, named.relation) == ("18", "backbone")
    assert not named.head.present
    assert named.backbone_end.layer == "layer4.1.bn2" and named.backbone_end.channels == 512


def test_a_truncated_tail_is_said(tmp_path, resnet18):
    state = {k: v for k, v in resnet18.state_dict().items() if not k.startswith(("layer4.", "fc."))}
    named = _named(_save_state(tmp_path, "cut.pth", state))
    assert named.relation == "truncated" and named.family == "ResNet"
    assert named.variant == "18"
    assert "missing" in named.differences[0]
    assert named.backbone_end.channels == 256


def test_a_tail_cut_before_variants_differ_names_the_family_only(tmp_path):
    net = torchvision.models.resnet101()
    state = {k: v for k, v in net.state_dict().items() if k.startswith(("conv1.", "bn1.", "layer1.", "layer2."))}
    named = _named(_save_state(tmp_path, "early.pth", state))
    assert named.family == "ResNet" and named.variant is None
    assert named.relation == "truncated"


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-exporter", "dynamo-exporter"])
def test_onnx_exports_with_folded_batch_norms(tmp_path, resnet18, dynamo):
    path = tmp_path / "resnet18.onnx"
    torch.onnx.export(resnet18, (torch.randn(1, 3, 224, 224),), str(path), dynamo=dynamo)
    named = _named(path)
    assert (named.family, named.variant, named.relation) == ("ResNet", "18", "complete")
    assert any("folded" in difference for difference in named.differences)


def test_mobilenet_v3_onnx_export(tmp_path):
    net = torchvision.models.mobilenet_v3_small().eval()
    path = tmp_path / "mnv3.onnx"
    torch.onnx.export(net, (torch.randn(1, 3, 224, 224),), str(path), dynamo=False)
    named = _named(path)
    assert (named.family, named.variant) == ("MobileNetV3", "Small")


# ---- Keras files ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mobilenet_files(tmp_path_factory):
    import keras

    folder = tmp_path_factory.mktemp("mobilenet")
    top = keras.applications.MobileNetV2(alpha=0.35, weights=None)
    no_top = keras.applications.MobileNetV2(alpha=0.35, weights=None, include_top=False)
    files = {"h5": folder / "m.h5", "keras": folder / "m.keras", "weights": folder / "m.weights.h5",
             "no_top": folder / "m_no_top.h5", "no_top_weights": folder / "m_no_top.weights.h5"}
    top.save(files["h5"])
    top.save(files["keras"])
    top.save_weights(files["weights"])
    no_top.save(files["no_top"])
    no_top.save_weights(files["no_top_weights"])
    return files


@pytest.mark.parametrize("kind", ["h5", "keras", "weights"])
def test_keras_applications_files_with_top(mobilenet_files, kind):
    named = _named(mobilenet_files[kind])
    assert (named.family, named.variant, named.relation) == ("MobileNetV2", "α=0.35", "complete")
    assert "keras.applications" in named.sources
    assert named.preprocessing.name == "tf"
    assert named.entry.input_size == (224, 224)


@pytest.mark.parametrize("kind", ["no_top", "no_top_weights"])
def test_keras_applications_no_top_is_a_backbone(mobilenet_files, kind):
    found = weightkit.identify(mobilenet_files[kind])
    assert found.summary() == "MobileNetV2 α=0.35 (keras.applications), no top — a backbone"
    assert found.named.backbone_end.channels == 1280 and found.named.backbone_end.stride == 32


def test_keras_resnet50_and_torchvision_resnet50_keep_their_own_preprocessing(tmp_path):
    import keras

    keras_file = tmp_path / "r50.h5"
    keras.applications.ResNet50(weights=None).save(keras_file)
    torch_file = _save_state(tmp_path, "r50.pth", torchvision.models.resnet50().state_dict())
    from_keras, from_torch = _named(keras_file), _named(torch_file)
    assert (from_keras.family, from_keras.variant) == (from_torch.family, from_torch.variant) == ("ResNet", "50")
    assert from_keras.sources[0] == "keras.applications" and from_keras.preprocessing.name == "caffe"
    assert from_torch.sources[0] in ("torchvision", "timm") and from_torch.preprocessing.name == "torch"


def test_a_timm_file(tmp_path):
    import timm
    from safetensors.torch import save_file

    net = timm.create_model("efficientnet_b0", pretrained=False)
    path = tmp_path / "efficientnet_b0.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    named = _named(path)
    assert named.family == "EfficientNet" and named.variant == "B0"



def test_a_vision_transformer_whose_twin_expects_other_preprocessing(tmp_path):
    import timm
    from safetensors.torch import save_file

    net = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    path = tmp_path / "vit_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    named = _named(path, training=False)
    assert (named.family, named.variant) == ("ViT", "Ti/16")
    # DeiT-Ti has the same shapes and expects ImageNet's mean and std, ViT-Ti 0.5: the file cannot say which.
    assert named.preprocessing is None
    assert any("DeiT-Ti/16" in line and "preprocessing" in line for line in named.differences)


def test_vgg16_is_not_taken_for_vgg16_bn_with_its_norms_folded(tmp_path):
    named = _named(_save_state(tmp_path, "vgg16.pth", torchvision.models.vgg16().state_dict()), training=False)
    assert named.architecture == "VGG16" and named.relation == "complete"



def test_an_onnx_graph_of_vgg_cannot_tell_batch_norms_it_never_had_from_folded_ones(tmp_path):
    net = torchvision.models.vgg11().features.eval()
    path = tmp_path / "vgg11_features.onnx"
    torch.onnx.export(net, (torch.zeros(1, 3, 64, 64),), str(path), dynamo=False)
    named = _named(path, training=False)
    assert (named.family, named.variant, named.relation) == ("VGG", None, "backbone")
    assert "cannot tell VGG 11 / 11-BN apart" in named.differences[0]


def test_auxiliary_classifiers_and_their_norms_belong_to_the_architecture(tmp_path):
    net = torchvision.models.googlenet(aux_logits=True, init_weights=False)
    named = _named(_save_state(tmp_path, "googlenet.pth", net.state_dict()), training=False)
    assert (named.architecture, named.relation) == ("GoogLeNet", "complete")

def test_alexnet_features_alone(tmp_path):
    net = torchvision.models.alexnet()
    named = _named(_save_state(tmp_path, "alexnet_features.pth", net.features.state_dict()), training=False)
    assert named.architecture == "AlexNet" and named.relation == "backbone"


def test_a_swin_file_without_its_relative_position_indices(tmp_path):
    net = torchvision.models.swin_t()
    state = {k: v for k, v in net.state_dict().items() if "relative_position_index" not in k}
    assert len(state) < len(net.state_dict())
    named = _named(_save_state(tmp_path, "swin_t.pth", state), training=False)
    assert (named.family, named.variant, named.relation) == ("Swin", "T", "complete")

# ---- keras-yolo2 -------------------------------------------------------------------------------------


def test_full_yolo_backend_weights_are_named_as_a_backbone(tmp_path):
    from tests.yolo_nets import full_yolo_extractor, save_legacy_weights

    path = save_legacy_weights(full_yolo_extractor(input_size=416, shrink=1), tmp_path / "full_yolo_backend.h5")
    found = weightkit.identify(path, training=False)
    assert found.named is not None, found.summary()
    assert found.named.family == "YOLOv2" and "keras-yolo2" in found.named.sources
    assert found.named.relation == "backbone" and not found.named.head.present
    assert found.named.backbone_end.channels == 1024
    assert found.summary() == "Full YOLO backend (keras-yolo2), no top — a backbone"


def test_a_yolo_detector_head_is_a_detection_convolution(tmp_path):
    from tests.yolo_nets import BOX, CLASS, save_yolo_files

    files = save_yolo_files(tmp_path)  # test size: shrunk filters, so in no catalog
    found = weightkit.identify(files.detector_h5, training=False)
    assert found.named is None
    head = found.anatomy.head
    assert head.kind == "detection" and head.classes == CLASS
    assert str(BOX) in head.description


# ---- no name for what no catalog holds ---------------------------------------------------------------


def _custom_torch_nets():
    from tests.nets import torch_cnn, torch_resnet

    unet = torch.nn.Sequential(*[torch.nn.Conv2d(c, o, 3, padding=1) for c, o in
                                 [(3, 24), (24, 48), (48, 96), (96, 48), (48, 24), (24, 2)]])
    mlp = torch.nn.Sequential(torch.nn.Linear(784, 300), torch.nn.ReLU(), torch.nn.Linear(300, 100),
                              torch.nn.Linear(100, 10))
    wide = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1], num_classes=10)
    return {"cnn": torch_cnn(), "resnet": torch_resnet(), "unet": unet, "mlp": mlp, "resnet10": wide}


@pytest.mark.parametrize("name", ["cnn", "resnet", "unet", "mlp", "resnet10"])
def test_custom_networks_get_no_name(tmp_path, name):
    net = _custom_torch_nets()[name]
    found = weightkit.identify(_save_state(tmp_path, f"{name}.pt", net.state_dict()))
    assert found.named is None, found.summary()
    assert found.summary().startswith("no catalog architecture matches")


def test_real_files_of_other_people_get_no_name(real_weights):
    for path in sorted(p for p in real_weights.rglob("*") if p.is_file() and p.suffix != ".md"):
        if path.suffix == ".json":
            continue
        try:
            found = weightkit.identify(path, training=False)
        except weightkit.WeightkitError:
            continue
        assert found.named is None, (path.name, found.summary())


def test_a_keras_cnn_gets_no_name(tmp_path):
    from tests.nets import keras_cnn

    path = tmp_path / "cnn.keras"
    keras_cnn().save(path)
    assert weightkit.identify(path).named is None


# ---- the document and the inspect line ----------------------------------------------------------


def test_json_document(tmp_path, resnet18):
    path = _save_state(tmp_path, "r18.pth", resnet18.state_dict())
    with weightkit.load(path) as model:
        document = identify_document(identify_model(model), str(path))
    assert document["architecture"] == "ResNet18"
    first = document["matches"][0]
    assert {"architecture", "family", "variant", "source", "confidence", "head", "backbone_end",
            "differences"} <= set(first)
    assert first["head"]["present"] and first["head"]["classes"] == 1000
    assert first["backbone_end"] == {"layer": "layer4.1.bn2", "channels": 512, "stride": 32}
    assert document["preprocessing"]["name"] == "torch"
    assert document["trained"] is False


def test_signature_of_a_file_is_independent_of_dtype(tmp_path, resnet18):
    from weightkit.ops.signature import signature

    half = {k: v.half() if v.is_floating_point() else v for k, v in resnet18.state_dict().items()}
    with weightkit.load(_save_state(tmp_path, "a.pth", resnet18.state_dict())) as a, \
            weightkit.load(_save_state(tmp_path, "b.pth", half)) as b:
        assert collections.Counter(p.token for p in signature(a)) == collections.Counter(p.token for p in signature(b))
