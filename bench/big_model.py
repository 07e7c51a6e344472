#!/usr/bin/python3
"""quench on a model past protobuf's 2 GiB limit (issue 12, section 4).

    /usr/bin/python3 bench/big_model.py --out /tmp/big [--quench build-x/bin/quench] [--blocks 12]

1. Generates a transformer-style float32 model (pre-LayerNorm blocks: single-head attention with
   MatMul/Transpose/Softmax, an Erf GELU MLP, residual Adds; a final LayerNorm and a vocabulary
   head) with about 2.5 GB of weights in one external data file. The weights are written one
   tensor at a time and the ModelProto only points at them (onnx.external_data_helper), so the
   script never holds more than one tensor: onnx.save(..., save_as_external_data=True) would need
   every tensor in memory as raw_data first.
2. Runs `quench inspect`, `quench quantize --profile weight-only` (int8) and `quench float16` on it
   under /usr/bin/time -v and prints, per command: wall seconds, peak RSS, peak RSS / weight bytes,
   the size of the .onnx file (the protobuf message, which must stay far below 2 GiB) and of its
   external data.
3. Checks the outputs: onnx.load(load_external_data=False) and onnx.checker.check_model on the path;
   every external reference inside its file; a few weights against numpy (int8: round-half-even of
   w / scale with per-channel symmetric scales max|w| / 127; float16: numpy's astype, bit for bit, with
   values that round to zero at the smallest subnormal, as --underflow subnormal asks);
   and, when the machine has the memory, ONNX Runtime on a small input (float vs int8 vs float16
   output SQNR).

Not part of CI (about a minute of generation and 10 GB of files); --keep leaves the files.
"""
import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALIGN = 4096


def find_quench(explicit):
    if explicit:
        return explicit
    for d in sorted(os.listdir(ROOT)):
        p = os.path.join(ROOT, d, "bin", "quench")
        if d.startswith("build") and os.access(p, os.X_OK):
            return p
    sys.exit("big_model: no quench binary found under build*/bin; pass --quench PATH")


class Writer:
    """Appends tensors to one external data file, page-aligned, and returns TensorProtos that
    reference them (no raw_data in memory)."""

    def __init__(self, path, location):
        self.f = open(path, "wb")
        self.location = location
        self.offset = 0
        self.bytes = 0

    def add(self, name, array):
        pad = (-self.offset) % ALIGN
        if pad:
            self.f.write(b"\0" * pad)
            self.offset += pad
        array = np.ascontiguousarray(array, dtype=np.float32)
        tp = TensorProto()
        tp.name = name
        tp.data_type = TensorProto.FLOAT
        tp.dims.extend(array.shape)
        # What onnx.external_data_helper.set_external_data writes (it insists on raw_data first).
        for k, v in (("location", self.location), ("offset", str(self.offset)), ("length", str(array.nbytes))):
            e = tp.external_data.add()
            e.key, e.value = k, v
        tp.data_location = TensorProto.EXTERNAL
        self.f.write(memoryview(array).cast("B"))
        self.offset += array.nbytes
        self.bytes += array.nbytes
        return tp

    def close(self):
        self.f.close()


def generate(path, d, ffn, vocab, blocks, seed):
    """Writes the model and its data file; returns the weight bytes."""
    rng = np.random.default_rng(seed)
    location = os.path.basename(path) + ".data"
    w = Writer(os.path.join(os.path.dirname(path), location), location)
    inits, nodes = [], []

    def weight(name, shape, std):
        a = rng.standard_normal(shape, dtype=np.float32)
        a *= np.float32(std)
        inits.append(w.add(name, a))
        return name

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def node(op, ins, out, **attrs):
        nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    scale_qk = const("attn.scale", 1.0 / np.sqrt(d))
    half = const("gelu.half", 0.5)
    one = const("gelu.one", 1.0)
    inv_sqrt2 = const("gelu.inv_sqrt2", 1.0 / np.sqrt(2.0))
    x = "input"
    for i in range(blocks):
        p = f"block{i}"

        def ln(x, name):
            g = weight(name + ".gamma", (d,), 0.05)
            b = weight(name + ".beta", (d,), 0.05)
            g1 = node("Add", [g, one], name + ".gamma1")  # gamma = 1 + small noise
            return node("LayerNormalization", [x, g1, b], name + ".out", axis=-1, epsilon=1e-5)

        h = ln(x, p + ".ln1")
        q = node("MatMul", [h, weight(p + ".attn.wq", (d, d), d ** -0.5)], p + ".q")
        k = node("MatMul", [h, weight(p + ".attn.wk", (d, d), d ** -0.5)], p + ".k")
        v = node("MatMul", [h, weight(p + ".attn.wv", (d, d), d ** -0.5)], p + ".v")
        kt = node("Transpose", [k], p + ".kt", perm=[0, 2, 1])
        s = node("Mul", [node("MatMul", [q, kt], p + ".qk"), scale_qk], p + ".scores")
        a = node("MatMul", [node("Softmax", [s], p + ".probs", axis=-1), v], p + ".attn")
        o = node("Add", [node("MatMul", [a, weight(p + ".attn.wo", (d, d), d ** -0.5)], p + ".o"),
                         weight(p + ".attn.bo", (d,), 0.02)], p + ".o_b")
        x = node("Add", [x, o], p + ".res1")
        h = ln(x, p + ".ln2")
        u = node("Add", [node("MatMul", [h, weight(p + ".mlp.w1", (d, ffn), d ** -0.5)], p + ".up"),
                         weight(p + ".mlp.b1", (ffn,), 0.02)], p + ".up_b")
        erf = node("Erf", [node("Mul", [u, inv_sqrt2], p + ".gelu.scaled")], p + ".gelu.erf")
        gelu = node("Mul", [node("Mul", [u, half], p + ".gelu.half_x"), node("Add", [erf, one], p + ".gelu.1p")], p + ".gelu")
        dn = node("Add", [node("MatMul", [gelu, weight(p + ".mlp.w2", (ffn, d), ffn ** -0.5)], p + ".down"),
                          weight(p + ".mlp.b2", (d,), 0.02)], p + ".down_b")
        x = node("Add", [x, dn], p + ".res2")
    gf = weight("final_ln.gamma", (d,), 0.05)
    bf = weight("final_ln.beta", (d,), 0.05)
    h = node("LayerNormalization", [x, node("Add", [gf, one], "final_ln.gamma1"), bf], "final_ln.out", axis=-1, epsilon=1e-5)
    node("MatMul", [h, weight("head.w", (d, vocab), d ** -0.5)], "logits")
    w.close()

    g = helper.make_graph(
        nodes, "big_transformer",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", "seq", d])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", vocab])],
        initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="quench bench/big_model.py")
    m.ir_version = 8
    onnx.save_model(m, path)  # tensors are already external: only the small proto is written
    return w.bytes


TIME_RE = {
    "rss_kb": re.compile(r"Maximum resident set size \(kbytes\): (\d+)"),
    "wall": re.compile(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)"),
}


def timed(cmd, log):
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with open(log, "w") as f:
        f.write(" ".join(cmd) + "\n" + r.stdout + r.stderr)
    if r.returncode != 0:
        sys.exit(f"big_model: {' '.join(cmd)} failed ({r.returncode}); see {log}\n{r.stdout[-2000:]}{r.stderr[-3000:]}")
    rss = int(TIME_RE["rss_kb"].search(r.stderr).group(1)) * 1024
    parts = [float(p) for p in TIME_RE["wall"].search(r.stderr).group(1).split(":")]
    secs = 0.0
    for p in parts:
        secs = secs * 60 + p
    return secs, rss, r.stdout


def data_size(path):
    total = 0
    m = onnx.load(path, load_external_data=False)
    locs = set()
    for t in m.graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            locs.add(next(kv.value for kv in t.external_data if kv.key == "location"))
    for loc in locs:
        total += os.path.getsize(os.path.join(os.path.dirname(path), loc))
    return total, sorted(locs)


def external_views(path):
    """(model, name -> array): memmap views of external initializers (bounds checked), arrays of inline ones."""
    m = onnx.load(path, load_external_data=False)
    base = os.path.dirname(path)
    maps, out = {}, {}
    for t in m.graph.initializer:
        if t.data_location != TensorProto.EXTERNAL:
            out[t.name] = numpy_helper.to_array(t)
            continue
        kv = {e.key: e.value for e in t.external_data}
        file = os.path.join(base, kv["location"])
        if file not in maps:
            maps[file] = np.memmap(file, dtype=np.uint8, mode="r")
        dt = helper.tensor_dtype_to_np_dtype(t.data_type) if hasattr(helper, "tensor_dtype_to_np_dtype") \
            else onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[t.data_type]
        off = int(kv.get("offset", 0))
        n = int(np.prod(t.dims)) * np.dtype(dt).itemsize
        if "length" in kv and int(kv["length"]) != n:
            raise SystemExit(f"big_model: {path}: {t.name} length {kv['length']} != {n}")
        if off + n > maps[file].size:
            raise SystemExit(f"big_model: {path}: {t.name} [{off}, {off + n}) beyond {file} ({maps[file].size} bytes)")
        out[t.name] = maps[file][off:off + n].view(dt).reshape(tuple(t.dims))
    return m, out


def check_outputs(src, int8, fp16, blocks):
    _, w = external_views(src)
    for p in (int8, fp16):
        onnx.checker.check_model(p)  # the path form: works past 2 GiB, external data not loaded
    mq, q = external_views(int8)
    # Which DequantizeLinear feeds each MatMul: its int8 weight, scale and axis.
    dq = {n.output[0]: n for n in mq.graph.node if n.op_type == "DequantizeLinear"}
    checked = 0
    for name in ("block0.attn.wq", f"block{blocks - 1}.mlp.w1", "head.w"):
        node = next(n for n in dq.values() if n.input[0] in q and n.input[0].startswith(name))
        iw = np.asarray(q[node.input[0]])
        scale = np.asarray(q[node.input[1]])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        ref_w = np.asarray(w[name])
        amax = np.abs(ref_w).max(axis=0 if axis == 1 else 1)
        ref_scale = (amax / np.float32(127)).astype(np.float32)
        if not np.allclose(scale, ref_scale, rtol=1e-6, atol=0):
            raise SystemExit(f"big_model: {name}: int8 scales differ from max|w|/127 (max diff {np.abs(scale - ref_scale).max()})")
        ref_q = np.clip(np.rint(ref_w / (scale[None, :] if axis == 1 else scale[:, None])), -127, 127).astype(np.int8)
        bad = int(np.count_nonzero(ref_q != iw))
        if bad > iw.size // 100000:  # a quotient at exactly .5 may round either way after the float division
            raise SystemExit(f"big_model: {name}: {bad} int8 values differ from numpy's rint(w / scale)")
        checked += 1
    _, h = external_views(fp16)
    for name in ("block0.attn.wk", f"block{blocks // 2}.mlp.w2", "head.w"):
        src_w = np.asarray(w[name])
        ref = src_w.astype(np.float16).view(np.uint16).copy()
        # quench float16 --underflow subnormal (the default): non-zero values that round to zero
        # become the smallest subnormal of their sign instead.
        tiny = (ref & 0x7FFF == 0) & (src_w != 0)
        ref[tiny] = np.where(np.signbit(src_w[tiny]), 0x8001, 0x0001)
        if not np.array_equal(np.asarray(h[name]).view(np.uint16), ref):
            raise SystemExit(f"big_model: {name}: float16 bits differ from numpy's astype(float16)")
        checked += 1
    return checked


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def ort_check(models, d, out_dir, need_bytes):
    node = shutil.which("node")
    runner = os.path.join(ROOT, "tests", "ort", "run_npy.js")
    if not node or not os.path.exists(os.path.join(ROOT, "tests", "ort", "node_modules", "onnxruntime-node")):
        return "skipped: onnxruntime-node not installed (cmake/install-deps.sh test)"
    if mem_available() < need_bytes:
        return f"skipped: {mem_available() / 1e9:.1f} GB available, ONNX Runtime needs about {need_bytes / 1e9:.1f} GB"
    x = np.random.default_rng(1).standard_normal((1, 8, d), dtype=np.float32)
    xin = os.path.join(out_dir, "x.npy")
    np.save(xin, x)
    outs = {}
    for label, path in models.items():
        od = os.path.join(out_dir, "ort_" + label)
        os.makedirs(od, exist_ok=True)
        t0 = time.time()
        r = subprocess.run([node, runner, path, "--input", "input=" + xin, "--output-dir", od, "--threads", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise SystemExit(f"big_model: ONNX Runtime failed on {path}:\n{r.stderr[-3000:]}")
        outs[label] = (np.load(os.path.join(od, "logits.npy")).astype(np.float64), time.time() - t0)
    ref = outs["float32"][0]
    lines = []
    for label, (y, secs) in outs.items():
        if label == "float32":
            lines.append(f"  ONNX Runtime float32: logits {list(y.shape)} in {secs:.1f} s (load + run)")
            continue
        sqnr = 10 * np.log10(np.sum(ref ** 2) / max(np.sum((y - ref) ** 2), 1e-300))
        lines.append(f"  ONNX Runtime {label}: output SQNR vs float32 {sqnr:.1f} dB in {secs:.1f} s (load + run)")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="working directory (about 4.4x the weight bytes of disk)")
    ap.add_argument("--quench", help="quench binary (default: the first build*/bin/quench)")
    ap.add_argument("--blocks", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--no-ort", action="store_true", help="skip the ONNX Runtime check")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--reuse", action="store_true", help="reuse big.onnx from an earlier --keep run")
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args()
    quench = find_quench(a.quench)
    os.makedirs(a.out, exist_ok=True)
    d, ffn = a.hidden, 4 * a.hidden
    src = os.path.join(a.out, "big.onnx")
    int8 = os.path.join(a.out, "big.int8.onnx")
    fp16 = os.path.join(a.out, "big.fp16.onnx")

    t0 = time.time()
    if a.reuse and os.path.exists(src) and os.path.exists(src + ".data"):
        weight_bytes = sum(int(np.prod(t.dims)) * 4 for t in onnx.load(src, load_external_data=False).graph.initializer)
        print(f"reusing {src}: {weight_bytes / 1e9:.3f} GB of float32 weights")
        gen_s = 0.0
    else:
        weight_bytes = generate(src, d, ffn, a.vocab, a.blocks, seed=0)
        gen_s = time.time() - t0
        gen_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(f"generated {src}: {a.blocks} blocks, hidden {d}, MLP {ffn}, vocabulary {a.vocab}: "
              f"{weight_bytes / 1e9:.3f} GB of float32 weights in {gen_s:.1f} s (generator peak RSS {gen_rss / 1e9:.2f} GB)")

    rows = []
    for label, cmd, out in (
        ("inspect", [quench, "inspect", src], None),
        ("quantize weight-only int8", [quench, "quantize", src, "-o", int8, "--profile", "weight-only", "-q"], int8),
        ("float16", [quench, "float16", src, "-o", fp16, "--keep-io-types"], fp16),
    ):
        secs, rss, _ = timed(cmd, os.path.join(a.out, label.split()[0] + ".log"))
        proto = os.path.getsize(out) if out else None
        data = data_size(out)[0] if out else None
        rows.append({"command": label, "seconds": secs, "peak_rss": rss, "rss_ratio": rss / weight_bytes,
                     "onnx_bytes": proto, "data_bytes": data})

    print(f"\n| command | seconds | peak RSS | RSS / weight bytes | .onnx file | external data |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        onnx_b = "-" if r["onnx_bytes"] is None else f"{r['onnx_bytes'] / 1e3:.0f} kB"
        data_b = "-" if r["data_bytes"] is None else f"{r['data_bytes'] / 1e9:.3f} GB"
        print(f"| quench {r['command']} | {r['seconds']:.1f} | {r['peak_rss'] / 1e9:.2f} GB | {r['rss_ratio']:.2f} | {onnx_b} | {data_b} |")
    worst = max(r["rss_ratio"] for r in rows)
    biggest_proto = max(r["onnx_bytes"] or 0 for r in rows)
    print(f"\nweights {weight_bytes / 1e9:.3f} GB; largest peak RSS / weight bytes {worst:.2f} (limit 1.30); "
          f"largest output .onnx (protobuf message) {biggest_proto / 1e6:.2f} MB (limit 2147.48 MB)")

    checked = check_outputs(src, int8, fp16, a.blocks)
    print(f"outputs: onnx.checker passes on both, every external reference lies inside its file, "
          f"{checked} weights match numpy (int8 rint(w / scale), float16 astype bit for bit, tiny values at the smallest subnormal)")
    ort = "skipped (--no-ort)"
    if not a.no_ort:
        ort = ort_check({"float32": src, "int8": int8, "float16": fp16}, d, a.out, need_bytes=int(2.5 * weight_bytes))
    print(ort)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"weight_bytes": weight_bytes, "generate_seconds": gen_s, "rows": rows, "ort": ort}, f, indent=1)
    ok = worst <= 1.3 and biggest_proto < 2 ** 31
    if not a.keep:
        shutil.rmtree(a.out)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
