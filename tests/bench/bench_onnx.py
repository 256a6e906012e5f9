"""ONNX: weightkit inspect / read / write against onnx.load, on a ~1 GB model with and without external data.

Run: python tests/bench/bench_onnx.py  (writes three models under /tmp/weightkit-bench once, from
a child process: 16 float32 4096×4096 MatMul weights in one .onnx file (1 GiB), the same
model saved by onnx with external data, and a 25,000-node graph of small layers; prints
a markdown table for docs/benchmarks.md).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import measure, python

WORK = Path("/tmp/weightkit-bench")

_MAKE = """
import numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
work = {work!r}
def matmuls(count, size, name):
    nodes, inits, previous = [], [], "x"
    rng = np.random.default_rng(0)
    for i in range(count):
        inits.append(numpy_helper.from_array(rng.standard_normal((size, size), dtype=np.float32), f"w{{i}}"))
        nodes.append(helper.make_node("MatMul", [previous, f"w{{i}}"], [f"h{{i}}"], name=f"fc{{i}}"))
        previous = f"h{{i}}"
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", size])],
                              [helper.make_tensor_value_info(previous, TensorProto.FLOAT, ["n", size])], inits)
    return helper.make_model(graph)
model = matmuls(16, 4096, "big")
onnx.save_model(model, work + "/big.onnx")
(__import__("pathlib").Path(work) / "ext").mkdir(exist_ok=True)
onnx.save_model(model, work + "/ext/big_ext.onnx", save_as_external_data=True, location="big_ext.onnx.data")
nodes, inits, previous = [], [], "x"
rng = np.random.default_rng(1)
for i in range(5000):
    inits += [numpy_helper.from_array(rng.standard_normal((32, 32), dtype=np.float32), f"w{{i}}"),
              numpy_helper.from_array(rng.standard_normal(32, dtype=np.float32), f"b{{i}}")]
    nodes += [helper.make_node("MatMul", [previous, f"w{{i}}"], [f"m{{i}}"], name=f"mm{{i}}"),
              helper.make_node("Add", [f"m{{i}}", f"b{{i}}"], [f"a{{i}}"], name=f"add{{i}}"),
              helper.make_node("Constant", [], [f"s{{i}}"], value_ints=[1, 32]),
              helper.make_node("Reshape", [f"a{{i}}", f"s{{i}}"], [f"r{{i}}"], name=f"rs{{i}}"),
              helper.make_node("Relu", [f"r{{i}}"], [f"h{{i}}"], name=f"relu{{i}}")]
    previous = f"h{{i}}"
graph = helper.make_graph(nodes, "many", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
                          [helper.make_tensor_value_info(previous, TensorProto.FLOAT, [1, 32])], inits)
onnx.save_model(helper.make_model(graph), work + "/many_nodes.onnx")
"""


def make_files() -> tuple[Path, Path, Path]:
    """Written by a child process: a forked child inherits its parent's peak RSS."""
    paths = WORK / "big.onnx", WORK / "ext" / "big_ext.onnx", WORK / "many_nodes.onnx"
    if not all(path.exists() for path in paths):
        WORK.mkdir(exist_ok=True)
        subprocess.run([python(), "-c", _MAKE.format(work=str(WORK))], check=True)
    return paths


def main() -> None:
    single, external, many = make_files()
    out = WORK / "out.onnx"
    weightkit = shutil.which("weightkit") or str(Path(sys.executable).with_name("weightkit"))
    for path in (single, external.with_name("big_ext.onnx.data"), many):
        print(f"file: {path} ({path.stat().st_size / 1e6:.0f} MB)")
    print("\n| command | median wall time | median peak RSS |\n|---|---|---|")
    onnx_load = "import onnx; onnx.load({!r})"
    read_all = "import weightkit; m = weightkit.load({!r}); [t.read() for t in m.tensors()]"
    onnx_read_all = ("import onnx; from onnx import numpy_helper; m = onnx.load({!r}); "
                     "[numpy_helper.to_array(t) for t in m.graph.initializer]")
    copy = "import weightkit; weightkit.save(weightkit.load({!r}), {!r}, force=True)"
    onnx_copy = "import onnx; onnx.save_model(onnx.load({!r}), {!r})"
    results = [
        measure("weightkit inspect big.onnx", [weightkit, "inspect", str(single)]),
        measure("weightkit inspect --json big.onnx", [weightkit, "inspect", "--json", str(single)]),
        measure("onnx.load(big.onnx)", [python(), "-c", onnx_load.format(str(single))]),
        measure("weightkit inspect big_ext.onnx (external data)", [weightkit, "inspect", str(external)]),
        measure("onnx.load(big_ext.onnx)", [python(), "-c", onnx_load.format(str(external))]),
        measure("onnx.load(big_ext.onnx, load_external_data=False)",
                [python(), "-c", f"import onnx; onnx.load({str(external)!r}, load_external_data=False)"]),
        measure("weightkit.load(big.onnx) + read every tensor", [python(), "-c", read_all.format(str(single))]),
        measure("onnx.load(big.onnx) + numpy_helper.to_array every initializer",
                [python(), "-c", onnx_read_all.format(str(single))]),
        measure("weightkit.load + weightkit.save (big.onnx → .onnx)",
                [python(), "-c", copy.format(str(single), str(out))]),
        measure("onnx.load + onnx.save_model (big.onnx → .onnx)",
                [python(), "-c", onnx_copy.format(str(single), str(out))]),
        measure("weightkit inspect --json many_nodes.onnx (25,000 nodes)", [weightkit, "inspect", "--json", str(many)]),
        measure("onnx.load(many_nodes.onnx)", [python(), "-c", onnx_load.format(str(many))]),
    ]
    for result in results:
        print(result.row())
    out.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
