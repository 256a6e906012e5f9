"""Known architectures, as shape tokens, for `identify` to name the architecture of a file.

The entries are generated from the real libraries (keras.applications, torchvision, timm,
and keras-yolo2's published layer structure) by ``python -m tests.tools.catalog``, and
stored in ``architectures.json.gz`` beside this module. Each entry keeps its tokens (see
`weightkit.ops.signature`) in the library's order, each marked as backbone, head, or
training-only (an auxiliary classifier), with the batch norms that an inference export
folds into the convolution before them; and what the weights cannot tell: the
preprocessing the architecture expects, its native input size, its batch-norm ε.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from typing import Any

__all__ = ["Entry", "Preprocessing", "entries", "PREPROCESSING", "SCHEMA", "CATALOG_FILE", "encode", "decode",
           "BACKBONE", "HEAD", "AUX", "FOLDS", "BIASED"]

CATALOG_FILE = "architectures.json.gz"
SCHEMA = 1

#: What a token is to its entry (the low two bits of its code).
BACKBONE, HEAD, AUX, FOLDS = 0, 1, 2, 3  # FOLDS: a backbone batch norm an inference export folds away
#: Set on a kernel token whose layer has a bias (the third bit).
BIASED = 4


@dataclass(frozen=True)
class Preprocessing:
    """How images must be prepared for an architecture: what its weights cannot tell."""

    name: str  # caffe | tf | torch | inside | custom
    description: str
    mean: tuple[float, ...] | None = None  # per channel, on 0..255 values for caffe, on 0..1 values otherwise
    std: tuple[float, ...] | None = None
    channels: str = "RGB"


#: The presets: Keras Applications' three modes, and preprocessing built into the model.
PREPROCESSING = {
    "caffe": Preprocessing("caffe", "BGR, minus the ImageNet mean [103.939, 116.779, 123.68], no scaling",
                           (103.939, 116.779, 123.68), None, "BGR"),
    "tf": Preprocessing("tf", "RGB scaled to [-1, 1]: x / 127.5 - 1"),
    "torch": Preprocessing("torch", "RGB / 255, then minus mean [0.485, 0.456, 0.406], over std [0.229, 0.224, 0.225]",
                           (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "inside": Preprocessing("inside", "inside the model: give it RGB values 0..255"),
    "raw": Preprocessing("raw", "RGB / 255, nothing more"),
}


@dataclass(frozen=True)
class Entry:
    """One architecture as a library builds it.

    ``codes`` holds, per token, what it is to the entry (`BACKBONE`, `HEAD`, `AUX`, `FOLDS`,
    plus `BIASED`); ``names`` a few of the library's layer paths, evenly spaced, to tell
    apart sources of one architecture whose weights have the same shapes.
    """

    name: str  # how weightkit names it: "MobileNetV2 α=0.35"
    family: str  # "MobileNetV2"
    variant: str | None  # "α=0.35"
    source: str  # keras.applications | torchvision | timm | keras-yolo2
    constructor: str  # how to build it: "keras.applications.MobileNetV2(alpha=0.35)"
    tokens: tuple[str, ...]
    codes: tuple[int, ...]
    input_size: tuple[int, int] | None = None  # height, width the weights were trained at
    preprocessing: Preprocessing | None = None
    epsilon: float | None = None  # the batch norms' ε (the most common one)
    stride: int | None = None  # input size over the backbone's last feature map
    backbone_end: str | None = None  # the backbone's last weighted layer, in the library's names
    channels: int | None = None  # channels of the backbone's last feature map
    head: str | None = None  # classifier | detection | ...
    classes: int | None = None
    names: tuple[str, ...] = field(default=(), repr=False)

    def kernels(self, *roles: int) -> Counter[str]:
        """Kernel tokens of the given roles, counted."""
        return Counter(t for t, c in zip(self.tokens, self.codes) if c & 3 in roles and t.startswith("k:"))

    @cached_property
    def backbone(self) -> Counter[str]:
        return self.kernels(BACKBONE)

    @cached_property
    def head_kernels(self) -> Counter[str]:
        return self.kernels(HEAD)

    @cached_property
    def aux_kernels(self) -> Counter[str]:
        return self.kernels(AUX)

    @cached_property
    def biased(self) -> Counter[str]:
        """Backbone kernel tokens whose layer has a bias, as the library builds it (nothing folded)."""
        return Counter(t for t, c in zip(self.tokens, self.codes) if c & 3 == BACKBONE and c & BIASED
                       and t.startswith("k:"))

    def norms(self, *, folded: bool) -> Counter[str]:
        """Norm tokens of the backbone and head; ``folded``: without the batch norms an export folds away."""
        return self.norm_tokens(BACKBONE, HEAD) if folded else self.norm_tokens(BACKBONE, HEAD, FOLDS)

    def norm_tokens(self, *roles: int) -> Counter[str]:
        """Norm tokens of the given roles, counted."""
        return Counter(t for t, c in zip(self.tokens, self.codes) if c & 3 in roles and not t.startswith("k:"))


def encode(entry: Entry, vocabulary: dict[str, int]) -> dict[str, Any]:
    """The entry as stored: tokens as indices into one vocabulary, each times 8 plus its code."""
    document: dict[str, Any] = {key: getattr(entry, key) for key in (
        "name", "family", "variant", "source", "constructor", "epsilon", "stride", "backbone_end", "channels",
        "head", "classes")}
    document["input_size"] = list(entry.input_size) if entry.input_size else None
    document["preprocessing"] = _preprocessing_document(entry.preprocessing)
    document["names"] = list(entry.names)
    document["seq"] = [vocabulary.setdefault(t, len(vocabulary)) * 8 + c for t, c in zip(entry.tokens, entry.codes)]
    return {key: value for key, value in document.items() if value is not None}


def decode(document: dict[str, Any], vocabulary: list[str]) -> Entry:
    """An entry from its stored form (see `encode`)."""
    seq = document["seq"]
    size = document.get("input_size")
    return Entry(
        document["name"], document["family"], document.get("variant"), document["source"], document["constructor"],
        tuple(vocabulary[code // 8] for code in seq), tuple(code % 8 for code in seq),
        input_size=(size[0], size[1]) if size else None,
        preprocessing=_preprocessing(document.get("preprocessing")),
        epsilon=document.get("epsilon"), stride=document.get("stride"), backbone_end=document.get("backbone_end"),
        channels=document.get("channels"), head=document.get("head"), classes=document.get("classes"),
        names=tuple(document.get("names", ())))


def _preprocessing_document(found: Preprocessing | None) -> Any:
    if found is None:
        return None
    if PREPROCESSING.get(found.name) == found:
        return found.name
    return {"name": found.name, "description": found.description, "mean": found.mean, "std": found.std,
            "channels": found.channels}


def _preprocessing(document: Any) -> Preprocessing | None:
    if document is None:
        return None
    if isinstance(document, str):
        return PREPROCESSING[document]
    mean, std = document.get("mean"), document.get("std")
    return Preprocessing(document["name"], document["description"], tuple(mean) if mean else None,
                         tuple(std) if std else None, document.get("channels", "RGB"))


@cache
def entries() -> tuple[Entry, ...]:
    """Every catalog entry (read once, on first use)."""
    data = resources.files(__package__).joinpath(CATALOG_FILE).read_bytes()
    document = json.loads(gzip.decompress(data))
    if document.get("schema") != SCHEMA:
        raise RuntimeError(f"weightkit's {CATALOG_FILE} has schema {document.get('schema')}, not {SCHEMA}: reinstall")
    vocabulary = document["tokens"]
    return tuple(decode(item, vocabulary) for item in document["entries"])


def versions() -> dict[str, str]:
    """The library versions the catalog was generated with."""
    data = resources.files(__package__).joinpath(CATALOG_FILE).read_bytes()
    return dict(json.loads(gzip.decompress(data)).get("generated_with", {}))
