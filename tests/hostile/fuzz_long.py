"""A long mutation-fuzz run of every reader, in child processes; and the mutations test_fuzz.py shares.

    python -m tests.hostile.fuzz_long --per-format 2000 --out /tmp/fuzz-run

Each input is a small valid seed (benign.py) mutated by byte flips, truncation, splicing, zip-member
and JSON-field mutations. Long-lived child processes (one per worker) read inputs one at a time
with `exercise` (weightkit.load, inspect, every tensor read); the parent counts inputs, crashes
(the child died of a signal), hangs (no answer within 10 s: the child is killed and replaced),
non-weightkit exceptions and peaks over 1 GB (a child's peak resident memory, checked after each
input, where a child over the limit is replaced), keeps each offending input under ``OUT/findings/``
and writes ``OUT/summary.json``. Not collected by pytest (not a ``test_*.py``).
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import os
import random
import struct
import subprocess
import sys
import time
import warnings
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.hostile.runner import stop_process

HANG_SECONDS = 10.0
PEAK_BYTES = 2**30
ADDRESS_SPACE_CAP = 3 * 2**30


# ---------------------------------------------------------------- seeds


@dataclass(frozen=True)
class Seed:
    """A valid input: its files (name → bytes), the one handed to weightkit, and which ones to mutate."""

    kind: str
    files: dict[str, bytes]
    main: str
    mutable: tuple[str, ...]


def seeds() -> list[Seed]:
    """One seed per format weightkit reads, from the benign files (made by the real libraries)."""
    from .benign import FILES, shared

    benign = shared()
    made = [Seed(kind, {Path(FILES[kind]).name: benign.path(kind).read_bytes()}, Path(FILES[kind]).name,
                 (Path(FILES[kind]).name,))
            for kind in ("keras", "h5", "weights_h5", "torch", "torch_legacy", "safetensors", "onnx")]
    external = benign.path("onnx_external").parent
    made.append(Seed("onnx_external", {p.name: p.read_bytes() for p in external.iterdir()}, "benign_ext.onnx",
                     ("benign_ext.onnx", "benign_ext.onnx.data")))
    sharded = benign.path("sharded").parent
    made.append(Seed("sharded", {p.name: p.read_bytes() for p in sharded.iterdir()}, "model.safetensors.index.json",
                     tuple(sorted(p.name for p in sharded.iterdir()))))
    return made


# ---------------------------------------------------------------- mutations (pure functions of their parameters)


def flip(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    """Set byte ``position % len`` to ``value`` for each edit."""
    if not data:
        return data
    out = bytearray(data)
    for position, value in edits:
        out[position % len(out)] = value
    return bytes(out)


def truncate(data: bytes, cut: int) -> bytes:
    return data[: cut % (len(data) + 1)] if data else data


def splice(data: bytes, donor: bytes, start: int, length: int, at: int, overwrite: bool) -> bytes:
    """Copy ``length`` bytes of `donor` from `start` into `data` at `at` (over it, or inserted)."""
    if not data or not donor:
        return data
    start %= len(donor)
    chunk = donor[start: start + length]
    at %= len(data)
    return data[:at] + chunk + data[at + (len(chunk) if overwrite else 0):]


# What Python's zipfile raises on an archive an earlier mutation broke (the mutator, not weightkit).
BROKEN_ZIP = (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError, OverflowError,
              KeyError, IndexError, struct.error, zlib.error, lzma.LZMAError)


def zip_member(data: bytes, member: int, action: str, inner: Any) -> bytes:
    """Rewrite a zip with one member changed: its bytes (`inner` maps old → new), compression, or presence."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as source:
            infos = source.infolist()
            contents = [source.read(info) for info in infos]
    except BROKEN_ZIP:  # an earlier mutation broke the archive: leave it to the byte mutations
        return data
    if not infos:
        return data
    index = member % len(infos)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate member this may write
        try:
            _rewrite(buffer, infos, contents, index, action, inner)
        except BROKEN_ZIP:  # member fields an earlier mutation made unwritable
            return data
    return buffer.getvalue()


def _rewrite(buffer: io.BytesIO, infos: list[zipfile.ZipInfo], contents: list[bytes], index: int, action: str,
             inner: Any) -> None:
    methods = {"stored": zipfile.ZIP_STORED, "deflate": zipfile.ZIP_DEFLATED, "bzip2": zipfile.ZIP_BZIP2,
               "lzma": zipfile.ZIP_LZMA}
    with zipfile.ZipFile(buffer, "w") as target:
        for i, (info, content) in enumerate(zip(infos, contents)):
            method = info.compress_type
            if i == index:
                if action == "drop":
                    continue
                if action == "bytes":
                    content = inner(content)
                elif action in methods:
                    method = methods[action]
                elif action == "duplicate":
                    target.writestr(info.filename, content, compress_type=method)
            target.writestr(info.filename, content, compress_type=method)


def json_field(text: bytes, choice: int, value: Any) -> bytes:
    """The JSON document `text` with one value (the `choice`-th in a walk) replaced by `value`."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return text
    places = list(_places(document))
    if not places:
        return text
    parent, key = places[choice % len(places)]
    parent[key] = value
    return json.dumps(document).encode()


def _places(document: Any) -> Any:
    """(container, key) for every value in a JSON document, breadth first."""
    queue = [document]
    seen = 0
    while queue and seen < 10_000:
        node = queue.pop(0)
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            seen += 1
            yield node, key
            queue.append(child)


def safetensors_header(data: bytes, choice: int, value: Any) -> bytes:
    """A safetensors file with one field of its JSON header replaced (the length prefix kept right)."""
    if len(data) < 8:
        return data
    length = int.from_bytes(data[:8], "little")
    header = data[8: 8 + length]
    changed = json_field(header, choice, value)
    return len(changed).to_bytes(8, "little") + changed + data[8 + length:]


def keras_config(data: bytes, choice: int, value: Any) -> bytes:
    """A .keras zip with one field of config.json (or metadata.json) replaced."""
    def change(content: bytes) -> bytes:
        return json_field(content, choice, value)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except BROKEN_ZIP:
        return data
    member = names.index("config.json") if "config.json" in names and choice % 3 else 0
    if "metadata.json" in names and choice % 3 == 0:
        member = names.index("metadata.json")
    return zip_member(data, member, "bytes", change)


# ---------------------------------------------------------------- the target


def exercise(path: Path) -> None:
    """What the fuzzer asks of every input: load it, inspect it, read every tensor (errors propagate)."""
    import weightkit
    from weightkit.ops.inspect import inspect_document

    with weightkit.load(path) as model:
        inspect_document(model)
        extras = [tensor for group in model.extras.values() for tensor in group]
        for tensor in model.tensors() + extras:
            if tensor.loader is not None:
                tensor.read()


# ---------------------------------------------------------------- random mutation (the long run)


JSON_VALUES: list[Any] = [None, True, -1, 0, 2**63, 1e308, float("nan"), "", "F32", "x" * 300, [], [2**40],
                          [[1] * 70], {}, {"a": 1}, [-1, -1], [0, 2**62], "../../etc/passwd", "/dev/zero"]


def random_mutation(seed: Seed, rng: random.Random, donors: list[bytes]) -> dict[str, bytes]:
    """The seed's files with one or a few random mutations applied to one of its mutable files."""
    files = dict(seed.files)
    name = rng.choice(seed.mutable)
    data = files[name]
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        data = _one_mutation(seed, name, data, rng, donors)
    files[name] = data
    return files


def _one_mutation(seed: Seed, name: str, data: bytes, rng: random.Random, donors: list[bytes]) -> bytes:
    choices = ["flip", "flip", "truncate", "splice"]
    if data.startswith(b"PK"):
        choices += ["zip", "zip"]
    if seed.kind == "keras":
        choices += ["keras-json", "keras-json"]
    if name.endswith(".safetensors"):
        choices += ["st-json", "st-json"]
    if name.endswith(".json"):
        choices += ["json", "json"]
    what = rng.choice(choices)
    size = max(1, len(data))
    if what == "flip":
        return flip(data, [(rng.randrange(size), rng.randrange(256)) for _ in range(rng.randint(1, 8))])
    if what == "truncate":
        return truncate(data, rng.randrange(size))
    if what == "splice":
        donor = rng.choice([*donors, data])
        return splice(data, donor, rng.randrange(1 << 20), rng.randint(1, 512), rng.randrange(size), rng.random() < .5)
    if what == "zip":
        action = rng.choice(["bytes", "bytes", "drop", "duplicate", "stored", "deflate", "bzip2", "lzma"])
        edits = [(rng.randrange(1 << 20), rng.randrange(256)) for _ in range(rng.randint(1, 6))]
        return zip_member(data, rng.randrange(64), action, lambda content: flip(content, edits))
    value = rng.choice(JSON_VALUES)
    if what == "keras-json":
        return keras_config(data, rng.randrange(10_000), value)
    if what == "st-json":
        return safetensors_header(data, rng.randrange(10_000), value)
    return json_field(data, rng.randrange(10_000), value)


# ---------------------------------------------------------------- the worker (a child process)


def _worker(warm_ups: list[str]) -> int:
    """Read input paths on stdin, one per line; answer one JSON line per input on stdout.

    An exception other than a WeightkitError is not caught: the worker dies with its traceback on
    stderr, and the parent records it as a finding and starts a new worker.
    """
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP))
    from weightkit.errors import WeightkitError

    answers = sys.stdout
    sys.stdout = io.StringIO()  # whatever a reader prints is not the protocol
    for warm_up in warm_ups:  # the seeds: every reader imported before any input is timed
        exercise(Path(warm_up))
    answers.write("ready\n")
    answers.flush()
    for line in sys.stdin:
        task = json.loads(line)
        outcome = "ok"
        started = time.perf_counter()
        try:
            exercise(Path(task["path"]))
        except WeightkitError:
            outcome = "refused"
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        answers.write(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - started, "peak": peak}) + "\n")
        answers.flush()
        sys.stdout = io.StringIO()
    return 0


class Worker:
    """A long-lived child reading inputs; replaced after a crash, a hang or a peak over the limit."""

    def __init__(self, stderr: Path, warm_ups: list[Path]) -> None:
        env = dict(os.environ, NO_COLOR="1", KERAS_BACKEND="torch")
        self.stderr = stderr
        with stderr.open("wb") as err:
            self.process = subprocess.Popen([sys.executable, "-m", "tests.hostile.fuzz_long", "--worker",
                                             *map(str, warm_ups)],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                            text=True, env=env, cwd=Path(__file__).resolve().parents[2])
        assert self.process.stdout
        if self.process.stdout.readline().strip() != "ready":  # start-up is not timed: only inputs are
            raise RuntimeError(f"the fuzz worker did not start: {stderr.read_text(errors='replace')[-2000:]}")

    def ask(self, path: Path) -> dict[str, Any]:
        """The worker's answer for `path`, or {"outcome": "crash"/"hang"} (then the worker is gone)."""
        import selectors

        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps({"path": str(path)}) + "\n")
        self.process.stdin.flush()
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            ready = selector.select(HANG_SECONDS)
        if not ready:
            self.stop()
            return {"outcome": "hang"}
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            self.stop()
            if code < 0:
                return {"outcome": f"crash (signal {-code})"}
            return {"outcome": "exception: " + self.stderr.read_text(errors="replace")[-1500:]}
        return json.loads(line)

    def stop(self) -> None:
        stop_process(self.process)


# ---------------------------------------------------------------- the run


def run(per_format: int, out: Path, seed_value: int, kinds: list[str] | None,
        max_seconds: float | None = None) -> dict[str, Any]:
    """Fuzz `per_format` inputs of every seed kind; keep findings under `out`; return the summary."""
    rng = random.Random(seed_value)
    chosen = [s for s in seeds() if kinds is None or s.kind in kinds]
    donors = [data for s in chosen for data in s.files.values()]
    counts: dict[str, Counter[str]] = {s.kind: Counter() for s in chosen}
    (out / "findings").mkdir(parents=True, exist_ok=True)
    warm_ups = []
    for seed in chosen:
        _write_input(out / "seeds" / seed.kind, seed.files)
        warm_ups.append(out / "seeds" / seed.kind / seed.main)
    worker = Worker(out / "worker.stderr", warm_ups)
    started = time.monotonic()
    for number in range(per_format * len(chosen)):
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            break
        seed = chosen[number % len(chosen)]
        folder = out / "current"
        _write_input(folder, random_mutation(seed, rng, donors))
        answer = worker.ask(folder / seed.main)
        outcome = answer["outcome"].split(":")[0].split(" (")[0]
        counts[seed.kind]["inputs"] += 1
        counts[seed.kind][outcome] += 1
        if answer.get("peak", 0) > PEAK_BYTES:
            counts[seed.kind]["peak over 1 GB"] += 1
            outcome = "peak"
        if outcome in ("crash", "hang", "exception", "peak"):
            _keep(folder, out / "findings" / f"{seed.kind}-{number:07d}-{outcome}", answer)
        if outcome in ("crash", "hang", "exception", "peak"):
            worker.stop()
            worker = Worker(out / "worker.stderr", warm_ups)
    worker.stop()
    summary = {"seconds": round(time.monotonic() - started, 1), "per_format": per_format, "random_seed": seed_value,
               "by_format": {kind: dict(counter) for kind, counter in counts.items()},
               "total": dict(sum(counts.values(), Counter()))}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _write_input(folder: Path, files: dict[str, bytes]) -> None:
    if folder.exists():
        for old in folder.iterdir():
            old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def _keep(folder: Path, target: Path, answer: dict[str, Any]) -> None:
    target.mkdir(parents=True)
    for path in folder.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    (target / "outcome.txt").write_text(answer["outcome"] + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-format", type=int, default=1000, help="mutated inputs per seed format")
    parser.add_argument("--out", type=Path, default=Path("fuzz-run"), help="folder for the summary and findings")
    parser.add_argument("--seed", type=int, default=0, help="random seed (a run is reproducible)")
    parser.add_argument("--kinds", nargs="*", help="only these seed kinds (keras, h5, torch, onnx_external, ...)")
    parser.add_argument("--max-seconds", type=float, help="stop after this long, whatever is left")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("warm_ups", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args.warm_ups)
    os.environ.setdefault("KERAS_BACKEND", "torch")
    summary = run(args.per_format, args.out, args.seed, args.kinds, args.max_seconds)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
