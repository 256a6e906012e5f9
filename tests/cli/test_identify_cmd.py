"""`weightkit identify` and inspect's architecture line, as the shell runs them."""

from __future__ import annotations

import json

import torch
import torchvision

from tests.cli import run
from tests.conftest import FIXTURES


def _resnet18(tmp_path, classes=1000):
    torch.manual_seed(0)
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(num_classes=classes).state_dict(), path)
    return path


def test_a_named_file_exits_0_and_says_what_the_weights_cannot(capsys, tmp_path):
    code, out, _ = run(capsys, "identify", _resnet18(tmp_path))
    assert code == 0
    assert "ResNet18 (torchvision, timm), with its head (classifier with 1000 classes)" in out
    assert "torch: RGB / 255, then minus mean [0.485, 0.456, 0.406]" in out
    assert "224×224" in out and "1e-05" in out
    assert "freshly initialized" in out


def test_no_name_exits_1_with_the_closest(capsys, tmp_path):
    path = tmp_path / "net.pth"
    torch.save(torch.nn.Sequential(*(torch.nn.Conv2d(8, 8, 3) for _ in range(10))).state_dict(), path)
    code, out, _ = run(capsys, "identify", path)
    assert code == 1
    assert "no catalog architecture matches" in out


def test_json(capsys, tmp_path):
    code, out, _ = run(capsys, "identify", _resnet18(tmp_path, classes=7), "--json", "--top", "2")
    document = json.loads(out)
    assert code == 0 and document["schema_version"]
    best = document["matches"][0]
    assert len(document["matches"]) == 2
    assert (best["architecture"], best["relation"], best["head"]["classes"]) == ("ResNet18", "replaced head", 7)
    assert best["backbone_end"] == {"layer": "layer4.1.bn2", "channels": 512, "stride": 32}
    assert document["preprocessing"]["name"] == "torch"
    assert document["trained"] is False


def test_no_data_reads_no_tensor(capsys, tmp_path):
    code, out, _ = run(capsys, "identify", _resnet18(tmp_path), "--no-data", "--json")
    assert code == 0
    assert json.loads(out)["trained"] is None


def test_a_broken_file_is_one_error(capsys, tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(_resnet18(tmp_path).read_bytes()[:5000])
    code, out, err = run(capsys, "identify", path)
    assert code == 2
    assert "Traceback" not in err and err.strip()


def test_inspect_has_the_architecture_line(capsys):
    code, out, _ = run(capsys, "inspect", FIXTURES / "tfkeras" / "tfk_mobilenetv2_full.h5")
    assert code == 0
    assert "MobileNetV2 α=0.35 (keras.applications), with another head: a classifier with 10 classes" in out
    code, out, _ = run(capsys, "inspect", FIXTURES / "tfkeras" / "tfk_mobilenetv2_full.h5", "--json")
    assert json.loads(out)["architecture"]["name"] == "MobileNetV2 α=0.35"
