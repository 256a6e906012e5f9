"""Mutation fuzzer for weightkit's HDF5 reading (issue 13 item 10): keeps the inputs that crash or hang it.

Small valid Keras files (a full-model ``.h5`` and a ``.weights.h5`` saved by Keras 3, legacy
weights files written with h5py in the Keras 2 layout, with and without gzip, old and new
HDF5 object headers) are mutated with a seeded random generator: byte flips, chunks
overwritten with random or boundary bytes, truncation and splices between two seeds. Each
mutant runs through ``python -m weightkit inspect FILE`` in a child process with a timeout;
a negative return code (a signal: 139 is SIGSEGV in a shell) is a crash, a timeout a hang,
and a stderr line "unexpected ..." a non-weightkit exception.

    # the regression corpus, against the commit before the pyfive reader:
    git worktree add /tmp/wt-hdf5 5eb6486
    python tests/hostile/make_hdf5_regressions.py --code /tmp/wt-hdf5 --count 6000 --keep tests/hostile/regressions/hdf5
    # the same fuzz against the working tree: counts only
    python tests/hostile/make_hdf5_regressions.py --code . --count 6000
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

MAX_CRASHES = 40
MAX_HANGS = 20


def make_seeds(folder: Path, with_keras: bool = True) -> list[Path]:
    """Small valid Keras HDF5 files of each layout weightkit reads."""
    seeds = [_legacy_weights(folder / "legacy.h5", compression=None, libver="earliest"),
             _legacy_weights(folder / "legacy_gzip.h5", compression="gzip", libver="earliest"),
             _legacy_weights(folder / "legacy_v2.h5", compression=None, libver="latest"),
             _pre_1_0(folder / "pre10.h5")]
    if with_keras:
        seeds += _keras3_seeds(folder)
    return seeds


def _legacy_weights(path: Path, compression: str | None, libver: str) -> Path:
    import h5py

    rng = np.random.default_rng(0)
    with h5py.File(path, "w", libver=libver) as file:
        file.attrs["layer_names"] = np.array([b"dense", b"dense_1"])
        file.attrs["backend"] = "tensorflow"
        file.attrs["keras_version"] = "2.4.0"
        for name, shape in (("dense", (4, 3)), ("dense_1", (3, 2))):
            group = file.create_group(name)
            group.attrs["weight_names"] = np.array([f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()])
            inner = group.create_group(name)
            extra = {"compression": compression, "shuffle": True} if compression else {}
            inner.create_dataset("kernel:0", data=rng.standard_normal(shape).astype("float32"), **extra)
            inner.create_dataset("bias:0", data=np.zeros(shape[1], "float32"), **extra)
    return path


def _pre_1_0(path: Path) -> Path:
    import h5py

    with h5py.File(path, "w") as file:
        file.attrs["nb_layers"] = 2
        for index in range(2):
            group = file.create_group(f"layer_{index}")
            group.attrs["nb_params"] = 1
            group.create_dataset("param_0", data=np.ones((2, 2), "float32"))
    return path


def _keras3_seeds(folder: Path) -> list[Path]:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return []
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d1"),
                              keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    model.save(folder / "keras3_full.h5")
    model.save_weights(folder / "keras3.weights.h5")
    return [folder / "keras3_full.h5", folder / "keras3.weights.h5"]


def metadata_positions(path: Path) -> list[int]:
    """Byte positions outside the seed's raw data: where libhdf5's parsers read (headers, B-trees, heaps)."""
    import h5py

    size = path.stat().st_size
    data = bytearray(size)
    with h5py.File(path, "r") as file:
        def mark(_: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                offset = obj.id.get_offset()
                if offset is not None:
                    data[offset:offset + obj.id.get_storage_size()] = b"\1" * obj.id.get_storage_size()
        file.visititems(mark)
    return [i for i in range(size) if not data[i]]


_SPECIAL = [0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**63 - 1, 2**64 - 1]


def mutate(rng: random.Random, seeds: list[bytes], where: list[list[int]]) -> bytes:
    """One mutant of a random seed: byte flips, chunk or integer-field overwrites, truncations or splices.

    Most mutations hit the seed's metadata (``where``), the bytes the HDF5 parser interprets.
    """
    pick = rng.randrange(len(seeds))
    data = bytearray(seeds[pick])
    positions = where[pick]
    for _ in range(1 if rng.random() < 0.5 else rng.randint(2, 4)):
        kind = rng.random()
        positions = [p for p in positions if p < len(data)] if len(data) < len(seeds[pick]) else positions
        at = rng.choice(positions) if positions and rng.random() < 0.9 else rng.randrange(len(data))
        if kind < 0.35:
            for _ in range(rng.randint(1, 4)):
                spot = rng.choice(positions) if positions else rng.randrange(len(data))
                data[spot] ^= 1 << rng.randrange(8)
        elif kind < 0.55:
            width = rng.choice([1, 2, 4, 8])
            value = rng.choice(_SPECIAL) & ((1 << (8 * width)) - 1)
            data[at:at + width] = value.to_bytes(width, "little")
        elif kind < 0.75:
            size = rng.randint(1, 16)
            fill = rng.choice([b"\xff", b"\x00", b"\x7f", b"\x80", bytes([rng.randrange(256)])])
            data[at:at + size] = bytes(rng.randrange(256) for _ in range(size)) if rng.random() < 0.5 else fill * size
        elif kind < 0.85:
            data = data[:rng.randint(64, len(data))]
        else:
            other = rng.choice(seeds)
            cut = rng.randrange(min(len(data), len(other)))
            data = data[:cut] + other[cut:]
    return bytes(data)


_CHILD = """
import contextlib, io, sys
from weightkit.cli import main
for line in sys.stdin:
    path = line.rstrip("\\n")
    print("BEGIN", flush=True)
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main(["inspect", path])
        except BaseException as exc:  # a traceback escaping main is a finding too
            code, err = 3, io.StringIO(repr(exc))
    text = err.getvalue()
    unexpected = "unexpected " in text or code == 3
    print("END", "unexpected" if unexpected else "ok" if code in (0, 1) else "refused", flush=True)
"""


class Runner:
    """A child process that inspects file after file; a crash or a hang costs one restart."""

    def __init__(self, code: Path, timeout: float):
        self.code = code
        self.env = dict(os.environ, PYTHONPATH=str(code), NO_COLOR="1")
        self.timeout = timeout
        self.child: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        if self.child is None:
            self.child = subprocess.Popen([sys.executable, "-c", _CHILD], env=self.env, text=True, cwd=self.code,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL)
        return self.child

    def run(self, path: Path) -> str:
        """'crash', 'hang', 'unexpected', 'ok' (exit 0/1) or 'refused' (exit 2, a weightkit error)."""
        child = self._start()
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(f"{path}\n")
        child.stdin.flush()
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(child.stdout.readline()) for _ in range(2)],
                                  daemon=True)
        reader.start()
        try:
            lines.get(timeout=self.timeout)
            end = lines.get(timeout=self.timeout)
        except queue.Empty:
            child.kill()
            child.wait()
            self.child = None
            return "hang"
        if not end.startswith("END"):
            child.wait()
            self.child = None
            return "crash" if child.returncode != 0 else "unexpected"
        return end.split()[1]

    def close(self) -> None:
        if self.child is not None:
            self.child.kill()
            self.child.wait()


def confirm(code: Path, path: Path, timeout: float) -> str:
    """What ``python -m weightkit inspect path`` does on its own: 'crash', 'hang' or 'other'."""
    env = dict(os.environ, PYTHONPATH=str(code), NO_COLOR="1")
    try:
        done = subprocess.run([sys.executable, "-m", "weightkit", "inspect", str(path.resolve())], env=env,
                              cwd=code, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "hang"
    return "crash" if done.returncode < 0 or done.returncode > 128 else "other"


def fuzz(code: Path, count: int, seed: int, timeout: float, keep: Path | None, workers: int) -> dict[str, int]:
    """Run ``count`` mutants; keep crashing and hanging ones in ``keep``; return the counts per outcome."""
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        paths = make_seeds(folder)
        seeds = [p.read_bytes() for p in paths]
        where = [metadata_positions(p) for p in paths]
        rng = random.Random(seed)
        mutants = [mutate(rng, seeds, where) for _ in range(count)]

        def share(worker: int) -> list[tuple[int, str]]:
            runner = Runner(code, timeout)
            found = []
            for index in range(worker, count, workers):
                path = folder / f"m{index}.h5"
                path.write_bytes(mutants[index])
                found.append((index, runner.run(path)))
                path.unlink()
            runner.close()
            return found

        with ThreadPoolExecutor(workers) as pool:
            results = sorted(r for part in pool.map(share, range(workers)) for r in part)
        for index, outcome in results:
            counts[outcome] = counts.get(outcome, 0) + 1
            if keep is not None and outcome in ("crash", "hang"):
                _keep(keep, code, index, outcome, mutants[index], counts, timeout)
    return counts


def _keep(keep: Path, code: Path, index: int, outcome: str, data: bytes, counts: dict[str, int],
          timeout: float) -> None:
    """Keep a crash or hang that ``python -m weightkit inspect`` reproduces on its own, up to the caps."""
    kept = f"kept_{outcome}"
    if counts.get(kept, 0) >= {"crash": MAX_CRASHES, "hang": MAX_HANGS}[outcome]:
        return
    keep.mkdir(parents=True, exist_ok=True)
    target = keep / f"{outcome}-{index:05d}.h5"
    target.write_bytes(data)
    if confirm(code, target, timeout) != outcome:
        target.unlink()
        return
    counts[kept] = counts.get(kept, 0) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[2],
                        help="the weightkit checkout to run (PYTHONPATH)")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--keep", type=Path, help="folder to keep crashing and hanging inputs in")
    args = parser.parse_args()
    counts = fuzz(args.code.resolve(), args.count, args.seed, args.timeout, args.keep, args.workers)
    print(" ".join(f"{key}={value}" for key, value in sorted(counts.items())))


if __name__ == "__main__":
    main()
