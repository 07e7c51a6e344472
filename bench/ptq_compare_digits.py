#!/usr/bin/env python3
"""quench's INT8 QDQ against PyTorch's own post-training quantization on the bundled digits CNN.

  /usr/bin/python3 bench/ptq_compare_digits.py [--quench build/bin/quench] [--node node] [--work DIR]

Both calibrate on examples/data/digits/digits_calib.npy (256 images) and are scored on the 500
held-out images of digits_test.npy: PyTorch with torch.ao.quantization FX (bench/torch_ptq_digits.py,
per-channel and per-tensor weights), quench with `quench quantize` (ort profile, several
calibration methods) run in ONNX Runtime (tests/ort/run_npy.js, all graph optimizations, so the
integer kernels run). Prints a markdown table: top-1, agreement with FP32 and logit SQNR.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "data" / "digits"


def sqnr(ref, x):
    return 10 * np.log10((ref.astype(np.float64) ** 2).sum() / ((ref.astype(np.float64) - x) ** 2).sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quench", default=str(ROOT / "build" / "bin" / "quench"))
    ap.add_argument("--node", default="node")
    ap.add_argument("--work", default=str(ROOT / "build" / "ptq_compare"))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    run_npy = ROOT / "tests" / "ort" / "run_npy.js"
    labels = np.load(DIGITS / "digits_test_labels.npy")

    def ort_logits(model, tag):
        out = work / tag
        r = subprocess.run([args.node, str(run_npy), str(model), "--input", f"input={DIGITS / 'digits_test.npy'}", "--output-dir", str(out)],
                           capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"ONNX Runtime failed on {model}: {r.stderr}")
        return np.load(out / "logits.npy")

    fp32 = ort_logits(DIGITS / "digits_cnn.onnx", "fp32")
    rows = [("FP32 (ONNX Runtime)", float((fp32.argmax(1) == labels).mean()), 1.0, float("inf"))]
    for extra, label in [([], "PyTorch FX PTQ, per-channel weights"), (["--per-tensor"], "PyTorch FX PTQ, per-tensor weights")]:
        r = subprocess.run([sys.executable, str(ROOT / "bench" / "torch_ptq_digits.py")] + extra, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"torch_ptq_digits.py failed: {r.stderr}")
        j = json.loads(r.stdout.strip().splitlines()[-1])
        rows.append((f"{label} ({j['backend']})", j["torch_int8_top1"], j["agreement_with_fp32"], j["logits_sqnr_db"]))
    for method, per_tensor in [("minmax", False), ("percentile", False), ("entropy", False), ("mse", False), ("minmax", True)]:
        dst = work / f"quench_{method}{'_pt' if per_tensor else ''}.onnx"
        cmd = [args.quench, "quantize", str(DIGITS / "digits_cnn.onnx"), "-o", str(dst), "--data", f"input={DIGITS / 'digits_calib.npy'}",
               "--method", method, "-q", "--show", "0"] + (["--per-tensor"] if per_tensor else [])
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"quench quantize failed: {r.stderr}")
        q = ort_logits(dst, dst.stem)
        rows.append((f"quench ort profile, {method}, {'per-tensor' if per_tensor else 'per-channel'} weights", float((q.argmax(1) == labels).mean()),
                     float((q.argmax(1) == fp32.argmax(1)).mean()), float(sqnr(fp32, q))))
    print("| model | top-1 (500 test images) | agreement with FP32 | logit SQNR dB |")
    print("|---|---|---|---|")
    for name, top1, agree, db in rows:
        print(f"| {name} | {100 * top1:.1f}% | {100 * agree:.1f}% | {'—' if db == float('inf') else f'{db:.1f}'} |")


if __name__ == "__main__":
    main()
