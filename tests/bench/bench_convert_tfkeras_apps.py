"""Every tf.keras (tf_keras 2.21) application converted by weightkit and checked against TensorFlow itself.

Run: python tests/bench/bench_convert_tfkeras_apps.py [NAME ...]
Uses the venv of bench_convert.py (/work/venv-tf2onnx: TensorFlow 2.21 + tf-keras 2.21). For each
architecture: tf_keras builds it (weights=None, seeded, no classifier softmax, the smallest input it
accepts, random batch-norm statistics), saves a full-model `.h5` and predicts on a seeded batch; then
`weightkit convert` (a whole process, timed) writes the `.onnx` and ONNX Runtime runs it on the same batch.
Prints a markdown table: file size, conversion time, largest difference from TensorFlow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_convert import TF_ENV, WEIGHTKIT_ENV, ensure_venv
from measure import python

WORK = Path("/tmp/weightkit-bench/convert/tfkeras-apps")
MIN_SIZE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71, "NASNetMobile": 224, "NASNetLarge": 331}

_MAKE = """
import sys, numpy as np, tf_keras as k
name, size, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
k.utils.set_random_seed(0)
options = dict(weights=None, input_shape=(size, size, 3), classes=10, classifier_activation=None)
model = getattr(k.applications, name)(**options)
rng = np.random.default_rng(0)
def leaves(m):
    for layer in m.layers:
        yield from (leaves(layer) if isinstance(layer, k.Model) else [layer])
for layer in leaves(model):
    if isinstance(layer, k.layers.BatchNormalization):
        weights = layer.get_weights()
        weights[-2] = rng.normal(0, 0.1, weights[-2].shape).astype("float32")
        weights[-1] = rng.uniform(1.0, 2.0, weights[-1].shape).astype("float32")
        layer.set_weights(weights)
model.save(path, save_format="h5")
x = np.random.default_rng(1).standard_normal((2, size, size, 3)).astype("float32")
np.savez(path + ".io.npz", input=x, output=model.predict(x, verbose=0))
"""


def names(interpreter: Path) -> list[str]:
    code = "import tf_keras as k; print(' '.join(n for n in dir(k.applications) if n[:1].isupper()))"
    return subprocess.run([str(interpreter), "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, **TF_ENV}).stdout.split()


def check(interpreter: Path, name: str) -> str:
    import numpy as np
    import onnxruntime

    path = WORK / f"{name}.h5"
    if not Path(f"{path}.io.npz").exists():
        subprocess.run([str(interpreter), "-c", _MAKE, name, str(MIN_SIZE.get(name, 32)), str(path)], check=True,
                       env={**os.environ, **TF_ENV}, capture_output=True)
    output = WORK / f"{name}.onnx"
    start = time.perf_counter()
    done = subprocess.run([str(Path(python()).with_name("weightkit")), "convert", str(path), "-o", str(output),
                           "--force"], capture_output=True, text=True, env={**os.environ, **WEIGHTKIT_ENV})
    seconds = time.perf_counter() - start
    if done.returncode:
        return f"| {name} | {path.stat().st_size / 1e6:.0f} MB | failed: {done.stderr.strip()[:200]} | |"
    io = np.load(f"{path}.io.npz")
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: io["input"]})[0]
    difference = float(np.abs(got - io["output"]).max())
    scale = float(np.abs(io["output"]).max())
    verdict = "ok" if difference <= 1e-4 * max(1.0, scale) else "ABOVE 1e-4"
    return (f"| {name} | {path.stat().st_size / 1e6:.0f} MB | {seconds:.2f} s | {difference:.1e} "
            f"(outputs up to {scale:.2g}) {verdict} |")


def main() -> None:
    interpreter = ensure_venv()
    WORK.mkdir(parents=True, exist_ok=True)
    print("| tf.keras application | .h5 | weightkit convert | largest difference from TensorFlow |\n|---|---|---|---|")
    for name in sys.argv[1:] or names(interpreter):
        print(check(interpreter, name), flush=True)


if __name__ == "__main__":
    main()
