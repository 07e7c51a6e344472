#!/usr/bin/env python3
"""quench quantize --profile weight-only end to end.

  quantize_cli_test.py QUENCH_BINARY NODE COMPARE_MODELS_JS MODELS_DIR WORK_DIR

Quantizes the torch-exported MobileNet and transformer (opset 13), checks the result with
onnx.checker, its metadata, that int8 weights take < 35% of the float bytes, and runs it in ONNX Runtime against the float model (2%).
An opset-9 model and an unknown profile must fail with a clear message and write nothing.
"""
import re
import subprocess
import sys
from pathlib import Path

import onnx


def main():
    quench, node, compare, models, work = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5])
    work.mkdir(parents=True, exist_ok=True)
    for name in ["mobilenet_op13", "transformer_op13"]:
        src, dst = models / f"{name}.onnx", work / f"{name}_w8.onnx"
        r = subprocess.run([quench, "quantize", str(src), "-o", str(dst)], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"quantize {name} failed: {r.stderr}")
        print(r.stdout.strip())
        m = onnx.load(str(dst))
        onnx.checker.check_model(m)
        meta = {p.key: p.value for p in m.metadata_props}
        if "profile=weight-only" not in meta.get("quench.quantize", ""):
            sys.exit(f"{name}: missing quench.quantize metadata: {meta}")
        before, after = map(int, re.search(r"\((\d+) -> (\d+) bytes of weights\)", r.stdout).groups())
        if after > 0.35 * before or dst.stat().st_size >= src.stat().st_size:
            sys.exit(f"{name}: weights {before} -> {after} bytes, file {src.stat().st_size} -> {dst.stat().st_size}: not smaller")
        r = subprocess.run([node, compare, str(src), str(dst), "--tol", "0.02", "--dims", "batch=2"], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"{name}: ONNX Runtime outputs differ: {r.stdout}{r.stderr}")
    bad = work / "bad.onnx"
    r = subprocess.run([quench, "quantize", str(models / "resnet_op9.onnx"), "-o", str(bad)], capture_output=True, text=True)
    if r.returncode == 0 or "opset 10" not in r.stderr or bad.exists():
        sys.exit(f"an opset-9 model must be refused naming the opset: {r.stderr}")
    r = subprocess.run([quench, "quantize", str(models / "resnet_op13.onnx"), "-o", str(bad), "--profile", "int3"],
                       capture_output=True, text=True)
    if r.returncode == 0 or bad.exists():
        sys.exit("an unknown profile must be refused")
    print("quantize CLI: OK")


if __name__ == "__main__":
    main()
