"""`weightkit inspect` on a ~550 MB VGG16 .h5 against loading it with Keras, and start-up time.

Run: python tests/bench/bench_keras_inspect.py  (builds /tmp/weightkit-bench/vgg16.h5 once
with Keras 3 on the torch backend; prints a markdown table for docs/benchmarks.md).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import measure, python

WORK = Path("/tmp/weightkit-bench")
KERAS_ENV = {"KERAS_BACKEND": "torch"}


def make_vgg16() -> Path:
    path = WORK / "vgg16.h5"
    if not path.exists():
        WORK.mkdir(exist_ok=True)
        code = f"import keras; keras.applications.VGG16(weights=None).save({str(path)!r})"
        os.system(f"KERAS_BACKEND=torch {python()} -c {code!r}")
    return path


def main() -> None:
    path = make_vgg16()
    weightkit = shutil.which("weightkit") or "weightkit"
    print(f"file: {path} ({path.stat().st_size / 1e6:.0f} MB)\n")
    print("| command | median wall time | median peak RSS |\n|---|---|---|")
    results = [
        measure("weightkit inspect vgg16.h5", [weightkit, "inspect", str(path)]),
        measure("weightkit inspect --json vgg16.h5", [weightkit, "inspect", "--json", str(path)]),
        measure("keras.saving.load_model(vgg16.h5) (torch backend)",
                [python(), "-c", f"import keras; keras.saving.load_model({str(path)!r})"], env=KERAS_ENV),
        measure("weightkit --help", [weightkit, "--help"], runs=9),
        measure("python -c pass (interpreter alone)", [python(), "-c", "pass"], runs=9),
    ]
    for result in results:
        print(result.row())
    inspect, keras_load = results[0], results[2]
    print(f"\ninspect is {keras_load.seconds / inspect.seconds:.0f}x faster than Keras and uses "
          f"{inspect.peak_mb / (path.stat().st_size / 2**20):.2f}x the file size in memory.")


if __name__ == "__main__":
    main()
