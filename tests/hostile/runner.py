"""Run one corpus case: every command of it in one child process, under a time and memory limit.

The parent (`run_case`) builds the case in an empty folder, starts ONE child process per case (forked
from a `ForkServer` that has imported weightkit once: no interpreter start per case) that runs the
case's commands in sequence through ``weightkit.cli.main(argv)`` in-process, and watches
it: a command running longer than `COMMAND_SECONDS` is a hang (the child is killed), a negative
return code is a crash, and the child's peak resident memory comes from ``os.wait4``. The child
(this file run as a script) writes one JSON line when a command starts (flushed, so a crash or a
hang names the command it reached) and one when it ends: argv, exit code, stdout, stderr, seconds.
`verdict` then turns the results into a list of problems (empty: the case passes).

Only the standard library is imported at the top: the fork server runs this file as a script.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .benign import Benign
    from .cases import Case

COMMAND_SECONDS = 10.0          # every command must finish within this (issue 13)
STARTUP_SECONDS = 60.0          # interpreter start and imports, on a loaded machine
PEAK_BYTES = 2**30              # the child's peak resident memory must stay below this
ADDRESS_SPACE_CAP = 3 * 2**30   # RLIMIT_AS of the child: a bomb fails there instead of taking the machine down
DIGEST_BYTES = 256 * 2**20     # inputs up to this size are compared by content, bigger ones by size and time
OUTPUT_KEPT = 4000              # characters of each command's stdout kept in the results
REPO = Path(__file__).resolve().parents[2]
BUG_PATH = re.compile(r"error: unexpected [\w.]+: ")  # the CLI's line for an exception no reader foresaw
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")  # terminal control characters printed raw

# Kinds of file, by content, and the benign companion of each kind (benign.py makes them).
FAMILY_KIND = {"hdf5": "h5", "keras": "keras", "torch": "torch", "zip": "torch", "onnx": "onnx",
               "safetensors": "safetensors", "sharded": "safetensors"}
KERAS_KINDS = ("h5", "keras", "weights_h5")


@dataclass
class CommandResult:
    """What one command did in the child."""

    name: str
    argv: list[str]
    code: int | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    error_class: str | None = None
    out_dir: str | None = None


@dataclass
class CaseRun:
    """Everything the parent saw while one case ran."""

    case_name: str
    folder: Path
    results: list[CommandResult] = field(default_factory=list)
    hang: str | None = None          # the command that ran past COMMAND_SECONDS (or "start-up")
    crash: str | None = None         # "signal N in <command>" when the child died of a signal
    died: str | None = None          # the child exited before finishing, without a signal
    peak_bytes: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0         # the child's user + system time (what the run costs on an idle machine)
    child_stderr: str = ""
    inputs_before: dict[str, str] = field(default_factory=dict)
    inputs_after: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- parent side


def commands_for(case: Case, path: Path, folder: Path, benign: Benign) -> list[tuple[str, list[str], str | None]]:
    """(name, argv, output folder or None) for each command the case lists, with its benign companion."""
    kind = case.companion or file_kind(path, case.name)
    companion = str(benign.path(kind))
    suffix = benign.suffix(kind)
    file = str(path)
    made: list[tuple[str, list[str], str | None]] = []
    for name in case.commands:
        out = str(folder / f"out-{name}")
        argv = {
            "inspect": ["inspect", file],
            "inspect-tensors": ["inspect", "--tensors", file],
            "inspect-json": ["inspect", "--json", file],
            "identify": ["identify", file],  # with the trained-or-not sample: it reads tensor data
            "diff-values": ["diff", file, companion, "--values"],
            "check-into-fix": ["check", file, "--into", companion, "--fix", f"{out}/fixed{suffix}"],
            "check-junction": ["check", file, companion],
            "split": ["split", file, "--out", out],
            "merge": ["merge", file, companion, "--ignore-junction", "-o", f"{out}/merged{suffix}"],
            "convert": ["convert", file, "-o", f"{out}/converted.onnx", "--verify"],
        }[name]
        writes = name in ("check-into-fix", "split", "merge", "convert")
        made.append((name, argv, out if writes else None))
    return made


def file_kind(path: Path, case_name: str) -> str:
    """The kind of benign companion for ``path``: by its content, else by the case's family."""
    head = _head(path)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "h5"
    if head.startswith(b"PK"):
        return "keras" if b"config.json" in head or b"metadata.json" in head else "torch"
    if head.startswith(b"\x80\x02\x8a\x0a"):  # pickle protocol 2, then the legacy torch magic number
        return "torch"
    if len(head) > 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 2**31:
        return "safetensors"
    return FAMILY_KIND.get(case_name.split("/", 1)[0], "torch")


def _head(path: Path) -> bytes:
    """The first bytes of a regular file (nothing for a FIFO, a device, a folder or a missing file)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return b""
        with path.open("rb") as handle:
            return handle.read(4096)
    except OSError:
        return b""


def run_case(case: Case, benign: Benign, root: Path) -> CaseRun:
    """Build `case` in a fresh folder under `root` and run every command of it in one child process."""
    base = Path(tempfile.mkdtemp(prefix="case-", dir=root))
    folder, private = base / "work", base / "runner"
    folder.mkdir()
    private.mkdir()
    started = time.monotonic()
    path = Path(case.build(folder))
    commands = commands_for(case, path, folder, benign)
    run = CaseRun(case.name, folder)
    run.inputs_before = snapshot_inputs(folder)
    for (_, _, out) in commands:
        if out is not None:
            Path(out).mkdir(exist_ok=True)
    (folder / ".home").mkdir(exist_ok=True)
    (folder / ".tmp").mkdir(exist_ok=True)
    spec = {"commands": [[name, argv, out] for name, argv, out in commands],
            "results": str(private / "results.jsonl"), "folder": str(folder), "env": _child_env(case, folder),
            "keras_first": _needs_keras(case, path, benign)}
    (private / "spec.json").write_text(json.dumps(spec))
    _run_child(case, folder, private, run)
    run.inputs_after = snapshot_inputs(folder)
    run.seconds = time.monotonic() - started
    return run


def _needs_keras(case: Case, path: Path, benign: Benign) -> bool:
    """Whether convert --verify may start Keras: then the child imports it before the timed command."""
    kind = case.companion or file_kind(path, case.name)
    return "convert" in case.commands and kind in KERAS_KINDS


def _child_env(case: Case, folder: Path) -> dict[str, str]:
    """The variables the child sets before its first command: the case's own, HOME and TMPDIR in the folder."""
    env = {"NO_COLOR": "1", "COLUMNS": "100", "TERM": "dumb", "KERAS_BACKEND": "torch",
           "TF_CPP_MIN_LOG_LEVEL": "3", "HOME": str(folder / ".home"), "TMPDIR": str(folder / ".tmp"),
           "KERAS_HOME": str(folder / ".home" / ".keras")}
    env.update(case.env)
    return env


class ForkServer:
    """A Python process with weightkit imported that forks one child per case (no interpreter start per case).

    It reads a spec path per line on stdin, answers ``{"pid": N}`` when the child is forked and
    ``{"status": S, "maxrss": KB, "cpu": s}`` from ``os.wait4`` when it ends. One case at a time.
    """

    def __init__(self) -> None:
        env = dict(os.environ, NO_COLOR="1", KERAS_BACKEND="torch", PYTHONDONTWRITEBYTECODE="1")
        env.pop("FORCE_COLOR", None)
        self._pending = b""  # what the server wrote past its last line read
        self.process = subprocess.Popen([sys.executable, __file__, "--fork-server"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                        cwd=REPO)
        if self._answer(STARTUP_SECONDS) != {"ready": True}:
            self.close()
            raise RuntimeError("the corpus fork server did not start")

    def start(self, spec: Path) -> int:
        """Fork a child for `spec`; its pid."""
        assert self.process.stdin
        self.process.stdin.write(f"{spec}\n".encode())
        self.process.stdin.flush()
        answer = self._answer(STARTUP_SECONDS)
        if not answer or "pid" not in answer:
            raise RuntimeError("the corpus fork server did not fork")
        return int(answer["pid"])

    def _answer(self, timeout: float) -> dict[str, Any] | None:
        """The server's next line, or None when none arrives within `timeout` seconds."""
        import selectors

        assert self.process.stdout
        # Read the pipe's bytes ourselves: a buffered readline may take the "pid" and "status" lines in one
        # read, and a select on the pipe would then wait for a line that has already arrived.
        while b"\n" not in self._pending:
            with selectors.DefaultSelector() as selector:
                selector.register(self.process.stdout, selectors.EVENT_READ)
                if not selector.select(timeout):
                    return None
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                return {"gone": True}
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return json.loads(line)

    def close(self) -> None:
        stop_process(self.process)


_SERVERS: queue.SimpleQueue[ForkServer] = queue.SimpleQueue()
_ALL_SERVERS: list[ForkServer] = []


def _server() -> ForkServer:
    try:
        return _SERVERS.get_nowait()
    except queue.Empty:
        server = ForkServer()
        _ALL_SERVERS.append(server)
        return server


def stop_process(process: subprocess.Popen) -> None:
    """Kill `process` if it still runs, reap it, and close the pipes to it."""
    if process.poll() is None:
        process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout):
        if stream:
            stream.close()


def close_servers() -> None:
    """Stop every fork server (at the end of a session)."""
    for server in _ALL_SERVERS:
        server.close()
    _ALL_SERVERS.clear()
    while not _SERVERS.empty():
        _SERVERS.get_nowait()


def _run_child(case: Case, folder: Path, private: Path, run: CaseRun) -> None:
    """Fork the child, watch its progress file, enforce the time limits; its end comes from wait4."""
    server = _server()
    pid = server.start(private / "spec.json")
    results_path = private / "results.jsonl"
    current, timed, since, ended = "start-up", False, time.monotonic(), None
    while ended is None:
        ended = server._answer(0.02)
        if ended is not None:
            break
        doing, timed_now = _progress(results_path)
        if doing != current:
            current, timed, since = doing, timed_now, time.monotonic()
        if time.monotonic() - since > (COMMAND_SECONDS if timed else STARTUP_SECONDS):
            run.hang = current.split("#")[0]
            _kill(pid)
            ended = server._answer(STARTUP_SECONDS)
    if not ended or "status" not in ended:
        server.close()
        raise RuntimeError(f"{case.name}: the fork server lost the child")
    _SERVERS.put(server)
    code = os.waitstatus_to_exitcode(ended["status"])
    run.peak_bytes = ended["maxrss"] * 1024
    run.cpu_seconds = ended["cpu"]
    run.results = read_results(results_path)
    run.child_stderr = (private / "child.stderr").read_text(errors="replace")[-4000:]
    finished = len(run.results) == len(case.commands) and all(r.code is not None for r in run.results)
    if run.hang is None and code < 0:
        run.crash = f"signal {-code} in {current.split('#')[0]}"
    elif run.hang is None and not finished:
        run.died = f"exit {code} in {current.split('#')[0]}"


def _kill(pid: int) -> None:
    """Kill the child and anything it started (its own session), or the child alone before it made one."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended meanwhile: wait4 in the server has its status
            pass


def _progress(results_path: Path) -> tuple[str, bool]:
    """(what the child is doing, whether it is a timed command) from its progress file.

    Between commands (start-up, importing Keras before convert --verify) the label is not a command.
    """
    try:
        lines = results_path.read_text().splitlines()
    except FileNotFoundError:
        return "start-up", False
    events = _events(lines)
    if events and events[-1]["event"] == "start":
        return f"{events[-1]['command']}#{len(events)}", True
    return (f"after {events[-1]['command']}#{len(events)}" if events else "start-up"), False


def _events(lines: list[str]) -> list[dict[str, Any]]:
    """The child's JSON lines; a last line still being written is left for the next look."""
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return events


def read_results(results_path: Path) -> list[CommandResult]:
    """The commands the child started, with what each did (code None: it never finished)."""
    results: list[CommandResult] = []
    try:
        lines = results_path.read_text().splitlines()
    except FileNotFoundError:
        return results
    for record in _events(lines):
        if record["event"] == "start":
            results.append(CommandResult(record["command"], record["argv"], out_dir=record["out"]))
        elif record["event"] == "done":
            done = results[-1]
            done.code, done.stdout, done.stderr = record["code"], record["stdout"], record["stderr"]
            done.seconds, done.error_class = record["seconds"], record["error_class"]
    return results


def snapshot_inputs(folder: Path) -> dict[str, str]:
    """A fingerprint of every input in `folder` (not the outputs, HOME or TMPDIR): to see none is replaced."""
    prints: dict[str, str] = {}
    for entry in sorted(_walk(folder)):
        relative = entry.relative_to(folder).as_posix()
        if relative.split("/", 1)[0] in (".home", ".tmp") or relative.startswith("out-"):
            continue
        info = entry.lstat()
        if stat.S_ISLNK(info.st_mode):
            prints[relative] = "link:" + os.readlink(entry)
        elif stat.S_ISREG(info.st_mode):
            prints[relative] = _digest(entry, info)
        else:
            prints[relative] = f"mode:{stat.S_IFMT(info.st_mode)}"
    return prints


def _walk(folder: Path) -> list[Path]:
    """Every entry under `folder`, without following symlinks (a case may hold link loops)."""
    found: list[Path] = []
    for top, dirs, files in os.walk(folder, followlinks=False):
        found.extend(Path(top) / name for name in dirs + files)
    return found


def _digest(path: Path, info: os.stat_result) -> str:
    if info.st_size > DIGEST_BYTES:  # a sparse giant: its size and time stand for its content
        return f"size:{info.st_size}:{info.st_mtime_ns}"
    try:
        with path.open("rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return f"unreadable:{info.st_size}:{info.st_mtime_ns}"


# ---------------------------------------------------------------- verdict


def verdict(case: Case, run: CaseRun) -> list[str]:
    """Every way the run broke the corpus rules (an empty list: the case passes)."""
    problems: list[str] = []
    if run.hang:
        problems.append(f"hang: {run.hang} ran over its time limit (child killed)")
    if run.crash:
        problems.append(f"crash: {run.crash}")
    if run.died:
        problems.append(f"child died: {run.died}: {run.child_stderr.strip()[-600:]}")
    if run.peak_bytes >= PEAK_BYTES:
        problems.append(f"memory: child peak {run.peak_bytes / 2**20:.0f} MiB (limit {PEAK_BYTES / 2**20:.0f} MiB)")
    for result in run.results:
        if result.code is not None:
            problems.extend(f"{result.name}: {text}" for text in _command_problems(case, result))
    if case.expect == "refused" and case.match and run.results and not any(
            case.match in r.stderr for r in run.results if r.code is not None):
        problems.append(f"no command's error mentions {case.match!r}")
    problems.extend(_folder_problems(case, run))
    return problems


def _command_problems(case: Case, result: CommandResult) -> list[str]:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    shown = " | ".join(lines)[:500] or "(nothing on stderr)"
    problems: list[str] = []
    if "Traceback" in result.stderr or BUG_PATH.search(result.stderr):
        problems.append(f"not a clean error: {shown}")
    if RAW_CONTROL.search(result.stdout) or RAW_CONTROL.search(result.stderr):
        problems.append("raw control characters on the terminal")
    if result.seconds >= COMMAND_SECONDS:
        problems.append(f"took {result.seconds:.1f} s")
    usage = result.error_class in ("UsageError", "UnsupportedError")
    if case.expect == "refused":
        if result.code != 2 or len(lines) != 1:
            problems.append(f"expected a refusal (exit 2, one line), got exit {result.code}: {shown}")
        elif case.match and not usage and case.match not in result.stderr:
            problems.append(f"refusal does not mention {case.match!r}: {shown}")
    elif result.code == 2:
        if not usage or len(lines) != 1:
            problems.append(f"expected a result (exit 0/1), got exit 2 ({result.error_class}): {shown}")
    elif result.code not in (0, 1):
        problems.append(f"exit {result.code}: {shown}")
    if result.code == 2 and result.out_dir and _listing(Path(result.out_dir)):
        problems.append(f"output left after the refusal: {_listing(Path(result.out_dir))}")
    return problems


def _folder_problems(case: Case, run: CaseRun) -> list[str]:
    """A canary made, a `.partial` left, an input replaced or removed."""
    problems: list[str] = []
    canaries = [p for p in _walk(run.folder) if p.name == "CANARY"]
    canaries += [Path(c) if Path(c).is_absolute() else run.folder / c for c in case.canaries]
    made = sorted({str(p) for p in canaries if os.path.lexists(p)})
    if made:
        problems.append(f"canary created: {made}")
    partial = [p.relative_to(run.folder).as_posix() for p in _walk(run.folder) if ".partial" in p.name]
    if partial:
        problems.append(f".partial left: {partial}")
    changed = [name for name, digest in run.inputs_before.items() if run.inputs_after.get(name) != digest]
    if changed:
        problems.append(f"input replaced or removed: {changed}")
    return problems


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in _walk(folder)) if folder.is_dir() else []


def describe(run: CaseRun) -> str:
    """A few lines about the run, for a failing test's message."""
    lines = [f"{run.case_name}: {run.seconds:.1f} s, peak {run.peak_bytes / 2**20:.0f} MiB, folder {run.folder}"]
    for r in run.results:
        first = next((line for line in r.stderr.splitlines() if line.strip()), "")[:200]
        lines.append(f"  {r.name}: exit {r.code} in {r.seconds:.2f} s ({r.error_class}) {first}")
    return "\n".join(lines)


# ---------------------------------------------------------------- child side


def _fork_server() -> int:
    """Import weightkit once, then fork a child per spec path read on stdin (see ForkServer)."""
    import importlib
    import pkgutil

    import weightkit
    import weightkit.cli

    weightkit.cli.build_parser()
    for module in pkgutil.walk_packages(weightkit.__path__, "weightkit."):  # every reader, op and converter
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    for name in ("onnxruntime", "pyfive", "keras"):  # keras: for convert --verify, imported once here
        _import_optional(name)
    import gc

    gc.collect()
    gc.freeze()  # the imported modules' objects: never scanned (nor copied on write) by a child's collections
    answers = sys.stdout
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    for line in sys.stdin:
        spec = line.strip()
        pid = os.fork()
        if pid == 0:
            _child(spec)  # never returns
        answers.write(json.dumps({"pid": pid}) + "\n")
        answers.flush()
        _, status, usage = os.wait4(pid, 0)
        answers.write(json.dumps({"status": status, "maxrss": usage.ru_maxrss,
                                  "cpu": usage.ru_utime + usage.ru_stime}) + "\n")
        answers.flush()
    return 0


def _child(spec_path: str) -> None:
    """In the forked child: own session, limits, folder, environment; run the commands; exit."""
    import resource
    import traceback

    code = 1
    try:
        os.setsid()
        spec = json.loads(Path(spec_path).read_text())
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP))
        _redirect_standard_streams(Path(spec["results"]).parent / "child.stderr")
        os.chdir(spec["folder"])
        os.environ.update(spec["env"])
        tempfile.tempdir = None  # TMPDIR is read again
        _run_commands(spec)
        code = 0
    except BaseException:
        traceback.print_exc()
        raise
    finally:
        sys.stderr.flush()
        os._exit(code)


def _redirect_standard_streams(stderr_path: Path) -> None:
    """stdin from /dev/null, stdout to /dev/null, stderr (of C code too) to the case's file (at the fd level)."""
    sys.stdout.flush()
    sys.stderr.flush()
    null = os.open(os.devnull, os.O_RDWR)
    err = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(err, 2)
    os.close(null)
    os.close(err)


def _run_commands(spec: dict[str, Any]) -> None:
    """Run each command through weightkit.cli.main in this process; log each as a JSON line."""
    import weightkit.cli
    from weightkit.errors import WeightkitError

    seen: list[str] = []
    original_str = WeightkitError.__str__

    def recording_str(self: WeightkitError) -> str:  # the CLI prints str(error): note which class it was
        seen.append(type(self).__name__)
        return original_str(self)

    WeightkitError.__str__ = recording_str
    with open(spec["results"], "a", encoding="utf-8") as log:
        for name, argv, out in spec["commands"]:
            if name == "convert" and spec["keras_first"]:
                _import_keras()
            log.write(json.dumps({"event": "start", "command": name, "argv": argv, "out": out}) + "\n")
            log.flush()
            seen.clear()
            log.write(json.dumps(_run_command(weightkit.cli.main, name, argv, seen)) + "\n")
            log.flush()


def _import_keras() -> None:
    """Import Keras before convert --verify is timed: its import is not weightkit's work."""
    _import_optional("keras")


def _import_optional(name: str) -> None:
    import importlib

    try:
        importlib.import_module(name)
    except ImportError:
        pass


def _run_command(main: Any, name: str, argv: list[str], seen: list[str]) -> dict[str, Any]:
    import gc
    import io
    from contextlib import redirect_stderr, redirect_stdout

    stdout, stderr = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    seconds = time.perf_counter() - started
    gc.collect()
    return {"event": "done", "command": name, "argv": argv, "code": code, "seconds": round(seconds, 3),
            "stdout": stdout.getvalue()[:OUTPUT_KEPT], "stderr": stderr.getvalue()[:OUTPUT_KEPT],
            "error_class": seen[-1] if seen else None}


if __name__ == "__main__":
    sys.exit(_fork_server())
