#!/usr/bin/env python3
"""`quench inspect` on every libonnx-testdata model, checked against the onnx Python package.

    inspect_test.py QUENCH_BINARY TESTDATA_DIR WORK_DIR

For every model.onnx under TESTDATA_DIR, `quench inspect --json` must exit 0 and print one JSON
object with the documented keys, whose facts agree with what onnx (the reference reader) finds in
the same file: ir_version, opsets, input/output names, the op histogram of the main graph and of
the sub-graphs, parameter counts by dtype, QDQ pairs. The human output must render too. A few
models have their values spelled out, a generated model covers external data, symbolic dims and
QDQ pairs, and bad inputs must fail with status 1 and a quench error message.
"""
import collections
import concurrent.futures
import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TOP_KEYS = {"file", "file_bytes", "ir_version", "producer_name", "producer_version", "domain",
            "model_version", "graph_name", "metadata", "opsets", "inputs", "outputs",
            "initializer_inputs", "nodes", "ops", "parameters", "quantization", "external_data"}

failures = []


def fail(model, msg):
    failures.append(f"{model}: {msg}")


def run(binary, *args):
    return subprocess.run([binary, "inspect", *args], capture_output=True, text=True, errors="replace")


# ---- the reference, from the onnx package -------------------------------------------------------

ITEM_BYTES = {TensorProto.FLOAT: 4, TensorProto.UINT8: 1, TensorProto.INT8: 1, TensorProto.UINT16: 2,
              TensorProto.INT16: 2, TensorProto.INT32: 4, TensorProto.INT64: 8, TensorProto.BOOL: 1,
              TensorProto.FLOAT16: 2, TensorProto.DOUBLE: 8, TensorProto.UINT32: 4, TensorProto.UINT64: 8,
              TensorProto.BFLOAT16: 2}


def dtype_name(t):
    return TensorProto.DataType.Name(t).lower()


def op_key(n):
    return n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"


def subgraphs(n):
    for a in n.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            yield a.g
        elif a.type == onnx.AttributeProto.GRAPHS:
            yield from a.graphs


def is_quant(n, op):
    return n.op_type == op and n.domain in ("", "ai.onnx", "com.microsoft")


def reference(m):
    ops = {"main": collections.Counter(), "subgraphs": collections.Counter()}
    nodes = {"main": 0, "subgraphs": 0, "subgraph_count": 0}
    params = collections.defaultdict(lambda: [0, 0, 0])  # tensors, elements, bytes
    quant = {"q": 0, "dq": 0, "lone": 0, "paired": set()}

    def add_param(t, count):
        p = params[dtype_name(t)]
        p[0] += 1
        p[1] += count
        p[2] += count * ITEM_BYTES.get(t, 0)

    def walk(g, depth, scopes):
        where = "main" if depth == 0 else "subgraphs"
        if depth:
            nodes["subgraph_count"] += 1
        producers = {o: n for n in g.node for o in n.output if o}
        chain = [producers] + scopes
        for t in g.initializer:
            add_param(t.data_type, int(np.prod(t.dims, dtype=np.int64)))
        for n in g.node:
            ops[where][op_key(n)] += 1
            nodes[where] += 1
            if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
                for a in n.attribute:
                    if a.name == "value":
                        add_param(a.t.data_type, int(np.prod(a.t.dims, dtype=np.int64)))
                    elif a.name == "value_float":
                        add_param(TensorProto.FLOAT, 1)
                    elif a.name == "value_floats":
                        add_param(TensorProto.FLOAT, len(a.floats))
                    elif a.name == "value_int":
                        add_param(TensorProto.INT64, 1)
                    elif a.name == "value_ints":
                        add_param(TensorProto.INT64, len(a.ints))
            if is_quant(n, "QuantizeLinear"):
                quant["q"] += 1
            if is_quant(n, "DequantizeLinear"):
                quant["dq"] += 1
                # The nearest scope that defines the name is the one the node reads.
                p = next((s[n.input[0]] for s in chain if n.input[0] in s), None)
                if p is not None and is_quant(p, "QuantizeLinear"):
                    quant["paired"].add(id(p))
                else:
                    quant["lone"] += 1
            for sg in subgraphs(n):
                walk(sg, depth + 1, chain)

    walk(m.graph, 0, [])
    init_names = {t.name for t in m.graph.initializer}
    return {
        "ir_version": m.ir_version,
        "opsets": [{"domain": o.domain or "ai.onnx", "version": o.version} for o in m.opset_import],
        "inputs": [i.name for i in m.graph.input if i.name not in init_names],
        "initializer_inputs": sum(1 for i in m.graph.input if i.name in init_names),
        "outputs": [o.name for o in m.graph.output],
        "ops": {k: dict(v) for k, v in ops.items()},
        "nodes": nodes,
        "by_dtype": {k: {"tensors": v[0], "elements": v[1], "bytes": v[2]} for k, v in params.items()},
        "quantization": {"qdq_pairs": len(quant["paired"]), "lone_dequantize": quant["lone"],
                         "quantize_linear": quant["q"], "dequantize_linear": quant["dq"]},
    }


# ---- one model --------------------------------------------------------------------------------

def check_model(binary, path):
    name = os.path.relpath(path, os.path.dirname(os.path.dirname(os.path.dirname(path))))
    r = run(binary, "--json", path)
    if r.returncode != 0:
        return fail(name, f"--json exited {r.returncode}: {r.stderr.strip()}")
    try:
        s = json.loads(r.stdout)
    except json.JSONDecodeError as e:
        return fail(name, f"output is not JSON: {e}")
    if set(s) != TOP_KEYS:
        return fail(name, f"keys differ: missing {TOP_KEYS - set(s)}, extra {set(s) - TOP_KEYS}")
    ref = reference(onnx.load(path))
    got = {
        "ir_version": s["ir_version"],
        "opsets": s["opsets"],
        "inputs": [i["name"] for i in s["inputs"]],
        "initializer_inputs": s["initializer_inputs"],
        "outputs": [o["name"] for o in s["outputs"]],
        "ops": s["ops"],
        "nodes": s["nodes"],
        "quantization": s["quantization"],
    }
    for k, v in got.items():
        if v != ref[k]:
            fail(name, f"{k}: quench says {v}, onnx says {ref[k]}")
    # Bytes per dtype are only known to the reference for fixed-size types.
    ref_dt = ref["by_dtype"]
    got_dt = s["parameters"]["by_dtype"]
    if set(got_dt) != set(ref_dt):
        fail(name, f"parameter dtypes: quench {sorted(got_dt)}, onnx {sorted(ref_dt)}")
    for k in set(got_dt) & set(ref_dt):
        want = dict(ref_dt[k])
        if k not in {dtype_name(t) for t in ITEM_BYTES}:
            want["bytes"] = got_dt[k]["bytes"]
        if got_dt[k] != want:
            fail(name, f"parameters[{k}]: quench {got_dt[k]}, onnx {want}")
    p = s["parameters"]
    for k in ("tensors", "elements", "bytes"):
        if p[k] != sum(v[k] for v in got_dt.values()):
            fail(name, f"parameters.{k} is not the sum over dtypes")
    for v in s["inputs"] + s["outputs"]:
        if set(v) != {"name", "dtype", "shape"} or not isinstance(v["dtype"], str):
            fail(name, f"malformed value entry {v}")
    if s["external_data"] != {"files": [], "tensors": 0, "bytes": 0}:
        fail(name, f"external data reported: {s['external_data']}")

    h = run(binary, path)
    if h.returncode != 0 or "operators:" not in h.stdout or "parameters:" not in h.stdout:
        fail(name, f"human output failed ({h.returncode}): {h.stderr.strip()}")
    return s


# ---- exact values for known models ------------------------------------------------------------

def check_known(binary, data):
    def inspect(rel):
        r = run(binary, "--json", os.path.join(data, rel, "model.onnx"))
        return json.loads(r.stdout) if r.returncode == 0 else None

    def expect(model, got, want):
        if got != want:
            fail(model, f"expected {want}, found {got}")

    s = inspect("node/test_quantizelinear")
    if s:
        expect("test_quantizelinear ops", s["ops"], {"main": {"QuantizeLinear": 1}, "subgraphs": {}})
        expect("test_quantizelinear inputs", s["inputs"],
               [{"name": "x", "dtype": "float", "shape": [6]}, {"name": "y_scale", "dtype": "float", "shape": []},
                {"name": "y_zero_point", "dtype": "uint8", "shape": []}])
        expect("test_quantizelinear outputs", s["outputs"], [{"name": "y", "dtype": "uint8", "shape": [6]}])
        expect("test_quantizelinear opsets", s["opsets"], [{"domain": "ai.onnx", "version": 13}])
        expect("test_quantizelinear header", [s["ir_version"], s["producer_name"], s["graph_name"]],
               [7, "backend-test", "test_quantizelinear"])
        expect("test_quantizelinear quantization", s["quantization"],
               {"qdq_pairs": 0, "lone_dequantize": 0, "quantize_linear": 1, "dequantize_linear": 0})
    s = inspect("node/test_dequantizelinear")
    if s:
        expect("test_dequantizelinear quantization", s["quantization"],
               {"qdq_pairs": 0, "lone_dequantize": 1, "quantize_linear": 0, "dequantize_linear": 1})
    s = inspect("node/test_if")
    if s:
        expect("test_if nodes", s["nodes"], {"main": 1, "subgraphs": 2, "subgraph_count": 2})
        expect("test_if ops", s["ops"], {"main": {"If": 1}, "subgraphs": {"Constant": 2}})
        expect("test_if parameters", s["parameters"],
               {"tensors": 2, "elements": 10, "bytes": 40,
                "by_dtype": {"float": {"tensors": 2, "elements": 10, "bytes": 40}}})
    s = inspect("node/test_identity_sequence")
    if s:
        expect("test_identity_sequence input", s["inputs"], [{"name": "x", "dtype": "seq(tensor(float))", "shape": None}])
    s = inspect("node/test_optional_has_element")
    if s:
        expect("test_optional_has_element input type", s["inputs"][0]["dtype"], "optional(tensor(float))")


# ---- external data, symbolic dims, QDQ: a generated model ---------------------------------------

def make_external_model(work):
    d = os.path.join(work, "external")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    rng = np.random.default_rng(0)
    w_q = numpy_helper.from_array(rng.integers(-127, 128, size=(64, 64), dtype=np.int8), "w_q")
    bias = numpy_helper.from_array(rng.standard_normal(64).astype(np.float32), "b")
    inits = [w_q, bias,
             numpy_helper.from_array(np.array(0.05, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "zp"),
             numpy_helper.from_array(np.array(0.01, np.float32), "ws")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["x_q"]),
             helper.make_node("DequantizeLinear", ["x_q", "s", "zp"], ["x_dq"]),
             helper.make_node("DequantizeLinear", ["w_q", "ws", "zp"], ["w"]),
             helper.make_node("MatMul", ["x_dq", "w"], ["y0"]),
             helper.make_node("Add", ["y0", "b"], ["y"])]
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 64])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="inspect_test")
    path = os.path.join(d, "model.onnx")
    # Only w_q (4096 bytes) is above the threshold: one tensor in one external file.
    onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin",
                    size_threshold=1024)
    return path


def check_external(binary, work):
    path = make_external_model(work)
    r = run(binary, "--json", path)
    if r.returncode != 0:
        return fail("external", f"exited {r.returncode}: {r.stderr.strip()}")
    s = json.loads(r.stdout)
    size = os.path.getsize(os.path.join(os.path.dirname(path), "weights.bin"))
    want = {"files": [{"location": "weights.bin", "tensors": 1, "bytes": 4096, "file_bytes": size}],
            "tensors": 1, "bytes": 4096}
    if s["external_data"] != want:
        fail("external", f"external_data {s['external_data']}, expected {want}")
    if s["quantization"] != {"qdq_pairs": 1, "lone_dequantize": 1, "quantize_linear": 1, "dequantize_linear": 2}:
        fail("external", f"quantization {s['quantization']}")
    if s["inputs"] != [{"name": "x", "dtype": "float", "shape": ["N", 64]}]:
        fail("external", f"inputs {s['inputs']}")
    if s["parameters"]["by_dtype"].get("int8") != {"tensors": 2, "elements": 4097, "bytes": 4097}:
        fail("external", f"int8 parameters {s['parameters']['by_dtype'].get('int8')}")
    h = run(binary, path)
    if h.returncode != 0 or "weights.bin" not in h.stdout or "[N, 64]" not in h.stdout or "1 QDQ pair," not in h.stdout:
        fail("external", f"human output lacks the external file, the symbolic dim or the QDQ pair:\n{h.stdout}")
    # Without its data file the model cannot load: a clear error, not a crash.
    os.remove(os.path.join(os.path.dirname(path), "weights.bin"))
    check_bad(binary, path, "missing external data")


# ---- bad input --------------------------------------------------------------------------------

def check_bad(binary, path, what):
    r = run(binary, "--json", path)
    if r.returncode != 1:
        fail(what, f"exit status {r.returncode}, expected 1 (stderr: {r.stderr.strip()})")
    if not r.stderr.startswith("quench: [quench."):
        fail(what, f"stderr does not start with 'quench: [quench.': {r.stderr.strip()!r}")
    if r.stdout:
        fail(what, f"printed to stdout: {r.stdout[:200]!r}")


def check_bad_inputs(binary, data, work):
    d = os.path.join(work, "bad")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(data, "node/test_if/model.onnx"), "rb") as f:
        good = f.read()
    for cut in (0, 1, len(good) // 3, len(good) // 2, len(good) - 1):
        p = os.path.join(d, f"truncated_{cut}.onnx")
        with open(p, "wb") as f:
            f.write(good[:cut])
        check_bad(binary, p, f"truncated at {cut}")
    rng = random.Random(1)
    for i in range(5):
        p = os.path.join(d, f"random_{i}.onnx")
        with open(p, "wb") as f:
            f.write(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096))))
        check_bad(binary, p, f"random bytes {i}")
    check_bad(binary, os.path.join(d, "does_not_exist.onnx"), "missing file")
    check_bad(binary, d, "a directory")


def main():
    binary, data, work = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(work, exist_ok=True)
    models = sorted(os.path.join(root, "model.onnx") for root, _, files in os.walk(data) if "model.onnx" in files)
    if not models:
        sys.exit(f"no model.onnx under {data}")
    # Two workers: the machine is shared, and each model is a few milliseconds.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda p: check_model(binary, p), models))
    check_known(binary, data)
    check_external(binary, work)
    check_bad_inputs(binary, data, work)
    for f in failures[:50]:
        print("FAIL", f)
    print(f"inspect: {len(models)} models, {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
