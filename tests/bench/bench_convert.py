"""`weightkit convert` against tf2onnx 1.17 on TensorFlow 2.21: tf.keras ResNet50 and MobileNetV2 `.h5` → `.onnx`.

Run: python tests/bench/bench_convert.py
- Makes (or reuses) /work/venv-tf2onnx: a venv that sees /work/venv-tf's TensorFlow 2.21 and tf-keras 2.21
  through a .pth file, with `pip install tf2onnx==1.17.0` on top (if /work/venv-tf is missing, TensorFlow
  and tf-keras are installed into it instead).
- Makes the `.h5` files there with tf_keras (weights=None, seeded, no classifier softmax, random batch-norm
  statistics so the outputs depend on every layer), plus one input and TensorFlow's own output for it.
- Times whole processes from `.h5` to `.onnx` (measure.py: median wall time and peak RSS, after a warm-up),
  then runs both ONNX files with ONNX Runtime on the same input and compares them with TensorFlow.
Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import measure, python

WORK = Path("/tmp/weightkit-bench/convert")
TF_VENV = Path("/work/venv-tf")
VENV = Path("/work/venv-tf2onnx")
TF_ENV = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
# Bytecode cached outside the repository, as an installed package would have it.
WEIGHTKIT_ENV = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(WORK / "pycache")}
MODELS = {"ResNet50": "resnet50", "MobileNetV2": "mobilenetv2"}

_MAKE = """
import numpy as np, tf_keras as k
k.utils.set_random_seed(0)
model = getattr(k.applications, {name!r})(weights=None, classifier_activation=None)
rng = np.random.default_rng(0)
for layer in model.layers:
    if isinstance(layer, k.layers.BatchNormalization):
        gamma, beta, mean, variance = layer.get_weights()
        layer.set_weights([gamma, beta, rng.normal(0, 0.1, mean.shape).astype("float32"),
                           rng.uniform(1.0, 2.0, variance.shape).astype("float32")])
model.save({path!r}, save_format="h5")
x = np.random.default_rng(1).standard_normal((2, 224, 224, 3)).astype("float32")
np.savez({io!r}, input=x, output=model.predict(x, verbose=0))
"""


def ensure_venv() -> Path:
    """/work/venv-tf2onnx with TensorFlow 2.21, tf-keras 2.21 and tf2onnx 1.17.0."""
    interpreter = VENV / "bin" / "python"
    if not interpreter.exists():
        base = TF_VENV / "bin" / "python" if TF_VENV.exists() else Path(sys.executable)
        subprocess.run([str(base), "-m", "venv", str(VENV)], check=True)
        site = next((VENV / "lib").glob("python3*/site-packages"))
        tf_site = next(iter((TF_VENV / "lib").glob("python3*/site-packages")), None) if TF_VENV.exists() else None
        if tf_site is not None:
            (site / "_venv_tf.pth").write_text(f"{tf_site}\n")
        else:
            subprocess.run([str(interpreter), "-m", "pip", "install", "-q", "tensorflow-cpu==2.21.0",
                            "tf-keras==2.21.0"], check=True)
    check = subprocess.run([str(interpreter), "-c", "import tf2onnx; print(tf2onnx.__version__)"],
                           capture_output=True, text=True)
    if check.stdout.strip() != "1.17.0":
        subprocess.run([str(interpreter), "-m", "pip", "install", "-q", "tf2onnx==1.17.0"], check=True)
    return interpreter


def make_h5(interpreter: Path, name: str, stem: str) -> Path:
    path = WORK / f"{stem}_tfkeras.h5"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        code = _MAKE.format(name=name, path=str(path), io=str(path) + ".io.npz")
        subprocess.run([str(interpreter), "-c", code], check=True, env={**os.environ, **TF_ENV})
    return path


def versions(interpreter: Path) -> str:
    code = "import tensorflow as tf, tf_keras, tf2onnx, onnx; print(tf.__version__, tf_keras.__version__, " \
           "tf2onnx.__version__, onnx.__version__)"
    out = subprocess.run([str(interpreter), "-c", code], capture_output=True, text=True,
                         env={**os.environ, **TF_ENV}).stdout.split()
    return f"TensorFlow {out[0]}, tf-keras {out[1]}, tf2onnx {out[2]} (onnx {out[3]})"


def compare(path: Path, ours: Path, theirs: Path) -> str:
    """Largest differences between the two ONNX files and TensorFlow (run last: the children measured
    before must not inherit this process's ONNX Runtime memory through fork)."""
    import numpy as np
    import onnxruntime

    io = np.load(str(path) + ".io.npz")
    outputs = []
    for file in (ours, theirs):
        session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        outputs.append(session.run(None, {session.get_inputs()[0].name: io["input"]})[0])
    scale = np.abs(io["output"]).max()
    return (f"weightkit vs tf2onnx {np.abs(outputs[0] - outputs[1]).max():.2e}, weightkit vs TensorFlow "
            f"{np.abs(outputs[0] - io['output']).max():.2e}, tf2onnx vs TensorFlow "
            f"{np.abs(outputs[1] - io['output']).max():.2e} (outputs up to {scale:.3g})")


def main() -> None:
    interpreter = ensure_venv()
    weightkit = shutil.which("weightkit") or str(Path(python()).with_name("weightkit"))
    print(f"{versions(interpreter)}; weightkit on Python {sys.version.split()[0]}\n")
    print("| model (.h5 size) | command | median wall time | median peak RSS |\n|---|---|---|---|")
    results = []
    for name, stem in MODELS.items():
        path = make_h5(interpreter, name, stem)
        ours, theirs = WORK / f"{stem}_weightkit.onnx", WORK / f"{stem}_tf2onnx.onnx"
        label = f"{name} ({path.stat().st_size / 1e6:.0f} MB)"
        mine = measure(f"{label} | weightkit convert",
                       [weightkit, "convert", str(path), "-o", str(ours), "--force"], runs=5, env=WEIGHTKIT_ENV)
        other = measure(f"{label} | tf2onnx.convert --keras",
                        [str(interpreter), "-m", "tf2onnx.convert", "--keras", str(path), "--output", str(theirs)],
                        runs=3, env=TF_ENV)
        print(mine.row())
        print(other.row())
        results.append((name, path, ours, theirs, mine, other))
    notes = [f"- {name}: weightkit {other.seconds / mine.seconds:.0f}x faster, peak memory "
             f"{mine.peak_mb / other.peak_mb:.3f}x tf2onnx's; ONNX Runtime outputs: {compare(path, ours, theirs)}"
             for name, path, ours, theirs, mine, other in results]
    print("\n" + "\n".join(notes))


if __name__ == "__main__":
    main()
