#!/usr/bin/env python3
"""quench quantize in every profile on the torch-exported networks, checked in ONNX Runtime.

  quantize_profiles_test.py QUENCH NODE RUN_NPY_JS MODELS_DIR WORK_DIR [--models a,b] [--profiles p,q]

For each network (ResNet, MobileNetV3, U-Net, transformer; opset 13, and the opset-9 exports,
which quench upgrades itself) and profile (ort, tensorrt, weight-only, fp8):
  * quench quantize with 32 seeded calibration samples, report on 8 held-out ones;
  * the model passes onnx.checker (opsets onnx 1.12 knows: <= 17) and has the metadata entry;
  * ONNX Runtime loads and runs it (graph optimizations all, as deployed; and disabled, which runs
    the QDQ graph as written) and its outputs match quench's executor on the same QDQ model:
    with optimizations disabled within 2% of the output range (a value on a rounding tie may
    land one step apart), and the output SQNR against float is reported for both;
  * ort profile: in the graph ONNX Runtime optimized, >= 90% of Conv/ConvTranspose/MatMul/Gemm
    run as integer kernels (QLinearConv, QLinearMatMul, MatMulInteger(ToFloat), QGemm, ...);
  * tensorrt / fp8 profile: the structural rules TensorRT's parser enforces (zero points all 0,
    int8 or float8, no uint8, no int32 bias DQ, explicit axis on per-channel DQ, scalar
    activation scales, opset >= 13).
Writes WORK_DIR/results.json and WORK_DIR/results.md (the README table).
"""
import argparse
import collections
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

MATRIX = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
INTEGER_KERNELS = {"QLinearConv", "QLinearMatMul", "MatMulInteger", "MatMulIntegerToFloat", "QGemm", "ConvInteger",
                   "DynamicQuantizeMatMul", "MatMulNBits", "QLinearConvTranspose", "NhwcQLinearConv"}
FLOAT_MATRIX = MATRIX | {"FusedConv", "FusedMatMul", "FusedGemm", "NchwcConv"}


def run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    return r


def sqnr(ref, x):
    noise = float(((ref.astype(np.float64) - x) ** 2).sum())
    sig = float((ref.astype(np.float64) ** 2).sum())
    return float("inf") if noise == 0 else 10 * np.log10(sig / noise)


def check_tensorrt_rules(m, profile):
    inits = {t.name: numpy_helper.to_array(t) if t.data_type not in (17, 18, 19, 20, 21, 22) else t for t in m.graph.initializer}
    problems = []
    opset = next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 13:
        problems.append(f"opset {opset} < 13")
    want = 17 if profile == "fp8" else 3  # float8e4m3fn / int8
    by_name = {t.name: t for t in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if len(n.input) != 3:
            problems.append(f"{n.name}: {len(n.input)} inputs")
            continue
        scale, zp = n.input[1], n.input[2]
        if zp not in by_name or scale not in by_name:
            problems.append(f"{n.name}: scale/zero point not initializers")
            continue
        zt = by_name[zp]
        if zt.data_type != want:
            problems.append(f"{n.name}: zero point type {zt.data_type}, expected {want}")
        elif want == 3 and np.any(inits[zp] != 0):
            problems.append(f"{n.name}: zero point not 0")
        elif want == 17 and any(b != 0 for b in (zt.raw_data or b"")):
            problems.append(f"{n.name}: float8 zero point not 0")
        s = inits[scale]
        if np.any(s <= 0) or not np.all(np.isfinite(s)):
            problems.append(f"{n.name}: scale not finite positive")
        axis = [a for a in n.attribute if a.name == "axis"]
        if s.ndim == 1 and s.size > 1 and not axis:
            problems.append(f"{n.name}: per-channel without explicit axis")
        if n.op_type == "QuantizeLinear" and s.ndim != 0:
            problems.append(f"{n.name}: activation scale not scalar")
        if n.op_type == "DequantizeLinear" and n.input[0] in by_name and by_name[n.input[0]].data_type == 6:
            problems.append(f"{n.name}: int32 (bias) DequantizeLinear")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("quench")
    ap.add_argument("node")
    ap.add_argument("run_npy")
    ap.add_argument("models", type=Path)
    ap.add_argument("work", type=Path)
    ap.add_argument("--models", dest="names", default="resnet_op13,mobilenet_op13,unet_op13,transformer_op13,resnet_op9,transformer_op9")
    ap.add_argument("--profiles", default="ort,tensorrt,weight-only,fp8")
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    results, failures = [], []
    for name in args.names.split(","):
        src = args.models / f"{name}.onnx"
        fm = onnx.load(str(src))
        dims = [d.dim_value or 1 for d in fm.graph.input[0].type.tensor_type.shape.dim]
        calib = work / f"{name}_calib.npy"
        evald = work / f"{name}_eval.npy"
        np.save(calib, rng.standard_normal([32] + dims[1:]).astype(np.float32))
        np.save(evald, rng.standard_normal([8] + dims[1:]).astype(np.float32))
        fout = work / f"{name}_float"
        r = run([args.node, args.run_npy, src, "--input", f"input={evald}", "--output-dir", fout])
        if r.returncode:
            sys.exit(f"{name}: ONNX Runtime cannot run the float model: {r.stderr}")
        ref = np.load(fout / "output.npy")
        for profile in args.profiles.split(","):
            tag = f"{name}/{profile}"
            dst = work / f"{name}_{profile}.onnx"
            rep = work / f"{name}_{profile}.json"
            r = run([args.quench, "quantize", src, "-o", dst, "--data", f"input={calib}", "--eval-data", f"input={evald}",
                     "--profile", profile, "--report", rep, "-q", "--show", "0"])
            if r.returncode:
                failures.append(f"{tag}: quench quantize failed: {r.stderr.strip()}")
                continue
            qm = onnx.load(str(dst))
            opset = next(o.version for o in qm.opset_import if o.domain in ("", "ai.onnx"))
            if opset <= 17:
                try:
                    onnx.checker.check_model(qm)
                except Exception as e:  # noqa: BLE001 - any checker complaint fails the case
                    failures.append(f"{tag}: onnx.checker: {e}")
            meta = {p.key: p.value for p in qm.metadata_props}
            if f"profile={profile}" not in meta.get("quench.quantize", ""):
                failures.append(f"{tag}: no quench.quantize metadata")
            # quench's executor on the QDQ model
            qout = work / f"{name}_{profile}_quench"
            r = run([args.quench, "run", dst, "--input", f"input={evald}", "--output-dir", qout])
            if r.returncode:
                failures.append(f"{tag}: quench run failed: {r.stderr.strip()}")
                continue
            mine = np.load(qout / "output.npy")
            row = {"model": name, "profile": profile, "opset": opset, "quench_sqnr_db": sqnr(ref, mine),
                   "bytes_float": src.stat().st_size, "bytes_quantized": dst.stat().st_size}
            # ONNX Runtime 1.30's CPU QDQ transformers fuse float8 Q/DQ into QLinearConv / MatMulIntegerToFloat,
            # which then fail to load (kernels take 8-bit integers only): float8 runs at the basic level,
            # which keeps the Q/DQ nodes (float8 is for TensorRT and CUDA; the CPU has no float8 kernels).
            for level in ("disabled", "basic" if profile == "fp8" else "all"):
                odir = work / f"{name}_{profile}_ort_{level}"
                opt = work / f"{name}_{profile}_ort_optimized.onnx"
                cmd = [args.node, args.run_npy, dst, "--input", f"input={evald}", "--output-dir", odir, "--level", level]
                if level == "all" and profile == "ort":
                    cmd += ["--optimized", opt]
                r = run(cmd)
                if r.returncode:
                    failures.append(f"{tag}: ONNX Runtime ({level}) failed: {r.stderr.strip()}")
                    continue
                theirs = np.load(odir / "output.npy")
                diff = float(np.abs(theirs - mine).max()) / max(float(np.abs(ref).max()), 1e-12)
                key = "disabled" if level == "disabled" else "all"
                row[f"ort_{key}_sqnr_db"] = sqnr(ref, theirs)
                row[f"ort_{key}_vs_quench_rel"] = diff
                if level == "disabled" and diff > 0.02:
                    failures.append(f"{tag}: ORT (no optimization) and quench differ by {diff:.4f} of the output range")
            if profile == "ort" and (work / f"{name}_{profile}_ort_optimized.onnx").exists():
                om = onnx.load(str(work / f"{name}_{profile}_ort_optimized.onnx"))
                ops = collections.Counter(n.op_type for n in om.graph.node)
                total = sum(1 for n in qm.graph.node if n.op_type in MATRIX)
                integer = sum(c for op, c in ops.items() if op in INTEGER_KERNELS)
                left = sum(c for op, c in ops.items() if op in FLOAT_MATRIX)
                row["matrix_nodes"] = total
                row["integer_kernels"] = integer
                row["float_matrix_left"] = left
                row["fused_fraction"] = 1 - left / total if total else 1.0
                row["ort_ops"] = dict(ops)
                if total and row["fused_fraction"] < 0.9:
                    failures.append(f"{tag}: only {total - left} of {total} matrix nodes fused into integer kernels: {dict(ops)}")
            if profile in ("tensorrt", "fp8"):
                problems = check_tensorrt_rules(qm, profile)
                row["tensorrt_rule_violations"] = len(problems)
                failures += [f"{tag}: {p}" for p in problems[:5]]
            results.append(row)
            print(f"{tag}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                                         if k not in ("ort_ops", "model", "profile")), flush=True)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    lines = ["| model | profile | opset | output SQNR dB (ORT, optimized) | (quench executor) | ORT vs quench (no opt.) | integer kernels |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        fused = f"{r['matrix_nodes'] - r['float_matrix_left']}/{r['matrix_nodes']}" if "matrix_nodes" in r else ""
        lines.append(f"| {r['model']} | {r['profile']} | {r['opset']} | {r.get('ort_all_sqnr_db', float('nan')):.1f} | "
                     f"{r['quench_sqnr_db']:.1f} | {r.get('ort_disabled_vs_quench_rel', float('nan')):.1e} | {fused} |")
    (work / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if failures:
        print("\n".join(failures))
        sys.exit(f"{len(failures)} failure(s)")
    print(f"quantize profiles: {len(results)} models OK")


if __name__ == "__main__":
    main()
