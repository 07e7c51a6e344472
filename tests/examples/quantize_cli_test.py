#!/usr/bin/env python3
"""quench quantize end to end: the bundled digits model, the weight-only profile, and bad input.

  quantize_cli_test.py QUENCH_BINARY NODE COMPARE_MODELS_JS MODELS_DIR WORK_DIR

* digits (examples/data/digits): ort profile with entropy and percentile calibration; INT8 top-1
  in ONNX Runtime within 0.5 points of FP32 (and quench's own top-1 printout agrees with ORT's);
  the report JSON lists every quantized tensor with its method, range and SQNR, worst first;
  two runs write byte-identical files; a TensorRT cache from `quench calibrate` gives the same
  model as calibrating in place with the same method; --target-sqnr falls back layers and says so.
* weight-only on the torch MobileNet and transformer (opset 13): onnx.checker, metadata, int8
  weights < 35% of the float bytes, ONNX Runtime within 2% of float.
* refusals, each writing nothing: no --data for a calibrated profile, a wrong input name, data
  whose shape does not fit, NaN in the data, an unknown profile.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "data" / "digits"


def run(cmd):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True)


def must(r, what):
    if r.returncode != 0:
        sys.exit(f"{what} failed ({r.returncode}): {r.stdout}{r.stderr}")
    return r


def ort_top1(node, run_npy, model, work, tag, level="all"):
    out = work / f"ort_{tag}_{level}"
    must(run([node, run_npy, model, "--input", f"input={DIGITS / 'digits_test.npy'}", "--output-dir", out, "--level", level]),
         f"ORT on {model}")
    logits = np.load(out / "logits.npy")
    return float((logits.argmax(1) == np.load(DIGITS / "digits_test_labels.npy")).mean())


def refuse(quench, args, out, needle, what):
    r = run([quench, "quantize"] + args + ["-o", out])
    if r.returncode == 0 or needle not in r.stderr or Path(out).exists():
        sys.exit(f"{what}: expected a refusal mentioning '{needle}' and no output, got {r.returncode}: {r.stdout}{r.stderr}")


def bad_out(work):
    return work / "refused.onnx"


def main():
    quench, node, compare, models, work = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5])
    run_npy = Path(compare).with_name("run_npy.js")
    work.mkdir(parents=True, exist_ok=True)
    src = DIGITS / "digits_cnn.onnx"
    common = ["--data", f"input={DIGITS / 'digits_calib.npy'}", "--eval-data", f"input={DIGITS / 'digits_test.npy'}",
              "--labels", DIGITS / "digits_test_labels.npy", "-q"]
    fp32 = ort_top1(node, run_npy, src, work, "fp32")
    for method in ["entropy", "percentile"]:
        dst, rep = work / f"digits_{method}.onnx", work / f"digits_{method}.json"
        r = must(run([quench, "quantize", src, "-o", dst, "--method", method, "--report", rep] + common), f"digits {method}")
        print(r.stdout.strip())
        onnx.checker.check_model(onnx.load(str(dst)))
        int8 = ort_top1(node, run_npy, dst, work, method)
        printed = re.search(r"float ([\d.]+)%, quantized ([\d.]+)%", r.stdout)
        if not printed or abs(float(printed.group(1)) / 100 - fp32) > 1e-9 or abs(float(printed.group(2)) / 100 - int8) > 0.0021:
            sys.exit(f"digits {method}: quench's top-1 line {printed and printed.group(0)} disagrees with ORT ({fp32}, {int8})")
        if int8 < fp32 - 0.005:
            sys.exit(f"digits {method}: INT8 top-1 {int8} more than 0.5 points below FP32 {fp32}")
        j = json.loads(rep.read_text())
        sq = [t["sqnr_db"] for t in j["worst_first"]]
        if not j["tensors"] or sq != sorted(sq) or any("method" not in t or "scale" not in t for t in j["tensors"]):
            sys.exit(f"digits {method}: report is incomplete or not sorted worst first")
        if not all(t["method"] in (method, "shared") for t in j["tensors"] if t["name"] != "input" or True):
            sys.exit(f"digits {method}: unexpected methods {[t['method'] for t in j['tensors']]}")
        print(f"digits {method}: FP32 {fp32:.4f}, INT8 {int8:.4f} (ONNX Runtime)")
    # Deterministic: the same inputs give the same bytes.
    again = work / "digits_entropy_again.onnx"
    must(run([quench, "quantize", src, "-o", again, "--method", "entropy"] + common), "digits again")
    if again.read_bytes() != (work / "digits_entropy.onnx").read_bytes():
        sys.exit("two runs with the same inputs wrote different files")
    # A TensorRT cache gives what calibrating in place gives (symmetric amax, absorbed Relu ranges clamped to >= 0).
    cache = work / "digits.cache"
    must(run([quench, "calibrate", src, "--data", f"input={DIGITS / 'digits_calib.npy'}", "-o", work / "st.json", "--table", cache,
              "--format", "tensorrt", "-q"]), "calibrate")
    r = must(run([quench, "quantize", src, "-o", work / "digits_cache.onnx", "--stats", cache] + common), "quantize --stats")
    # Checked with ONNX's QDQ semantics (basic optimizations): the cache's symmetric input range
    # puts the input's zero point at 128, so background pixels are 128, not 0, and on an x86 CPU
    # without VNNI ORT's fused u8 x s8 kernels saturate their int16 pair sums with full-range
    # weights (97.8% top-1 fused there). --reduce-range (7-bit weights) is the remedy, and must
    # give the same top-1 fused as unfused on any CPU.
    if ort_top1(node, run_npy, work / "digits_cache.onnx", work, "cache", "basic") < fp32 - 0.005:
        sys.exit(f"quantize from a TensorRT cache lost accuracy: {r.stdout}")
    rr = work / "digits_cache_rr.onnx"
    must(run([quench, "quantize", src, "-o", rr, "--stats", cache, "--reduce-range"] + common), "quantize --reduce-range")
    w = [numpy_helper.to_array(i) for i in onnx.load(str(rr)).graph.initializer if i.data_type == onnx.TensorProto.INT8]
    if not w or max(int(np.abs(a.astype(np.int32)).max()) for a in w) != 64:
        sys.exit("--reduce-range: int8 weights are not on [-64, 64]")
    fused, unfused = (ort_top1(node, run_npy, rr, work, "cache_rr", lvl) for lvl in ("all", "basic"))
    if fused != unfused or fused < fp32 - 0.005:
        sys.exit(f"--reduce-range: ORT top-1 fused {fused}, unfused {unfused}, FP32 {fp32}")
    print(f"TensorRT cache: top-1 {fused:.4f} with --reduce-range, fused and unfused alike")
    # Fallback: an unreachable target keeps layers in float, says which, and never gets worse.
    r = must(run([quench, "quantize", src, "-o", work / "digits_fb.onnx", "--method", "entropy", "--target-sqnr", "200",
                  "--max-fallback", "2", "--report", work / "fb.json"] + common), "fallback")
    j = json.loads((work / "fb.json").read_text())
    kept = j["fallback"]["kept_in_float"]
    if len(kept) != 2 or "kept in float" not in r.stdout or j["fallback"]["target_met"] or len(j["fallback"]["sensitivity"]) < 6:
        sys.exit(f"fallback: expected 2 layers in float with a sensitivity list: {r.stdout}")
    if kept[-1]["output_sqnr_db_after"] < j["fallback"]["initial_output_sqnr_db"]:
        sys.exit("fallback made the output worse")
    print(r.stdout.strip())

    # Mixed precision: 16-bit inputs only (no float budget); opset 21 QDQ that ONNX Runtime runs.
    r = must(run([quench, "quantize", src, "-o", work / "digits_i16.onnx", "--per-tensor", "--int16", "--max-float", "0",
                  "--target-sqnr", "200", "--max-fallback", "2", "--report", work / "i16.json"] + common), "int16 fallback")
    j = json.loads((work / "i16.json").read_text())
    kept = j["fallback"]["kept_in_float"]
    if not kept or any(k["precision"] != "int16" for k in kept) or not j["fallback"]["int16_tensors"]:
        sys.exit(f"--int16 --max-float 0: expected only int16 choices: {r.stdout}")
    m16 = onnx.load(str(work / "digits_i16.onnx"))
    opset = max(o.version for o in m16.opset_import if o.domain in ("", "ai.onnx"))
    zp16 = [i.name for i in m16.graph.initializer if i.data_type == onnx.TensorProto.UINT16]
    if opset != 21 or not zp16:
        sys.exit(f"--int16: expected opset 21 with uint16 zero points, found opset {opset}, {len(zp16)} uint16 initializers")
    if ort_top1(node, run_npy, work / "digits_i16.onnx", work, "i16") < fp32 - 0.01:
        sys.exit("--int16 model lost accuracy in ONNX Runtime")
    print(r.stdout.strip())
    # --recover auto: a step table, never worse than plain; the model runs in ONNX Runtime.
    r = must(run([quench, "quantize", src, "-o", work / "digits_auto.onnx", "--per-tensor", "--recover", "auto",
                  "--report", work / "auto.json"] + common), "recover auto")
    j = json.loads((work / "auto.json").read_text())
    steps = [s["step"] for s in j["recover"]["steps"]]
    if steps[0] != "plain" or "bias correction" not in steps or "recovery steps" not in r.stdout:
        sys.exit(f"--recover auto: unexpected steps {steps}: {r.stdout}")
    final = float(re.search(r"output SQNR ([-\d.]+) dB", r.stdout).group(1))
    if final < j["recover"]["plain_output_sqnr_db"] - 1e-9:
        sys.exit(f"--recover auto made the output worse: {r.stdout}")
    if ort_top1(node, run_npy, work / "digits_auto.onnx", work, "auto") < fp32 - 0.01:
        sys.exit("--recover auto model lost accuracy in ONNX Runtime")
    print(r.stdout.strip())
    # --select output: per-tensor choices by the output, reported with every candidate's SQNR.
    r = must(run([quench, "quantize", src, "-o", work / "digits_sel.onnx", "--select", "output", "--report", work / "sel.json"] + common),
             "select output")
    j = json.loads((work / "sel.json").read_text())
    sel = j["select_output"]
    if not sel["choices"] or sel["after_db"] < sel["before_db"] or any(len(c["output_sqnr_db"]) < 2 for c in sel["choices"]):
        sys.exit(f"--select output: incomplete report: {sel}")
    print(r.stdout.strip().splitlines()[0])
    refuse(quench, [src, "--select", "output", "--method", "entropy", "--data", f"input={DIGITS / 'digits_calib.npy'}"], bad_out(work),
           "--select output", "--select output with a fixed method")

    # Weight-only on the torch networks.
    for name in ["mobilenet_op13", "transformer_op13"]:
        msrc, dst = models / f"{name}.onnx", work / f"{name}_w8.onnx"
        r = must(run([quench, "quantize", msrc, "-o", dst, "--profile", "weight-only", "-q"]), f"weight-only {name}")
        m = onnx.load(str(dst))
        onnx.checker.check_model(m)
        meta = {p.key: p.value for p in m.metadata_props}
        if "profile=weight-only" not in meta.get("quench.quantize", ""):
            sys.exit(f"{name}: missing quench.quantize metadata: {meta}")
        before, after = map(int, re.search(r"weights (\d+) -> (\d+) bytes", r.stdout).groups())
        if after > 0.35 * before or dst.stat().st_size >= msrc.stat().st_size:
            sys.exit(f"{name}: weights {before} -> {after} bytes, file {msrc.stat().st_size} -> {dst.stat().st_size}: not smaller")
        r = run([node, compare, msrc, dst, "--tol", "0.02", "--dims", "batch=2"])
        if r.returncode != 0:
            sys.exit(f"{name}: ONNX Runtime outputs differ: {r.stdout}{r.stderr}")

    # Refusals.
    bad = work / "bad.onnx"
    refuse(quench, [src], bad, "--data", "a calibrated profile without data")
    wrong = work / "wrong_shape.npy"
    np.save(wrong, np.zeros((4, 1, 9, 9), np.float32))
    refuse(quench, [src, "--data", f"input={wrong}"], bad, "input", "data of the wrong shape")
    refuse(quench, [src, "--data", f"image={DIGITS / 'digits_calib.npy'}"], bad, "image", "a wrong input name")
    nan = work / "nan.npy"
    x = np.load(DIGITS / "digits_calib.npy")[:8].copy()
    x[:] = np.nan
    np.save(nan, x)
    refuse(quench, [src, "--data", f"input={nan}"], bad, "finite", "all-NaN data")
    refuse(quench, [src, "--profile", "int3"], bad, "int3", "an unknown profile")
    print("quantize CLI: OK")


if __name__ == "__main__":
    main()
