"""What architecture is this file? Its shape tokens against the catalog's, whatever the format.

A file is compared with every catalog entry on its kernel tokens (`signature`): how many
of the entry's backbone it holds, how many of its tensors the entry explains. Names,
layouts, dtypes, key prefixes and wrapping dicts do not enter; in an ONNX graph, batch
norms the exporter folded away are expected either way. A head replaced by another (7 classes, not
1000), a head removed, a tail cut off are recognized as such and said. Where two entries
explain the file equally well (ResNet50 and ResNet101 cut before they differ), the name
stops at what is certain (the family); a file that no entry explains gets no name, only
its closest entry — a confident wrong name is the worst answer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from ..catalog import AUX, BACKBONE, FOLDS, HEAD, Entry, Preprocessing, entries
from ..model import Model
from .anatomy import Anatomy, BackboneEnd, Head, anatomy, head_of
from .canonical import WRAPPER_PREFIXES, Unit, normalize_name, out_channels, units
from .signature import BATCH_NORM, KERNEL, Part, signature

if TYPE_CHECKING:
    from .trained import Training

__all__ = ["Match", "Identification", "identify_model", "identify_document", "NAMED_AT"]

#: A whole-file match this good names the architecture.
NAMED_AT = 0.9
# A file cut short names its architecture when it holds at least this much of the backbone, in order.
_TRUNCATED_AT = 0.25
_MIN_TOKENS = 8  # fewer kernels than this say too little to name anything
_HEAD_NORMS = 2  # norms a replaced head may bring of its own (a BatchNorm1d between two Linears)
_MIN_EXACT_TOKENS = 5  # unless every one of them is the entry's, and nothing else (AlexNet's features: 5)
_TIE = 1e-9


@dataclass
class Match:
    """How one catalog architecture explains a file.

    ``relation`` is ``complete`` (backbone and head), ``backbone`` (no head), ``replaced head``,
    ``truncated`` (the backbone cut short) or ``partial`` (none of these: the closest only).
    ``variant`` is None where the file cannot tell the family's variants apart.
    """

    architecture: str
    family: str
    variant: str | None
    sources: list[str]
    confidence: float
    relation: str
    head: Head
    backbone_end: BackboneEnd
    differences: list[str] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list, repr=False)

    @property
    def entry(self) -> Entry:
        return self.entries[0]

    @property
    def preprocessing(self) -> Preprocessing | None:
        """What the architecture expects; None where entries the file cannot tell apart expect different things."""
        expected = {entry.preprocessing for entry in self.entries}
        return self.entry.preprocessing if len(expected) == 1 else None

    def describe(self) -> str:
        """``MobileNetV2 α=0.35 (keras.applications), no top — a backbone``."""
        where = ", ".join(self.sources)
        what = {"complete": f"with its head ({self.head.description.removeprefix('a ')})",
                "backbone": "no top — a backbone",
                "replaced head": f"with another head: {self.head.description}" if self.head.present
                else "no top — a backbone",
                "truncated": "truncated: " + (self.differences[0] if self.differences else "cut short"),
                "partial": "partly"}[self.relation]
        return f"{self.architecture} ({where}), {what}"


@dataclass
class Identification:
    """What `identify_model` found: the named match (None if none is sure), the candidates, what the file
    itself shows of its backbone and head, and whether its weights look trained."""

    matches: list[Match]
    named: Match | None
    anatomy: Anatomy
    training: Training | None
    tokens: int

    @property
    def closest(self) -> Match | None:
        return self.matches[0] if self.matches else None

    def summary(self) -> str:
        """One line: the architecture, or that none matches and which is closest."""
        if self.named is not None:
            return self.named.describe()
        if self.closest is not None and self.closest.confidence > 0:
            return f"no catalog architecture matches; closest: {self.closest.architecture} " \
                   f"({self.closest.confidence:.0%})"
        return "no catalog architecture matches"


@dataclass
class _Score:
    """One entry against the file, in counts of kernel tokens."""

    entry: Entry
    in_backbone: int
    in_head: int
    in_aux: int
    extra: Counter[str]
    missing: int
    norms: float  # how alike the norms are (0..1); for an ONNX graph, the closer of the unfolded and folded views
    biases: float  # how alike the biased kernels are (0..1), for unfolded files
    names: float  # share of the entry's sample names found in the file

    @property
    def matched(self) -> int:
        return self.in_backbone + self.in_head + self.in_aux

    @property
    def value(self) -> float:
        """Jaccard-like: the file's kernels the entry explains, over those plus what either lacks (a missing
        head or auxiliary classifier costs nothing: files without them are common)."""
        total = self.matched + self.missing + sum(self.extra.values())
        return self.matched / total if total else 0.0

    @property
    def key(self) -> tuple[float, float, float, float]:
        return round(self.value, 9), round(self.norms, 9), round(self.biases, 9), self.names


def identify_model(model: Model, *, top: int = 3, catalog: tuple[Entry, ...] | None = None,
                   training: bool = True) -> Identification:
    """Name ``model``'s architecture from the catalog, with the ``top`` closest candidates.

    Reads no tensor data, except a bounded sample when ``training`` asks whether the
    weights look trained (see `training_state`).

    Example:
        >>> found = identify_model(weightkit.load("resnet50.pth"))
        >>> found.named.architecture, found.named.relation
        ('ResNet50', 'complete')
    """
    parts = signature(model)
    view = _FileView(parts, model)
    scores = [_score(view, entry) for entry in (catalog if catalog is not None else entries())]
    scores.sort(key=lambda s: s.key, reverse=True)
    candidates = _candidates(view, scores, top)
    named = _named(view, scores, candidates[0]) if candidates else None
    if named is None and candidates and candidates[0].relation == "partial":
        cut = _truncation(view, scores)  # a file cut short explains less of its entry than a look-alike does
        if cut is not None:
            named = _named(view, scores, cut)
            if named is not None:
                candidates = [cut, *(m for m in candidates if (m.family, m.variant) != (cut.family, cut.variant))]
                candidates = candidates[:top]
    state = None
    if training:
        from .trained import training_state  # reads a sample of the data: only when asked

        state = training_state(model)
    return Identification(candidates, named, view.anatomy, state, len(view.kernel_parts))


class _FileView:
    """The file's tokens counted the ways matching needs them."""

    def __init__(self, parts: list[Part], model: Model):
        self.model = model
        self.parts = parts
        self.kernel_parts = [p for p in parts if p.is_kernel]
        self.kernels = Counter(p.token for p in self.kernel_parts)
        self.norms = Counter(p.token for p in parts if not p.is_kernel)
        self.biased = Counter(p.token for p in self.kernel_parts if p.biased)
        self.ordered = model.format != "keras-v3-weights"  # a Keras 3 weights file keeps no layer order
        # An inference graph, whose exporter folds batch norms into the convolutions before them. A checkpoint
        # keeps them: one without norms is of an architecture without them (VGG16, not VGG16-BN).
        self.exported = model.format == "onnx"
        paths = [normalize_name(p.path).replace("/", ".") for p in parts]
        self.names = "\n".join(paths)
        self.prefix = _common_prefix([p.path for p in parts])
        self.has_batch_norms = any(t.startswith(BATCH_NORM) for t in self.norms)

    @cached_property
    def units(self) -> list[Unit]:
        return units(self.model)

    @cached_property
    def anatomy(self) -> Anatomy:
        """Backbone end and head from the file alone: the same for every match."""
        return anatomy(self.model)


def _score(view: _FileView, entry: Entry) -> _Score:
    backbone = entry.backbone
    in_backbone = _overlap(view.kernels, backbone)
    rest = view.kernels - backbone
    head = entry.head_kernels
    in_head = _overlap(rest, head)
    rest -= head
    in_aux = _overlap(rest, entry.aux_kernels)
    rest -= entry.aux_kernels
    norms = _jaccard(view.norms, entry.norms(folded=False))
    if view.exported:
        norms = max(norms, _jaccard(view.norms, entry.norms(folded=True)))
    biases = _jaccard(view.biased, entry.biased) if view.has_batch_norms else 0.0
    hits = sum(1 for name in entry.names if name in view.names) / len(entry.names) if entry.names else 0.0
    return _Score(entry, in_backbone, in_head, in_aux, rest, sum(backbone.values()) - in_backbone, norms, biases,
                  hits)


def _overlap(a: Counter[str], b: Counter[str]) -> int:
    return sum((a & b).values())


def _jaccard(a: Counter[str], b: Counter[str]) -> float:
    union = sum((a | b).values())
    return sum((a & b).values()) / union if union else 1.0


def _candidates(view: _FileView, scores: list[_Score], top: int) -> list[Match]:
    """The ``top`` best entries, entries of one architecture (family and variant) merged."""
    found: list[Match] = []
    seen: dict[tuple[str, str | None], tuple[Match, _Score]] = {}
    for score in scores:
        entry = score.entry
        key = (entry.family, entry.variant)
        if key in seen:
            same, first = seen[key]
            if first.key == score.key:  # the file cannot tell them apart: one match, every source said
                if entry.source not in same.sources:
                    same.sources.append(entry.source)
                same.entries.append(entry)
                if entry.preprocessing != same.entry.preprocessing:
                    same.differences.append(f"{entry.name} ({entry.source}) has the same weights' shapes and expects "
                                            f"other preprocessing: {_preprocessing_text(entry)}")
            continue
        if len(found) >= top:
            continue
        match = _match(view, score)
        seen[key] = (match, score)
        found.append(match)
    return found


def _preprocessing_text(entry: Entry) -> str:
    return f"{entry.preprocessing.name}: {entry.preprocessing.description}" if entry.preprocessing else "not known"


def _truncation(view: _FileView, scores: list[_Score]) -> Match | None:
    """The best entry whose backbone the file holds the beginning of, in order, and nothing else."""
    for score in scores:
        if _cut_short(view, score):
            return _match(view, score)
    return None


def _match(view: _FileView, score: _Score) -> Match:
    entry = score.entry
    relation, differences = _relation(view, score)
    file_shape = view.anatomy
    head = _head(view, score, file_shape)
    end = _backbone_end(view, score, file_shape)
    differences += _layout_notes(view, score)
    confidence = score.value
    if relation == "truncated":
        confidence = score.in_backbone / max(1, sum(entry.backbone.values()))
    elif relation == "replaced head":
        confidence = score.in_backbone / max(1, score.in_backbone + score.missing)
    return Match(entry.name, entry.family, entry.variant, [entry.source], round(confidence, 4), relation, head, end,
                 differences, [entry])


def _relation(view: _FileView, score: _Score) -> tuple[str, list[str]]:
    entry = score.entry
    extra = sum(score.extra.values())
    backbone_size = sum(entry.backbone.values())
    head_size = sum(entry.head_kernels.values())
    differences: list[str] = []
    if score.missing == 0 and extra == 0:
        if head_size and score.in_head == head_size:
            return "complete", differences
        if score.in_head == 0:
            if head_size:
                differences.append("no head: the file ends at the backbone's features")
            return "backbone", differences
        differences.append(f"only {score.in_head} of the head's {head_size} tensors")
        return "complete", differences
    if score.missing == 0 and _tail(view, score):
        theirs = f" for {entry.classes} classes" if entry.classes else ""
        differences.append(f"head replaced: the file's own {extra} kernel{'s' * (extra != 1)} after the backbone, "
                           f"not the catalog's {head_size}{theirs}")
        return "replaced head", differences
    if _cut_short(view, score):
        differences.append(f"the first {score.in_backbone} of the backbone's {backbone_size} kernels: "
                           f"the last {score.missing} are missing")
        return "truncated", differences
    if score.missing:
        differences.append(f"{score.missing} of the backbone's {backbone_size} kernels are missing")
    if extra:
        shown = ", ".join(f"{t[2:]}" + (f" ×{n}" if n > 1 else "") for t, n in list(score.extra.items())[:4])
        differences.append(f"{extra} kernel{'s' * (extra != 1)} the entry does not have: {shown}"
                           + (" ..." if len(score.extra) > 4 else ""))
    return "partial", differences


def _tail(view: _FileView, score: _Score) -> bool:
    """Do the tokens the entry lacks all come after the backbone's, in the file's order (or, in a file that
    keeps no order, are they few: a head's worth)?"""
    extra = sum(score.extra.values())
    if not view.ordered:
        return extra <= max(4, 0.1 * score.in_backbone)
    remaining = Counter(score.entry.backbone)
    last_backbone = -1
    for index, part in enumerate(view.kernel_parts):
        if remaining[part.token] > 0:
            remaining[part.token] -= 1
            last_backbone = index
    leftover = Counter(score.extra)
    for part in view.kernel_parts[:last_backbone + 1]:
        if leftover[part.token] > 0 and remaining[part.token] <= 0 and part.token not in score.entry.backbone:
            return False
    return True


def _cut_short(view: _FileView, score: _Score) -> bool:
    """The beginning of the entry's backbone, in order, and next to nothing else (5 % of the file's kernels)."""
    return sum(score.extra.values()) <= 0.05 * max(1, len(view.kernel_parts)) and _is_prefix(view, score)


def _is_prefix(view: _FileView, score: _Score, *, least: float = _TRUNCATED_AT) -> bool:
    """Is what the file holds of the backbone its first ``in_backbone`` kernels, in the library's order, with
    the norms that go with them (where the file kept its norms)? ``least``: the share of the backbone it must hold."""
    entry = score.entry
    if score.in_backbone < _MIN_TOKENS or score.in_backbone < least * sum(entry.backbone.values()):
        return False
    kernels: Counter[str] = Counter()
    norms: Counter[str] = Counter()
    for token, code in zip(entry.tokens, entry.codes):
        role = code & 3
        if token.startswith(KERNEL):
            if role != BACKBONE:
                continue
            if kernels.total() == score.in_backbone:
                break
            kernels[token] += 1
        elif role in (BACKBONE, FOLDS):
            norms[token] += 1
    if kernels != view.kernels & entry.backbone:
        return False
    if view.exported and not view.has_batch_norms:  # folded: nothing to compare
        return True
    # One norm of slack: where the cut falls, the next block's pre-activation norm may go either way.
    return (view.norms - norms).total() + (norms - view.norms).total() <= 1


def _head(view: _FileView, score: _Score, file_shape: Anatomy) -> Head:
    """The file's head as the match sees it: the kernels after the backbone (the catalog's head, or another)."""
    entry = score.entry
    if score.in_head == 0 and not score.extra:
        return Head(False)
    if score.extra or not entry.head:
        return file_shape.head if file_shape.head.present else head_of(view.model, _trailing_units(view, score))
    classes = _file_classes(view, score) or entry.classes
    kind = entry.head or "classifier"
    words = f"a {kind} with {classes} classes" if kind == "classifier" else f"a {kind} head"
    return Head(True, kind, classes, classes, [], words)


def _trailing_units(view: _FileView, score: _Score) -> list[Unit]:
    paths = {p.path for p in view.kernel_parts if score.extra[p.token] > 0}
    return [unit for unit in view.units if unit.path in paths]


def _file_classes(view: _FileView, score: _Score) -> int | None:
    """Output count of the file's last head kernel, where its head is the catalog's."""
    head = score.entry.head_kernels
    for part in reversed(view.kernel_parts):
        if part.token in head:
            return int(part.token[2:].split("x")[0])
    return None


def _backbone_end(view: _FileView, score: _Score, file_shape: Anatomy) -> BackboneEnd:
    """The file's last backbone layer, with the catalog's channels and stride where the file cannot tell."""
    entry = score.entry
    remaining = Counter(entry.backbone)
    last: Part | None = None
    for part in view.kernel_parts:
        if remaining[part.token] > 0:
            remaining[part.token] -= 1
            last = part
    complete = score.missing == 0
    layer = None
    channels = None
    if view.ordered and last is not None:
        layer = _norm_after(view, last)
        channels = _channels_of(view, layer)
    elif complete:
        layer = entry.backbone_end
    if channels is None and complete:
        channels = entry.channels
    stride = entry.stride if complete else None
    own = file_shape.backbone_end
    if own is not None and own.layer == layer and own.stride:
        stride = own.stride
    return BackboneEnd(layer, channels, stride)


def _norm_after(view: _FileView, kernel: Part) -> str:
    """The batch norm right after ``kernel`` in the file (the feature map's last layer), else the kernel's layer."""
    index = view.parts.index(kernel)
    after = view.parts[index + 1] if index + 1 < len(view.parts) else None
    path = after.path if after is not None and not after.is_kernel else kernel.path
    return path.split(":")[0]


def _channels_of(view: _FileView, path: str) -> int | None:
    for unit in view.units:
        if unit.path.split(":")[0] == path:
            channels = out_channels(unit)
            if channels is not None:
                return channels
    return None


def _layout_notes(view: _FileView, score: _Score) -> list[str]:
    """What the file does to the entry that changes nothing of its weights: folded norms, a key prefix."""
    notes = []
    entry = score.entry
    if view.exported and not view.has_batch_norms and any(t.startswith(BATCH_NORM) for t in entry.norms(folded=False)):
        kept = sum(entry.norms(folded=True).values())
        notes.append("batch norms folded into the convolutions (an inference export)"
                     + (f"; {kept} could not fold" if kept else ""))
    if view.prefix:
        notes.append(f"every name starts with {view.prefix!r}")
    return notes


def _common_prefix(paths: list[str]) -> str:
    """A key prefix every path shares and the catalog's names lack (``module.``, ``backbone.``), else ''."""
    if len(paths) < 2:
        return ""
    first = paths[0]
    for prefix in (*WRAPPER_PREFIXES, "backbone.", "encoder.", "net.", "base_model."):
        if first.startswith(prefix) and all(p.startswith(prefix) for p in paths):
            return prefix
    return ""


def _named(view: _FileView, scores: list[_Score], best: Match) -> Match | None:
    """``best`` if the file says enough to name it, with its variant dropped (or no name at all) where
    another architecture explains the file as well."""
    exact = best.relation in ("complete", "backbone") and best.confidence == 1
    if len(view.kernel_parts) < (_MIN_EXACT_TOKENS if exact else _MIN_TOKENS):
        return None
    if best.relation == "partial":  # what differs is not a head or a tail: a relative, not this architecture
        return None
    if best.relation in ("complete", "backbone") and best.confidence < NAMED_AT:
        return None
    lead = next(s for s in scores if s.entry is best.entry)
    if best.relation != "truncated" and not _norms_fit(view, lead, best.relation):
        return None  # (a truncated file's norms are checked in order, by _is_prefix)
    rivals = _rivals(view, scores, best, lead)
    if not rivals:
        return best
    families = {best.family} | {s.entry.family for s in rivals}
    if len(families) > 1:
        return None
    variants = sorted({v for v in (best.variant, *(s.entry.variant for s in rivals)) if v})
    best.differences.insert(0, f"the file cannot tell {best.family} {' / '.join(variants)} apart")
    best.variant = None
    best.architecture = best.family
    best.sources = sorted(set(best.sources) | {s.entry.source for s in rivals})
    best.confidence = round(best.confidence / (1 + len(rivals)), 4)
    return best


def _norms_fit(view: _FileView, score: _Score, relation: str) -> bool:
    """Does the file hold the entry's norms, all of them and no others (but a replaced head's own)?

    The kernels can fit where the norms do not: VGG16's kernels are VGG16-BN's, ResNet50's are
    ResNet50V2's, whose pre-activation norms differ from ResNet50's in 4 of 53.
    """
    if view.exported:  # the exporter folded what it could: the closer view decides
        return score.norms >= NAMED_AT
    entry = score.entry
    backbone = entry.norm_tokens(BACKBONE, FOLDS)
    missing = (backbone - view.norms).total()
    extra = (view.norms - backbone - entry.norm_tokens(HEAD, AUX)).total()
    return missing == 0 and extra <= (_HEAD_NORMS if relation == "replaced head" else 0)


def _rivals(view: _FileView, scores: list[_Score], best: Match, lead: _Score) -> list[_Score]:
    """Entries of other architectures that explain the file exactly as well as ``best``'s (scored as ``lead``)."""
    rivals = []
    for score in scores:
        entry = score.entry
        if (entry.family, entry.variant) == (best.family, best.variant):
            continue
        if best.relation == "truncated":
            extra = sum(score.extra.values())
            if (score.in_backbone == lead.in_backbone and extra == sum(lead.extra.values())
                    and _is_prefix(view, score, least=0)):
                rivals.append(score)
        elif all(abs(a - b) < _TIE for a, b in ((score.value, lead.value), (score.norms, lead.norms),
                                                 (score.names, lead.names))):
            # Layer names the file shares with one entry and not the other tell them apart (torchvision's VGG16
            # and VGG16-BN, whose norms an export would fold away); biases do not: they tell libraries apart.
            rivals.append(score)
    return rivals


def identify_document(result: Identification, file: str | None = None) -> dict:
    """The `identify --json` document (docs/json.md)."""
    from .inspect import SCHEMA_VERSION

    named = result.named
    preprocessing = named.preprocessing if named is not None else None
    entry = named.entry if named is not None else None
    return {
        "schema_version": SCHEMA_VERSION,
        "file": file,
        "architecture": named.architecture if named is not None else None,
        "summary": result.summary(),
        "matches": [_match_document(match, match is named) for match in result.matches],
        "preprocessing": None if preprocessing is None else {
            "name": preprocessing.name, "description": preprocessing.description, "channels": preprocessing.channels,
            "mean": list(preprocessing.mean) if preprocessing.mean else None,
            "std": list(preprocessing.std) if preprocessing.std else None},
        "input_size": list(entry.input_size) if entry is not None and entry.input_size else None,
        "batch_norm_epsilon": entry.epsilon if entry is not None else None,
        "backbone_end": _end_document(result.anatomy.backbone_end),
        "head": _head_document(result.anatomy.head),
        "trained": result.training.trained if result.training is not None else None,
        "trained_evidence": list(result.training.evidence) if result.training is not None else [],
        "kernels": result.tokens,
    }


def _match_document(match: Match, named: bool) -> dict:
    return {
        "architecture": match.architecture, "family": match.family, "variant": match.variant,
        "source": match.sources[0], "sources": match.sources, "constructors": [e.constructor for e in match.entries],
        "confidence": match.confidence, "named": named, "relation": match.relation,
        "head": _head_document(match.head), "backbone_end": _end_document(match.backbone_end),
        "differences": list(match.differences),
    }


def _head_document(head: Head) -> dict:
    return {"present": head.present, "kind": head.kind, "classes": head.classes, "outputs": head.outputs,
            "layers": list(head.layers), "description": head.description}


def _end_document(end: BackboneEnd | None) -> dict | None:
    return None if end is None else {"layer": end.layer, "channels": end.channels, "stride": end.stride}
