#!/usr/bin/env python3
"""The "Recovering accuracy" table of issue 11: quench quantize on models no one here wrote.

Usage:
  /usr/bin/python3 bench/recover/run_table.py QUENCH MODELS_DIR [--out results.md] [--node node]
                                              [--work DIR] [--check] [--only NAME,...] [--quick]

QUENCH is the quench CLI (build-*/bin/quench); MODELS_DIR holds what make_models.py wrote.
Models: the bundled digits CNN (examples/data/digits), the MobileNetV2-style digits network plain
and made hard by an exact rescaling, and the small transformer with LayerNorm outlier channels.
For each model and variant (a set of `quench quantize` flags) the script records the output SQNR
against FP32 and the top-1 (where labels exist) that quench prints, the time of the run (quench's
own "done in" figure, and the wall clock), and, with --node, the quantized model's top-1 and output
SQNR in ONNX Runtime (onnxruntime-node, tests/ort/run_npy.js) against the FP32 model in ONNX
Runtime, an independent check of quench's figures. Variants whose flag the CLI lacks (--recover,
--adaround) are listed as such. Writes a Markdown table to --out and prints it.

--check asserts issue 11's claims and exits 1 if one fails:
  * hard MobileNetV2, per-tensor INT8 without CLE: top-1 at least 10 points below FP32;
  * hard MobileNetV2, per-tensor INT8 with CLE + bias correction: within 1 point of FP32;
  * transformer W8A8 per-tensor: SmoothQuant (alpha 0.5) >= 10 dB above without;
  * --recover auto (when the CLI has it): output SQNR never below the plain run with the same
    weight granularity.
--quick runs only the variants --check needs.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))


def models(models_dir):
    d = os.path.join(REPO, "examples", "data", "digits")
    return [
        dict(name="digits_cnn", title="digits CNN (bundled)", onnx=os.path.join(d, "digits_cnn.onnx"),
             calib=os.path.join(d, "digits_calib.npy"), test=os.path.join(d, "digits_test.npy"),
             labels=os.path.join(d, "digits_test_labels.npy"), kind="cnn"),
        dict(name="mbv2_digits", title="MobileNetV2-digits", onnx=os.path.join(models_dir, "mbv2_digits.onnx"),
             calib=os.path.join(models_dir, "mbv2_calib.npy"), test=os.path.join(models_dir, "mbv2_test.npy"),
             labels=os.path.join(models_dir, "mbv2_test_labels.npy"), kind="cnn"),
        dict(name="mbv2_digits_hard", title="MobileNetV2-digits, rescaled (hard)",
             onnx=os.path.join(models_dir, "mbv2_digits_hard.onnx"), calib=os.path.join(models_dir, "mbv2_calib.npy"),
             test=os.path.join(models_dir, "mbv2_test.npy"), labels=os.path.join(models_dir, "mbv2_test_labels.npy"),
             kind="cnn"),
        dict(name="outlier_transformer", title="transformer, LayerNorm outliers",
             onnx=os.path.join(models_dir, "outlier_transformer.onnx"),
             calib=os.path.join(models_dir, "transformer_calib.npy"), test=os.path.join(models_dir, "transformer_test.npy"),
             labels=None, kind="transformer"),
    ]


# (key, label, flags, needs): `needs` are CLI options that must exist for the variant to run.
CNN_VARIANTS = [
    ("pt", "per-tensor W8A8", ["--per-tensor"], []),
    ("pt_cle", "per-tensor + CLE", ["--per-tensor", "--cle"], []),
    ("pt_cle_bc", "per-tensor + CLE + bias corr.", ["--per-tensor", "--cle", "--bias-correction"], []),
    ("pt_auto", "per-tensor --recover auto", ["--per-tensor", "--recover", "auto"], ["--recover"]),
    ("pc", "per-channel W8A8", [], []),
    ("pc_bc", "per-channel + bias corr.", ["--bias-correction"], []),
    ("pc_auto", "per-channel --recover auto", ["--recover", "auto"], ["--recover"]),
    ("w4", "W4A8 per-channel (nearest)", ["--weight-type", "int4"], []),
    ("w4_ada", "W4A8 per-channel + AdaRound", ["--weight-type", "int4", "--adaround"], ["--adaround"]),
    ("w4_auto", "W4A8 --recover auto --adaround", ["--weight-type", "int4", "--recover", "auto", "--adaround"],
     ["--recover", "--adaround"]),
]
TRANSFORMER_VARIANTS = [
    ("pt", "per-tensor W8A8", ["--per-tensor"], []),
    ("pt_sq", "per-tensor + SmoothQuant 0.5", ["--per-tensor", "--smooth-quant", "0.5"], []),
    ("pt_auto", "per-tensor --recover auto", ["--per-tensor", "--recover", "auto"], ["--recover"]),
    ("pc", "per-channel W8A8", [], []),
    ("pc_sq", "per-channel + SmoothQuant 0.5", ["--smooth-quant", "0.5"], []),
    ("pc_auto", "per-channel --recover auto", ["--recover", "auto"], ["--recover"]),
]
# What --check needs.
QUICK = {"cnn": {"pt", "pt_cle_bc", "pt_auto", "pc", "pc_auto"}, "transformer": {"pt", "pt_sq", "pt_auto", "pc", "pc_auto"}}
# --recover auto is compared with the plain run of the same weight granularity.
PLAIN_OF = {"pt_auto": "pt", "pc_auto": "pc", "w4_auto": "w4"}

FLOAT_RE = r"(-?[0-9.]+|inf|-inf|nan)"


def parse_output(text):
    """The figures quench quantize prints (examples/quench/quantize.cpp)."""
    r = {}
    m = re.search(r"error on (\d+) sample\(s\): output SQNR " + FLOAT_RE + " dB", text)
    if m:
        r["samples"] = int(m.group(1))
        r["sqnr"] = float(m.group(2))
    m = re.search(r"top-1 on (\d+) samples: float ([0-9.]+)%, quantized ([0-9.]+)%", text)
    if m:
        r["float_top1"] = float(m.group(2))
        r["top1"] = float(m.group(3))
    m = re.search(r"done in ([0-9.]+) s", text)
    if m:
        r["seconds"] = float(m.group(1))
    m = re.search(r"opset (\d+) -> (\d+)", text)
    if m:
        r["opset"] = int(m.group(2))
    # --recover auto's step table: "  name  SQNR  [top-1]  seconds  kept  detail".
    if "recovery steps" in text:
        steps = []
        body = text.split("recovery steps", 1)[1].splitlines()[2:]
        for line in body:
            if not line.startswith("  "):
                break
            cells = re.split(r"\s{2,}", line.strip())
            if cells[0] == "float" or len(cells) < 3:
                continue
            steps.append(line.strip())
        r["steps"] = steps
    m = re.search(r"result: .*", text)
    if m:
        r["result"] = m.group(0)
    return r


def cli_options(quench):
    out = subprocess.run([quench, "quantize", "--help"], capture_output=True, text=True)
    return set(re.findall(r"(--[a-z0-9-]+)", out.stdout + out.stderr))


def run_quench(quench, model, flags, out_path):
    cmd = [quench, "quantize", model["onnx"], "-o", out_path, "--data", f"input={model['calib']}",
           "--eval-data", f"input={model['test']}", "--quiet"]
    n_test = int(np.load(model["test"], mmap_mode="r").shape[0])
    cmd += ["--report-samples", str(n_test)]
    if model["labels"]:
        cmd += ["--labels", model["labels"]]
    cmd += flags
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    r = parse_output(p.stdout)
    r["wall"] = wall
    r["cmd"] = " ".join(os.path.relpath(c, REPO) if os.path.isabs(c) else c for c in cmd)
    r["rc"] = p.returncode
    if p.returncode != 0:
        err = (p.stderr.strip() or p.stdout.strip()).splitlines()
        r["error"] = err[-1] if err else f"exit {p.returncode}"
    elif "sqnr" not in r:
        r["error"] = "no SQNR in the output"
    return r


class Ort:
    """The first output of a model in ONNX Runtime on a .npy input, through tests/ort/run_npy.js."""

    def __init__(self, node):
        self.node = node
        self.script = os.path.join(REPO, "tests", "ort", "run_npy.js")

    def __call__(self, model_path, x_path):
        with tempfile.TemporaryDirectory() as tmp:
            p = subprocess.run([self.node, self.script, model_path, "--input", f"input={x_path}", "--output-dir", tmp],
                               capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "run_npy failed")
            outs = sorted(os.listdir(tmp))
            return np.load(os.path.join(tmp, outs[0])).astype(np.float64)


def sqnr_db(ref, got):
    noise = float(((ref - got) ** 2).sum())
    signal = float((ref ** 2).sum())
    return float("inf") if noise == 0 else 10 * np.log10(signal / noise)


def fmt(v, spec="{:.2f}"):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    return spec.format(v)


def table(results, models_by_name, fp32):
    lines = []
    lines.append("| model | variant | output SQNR dB | top-1 % (FP32) | ORT SQNR dB | ORT top-1 % | seconds |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    for name, rows in results.items():
        title = models_by_name[name]["title"]
        for key, label, r in rows:
            if "skipped" in r:
                lines.append(f"| {title} | {label} | {r['skipped']} | | | | |")
                continue
            if "error" in r:
                lines.append(f"| {title} | {label} | error: {r['error'][:90]} | | | | |")
                continue
            top1 = fmt(r.get("top1"))
            if r.get("top1") is not None:
                top1 += f" ({fmt(r.get('float_top1'))})"
            lines.append(f"| {title} | {label} | {fmt(r.get('sqnr'))} | {top1 if r.get('top1') is not None else '–'} | "
                         f"{fmt(r.get('ort_sqnr'))} | {fmt(r.get('ort_top1'))} | {fmt(r.get('seconds'), '{:.1f}')} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("quench")
    ap.add_argument("models_dir")
    ap.add_argument("--out", default=os.path.join(HERE, "results.md"))
    ap.add_argument("--json", default="", help="also write every run's figures and steps as JSON")
    ap.add_argument("--node", default="", help="node, to run the quantized models in ONNX Runtime")
    ap.add_argument("--work", default="", help="where the quantized models go (default: a temporary folder)")
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--quick", action="store_true", help="only the variants --check needs")
    args = ap.parse_args()

    opts = cli_options(args.quench)
    if "--per-tensor" not in opts:
        sys.exit(f"run_table: {args.quench} quantize --help lists no --per-tensor: not the quench CLI?")
    work = args.work or tempfile.mkdtemp(prefix="quench_recover_")
    os.makedirs(work, exist_ok=True)
    ort = Ort(args.node) if args.node else None
    ms = models(args.models_dir)
    if args.only:
        keep = set(args.only.split(","))
        ms = [m for m in ms if m["name"] in keep]
    by_name = {m["name"]: m for m in ms}
    results, fp32 = {}, {}
    t_all = time.time()
    for m in ms:
        variants = CNN_VARIANTS if m["kind"] == "cnn" else TRANSFORMER_VARIANTS
        ref = labels = None
        if ort:
            ref = ort(m["onnx"], m["test"])
            labels = np.load(m["labels"]) if m["labels"] else None
            fp32[m["name"]] = float((ref.argmax(-1) == labels).mean() * 100) if labels is not None else None
        rows = []
        for key, label, flags, needs in variants:
            if args.quick and key not in QUICK[m["kind"]]:
                continue
            missing = [n for n in needs if n not in opts]
            if missing:
                rows.append((key, label, {"skipped": "n/a: the CLI has no " + " ".join(missing)}))
                continue
            out_path = os.path.join(work, f"{m['name']}_{key}.onnx")
            r = run_quench(args.quench, m, flags, out_path)
            if ort and "error" not in r:
                try:
                    got = ort(out_path, m["test"])
                    r["ort_sqnr"] = sqnr_db(ref, got)
                    if labels is not None:
                        r["ort_top1"] = float((got.argmax(-1) == labels).mean() * 100)
                except RuntimeError as e:
                    r["ort_error"] = str(e)
            rows.append((key, label, r))
            status = r.get("error") or f"SQNR {fmt(r.get('sqnr'))} dB, top-1 {fmt(r.get('top1'))}"
            print(f"[{time.time() - t_all:6.1f} s] {m['name']:20s} {label:32s} {status}", flush=True)
            for s in r.get("steps", []):
                print(f"      {s}")
        results[m["name"]] = rows

    md = table(results, by_name, fp32)
    with open(args.out, "w") as f:
        f.write("<!-- bench/recover/run_table.py; edit the script, not this file -->\n")
        f.write(md + "\n")
        for name, rows in results.items():
            for key, label, r in rows:
                if r.get("steps"):
                    f.write(f"\n{by_name[name]['title']}, {label} (`{r['cmd']}`):\n\n```\n" + "\n".join(r["steps"]) +
                            ("\n" + r["result"] if r.get("result") else "") + "\n```\n")
    print(md)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({n: {k: r for k, _, r in rows} for n, rows in results.items()}, f, indent=1)
    print(f"run_table: {sum(len(r) for r in results.values())} runs in {time.time() - t_all:.1f} s; wrote {args.out}")

    if args.check:
        sys.exit(0 if check(results) else 1)


def check(results):
    ok = True

    def get(model, key):
        for k, _, r in results.get(model, []):
            if k == key:
                return r
        return None

    def claim(cond, text):
        nonlocal ok
        print(("PASS " if cond else "FAIL ") + text)
        ok = ok and cond

    h_pt, h_fix = get("mbv2_digits_hard", "pt"), get("mbv2_digits_hard", "pt_cle_bc")
    if h_pt and "top1" in h_pt:
        claim(h_pt["top1"] <= h_pt["float_top1"] - 10,
              f"hard MobileNetV2 per-tensor INT8 without CLE loses accuracy badly: {h_pt['top1']:.2f}% vs FP32 "
              f"{h_pt['float_top1']:.2f}% (needs >= 10 points lost)")
    else:
        claim(False, "hard MobileNetV2 per-tensor run: " + str(h_pt and h_pt.get("error")))
    if h_fix and "top1" in h_fix:
        claim(h_fix["top1"] >= h_fix["float_top1"] - 1,
              f"hard MobileNetV2 per-tensor INT8 with CLE + bias correction within 1 point of FP32: {h_fix['top1']:.2f}% "
              f"vs {h_fix['float_top1']:.2f}%")
    else:
        claim(False, "hard MobileNetV2 per-tensor + CLE + bias correction run: " + str(h_fix and h_fix.get("error")))
    t_pt, t_sq = get("outlier_transformer", "pt"), get("outlier_transformer", "pt_sq")
    if t_pt and t_sq and "sqnr" in t_pt and "sqnr" in t_sq:
        claim(t_sq["sqnr"] >= t_pt["sqnr"] + 10,
              f"transformer W8A8 per-tensor: SmoothQuant {t_sq['sqnr']:.2f} dB vs {t_pt['sqnr']:.2f} dB without (needs +10 dB)")
    else:
        claim(False, "transformer per-tensor runs: " + str([t and t.get("error") for t in (t_pt, t_sq)]))
    skipped = [f"{model} {label}" for model, rows in results.items() for key, label, r in rows
               if key in PLAIN_OF and "skipped" in r]
    if skipped:
        print(f"SKIP --recover auto never worse than plain: {len(skipped)} runs not possible with this CLI ({skipped[0]}: "
              f"{[r for rows in results.values() for k, _, r in rows if 'skipped' in r][0]['skipped']})")
    for model, rows in results.items():
        for key, label, r in rows:
            if key in PLAIN_OF and "sqnr" in r:
                plain = get(model, PLAIN_OF[key])
                if plain and "sqnr" in plain:
                    claim(r["sqnr"] >= plain["sqnr"] - 1e-9,
                          f"{model} {label}: {r['sqnr']:.2f} dB, not below plain {plain['sqnr']:.2f} dB")
            elif key in PLAIN_OF and "error" in r:
                claim(False, f"{model} {label}: {r['error']}")
    return ok


if __name__ == "__main__":
    main()
