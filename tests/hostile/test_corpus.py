"""The hostile-file corpus: every case of every ``*_cases.py`` family, every command, in a child process.

Cases run two at a time (CI has two cores) in a thread pool over child processes, started
as soon as the first case test asks for its result; each case is one test, so a failure names it.
``WEIGHTKIT_CORPUS_WORKERS=N`` runs N at a time.
"""

from __future__ import annotations

import importlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from . import conftest
from .benign import Benign
from .cases import COMMANDS, Case
from .runner import CaseRun, close_servers, describe, run_case, verdict

HERE = Path(__file__).parent
# The families issue 13 asks for; a module missing (not written yet) is tolerated, one that fails to import is not.
FAMILIES = ("hdf5", "keras", "torch", "zip", "onnx", "safetensors", "sharded", "cli", "write", "misc")
MINIMUM_CASES = 200


def _load_families() -> tuple[dict[str, list[Case]], dict[str, str], list[str]]:
    """(cases by family, import errors by module, families not present)."""
    present = sorted({p.name[: -len("_cases.py")] for p in HERE.glob("*_cases.py")})
    cases: dict[str, list[Case]] = {}
    errors: dict[str, str] = {}
    for family in present:
        module = f"{__package__}.{family}_cases"
        try:
            cases[family] = list(importlib.import_module(module).CASES)
        except (ImportError, SyntaxError, NameError, AttributeError, TypeError, ValueError, OSError) as exc:
            errors[module] = f"{type(exc).__name__}: {exc}"
    return cases, errors, [f for f in FAMILIES if f not in present]


CASES_BY_FAMILY, IMPORT_ERRORS, MISSING = _load_families()
ALL_CASES = [case for family in CASES_BY_FAMILY.values() for case in family]
BY_NAME = {case.name: case for case in ALL_CASES}


def test_every_family_module_imports():
    assert not IMPORT_ERRORS, f"case modules that fail to import: {IMPORT_ERRORS}"


def test_case_names_are_unique_and_well_formed():
    counts = Counter(case.name for case in ALL_CASES)
    assert not [name for name, n in counts.items() if n > 1], "duplicate case names"
    for case in ALL_CASES:
        assert case.expect in ("refused", "ok"), case.name
        assert case.source, f"{case.name} names no source"
        unknown = set(case.commands) - set(COMMANDS)
        assert not unknown, f"{case.name}: unknown commands {unknown}"


def test_corpus_size():
    """At least 200 cases once every family exists; the message lists how many each family has."""
    counts = {family: len(cases) for family, cases in CASES_BY_FAMILY.items()}
    report = ", ".join(f"{family}: {n}" for family, n in sorted(counts.items())) + f"; total {len(ALL_CASES)}"
    if MISSING:
        pytest.skip(f"families not written yet: {', '.join(MISSING)} ({report})")
    assert len(ALL_CASES) >= MINIMUM_CASES, report


@pytest.fixture(scope="session")
def corpus_runs(request: pytest.FixtureRequest, benign: Benign,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[CaseRun]]]:
    """Start every selected case in a pool of `workers` threads, each thread driving one child at a time."""
    selected = [item.callspec.params["name"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_case" and hasattr(item, "callspec")]
    workers = int(os.environ.get("WEIGHTKIT_CORPUS_WORKERS", "2"))
    root = tmp_path_factory.mktemp("corpus")
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="corpus")
    started = time.monotonic()
    futures = {name: pool.submit(run_case, BY_NAME[name], benign, root) for name in selected}

    def finished(_: Future[CaseRun]) -> None:
        if all(future.done() for future in futures.values()):
            cpu = sum(future.result().cpu_seconds for future in futures.values() if not future.exception())
            conftest.CORPUS_TIMING.update(cases=len(futures), seconds=time.monotonic() - started, workers=workers,
                                          cpu=cpu)

    for future in futures.values():
        future.add_done_callback(finished)
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)
    close_servers()


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_case(name: str, corpus_runs: dict[str, Future[CaseRun]]):
    run = corpus_runs[name].result()
    problems = verdict(BY_NAME[name], run)
    assert not problems, "\n".join([*problems, describe(run)])


def test_security_doc_lists_exactly_the_limits():
    """docs/security.md's limits table: every limit of weightkit.limits.LIMITS, with its default and variable."""
    from weightkit.limits import LIMITS

    text = (HERE.parents[1] / "docs" / "security.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`") and cells[3].startswith("`WEIGHTKIT_MAX_"):
            default = int(cells[1].split()[0].replace(",", ""))
            rows[cells[0].strip("`")] = (default, cells[2], cells[3].strip("`"))
    assert rows == {limit.name: (limit.default, limit.counts, limit.env) for limit in LIMITS}
