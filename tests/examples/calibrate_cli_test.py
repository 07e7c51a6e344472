#!/usr/bin/env python3
"""quench calibrate / quench merge end to end on a torch-exported MobileNetV3-style model.

  calibrate_cli_test.py QUENCH_BINARY MODEL.onnx WORK_DIR

For each method: one pass over 23 samples, then shards 0..6 of 7 (unequal sizes) merged; the
merged state's tensors and every table format must equal the single pass byte for byte. The
TensorRT cache must parse as TensorRT writes it (header, then `name: 8 hex digits` lines).
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np


def run(*args):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(map(str, args))}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def main():
    quench, model, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    work.mkdir(parents=True, exist_ok=True)
    data = work / "calib.npy"
    np.save(data, np.random.default_rng(0).standard_normal((23, 3, 32, 32)).astype(np.float32))
    for method in ["minmax", "entropy", "percentile", "mse"]:
        extra = ["--symmetric"] if method == "percentile" else []
        common = [quench, "calibrate", model, "--data", f"input={data}", "--method", method, "-b", "4", "-q", *extra]
        run(*common, "-o", work / f"{method}_all.json")
        shards = []
        for k in range(7):
            shards.append(work / f"{method}_s{k}.json")
            run(*common, "--shard", f"{k}/7", "-o", shards[-1])
        run(quench, "merge", *shards, "-o", work / f"{method}_merged.json")
        a = json.loads((work / f"{method}_all.json").read_text())
        b = json.loads((work / f"{method}_merged.json").read_text())
        if a["tensors"] != b["tensors"]:
            sys.exit(f"{method}: merged state differs from the single pass")
        for fmt in ["json", "tensorrt", "ncnn", "ort"]:
            ta, tb = work / f"{method}_table_all.{fmt}", work / f"{method}_table_merged.{fmt}"
            run(quench, "merge", work / f"{method}_all.json", "-o", work / "tmp.json", "--table", ta, "--format", fmt)
            run(quench, "merge", *shards, "-o", work / "tmp.json", "--table", tb, "--format", fmt)
            if ta.read_bytes() != tb.read_bytes():
                sys.exit(f"{method}: {fmt} table of the merged shards differs from the single pass")
        cache = (work / f"{method}_table_all.tensorrt").read_text().splitlines()
        if not re.fullmatch(r"TRT-\d+-EntropyCalibration2", cache[0]):
            sys.exit(f"bad TensorRT cache header {cache[0]!r}")
        for line in cache[1:]:
            if not re.fullmatch(r".+: [0-9a-f]{8}", line):
                sys.exit(f"bad TensorRT cache line {line!r}")
        print(f"{method}: {len(a['tensors'])} tensors, 7 shards merged == single pass, 4 table formats identical")
    # Errors name what is wrong and write nothing.
    r = subprocess.run([quench, "calibrate", model, "--data", "input=" + str(work / "missing.npy"), "-o", str(work / "x.json")],
                       capture_output=True, text=True)
    if r.returncode == 0 or "missing.npy" not in r.stderr or (work / "x.json").exists():
        sys.exit(f"a missing data file must fail naming it: {r.stderr}")
    r = subprocess.run([quench, "calibrate", model, "--data", f"input={data}", "--shard", "7/7", "-o", str(work / "x.json")],
                       capture_output=True, text=True)
    if r.returncode == 0 or "0 <= K < N" not in r.stderr:
        sys.exit(f"a bad shard must fail: {r.stderr}")
    print("calibrate CLI: OK")


if __name__ == "__main__":
    main()
