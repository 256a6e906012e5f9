"""``weightkit check``: does a head fit a backbone, and what would loading a checkpoint into a model do."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from .render import console, parse_shape, print_json, safe, styled

_STYLE = {"error": "red", "warning": "yellow", "info": "dim"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("first", metavar="BACKBONE|CHECKPOINT", help="a backbone, or the checkpoint to load")
    parser.add_argument("head", nargs="?", metavar="HEAD", help="the head to put on the backbone")
    parser.add_argument("--into", metavar="MODEL", help="the model the checkpoint is to be loaded into")
    parser.add_argument("--input-shape", metavar="H,W,C",
                        help="the backbone's input without the batch dim, every axis of it (224,224,3 for an "
                        "image model): the junction is checked at that size")
    parser.add_argument("--fix", metavar="OUT", help="write the checkpoint with the fixes applied (with --into); the "
                        "exit code is then 0 only if OUT loads into MODEL with every layer from the checkpoint")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--json", action="store_true", help="print one JSON document (see docs/json.md)")


def run(args: argparse.Namespace) -> int:
    from .. import load
    from ..ops.check import check_document, check_into
    from ..ops.junction import check_junction

    if (args.head is None) == (args.into is None):
        raise UsageError("give either BACKBONE HEAD or CHECKPOINT --into MODEL")
    if args.input_shape and args.into:
        raise UsageError("--input-shape sizes the backbone for BACKBONE HEAD; with --into it would change nothing",
                         hint="leave it out: loading a checkpoint does not depend on the input size")
    if args.fix and not args.into:
        raise UsageError("--fix works with CHECKPOINT --into MODEL")
    with load(args.first) as first, load(args.into or args.head) as second:
        if args.into:
            report = check_into(first, second)
        else:
            report = check_junction(first, second, input_shape=_shape(args.input_shape))
        written = _write_fix(first, second, report, args) if args.fix else None
    if args.json:
        document = check_document(report)
        if written is not None:
            document["fix"] = written.document()
        print_json(document)
    else:
        _render(report, args, written)
    if written is not None:
        return 0 if written.complete else 1
    return 0 if report.ok else 1


@dataclass
class _Written:
    """What ``--fix`` wrote: the file, its format as read back, the model's layers that kept their own values
    (no checkpoint tensor fits them), and the check of the written file into the model."""

    path: str
    format: str
    kept_layers: list[str] = field(default_factory=list)
    recheck: Any = None

    @property
    def complete(self) -> bool:
        """The file loads into the model and every layer's values come from the checkpoint."""
        return bool(self.recheck.ok) and not self.kept_layers

    def document(self) -> dict[str, Any]:
        remaining = [f.__dict__ for f in self.recheck.findings if f.severity in ("error", "warning")]
        return {"output": self.path, "format": self.format, "kept_layers": self.kept_layers, "ok": self.recheck.ok,
                "complete": self.complete, "findings": remaining}


def _write_fix(checkpoint: Any, model: Any, report: Any, args: argparse.Namespace) -> _Written:
    """Write the fixed checkpoint to ``--fix OUT``, then check it into the model as the user will load it."""
    from .. import load, save
    from ..ops.check import check_into
    from ..ops.fix import fixed_checkpoint, kept_layers, writes_model_layout

    with fixed_checkpoint(checkpoint, model, report) as fixed:
        save(fixed, args.fix, force=args.force)
    kept = kept_layers(model, report) if writes_model_layout(model) else []
    with load(args.fix) as written:
        return _Written(str(args.fix), written.format, kept, check_into(written, model))


def _shape(text: str | None) -> tuple[int, ...] | None:
    """``--input-shape``; the library checks it against the backbone."""
    return parse_shape(text, "--input-shape", "give every axis of the backbone's input but the batch, e.g. 224,224,3")


def _render(report: Any, args: argparse.Namespace, written: _Written | None) -> None:
    out = console()
    for finding in report.findings:
        style = _STYLE.get(finding.severity, "")
        out.print(styled((safe(finding.severity), style), " ", safe(f"{finding.kind}: {finding.message}")))
        if finding.fix:
            out.print(f"    fix: {safe(finding.fix)}")
    verdict = "fits" if report.ok else f"{len(report.errors())} problem(s)" if report.errors() else "warnings"
    out.print(styled((verdict, "bold"), safe(f" ({report.semantics} semantics)")))
    if written is not None:
        _render_written(out, written)


def _render_written(out: Any, written: _Written) -> None:
    out.print(safe(f"wrote {written.path} ({written.format})"))
    kept = written.kept_layers
    if kept:
        shown = ", ".join(kept[:8]) + (f" ... ({len(kept) - 8} more)" if len(kept) > 8 else "")
        out.print(f"    kept the model's own values for {len(kept)} layer(s) the checkpoint has no fitting "
                  f"weights for: {safe(shown)}")
    for finding in written.recheck.findings:
        if finding.severity in ("error", "warning"):
            out.print(safe(f"    still {finding.severity} {finding.kind}: {finding.message}"))
    state = "loads into the model" if written.recheck.ok else "does not load cleanly into the model yet"
    out.print(safe(f"{written.path} {state}"), style="bold")
