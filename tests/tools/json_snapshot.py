"""Record every command's ``--json`` document on every weight file, to compare two versions of weightkit.

A restructure must not change what a user sees. Run this once with the old code and once with the
new, then compare the two folders::

    python tests/tools/json_snapshot.py make-inputs /tmp/snap-inputs       # extra files, made with Keras/torch
    PYTHONPATH=/path/to/old python tests/tools/json_snapshot.py record /tmp/snap-inputs /tmp/before
    PYTHONPATH=.             python tests/tools/json_snapshot.py record /tmp/snap-inputs /tmp/after
    python tests/tools/json_snapshot.py compare /tmp/before /tmp/after

``record`` covers every weight file in ``fixtures/``, ``../shared/real-weights/`` and the made inputs:
``inspect`` (layers and tensors), ``split --list-boundaries``, ``split`` (and ``inspect`` of each part),
``merge`` of those parts, ``check`` of a file into itself and of its parts (and ``check --fix`` of the
backbone into the file), ``diff`` of a file against itself and against the next file, and ``convert``
of the Keras files. Temporary paths are replaced by placeholders so that two runs can be compared byte
for byte.

Every document carries ``schema_version`` (docs/json.md). Two versions of weightkit with different
schema versions differ in every document by design (version 2 renamed ``layers[].name`` to ``path``,
named Keras's batch dimension ``"batch"`` and counts PyTorch buffers apart): compare recordings made
with the same schema version, or read the differences against docs/json.md's list of changes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP_SUFFIXES = (".json", ".npz", ".md", ".py")
DATE = re.compile(r"\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d")


def weight_files(inputs: Path) -> list[Path]:
    """Every weight file the snapshot covers, in a fixed order."""
    folders = [ROOT / "fixtures", ROOT.parent / "shared" / "real-weights", inputs]
    found = []
    for folder in folders:
        found += sorted(p for p in folder.rglob("*") if p.is_file()
                        and (p.name.endswith(".index.json") or not p.name.endswith(SKIP_SUFFIXES)))
    return found


def run(argv: list[str], placeholders: dict[str, str]) -> dict[str, object]:
    """One CLI call: its exit code and its stdout (parsed where it is JSON), temp paths replaced."""
    done = subprocess.run([sys.executable, "-m", "weightkit", *argv], capture_output=True, text=True,
                          timeout=600, cwd=tempfile.gettempdir(), env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"})
    out, err = done.stdout, done.stderr.strip().splitlines()[-1:] if done.stderr.strip() else []
    for path, name in placeholders.items():
        out = out.replace(path, name)
        err = [line.replace(path, name) for line in err]
    out = DATE.sub("<date>", out)  # .keras parts record when they were saved
    try:
        document: object = json.loads(out)
    except ValueError:
        document = out
    return {"argv": [_placeholder(a, placeholders) for a in argv], "exit": done.returncode,
            "stdout": document, "stderr": err}


def _placeholder(text: str, placeholders: dict[str, str]) -> str:
    for path, name in placeholders.items():
        text = text.replace(path, name)
    return text


def calls_for(path: Path, following: Path, work: Path) -> Iterator[list[str]]:
    """The commands run on one file."""
    p, q = str(path), str(following)
    yield ["inspect", p, "--json"]
    yield ["inspect", p, "--tensors", "--json"]
    yield ["split", p, "--list-boundaries", "--json"]
    parts = work / "parts"
    yield ["split", p, "--out", str(parts), "--json"]
    for part in sorted(parts.glob("*")) if parts.exists() else []:
        yield ["inspect", str(part), "--json"]
    backbone = next(iter(sorted(parts.glob("backbone*"))), None) if parts.exists() else None
    head = next(iter(sorted(parts.glob("head*"))), None) if parts.exists() else None
    if backbone and head:
        yield ["check", str(backbone), str(head), "--json"]
        yield ["merge", str(backbone), str(head), "-o", str(work / f"merged{_suffix(path)}"), "--json"]
        yield ["check", str(backbone), "--into", p, "--json"]
        yield ["check", str(backbone), "--into", p, "--fix", str(work / f"fixed{_suffix(path)}"), "--json"]
    yield ["check", p, "--into", p, "--json"]
    yield ["diff", p, p, "--json"]
    yield ["diff", p, q, "--json"]
    if _suffix(path) in (".h5", ".hdf5", ".keras"):
        yield ["convert", p, "-o", str(work / "out.onnx"), "--json"]


def _suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".weights.h5"):
        return ".weights.h5"
    return path.suffix.lower() or ".bin"


def record(inputs: Path, out: Path) -> int:
    """Write one JSON document per file into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    files = weight_files(inputs)
    placeholders = {str(inputs): "<inputs>", str(ROOT.parent / "shared"): "<shared>", str(ROOT): "<repo>"}
    for index, path in enumerate(files):
        following = files[(index + 1) % len(files)]
        with tempfile.TemporaryDirectory() as work:
            marks = {work: "<work>", **placeholders}
            results = []
            for argv in calls_for(path, following, Path(work)):
                results.append(run(argv, marks))
        key = _placeholder(str(path), placeholders).strip("<").replace(">", "").replace("/", "__")
        (out / f"{key}.json").write_text(json.dumps(results, indent=1, sort_keys=True))
        print(f"{index + 1}/{len(files)} {path.name}: {len(results)} documents", flush=True)
    return 0


def compare(before: Path, after: Path) -> int:
    """Print the documents that differ; exit 1 if any do."""
    names = sorted({p.name for p in before.glob("*.json")} | {p.name for p in after.glob("*.json")})
    documents = differing = 0
    for name in names:
        old = json.loads((before / name).read_text()) if (before / name).exists() else []
        new = json.loads((after / name).read_text()) if (after / name).exists() else []
        for index in range(max(len(old), len(new))):
            documents += 1
            a = old[index] if index < len(old) else None
            b = new[index] if index < len(new) else None
            if a != b:
                differing += 1
                argv = (a or b or {}).get("argv")
                print(f"DIFFERS {name} #{index}: {' '.join(argv or [])}")
    print(f"{documents} documents compared over {len(names)} files, {differing} differ")
    return 1 if differing else 0


def make_inputs(folder: Path) -> int:
    """Files the fixtures lack, made the way users make them: Keras 3 models, torch and safetensors checkpoints."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    sys.path.insert(0, str(ROOT))
    import keras
    import torch
    from safetensors.torch import save_file

    from tests import nets

    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    cnn = nets.keras_cnn()
    cnn.save(folder / "k3_cnn.keras")
    cnn.save(folder / "k3_cnn.h5")
    cnn.save_weights(folder / "k3_cnn.weights.h5")
    sequential = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                                   keras.layers.Dense(5)])
    sequential.save(folder / "k3_sequential.keras")
    module = nets.torch_resnet()
    state = module.state_dict()
    torch.save(state, folder / "resnet.pt")
    torch.save(state, folder / "resnet_legacy.pt", _use_new_zipfile_serialization=False)
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "resnet.safetensors")
    torch.onnx.export(nets.torch_cnn().eval(), (torch.zeros(1, 3, 16, 16),), folder / "cnn.onnx", dynamo=False)
    torch.jit.trace(nets.torch_cnn().eval(), torch.zeros(1, 3, 16, 16)).save(folder / "cnn_torchscript.pt")
    keys = list(state)
    shards = folder / "sharded"
    shards.mkdir(exist_ok=True)
    index = {"metadata": {}, "weight_map": {}}
    for number, chunk in enumerate((keys[: len(keys) // 2], keys[len(keys) // 2:]), start=1):
        name = f"model-0000{number}-of-00002.safetensors"
        save_file({k: state[k].contiguous() for k in chunk}, shards / name)
        index["weight_map"].update({k: name for k in chunk})
    (shards / "model.safetensors.index.json").write_text(json.dumps(index))
    return 0


if __name__ == "__main__":
    verb, *arguments = sys.argv[1:]
    if verb == "make-inputs":
        sys.exit(make_inputs(Path(arguments[0])))
    if verb == "record":
        sys.exit(record(Path(arguments[0]).resolve(), Path(arguments[1])))
    if verb == "compare":
        sys.exit(compare(Path(arguments[0]), Path(arguments[1])))
    sys.exit(f"usage: {sys.argv[0]} make-inputs DIR | record INPUTS OUT | compare BEFORE AFTER")
