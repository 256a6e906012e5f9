"""Will these weights go into that model? Every problem, and the fix, before a framework refuses.

`check_into` says what loading a checkpoint into a model would do — missing,
unexpected, mis-shaped, mis-typed and mis-laid-out tensors — with the semantics of
the model's framework (PyTorch pairs keys, Keras pairs layers), and for each problem
a concrete fix. Whether a head fits a backbone is `weightkit.ops.junction`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..formats.keras import architecture
from ..formats.keras.config import ConfigLayer, remember_architecture
from ..formats.keras.layout import replay_names, saved_layers
from ..model import Layer, Model, Tensor
from .canonical import Fold, Unit, canonical_shape, in_channels, out_channels, units
from .diff import align

#: Formats Keras 3's ``load_weights`` reads by layer path (``layers/conv2d_1/vars/0``), not by position.
KERAS3_STORES = frozenset({"keras-v3-weights", "keras-zip"})

Semantics = Callable[[Model, Model], "CheckReport"]

__all__ = ["KERAS3_STORES", "Finding", "CheckReport", "check_into", "check_document"]


@dataclass
class Finding:
    """One problem (or a note) with the tensors involved and the fix.

    ``kind`` is one of ``missing``, ``unexpected``, ``shape``, ``dtype``, ``layout``,
    ``prefix``, ``head``, ``layer_count``, ``nested``, ``folded``, ``junction``, ``provenance``, ``fits``.
    ``severity`` is ``error`` (the framework's load fails), ``warning`` (it loads but
    something is wrong) or ``info``.
    """

    kind: str
    severity: str
    message: str
    tensors: list[str] = field(default_factory=list)
    fix: str | None = None


@dataclass
class CheckReport:
    """Findings of a check; ``renames`` and ``drops`` are the fixes weightkit can apply itself.

    ``pairs`` says which checkpoint tensor each model tensor would receive, as
    ``(model tensor, checkpoint tensor)``: the pairing the framework's load makes
    (or, across frameworks, the structural one), for tensors whose shapes agree up to layout.
    """

    question: str  # "into" or "junction"
    semantics: str  # "pytorch", "keras", "cross-format", "junction"
    findings: list[Finding] = field(default_factory=list)
    renames: dict[str, str] = field(default_factory=dict)
    drops: list[str] = field(default_factory=list)
    pairs: list[tuple[Tensor, Tensor]] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return not any(f.severity in ("error", "warning") for f in self.findings)

    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]


def check_into(checkpoint: Model, model: Model) -> CheckReport:
    """What loading ``checkpoint`` into ``model`` would do, with each problem's fix.

    The model's framework decides the semantics: PyTorch-style key matching for
    state dicts, safetensors and ONNX; for Keras, what ``model.load_weights(file)`` does
    with that file: legacy ``.h5`` files pair weighted layers by position, Keras 3 stores
    (``.weights.h5``, ``.keras``) by layer path; a structural alignment when the two come
    from different frameworks.
    """
    if _framework(checkpoint) != _framework(model):
        return _cross_format(checkpoint, model)
    if _framework(model) == "keras":
        semantics = _keras3_semantics if checkpoint.format in KERAS3_STORES else _keras_semantics
        report = semantics(checkpoint, model)
        if report.errors():
            return _nested_fit(checkpoint, model, semantics) or report
        return report
    report = _keyed_semantics(checkpoint, model)
    if report.errors() and model.format == "onnx" and checkpoint.format != "onnx":
        return _folded_export(checkpoint, model) or report
    return report


def _folded_export(checkpoint: Model, model: Model) -> CheckReport | None:
    """The structural report when the ONNX graph is the checkpoint's own export with its batch norms folded."""
    structural = _cross_format(checkpoint, model)
    return structural if any(f.kind == "folded" for f in structural.findings) else None


def _framework(model: Model) -> str:
    """``keras`` (layers paired by position) or ``keyed`` (tensors paired by name: PyTorch, safetensors, ONNX)."""
    return "keras" if model.framework == "keras" else "keyed"


# ---- PyTorch semantics: keys ------------------------------------------------------------------


def _keyed_semantics(checkpoint: Model, model: Model) -> CheckReport:
    report = CheckReport("into", "pytorch")
    stored = {t.name: t for t in checkpoint.tensors()}
    wanted = {t.name: t for t in model.tensors()}
    renames = _prefix_renames(list(stored), list(wanted))
    if renames:
        report.renames = renames
        report.findings.append(_prefix_finding(renames))
        stored = {renames.get(name, name): tensor for name, tensor in stored.items()}
    mismatched = _compare_common(stored, wanted, report)
    bad = {name for name, _, _ in mismatched}
    report.pairs = [(want, stored[name]) for name, want in wanted.items() if name in stored and name not in bad]
    _head_or_shape(mismatched, model, report)
    _missing_and_unexpected(stored, wanted, report)
    return report


def _prefix_renames(stored: list[str], wanted: list[str]) -> dict[str, str]:
    """Key renames that strip or add one common prefix, if they make more keys match."""
    wanted_set = set(wanted)
    best: dict[str, str] = {}
    best_gain = sum(name in wanted_set for name in stored)
    for strip, add in _prefix_candidates(stored, wanted):
        renames = {n: add + n[len(strip):] for n in stored if n.startswith(strip) and n != add + n[len(strip):]}
        gain = sum(renames.get(name, name) in wanted_set for name in stored)
        if gain > best_gain:
            best, best_gain = renames, gain
    return best


def _prefix_candidates(stored: list[str], wanted: list[str]) -> list[tuple[str, str]]:
    def heads(names: list[str]) -> set[str]:
        found = set()
        for name in names:
            parts = name.split(".")
            for depth in (1, 2):
                if len(parts) > depth:
                    found.add(".".join(parts[:depth]) + ".")
        return found

    stored_heads, wanted_heads = heads(stored), heads(wanted)
    candidates = [(prefix, "") for prefix in stored_heads - wanted_heads]
    candidates += [("", prefix) for prefix in wanted_heads - stored_heads]
    candidates += [(a, b) for a in stored_heads - wanted_heads for b in wanted_heads - stored_heads]
    return candidates


def _prefix_finding(renames: dict[str, str]) -> Finding:
    old, new = next(iter(renames.items()))
    change = _common_change(old, new)
    return Finding("prefix", "error", f"{len(renames)} checkpoint keys carry another prefix: {change} "
                   f"(e.g. {old!r} is {new!r} in the model)", [*renames, *renames.values()],
                   fix=f"{change} in every key: `weightkit check CHECKPOINT --into MODEL --fix OUT` writes the "
                   "renamed checkpoint")


def _common_change(old: str, new: str) -> str:
    suffix = 0
    while suffix < min(len(old), len(new)) and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    removed, added = old[: len(old) - suffix], new[: len(new) - suffix]
    if removed and added:
        return f"replace {removed!r} with {added!r}"
    return f"strip {removed!r}" if removed else f"add {added!r}"


def _compare_common(stored: dict[str, Tensor], wanted: dict[str, Tensor],
                    report: CheckReport) -> list[tuple[str, Tensor, Tensor]]:
    mismatched = []
    for name in wanted:
        have, want = stored.get(name), wanted[name]
        if have is None:
            continue
        if have.shape != want.shape:
            if canonical_shape(have) == canonical_shape(want) or have.shape == tuple(reversed(want.shape)):
                report.findings.append(_layout_finding(name, have, want))
            else:
                mismatched.append((name, have, want))
        elif have.dtype != want.dtype:
            report.findings.append(Finding("dtype", "info", f"{name}: checkpoint {have.dtype}, model {want.dtype}",
                                           [name], fix="PyTorch casts on load; nothing to do unless precision matters"))
    return mismatched


def _layout_finding(name: str, have: Tensor, want: Tensor) -> Finding:
    return Finding("layout", "error", f"{name}: checkpoint {list(have.shape)} ({have.layout or '?'}), model "
                   f"{list(want.shape)} ({want.layout or '?'}): the same kernel in another axis order", [name],
                   fix=f"transpose it from {have.layout or 'the stored order'} to {want.layout or 'the model order'}; "
                   "`--fix` writes the checkpoint with kernels in the model's layout")


def _head_or_shape(mismatched: list[tuple[str, Tensor, Tensor]], model: Model, report: CheckReport) -> None:
    """Size mismatches only in the output size of terminal layers are a head for another number of classes."""
    for name, have, want in mismatched:
        report.findings.append(Finding("shape", "error", f"size mismatch for {name}: checkpoint {list(have.shape)}, "
                                       f"model {list(want.shape)}", [name],
                                       fix="this tensor cannot be loaded: the architectures differ here"))
    if not mismatched or not all(_only_outputs_differ(have, want) for _, have, want in mismatched):
        return
    names = [name for name, _, _ in mismatched]
    layers = list(dict.fromkeys(name.rsplit(".", 1)[0] for name in names))
    found = units(model)
    if not all(_is_terminal(layer, found) for layer in layers):
        return
    report.drops.extend(names)
    report.findings.append(Finding(
        "head", "error", f"only the output layer differs in size — a head for another number of classes: "
        f"{', '.join(layers)}", names,
        fix=f"load the backbone only: drop {', '.join(names)} (`--fix OUT` writes that checkpoint), then "
        f"load_state_dict(..., strict=False): {', '.join(layers)} keep their initialization"))


def _only_outputs_differ(have: Tensor, want: Tensor) -> bool:
    return have.ndim == want.ndim and have.ndim >= 1 and have.shape[1:] == want.shape[1:]


def _is_terminal(layer_path: str, found: list[Unit]) -> bool:
    """No other unit takes this layer's outputs as its inputs (or it is the last one)."""
    unit = next((u for u in found if u.path == layer_path), None)
    if unit is None:
        return False
    produced = out_channels(unit)
    consumers = [u for u in found if u is not unit and in_channels(u) == produced]
    return not consumers or found[-1] is unit


def _missing_and_unexpected(stored: dict[str, Tensor], wanted: dict[str, Tensor], report: CheckReport) -> None:
    missing = [name for name in wanted if name not in stored]
    unexpected = [name for name in stored if name not in wanted]
    for names, kind, where in ((missing, "missing", "the model has but the checkpoint lacks"),
                               (unexpected, "unexpected", "the checkpoint has but the model lacks")):
        for block, members in _blocks(names).items():
            report.findings.append(Finding(
                kind, "error", f"{len(members)} tensor(s) {where}: {block}", members,
                fix=("these layers keep their initialization: load with strict=False if that is intended"
                     if kind == "missing" else "drop them (`--fix`) or load with strict=False")))
        if kind == "unexpected":
            report.drops.extend(name for name in names if name not in report.drops)


def _blocks(names: list[str]) -> dict[str, list[str]]:
    """Group keys by their first two path components: ``layer4.1.conv2.weight`` → ``layer4.1``."""
    groups: dict[str, list[str]] = {}
    for name in names:
        parts = name.split(".")
        groups.setdefault(".".join(parts[:2]) if len(parts) > 2 else parts[0], []).append(name)
    return groups


# ---- Keras semantics: weighted layers paired by position --------------------------------------


def _keras_semantics(checkpoint: Model, model: Model) -> CheckReport:
    report = CheckReport("into", "keras")
    stored = [layer for layer in checkpoint.layers if layer.all_tensors()]
    wanted = [layer for layer in model.layers if layer.all_tensors()]
    if len(stored) != len(wanted):
        report.findings.append(_layer_count_finding(checkpoint, model, stored, wanted))
    by_name = {layer.name: layer for layer in stored}
    if len(stored) == len(wanted) and not set(by_name) >= {layer.name for layer in wanted}:
        pairs = list(zip(stored, wanted))  # Keras's own pairing: by position
    else:  # the same names, or the by_name=True load the layer-count finding recommends
        pairs = [(by_name[want.name], want) for want in wanted if want.name in by_name]
    for have, want in pairs:
        _compare_layers(wanted.index(want), have, want, report, by_name=have.name == want.name)
    return report


def _layer_count_finding(checkpoint: Model, model: Model, stored: list, wanted: list) -> Finding:
    pairs = align(units(checkpoint), units(model))
    missing = [(i, p.b.path) for i, p in enumerate(pairs) if p.a is None and p.b is not None]
    extra = [p.a.path for p in pairs if p.b is None and p.a is not None]
    positions = {layer.name: index for index, layer in enumerate(wanted)}
    detail = "; ".join(f"model layer {name!r} (weighted layer #{positions.get(name.split('/')[0], '?')}) has no "
                       "weights in the file" for _, name in missing)
    if extra:
        detail += ("; " if detail else "") + "file layers with no counterpart: " + ", ".join(extra)
    shared = {layer.name for layer in wanted} & {layer.name for layer in stored}
    fix = ("load by name: model.load_weights(path, by_name=True, skip_mismatch=True) for a legacy .h5 "
           "(the layers without weights keep their initialization)" if len(shared) * 2 >= len(wanted)
           else "this file was saved from another architecture: build the model that wrote it")
    return Finding("layer_count", "error",
                   f"the file has {len(stored)} layers with weights, the model {len(wanted)}: Keras pairs them by "
                   f"position and refuses ({detail or 'the layers differ'})",
                   [name for _, name in missing] + extra, fix=fix)


def _compare_layers(position: int, have, want, report: CheckReport, by_name: bool) -> None:
    have_tensors, want_tensors = have.all_tensors(), want.all_tensors()
    where = f"layer {want.name!r}" + ("" if by_name else f" (weighted layer #{position}, file layer {have.name!r})")
    if len(have_tensors) != len(want_tensors):
        report.findings.append(Finding("shape", "error", f"{where} expects {len(want_tensors)} weights, the file has "
                                       f"{len(have_tensors)}", [t.name for t in have_tensors],
                                       fix="load by name with skip_mismatch=True to leave it initialized"))
        return
    for have_tensor, want_tensor in zip(have_tensors, want_tensors):
        if canonical_shape(have_tensor) == canonical_shape(want_tensor):
            report.pairs.append((want_tensor, have_tensor))
        if have_tensor.shape != want_tensor.shape:
            kind = "layout" if canonical_shape(have_tensor) == canonical_shape(want_tensor) else "shape"
            report.findings.append(Finding(
                kind, "error", f"{where}: {want_tensor.role or want_tensor.name} is {list(want_tensor.shape)} in the "
                f"model, {list(have_tensor.shape)} in the file", [have_tensor.name],
                fix=("transpose the kernel to the model's layout" if kind == "layout" else
                     "load with model.load_weights(path, by_name=True, skip_mismatch=True) (legacy .h5) or "
                     "skip_mismatch=True (.weights.h5): this layer keeps its initialization")))


# ---- a file that fits a model nested in the target -------------------------------------------


def _nested_fit(checkpoint: Model, model: Model, semantics: Semantics) -> CheckReport | None:
    """The report for loading into a nested model that the file fits exactly (a backbone inside a detector)."""
    root = architecture(model)
    for path, layer in model.walk():
        if layer.kind != "model" or not layer.layers:
            continue
        inner = Model(layers=layer.layers, format=model.format, framework="keras")
        config = _nested_config(root, path)
        if config is not None:
            inner.config = {"class_name": config.class_name, "config": config.raw}
            remember_architecture(inner, config)
        report = semantics(checkpoint, inner)
        if report.errors() or not report.pairs:
            continue
        report.findings.insert(0, _nested_finding(checkpoint, model, path, layer, len(report.pairs)))
        return report
    return None


def _nested_config(root: ConfigLayer | None, path: str) -> ConfigLayer | None:
    """The config of the model nested at ``path`` (``outer/inner``), if the file has one."""
    for part in path.split("/"):
        root = root.by_name().get(part) if root is not None else None
    return root


def _nested_finding(checkpoint: Model, model: Model, path: str, nested: Layer, paired: int) -> Finding:
    inside = {id(t) for t in nested.all_tensors()}
    lacking = [(p, layer) for p, layer in model.walk() if layer.tensors and not any(id(t) in inside
                                                                                  for t in layer.tensors.values())]
    weighted = sum(1 for _, layer in nested.walk() if layer.tensors)
    rest = ", ".join(f"{p} ({layer.type_name or layer.kind}, {layer.num_params:,} parameters)" for p, layer in lacking)
    getter = "model" + "".join(f".get_layer({part!r})" for part in path.split("/"))
    return Finding(
        "nested", "error", f"the file holds the weights of {path!r}, a model nested in this one: all {weighted} of its "
        f"weighted layers pair ({paired} tensors); loading the file into the whole model fails because the file "
        f"lacks the rest of it" + (f": {rest}" if rest else ""), [t.name for _, layer in lacking for t in
                                                                  layer.tensors.values()],
        fix=f"load it into the nested model: {getter}.load_weights(path)"
        + (f" (the rest keeps its initialization: {', '.join(p for p, _ in lacking)})" if lacking else "")
        + "; or `--fix OUT` writes a file for the whole model")


# ---- Keras 3 stores: layers paired by path ------------------------------------------------------


def _keras3_semantics(checkpoint: Model, model: Model) -> CheckReport:
    """Keras 3 walks the model's layers and reads each from its path in the file; other paths are ignored."""
    report = CheckReport("into", "keras3")
    stored, wanted = store_paths(checkpoint), store_paths(model)
    for path, want in wanted.items():
        _compare_at_path(path, stored.get(path), want, report)
    ignored = [f"{path} ({layer.name})" for path, layer in stored.items() if path not in wanted and layer.all_tensors()]
    if ignored:
        report.findings.append(Finding(
            "unexpected", "info", f"{len(ignored)} layer(s) of the file are not in the model; Keras 3 ignores them: "
            + ", ".join(ignored[:6]) + (" ..." if len(ignored) > 6 else ""),
            [t.name for path, layer in stored.items() if path not in wanted for t in layer.all_tensors()]))
    return report


def _compare_at_path(path: str, have: Layer | None, want: Layer, report: CheckReport) -> None:
    have_tensors = have.all_tensors() if have is not None else []
    want_tensors = want.all_tensors()
    if len(have_tensors) != len(want_tensors):
        report.findings.append(Finding(
            "missing" if not have_tensors else "shape", "error",
            f"layer {want.name!r} expects {len(want_tensors)} variables at {path}, the file has {len(have_tensors)} "
            f"(Keras 3 raises \"Layer '{want.name}' expected {len(want_tensors)} variables, but received "
            f"{len(have_tensors)} variables during loading\")", [t.name for t in want_tensors],
            fix=f"model.load_weights(path, skip_mismatch=True) loads the rest; {want.name!r} keeps its initialization"))
        return
    for index, (have_tensor, want_tensor) in enumerate(zip(have_tensors, want_tensors)):
        if have_tensor.shape == want_tensor.shape:
            report.pairs.append((want_tensor, have_tensor))
            continue
        report.findings.append(Finding(
            "shape", "error", f"layer {want.name!r}: variable {index} ({want_tensor.role or want_tensor.name}) is "
            f"{list(want_tensor.shape)} in the model, {list(have_tensor.shape)} in the file at {path}",
            [have_tensor.name], fix=f"model.load_weights(path, skip_mismatch=True): {want.name!r} keeps its "
            "initialization"))


def store_paths(model: Model) -> dict[str, Layer]:
    """Each layer of a Keras model by the path a Keras 3 store keeps it under (``layers/conv2d_1``).

    With a config the paths are Keras's own naming (class names made unique in layer
    order); without one, the groups the file holds (or the layer names, for a legacy file).
    """
    found: dict[str, Layer] = {}
    _collect_paths(found, "layers", model.layers, architecture(model))
    return found


def _collect_paths(found: dict[str, Layer], prefix: str, layers: list[Layer], config: ConfigLayer | None) -> None:
    if config is None:
        for layer in layers:
            path = f"{prefix}/{layer.stored_as or layer.name}"
            if layer.kind == "model" and layer.layers and not layer.tensors:
                _collect_paths(found, f"{path}/layers", layer.layers, None)
            else:
                found[path] = layer
        return
    names = replay_names(config)
    by_name = {layer.name: layer for layer in layers}
    for sub in saved_layers(config):
        owner = by_name.get(sub.name)
        if owner is None:
            continue
        path = f"{prefix}/{names[sub.name]}"
        if sub.is_model:
            _collect_paths(found, f"{path}/layers", owner.layers, sub)
        else:
            found[path] = owner


# ---- different frameworks: structural alignment -----------------------------------------------


def _cross_format(checkpoint: Model, model: Model) -> CheckReport:
    report = CheckReport("into", "cross-format")
    pairs = align(units(checkpoint), units(model), fold_norms=True)
    for pair in pairs:
        have, want = pair.a, pair.b
        if have is not None and want is not None:
            _cross_pair(have, want, report)
        elif want is not None:
            report.findings.append(Finding("missing", "error", f"model layer {want.path!r} has no counterpart in "
                                           "the checkpoint", [t.name for t in want.tensors.values()],
                                           fix="it keeps its initialization"))
        elif have is not None:
            report.findings.append(Finding("unexpected", "error", f"checkpoint layer {have.path!r} has no "
                                           "counterpart in the model", [t.name for t in have.tensors.values()],
                                           fix="drop it"))
    report.findings[:0] = _folded_findings([(p.a, p.b) for p in pairs if p.a and p.b and (p.a.fold or p.b.fold)])
    return report


def _cross_pair(have: Unit, want: Unit, report: CheckReport) -> None:
    """One aligned pair. Where one side's batch norm is folded into the other's convolution (`_folded_findings`
    says so), no tensor is renamed: a renamed key would carry the unfolded values; and into a model that keeps
    the batch norm apart, none is paired."""
    for role, want_tensor in want.tensors.items():
        have_tensor = have.tensors.get(role)
        if have_tensor is None:
            report.findings.append(Finding("missing", "error", f"{want_tensor.name}: no {role} in checkpoint layer "
                                           f"{have.path!r}", [want_tensor.name]))
        elif canonical_shape(have_tensor) != canonical_shape(want_tensor):
            report.findings.append(Finding("shape", "error", f"{want_tensor.name}: model {list(want_tensor.shape)}, "
                                           f"checkpoint {have_tensor.name} {list(have_tensor.shape)}",
                                           [want_tensor.name]))
        elif want.fold is None:
            report.pairs.append((want_tensor, have_tensor))  # a folded view's tensors read the folded values
            if have.fold is None:
                report.renames[have_tensor.name] = want_tensor.name
                if have_tensor.shape != want_tensor.shape:
                    report.findings.append(_layout_finding(want_tensor.name, have_tensor, want_tensor))


def _folded_findings(folded: list[tuple[Unit, Unit]]) -> list[Finding]:
    """One finding for the checkpoint's batch norms the model has folded into its convolutions, one for the
    reverse: the plain load cannot put either into the other's tensors."""
    into_model = [(have.fold, want) for have, want in folded if have.fold is not None]
    into_checkpoint = [(have, want.fold) for have, want in folded if want.fold is not None]
    findings = []
    if into_model:
        findings.append(_folded_checkpoint(into_model))
    if into_checkpoint:
        findings.append(_folded_model(into_checkpoint))
    return findings


def _folded_checkpoint(folds: list[tuple[Fold, Unit]]) -> Finding:
    """The checkpoint's convolutions and batch norms against the convolutions the model folds them into."""
    listed = ", ".join(f"{fold.conv.path} + {fold.norm.path} → {want.path}" for fold, want in folds[:6])
    keras = all(want.framework == "keras" for _, want in folds)
    then = ("`--fix OUT` writes the folded weights" if keras else "`--fix` does not fold them; or export the model "
            "again with its batch norms kept (torch.onnx.export(..., do_constant_folding=False))")
    epsilons = ", ".join(dict.fromkeys(fold.epsilon_note for fold, _ in folds))
    tensors = [t for fold, want in folds for unit in (fold.conv, fold.norm, want) for t in unit.tensors.values()]
    more = " ..." if len(folds) > 6 else ""
    return Finding("folded", "error", f"{len(folds)} convolution(s) of the checkpoint and the batch norm after each "
                   f"are one convolution in the model, with the batch norm folded in: {listed}{more}; the "
                   "checkpoint's tensors cannot be loaded into them as they are",
                   list(dict.fromkeys(t.name for t in tensors)),
                   fix=f"fold them first: weight W·γ/√(σ²+ε), bias (b−μ)·γ/√(σ²+ε)+β ({epsilons}); {then}")


def _folded_model(folds: list[tuple[Unit, Fold]]) -> Finding:
    """The checkpoint's folded convolutions against the model's convolutions and batch norms."""
    listed = ", ".join(f"{have.path} → {fold.conv.path} + {fold.norm.path}" for have, fold in folds[:6])
    epsilons = ", ".join(dict.fromkeys(fold.epsilon_note for _, fold in folds))
    tensors = [t for have, fold in folds for unit in (have, fold.conv, fold.norm) for t in unit.tensors.values()]
    return Finding("folded", "error", f"{len(folds)} convolution(s) of the checkpoint have a batch norm folded in; "
                   f"the model keeps them apart: {listed}{' ...' if len(folds) > 6 else ''}",
                   list(dict.fromkeys(t.name for t in tensors)),
                   fix="load each one's weight and bias into the model's convolution (without a bias there, into the "
                   "batch norm's β) and make the batch norm the identity: γ = 1, β = 0, μ = 0, σ² = 1 − ε "
                   f"({epsilons}); `--fix` does not: the model keeps its own values for both")


def check_document(report: CheckReport) -> dict:
    """The report as JSON-ready data (``weightkit check --json``; see docs/json.md)."""
    from .inspect import SCHEMA_VERSION

    return {
        "schema_version": SCHEMA_VERSION,
        "question": report.question,
        "semantics": report.semantics,
        "ok": report.ok,
        "findings": [finding.__dict__ for finding in report.findings],
        "renames": report.renames,
        "drops": report.drops,
    }
