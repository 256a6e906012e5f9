"""identify: accuracy over the whole catalog, every entry saved two ways; and its time on a ~500 MB file.

Accuracy. Every catalog architecture is written to files the way users get them, then
identified (``weightkit.identify(path, training=False)``, the metadata path), and identified
again against the catalog without its own architecture, where any name but the family's is wrong:

- torchvision and timm: a ``torch.save`` zip wrapped in ``{"state_dict": ...}`` with every key
  under ``module.`` (as ``DataParallel`` saves it), and a float16 safetensors file of the backbone
  alone with every key under ``backbone.`` (head removed). The models are built on the meta
  device, and the tensors of the ``.pth`` are views of one shared storage, so a file of a
  300M-parameter model takes the size of its largest tensor; the safetensors file is sparse.
  Neither changes what identify reads (names, shapes, dtypes).
- keras.applications: the model with its classifier as ``.keras``, and without it
  (``include_top=False``) as a legacy ``.h5``, as the ``*_no_top.h5`` downloads are.
- keras-yolo2 extractors: a legacy ``.h5`` and a Keras 3 ``.weights.h5`` (which keeps no layer order).

Each file counts as: the exact architecture (family and variant, relation as expected), the
family only (the name stopped at the family: variants tied), an abstention (no name), or a
wrong name (a family or variant that is not the file's). Time: a torchvision VGG16 ``.pth``
(553 MB, real random data) through ``weightkit identify --json`` (reads a 16 MiB sample to tell
trained from not) and ``--no-data --json`` (metadata only), against ``torch.load(mmap=True)``.

    python tests/bench/bench_identify.py [--only NAME ...] [--skip-keras] [--skip-time | --time-only] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("KERAS_BACKEND", "torch")

from measure import measure, python

FOLDER = Path("/tmp/weightkit-bench/identify")
VGG16 = Path("/tmp/weightkit-bench/vgg16_torchvision.pth")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", help="catalog names or constructors to save (default: all)")
    parser.add_argument("--skip-keras", action="store_true")
    parser.add_argument("--skip-time", action="store_true")
    parser.add_argument("--time-only", action="store_true", help="only the time on the 553 MB file")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if args.time_only:
        timing(args.runs)
        return 0
    only = set(args.only) if args.only else None
    shutil.rmtree(FOLDER, ignore_errors=True)
    FOLDER.mkdir(parents=True)
    outcomes: list[dict] = []
    outcomes += torch_files(only)
    if not args.skip_keras:
        outcomes += keras_files(only)
        outcomes += yolo2_files(only)
    report(outcomes)
    if not args.skip_time:
        timing(args.runs)
    return 0


# ---- writing the files ---------------------------------------------------------------------------------------------


def torch_files(only: set[str] | None) -> list[dict]:
    import torch

    from tests.tools.catalog import under
    from tests.tools.catalog.torch_models import builds

    outcomes = []
    for built in builds(only):
        tensors = [(t.name, t.shape, t.dtype) for t in built.model.tensors()]
        stem = FOLDER / built.constructor.replace("/", "_").replace("'", "")
        largest = max((_numel(shape) for _, shape, dtype in tensors if dtype.startswith("float")), default=1)
        storage = torch.zeros(largest)
        state = {}
        for name, shape, dtype in tensors:
            if dtype.startswith("float"):
                state[f"module.{name}"] = storage[:_numel(shape)].view(shape)
            else:
                state[f"module.{name}"] = torch.zeros(shape, dtype=torch.int64)
        pth = stem.with_suffix(".pth")
        torch.save({"state_dict": state, "epoch": 90}, pth)
        outcomes.append(identify_file(pth, built, "pth wrapped, module.", "complete"))
        pth.unlink()
        backbone = [(name, shape) for name, shape, dtype in tensors
                    if dtype.startswith("float") and not under(name.rsplit(".", 1)[0], built.head | built.aux)]
        safetensors = stem.with_suffix(".safetensors")
        _sparse_safetensors(safetensors, [(f"backbone.{name}", shape) for name, shape in backbone])
        outcomes.append(identify_file(safetensors, built, "safetensors fp16 backbone.", "backbone"))
        safetensors.unlink()
    return outcomes


def keras_files(only: set[str] | None) -> list[dict]:
    import gc

    from tests.tools.catalog import wanted
    from tests.tools.catalog.keras_apps import SPECS, builder, import_keras

    keras = import_keras()
    outcomes = []
    for spec in SPECS:
        if not wanted(only, spec.name, spec.constructor):
            continue
        function = builder(spec)
        shape = {"input_shape": (spec.size, spec.size, 3)} if spec.size else {}
        label = _Label(spec.name, spec.family, spec.variant, "keras.applications")
        keras.backend.clear_session()
        top = function(include_top=True, weights=None, **shape, **spec.arguments)
        size = int(top.input_shape[1])
        path = FOLDER / f"{spec.name}.keras"
        top.save(path)
        del top
        outcomes.append(identify_file(path, label, ".keras", "complete"))
        path.unlink()
        keras.backend.clear_session()
        no_top = function(include_top=False, weights=None, input_shape=(size, size, 3), **spec.arguments)
        path = FOLDER / f"{spec.name}_no_top.h5"
        no_top.save(path)
        del no_top
        outcomes.append(identify_file(path, label, "no-top .h5", "backbone"))
        path.unlink()
        keras.backend.clear_session()
        gc.collect()
    return outcomes


def yolo2_files(only: set[str] | None) -> list[dict]:
    from tests.tools.catalog import wanted
    from tests.tools.catalog.keras_apps import import_keras
    from tests.tools.catalog.yolo2 import SPECS

    keras = import_keras()
    outcomes = []
    for spec in SPECS:
        if not wanted(only, spec.name, spec.constructor):
            continue
        label = _Label(spec.name, spec.family, spec.variant, "keras-yolo2")
        keras.backend.clear_session()
        extractor = spec.make()
        for suffix, how in ((".h5", "legacy .h5"), (".weights.h5", ".weights.h5")):
            path = FOLDER / f"{spec.feature}{suffix}"
            extractor.save_weights(path) if suffix == ".weights.h5" else extractor.save(path)
            outcomes.append(identify_file(path, label, how, "backbone"))
            path.unlink()
        del extractor
    return outcomes


class _Label:
    """What a file is, for files not made from a catalog `Built`."""

    def __init__(self, name: str, family: str, variant: str | None, source: str):
        self.name, self.family, self.variant, self.source = name, family, variant, source


def _catalog():
    from weightkit.catalog import entries

    return entries()


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def _sparse_safetensors(path: Path, tensors: list[tuple[str, tuple[int, ...]]]) -> None:
    """A float16 safetensors file of these shapes whose data is a hole (identify reads only the header)."""
    header, offset = {}, 0
    for name, shape in tensors:
        size = 2 * _numel(shape)
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(text)) + text)
        file.truncate(8 + len(text) + offset)


# ---- identifying and counting --------------------------------------------------------------------------------------


def identify_file(path: Path, label, how: str, relation: str) -> dict:
    import weightkit

    started = time.perf_counter()
    found = weightkit.identify(path, training=False)
    seconds = time.perf_counter() - started
    named = found.named
    if named is None:
        verdict = "abstained"
    elif named.family != label.family:
        verdict = "wrong"
    elif named.variant is None and label.variant is not None:
        verdict = "family only"
    elif named.variant != label.variant:
        verdict = "wrong"
    else:
        verdict = "exact"
    closest = found.closest
    # The same file against the catalog without its architecture: the right answer is no name (or the family
    # alone, where other variants of it remain); any other name is a wrong one.
    others = tuple(e for e in _catalog() if (e.family, e.variant) != (label.family, label.variant))
    left_out = weightkit.identify(path, training=False, catalog=others).named
    if left_out is None:
        unknown = "abstained"
    elif left_out.family == label.family and left_out.variant is None:
        unknown = "family only"
    else:
        unknown = "wrong"
    outcome = {"file": label.name, "source": label.source, "how": how, "verdict": verdict,
               "named": named.architecture if named else None, "relation": named.relation if named else None,
               "expected_relation": relation, "top1_family": closest.family == label.family if closest else False,
               "summary": found.summary(), "seconds": seconds, "left_out": unknown,
               "left_out_named": left_out.describe() if left_out is not None else None}
    mark = {"exact": " ", "family only": "~", "abstained": "?", "wrong": "!"}[verdict]
    print(f"{mark} {label.name:38} {how:28} {found.summary()[:90]}", flush=True)
    if unknown == "wrong":
        print(f"! left out, named {left_out.describe()}", flush=True)
    return outcome


def report(outcomes: list[dict]) -> None:
    (FOLDER.parent / "identify_accuracy.json").write_text(json.dumps(outcomes, indent=1, ensure_ascii=False))
    print("\n| source | files | top-1 family | exact architecture | family only | abstained | wrong name |")
    print("|---|---|---|---|---|---|---|")
    groups = sorted({(o["source"], o["how"]) for o in outcomes})
    for key in [*groups, None]:
        rows = [o for o in outcomes if key is None or (o["source"], o["how"]) == key]
        counts = Counter(o["verdict"] for o in rows)
        family = sum(o["top1_family"] for o in rows)
        label = "**all**" if key is None else f"{key[0]}, {key[1]}"
        print(f"| {label} | {len(rows)} | {family} | {counts['exact']} | {counts['family only']} | "
              f"{counts['abstained']} | {counts['wrong']} |")
    print("\nThe same files, each against the catalog without its own architecture (family and variant):\n")
    print("| source | files | no name | family only | wrong name |\n|---|---|---|---|---|")
    for key in [*groups, None]:
        rows = [o for o in outcomes if key is None or (o["source"], o["how"]) == key]
        counts = Counter(o["left_out"] for o in rows)
        label = "**all**" if key is None else f"{key[0]}, {key[1]}"
        print(f"| {label} | {len(rows)} | {counts['abstained']} | {counts['family only']} | {counts['wrong']} |")
    for o in outcomes:
        if o["left_out"] == "wrong":
            print(f"wrong when left out: {o['file']} ({o['source']}, {o['how']}): {o['left_out_named']}")
    relation_kept = sum(o["relation"] == o["expected_relation"] for o in outcomes if o["verdict"] == "exact")
    print(f"\nexact names with the expected relation (complete / backbone): {relation_kept}")
    print(f"identify in-process, median per file: {statistics.median(o['seconds'] for o in outcomes) * 1000:.0f} ms")
    for verdict in ("wrong", "abstained", "family only"):
        for o in outcomes:
            if o["verdict"] == verdict:
                print(f"{verdict}: {o['file']} ({o['source']}, {o['how']}): {o['summary']}")


# ---- time on a ~500 MB file ----------------------------------------------------------------------------------------


def timing(runs: int) -> None:
    if not VGG16.exists():
        code = ("import sys; from tests.tools.torchvision_import import import_torchvision; tv = import_torchvision(); "
                "import torch; torch.manual_seed(0); torch.save(tv.models.vgg16().state_dict(), sys.argv[1])")
        import subprocess

        subprocess.run([python(), "-c", code, str(VGG16)], check=True, cwd=Path(__file__).resolve().parents[2])
    print(f"\n{VGG16.name}: {VGG16.stat().st_size / 1e6:.0f} MB")
    weightkit = str(Path(python()).with_name("weightkit"))
    results = [
        measure("weightkit identify --json vgg16.pth", [weightkit, "identify", "--json", str(VGG16)], runs),
        measure("weightkit identify --no-data --json vgg16.pth",
                [weightkit, "identify", "--no-data", "--json", str(VGG16)], runs),
        measure("weightkit identify vgg16.pth (table)", [weightkit, "identify", str(VGG16)], runs),
        measure("torch.load(vgg16.pth, mmap=True) (shapes only)",
                [python(), "-c", f"import torch; torch.load({str(VGG16)!r}, mmap=True)"], runs),
        measure("python -c pass", [python(), "-c", "pass"], runs),
    ]
    print("\n| command | median wall time | median peak RSS |\n|---|---|---|")
    for result in results:
        print(result.row())


if __name__ == "__main__":
    sys.exit(main())
