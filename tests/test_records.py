"""weightkit.records: weightkit's own records in a file's metadata, wherever a reader put them."""

from __future__ import annotations

import numpy as np
import pytest

import weightkit
from weightkit.model import Model
from weightkit.records import PROVENANCE_KEY, STRIPPED_PREFIX_KEY, recorded, recorded_backbone, records

from .nets import torch_cnn


def test_records_keeps_only_weightkit_strings():
    model = Model(metadata={PROVENANCE_KEY: "sha256:ab", STRIPPED_PREFIX_KEY: "backbone.", "weightkit.count": 3,
                            "producer": "keras", "weightkitish": "no"})
    assert records(model) == {PROVENANCE_KEY: "sha256:ab", STRIPPED_PREFIX_KEY: "backbone."}


def test_recorded_finds_nested_metadata():
    nested = Model(metadata={"format": "pt", "extra": {"weightkit": {}, "inner": {PROVENANCE_KEY: "sha256:cd"}}})
    assert recorded_backbone(nested) == "sha256:cd"
    assert recorded(nested, STRIPPED_PREFIX_KEY) is None
    assert recorded_backbone(Model(metadata={PROVENANCE_KEY: 5})) is None  # not a string: not a record


@pytest.mark.parametrize("suffix", [".pt", ".safetensors", ".onnx", ".h5"])
def test_split_head_records_survive_every_writer(tmp_path, suffix):
    """The head's provenance record is written into the file and read back, in every format."""
    import torch

    if suffix == ".h5":
        from .nets import keras_cnn

        keras_cnn().save(tmp_path / "full.h5")
        source, at = tmp_path / "full.h5", "pool"
    elif suffix == ".onnx":
        torch.onnx.export(torch_cnn().eval(), (torch.randn(1, 3, 16, 16),), str(tmp_path / "full.onnx"),
                          dynamo=False)
        source, at = tmp_path / "full.onnx", None
    else:
        torch.save(torch_cnn().state_dict(), tmp_path / "full.pt")
        source, at = tmp_path / "full.pt", "bn2"
    with weightkit.load(source) as model:
        parts = weightkit.split(model, at)
        written = records(parts.head)
        assert written[PROVENANCE_KEY].startswith("sha256:")
        weightkit.save(parts.head, tmp_path / f"head{suffix}")
        parts.head.close()
        parts.backbone.close()
    with weightkit.load(tmp_path / f"head{suffix}") as head:
        assert recorded_backbone(head) == written[PROVENANCE_KEY]
        assert all(np.isfinite(t.read()).all() for t in head.tensors())
