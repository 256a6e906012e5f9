"""The script that makes weightkit's architecture catalog from the real libraries.

Each source module (``keras_apps``, ``yolo2``, ``torch_models``) builds its architectures
with their library, randomly initialized (or on PyTorch's meta device: no memory), and
yields a `Built`: the architecture read the way weightkit reads a file of it, and what
the weights cannot tell. `entry_of` turns it into a catalog entry with the same
`weightkit.ops.signature` that `identify` applies to a user's file, so both are seen alike.

    python -m tests.tools.catalog                      # every source, into weightkit/catalog/
    python -m tests.tools.catalog --only resnet50 --print

Keras runs on its torch backend; torchvision is imported through `import_torchvision`.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from weightkit.catalog import AUX, BACKBONE, BIASED, FOLDS, HEAD, SCHEMA, Entry, Preprocessing, encode
from weightkit.model import Model
from weightkit.ops.signature import BATCH_NORM, signature

__all__ = ["Built", "entry_of", "write_catalog", "CATALOG_PATH", "under", "wanted"]

CATALOG_PATH = Path(__file__).resolve().parents[3] / "weightkit" / "catalog" / "architectures.json.gz"
_NAMES_KEPT = 12


@dataclass
class Built:
    """One architecture as its library builds it, read as weightkit reads a file of it.

    Paths are layer paths as `weightkit.Model.walk` gives them (a Keras layer name, a
    nested ``outer/inner``, a PyTorch module path); a path names its layer and everything
    under it. ``folds`` are the batch norms whose input is a convolution's output and
    nothing else: an inference export folds them into that convolution.
    """

    model: Model
    name: str
    family: str
    variant: str | None
    source: str
    constructor: str
    head: set[str] = field(default_factory=set)
    aux: set[str] = field(default_factory=set)
    folds: set[str] = field(default_factory=set)
    input_size: tuple[int, int] | None = None
    preprocessing: Preprocessing | None = None
    epsilon: float | None = None
    stride: int | None = None
    backbone_end: str | None = None
    channels: int | None = None
    head_kind: str | None = None
    classes: int | None = None


def under(path: str, prefixes: Iterable[str]) -> bool:
    """Is ``path`` one of ``prefixes`` or inside one (``fc`` holds ``fc``, ``head/fc``, ``fc.0``, ``sep:depthwise``)?"""
    return any(path == p or path.startswith((f"{p}.", f"{p}/", f"{p}:")) for p in prefixes)


def wanted(only: set[str] | None, *names: str) -> bool:
    """Is an architecture known by ``names`` (constructor, display name, library name) asked for by ``only``?"""
    return only is None or not only.isdisjoint(names)


def entry_of(built: Built) -> Entry:
    """The catalog entry of ``built``: its tokens, each marked backbone, head, training-only or folding."""
    parts = signature(built.model)
    tokens, codes = [], []
    for part in parts:
        if under(part.path, built.aux):
            code = AUX
        elif under(part.path, built.head):
            code = HEAD
        elif part.token.startswith(BATCH_NORM) and under(part.path, built.folds):
            code = FOLDS
        else:
            code = BACKBONE
        tokens.append(part.token)
        codes.append(code | (BIASED if part.biased else 0))
    backbone_paths = list(dict.fromkeys(p.path for p, c in zip(parts, codes) if c & 3 == BACKBONE))
    step = max(1, len(backbone_paths) // _NAMES_KEPT)
    names = tuple(backbone_paths[::step][:_NAMES_KEPT])
    return Entry(built.name, built.family, built.variant, built.source, built.constructor, tuple(tokens), tuple(codes),
                 input_size=built.input_size, preprocessing=built.preprocessing, epsilon=built.epsilon,
                 stride=built.stride, backbone_end=built.backbone_end, channels=built.channels, head=built.head_kind,
                 classes=built.classes, names=names)


def write_catalog(entries: list[Entry], versions: dict[str, str], path: Path = CATALOG_PATH) -> int:
    """Write the catalog (tokens shared by all entries, most frequent first); returns its size in bytes."""
    counts = Counter(t for entry in entries for t in entry.tokens)
    vocabulary = {token: index for index, (token, _) in enumerate(counts.most_common())}
    document = {"schema": SCHEMA, "generated_with": versions, "tokens": list(vocabulary),
                "entries": [encode(entry, vocabulary) for entry in entries]}
    data = gzip.compress(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode(), 9, mtime=0)
    path.write_bytes(data)
    return len(data)
