"""What a corpus case is: how to build the hostile file, what it attacks, what weightkit must do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Every command the corpus runs, by the name a case lists in `commands`.
COMMANDS = ("inspect", "inspect-tensors", "inspect-json", "identify", "diff-values", "check-into-fix", "check-junction",
            "split", "merge", "convert")


@dataclass(frozen=True)
class Case:
    """One hostile input.

    ``build(folder)`` writes the file (and anything beside it) into the empty `folder`
    and returns the path to hand to weightkit; a case that must not touch a canary
    writes its payload to act on ``folder / "CANARY"`` (the runner checks it is absent).
    ``expect`` is "refused" (exit 2 and one line on stderr, containing ``match`` when
    given) or "ok" (exit 0 or 1: a correct result, no traceback).
    """

    name: str
    source: str  # what it comes from: "issue 13 item 3", "CVE-2025-32434", "picklescan bypass"
    build: Callable[[Path], Path]
    expect: str = "refused"
    match: str | None = None
    commands: tuple[str, ...] = COMMANDS
    env: dict[str, str] = field(default_factory=dict)  # e.g. a lowered limit
    # The benign companion kind for diff/check/merge (a key of benign.FILES); None: chosen by the file's content.
    companion: str | None = None
    # More places (relative to the folder, or absolute) that must not exist after the run, besides any CANARY.
    canaries: tuple[str, ...] = ()
