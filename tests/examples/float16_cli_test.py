#!/usr/bin/env python3
"""quench float16 end to end: the command line, onnx.checker, and ONNX Runtime.

Usage: float16_cli_test.py QUENCH NODE COMPARE_FLOAT16_JS TORCH_MODELS_DIR WORK_DIR

- A model whose intermediate reaches 1e8 (Mul, square, Reshape, Transpose, Div, Div; inputs and
  outputs within [-1, 1]) gives Inf in ONNX Runtime after a plain conversion, and the float32
  result (within float16 precision) with --auto-block on a sample file.
- A torch-exported ResNet with --keep-io-types and --block-node: the summary names the blocked
  node, onnx.checker accepts the result, ONNX Runtime agrees with float32, and converting the
  converted model again gives the same bytes.
- --bf16 below opset 13, a bad --data argument and an unwritable output fail with a message and
  exit status 1, leaving no output file.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

quench, node, compare_js, models, work = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5])
work.mkdir(parents=True, exist_ok=True)
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def run(*args, expect=0):
    p = subprocess.run([quench, "float16", *map(str, args)], capture_output=True, text=True)
    print(f"$ quench float16 {' '.join(map(str, args))}\n{p.stdout}{p.stderr}", end="")
    check(p.returncode == expect, f"exit status {p.returncode} (expected {expect})")
    return p.stdout + p.stderr


def ort_compare(ref, conv):
    p = subprocess.run([node, compare_js, str(ref), str(conv), "--dims", "batch=2"], capture_output=True, text=True)
    line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else "{}"
    r = json.loads(line)
    print(f"  ORT {Path(conv).name}: cosine {r.get('cosine')}, max_rel {r.get('max_rel')}, non-finite {r.get('nonfinite')}"
          + (f", error {r['error']}" if "error" in r else ""))
    return r


# ---- overflow: Inf without --auto-block, right with it ----------------------------------------
k = numpy_helper.from_array(np.array(1e4, dtype=np.float32), "k")
shape = numpy_helper.from_array(np.array([1, 4, 16], dtype=np.int64), "shape")
nodes = [
    helper.make_node("Mul", ["x", "k"], ["big"], name="scale_up"),
    helper.make_node("Mul", ["big", "big"], ["square"], name="square"),
    helper.make_node("Reshape", ["square", "shape"], ["heads"], name="reshape"),
    helper.make_node("Transpose", ["heads"], ["heads_t"], name="transpose", perm=[0, 2, 1]),
    helper.make_node("Div", ["heads_t", "k"], ["d"], name="scale_down"),
    helper.make_node("Div", ["d", "k"], ["y"], name="scale_down2"),
]
graph = helper.make_graph(nodes, "overflow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 4])], [k, shape])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, work / "overflow.onnx")
np.save(work / "x.npy", np.random.default_rng(0).uniform(-1, 1, (1, 8, 8)).astype(np.float32))

out = run(work / "overflow.onnx", "-o", work / "overflow_fp16.onnx")
check("nodes blocked (kept float32): 0" in out, "plain conversion blocks nothing")
r = ort_compare(work / "overflow.onnx", work / "overflow_fp16.onnx")
check(r.get("nonfinite", 0) > 0, "plain float16 conversion gives Inf in ONNX Runtime")

out = run(work / "overflow.onnx", "-o", work / "overflow_auto.onnx", "--auto-block", "--data", f"x={work / 'x.npy'}")
check("square (Mul): auto-block: output 'square' overflows float16" in out, "--auto-block names the overflowing node")
check("non-finite 64 -> 0" in out, "--auto-block reports the simulated output without and with the blocks")
onnx.checker.check_model(onnx.load(work / "overflow_auto.onnx"), full_check=True)
r = ort_compare(work / "overflow.onnx", work / "overflow_auto.onnx")
check(r.get("ok") is True and r.get("nonfinite") == 0, "with --auto-block ONNX Runtime's output matches float32")

# ---- a torch network, with options; idempotent -------------------------------------------------
resnet = models / "resnet_op13.onnx"
out = run(resnet, "-o", work / "resnet_fp16.onnx", "--keep-io-types", "--block-node", "/fc/Gemm")
check("/fc/Gemm (Gemm): in the node block list" in out, "the summary lists the blocked node and why")
check("Casts inserted: 2" in out, "keep-io-types + a blocked last node: 2 Casts (input, and before the Gemm)")
check("(0.5" in out.split("size:")[1], "tensors and file shrink to about half")
converted = onnx.load(work / "resnet_fp16.onnx")
onnx.checker.check_model(converted, full_check=True)
check(converted.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT, "graph input stays float32")
meta = {p.key: p.value for p in converted.metadata_props}
check(meta.get("quench.half.float32_nodes") == "/fc/Gemm", "blocked nodes recorded in metadata")
check(meta.get("quench.float16", "").startswith("version="), "settings recorded in metadata")
r = ort_compare(resnet, work / "resnet_fp16.onnx")
check(r.get("ok") is True, "ONNX Runtime agrees with float32")
out = run(work / "resnet_fp16.onnx", "-o", work / "resnet_fp16_again.onnx", "--keep-io-types")
check((work / "resnet_fp16.onnx").read_bytes() == (work / "resnet_fp16_again.onnx").read_bytes(),
      "converting the converted model again gives the same bytes")

out = run(resnet, "-o", work / "resnet_bf16.onnx", "--bf16")
check("compute weights only" in out, "--bf16 defaults to weights only")
r = ort_compare(resnet, work / "resnet_bf16.onnx")
check(r.get("ok") is True, "ONNX Runtime runs the bfloat16 model")

# ---- refusals -------------------------------------------------------------------------------
out = run(models / "resnet_op11.onnx", "-o", work / "refused.onnx", "--bf16", expect=1)
check("needs opset 13" in out and not (work / "refused.onnx").exists(), "--bf16 below opset 13 is refused, no output")
out = run(resnet, "-o", work / "refused.onnx", "--auto-block", "--data", "x", expect=1)
check("expected NAME=FILE.npy" in out and not (work / "refused.onnx").exists(), "a bad --data argument is refused")
out = run(resnet, "-o", work / "no_such_dir" / "out.onnx", expect=1)
check("cannot create" in out and not (work / "no_such_dir").exists(), "an unwritable output is an error")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
