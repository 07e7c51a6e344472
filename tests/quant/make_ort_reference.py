#!/usr/bin/python3
"""Reference data for quench's quant layer, generated at test time (a ctest fixture).

Writes into OUT (argument):

  compute_scale_zp.txt   expected scale/zero point of ONNX Runtime's quantization tool for a table
                         of ranges. onnxruntime's python package is not installed here, so
                         `ort_compute_scale_zp` below transcribes onnxruntime/python/tools/
                         quantization/quant_utils.py (compute_scale_zp, get_qmin_qmax_for_qType,
                         ORT >= 1.17) with the same numpy dtypes, which is what decides the bits.
  cases/<name>/          one ONNX model per QuantizeLinear / DequantizeLinear case (opset 21, built
                         with the onnx 1.12 helper; element types 17-22 are given as numbers because
                         onnx 1.12 has no names for them, and onnx.checker is skipped), the input
                         fed to ONNX Runtime, and every operand as a raw little-endian file for the
                         C++ side.
  manifest.json          the cases: operator, attributes, operand files; tests/ort/run_model.js
                         adds ONNX Runtime's outputs next to each model.

Inputs mix the values that separate implementations: exact ties k + 0.5 after scaling, their
float neighbours, values far outside the quantized range, float subnormals, +-0, NaN and +-Inf.
"""

import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import helper

# ONNX TensorProto.DataType numbers (onnx.proto); 17-22 postdate onnx 1.12.
FLOAT, UINT8, INT8, UINT16, INT16, INT32, FLOAT16 = 1, 2, 3, 4, 5, 6, 10
E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ, UINT4, INT4 = 17, 18, 19, 20, 21, 22
NAMES = {FLOAT: "float32", UINT8: "uint8", INT8: "int8", UINT16: "uint16", INT16: "int16", INT32: "int32",
         FLOAT16: "float16", E4M3FN: "float8e4m3fn", E4M3FNUZ: "float8e4m3fnuz", E5M2: "float8e5m2",
         E5M2FNUZ: "float8e5m2fnuz", UINT4: "uint4", INT4: "int4"}
INT_RANGE = {UINT8: (0, 255), INT8: (-128, 127), UINT16: (0, 65535), INT16: (-32768, 32767),
             UINT4: (0, 15), INT4: (-8, 7), INT32: (0, 0)}
NP_INT = {UINT8: np.uint8, INT8: np.int8, UINT16: np.uint16, INT16: np.int16, INT32: np.int32,
          UINT4: np.uint8, INT4: np.int8}
FLOAT8 = (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ)
# Types the onnxruntime-node JS API can neither feed nor return: they stay inside the model
# (initializers, or a Cast to a readable type after QuantizeLinear).
JS_UNREADABLE = FLOAT8 + (UINT4, INT4)


# ---- ONNX Runtime's compute_scale_zp, transcribed ------------------------------------------------

ORT_FULL = {UINT8: (0, 255), INT8: (-128, 127), UINT16: (0, 65535), INT16: (-32768, 32767),
            UINT4: (0, 15), INT4: (-8, 7)}
ORT_SYMMETRIC = {UINT8: (0, 254), INT8: (-127, 127), UINT16: (0, 65534), INT16: (-32767, 32767)}
ORT_REDUCED = {UINT8: (0, 127), INT8: (-64, 64), UINT16: (0, 32767), INT16: (-16384, 16384),
               UINT4: (0, 7), INT4: (-4, 3)}
# ORT holds qmin/qmax as 0-d arrays of the quantized numpy type (int4 as int8, uint4 as uint8).
ORT_NP = {UINT8: np.uint8, INT8: np.int8, UINT16: np.uint16, INT16: np.int16, UINT4: np.uint8, INT4: np.int8}


def ort_qmin_qmax(qtype, reduce_range, symmetric):
    if reduce_range:
        lo, hi = ORT_REDUCED[qtype]
    elif symmetric and qtype in ORT_SYMMETRIC:
        lo, hi = ORT_SYMMETRIC[qtype]
    else:
        lo, hi = ORT_FULL[qtype]
    t = ORT_NP[qtype]
    return np.array(lo, dtype=t), np.array(hi, dtype=t)


def ort_compute_scale_zp(rmin, rmax, qmin, qmax, symmetric=False, min_real_range=None):
    rmin = np.minimum(rmin, np.array(0, dtype=rmin.dtype))
    rmax = np.maximum(rmax, np.array(0, dtype=rmax.dtype))
    if min_real_range is not None:
        rmax = max(rmax, rmin + np.asarray(min_real_range, dtype=rmin.dtype))
    if symmetric:
        absmax = np.maximum(np.abs(rmin), np.abs(rmax))
        rmin = -absmax
        rmax = +absmax
    dr = np.array(rmax - rmin, dtype=np.float64)
    dq = np.array(qmax, dtype=np.float64) - np.array(qmin, dtype=np.float64)
    scale = np.array(dr / dq)
    if scale < np.finfo(rmax.dtype).tiny:
        scale = np.array(1.0, dtype=rmax.dtype)
        zero_point = np.array(0, dtype=qmin.dtype)
    else:
        if symmetric:
            zero_point = np.array(np.round((qmin + qmax) / np.array(2.0, dtype=np.float64)), dtype=qmin.dtype)
        else:
            zero_point = np.array(np.round(qmin - rmin / scale), dtype=qmin.dtype)
        scale = scale.astype(rmax.dtype)
    return zero_point, scale


def write_scale_zp_table(out):
    rng = np.random.RandomState(1234)
    ranges = [(-1.0, 3.0), (0.0, 0.0), (-0.0, 0.0), (1e-45, 2e-45), (-1e-40, 1e-40), (0.5, 6.0), (-7.25, -0.5),
              (-1.0, 1.0), (-3.4e38, 0.0), (0.0, 3.4e38), (-2.5, 2.5), (-1e-3, 1e5), (-1e5, 1e-3),
              (-0.1, 0.2), (-1.17549435e-38 * 100, 0.0), (-5e-36, 5e-36)]
    for _ in range(60):
        a, b = np.sort(rng.standard_normal(2) * 10.0 ** rng.randint(-6, 6))
        ranges.append((float(a), float(b)))
    lines = []
    for qtype in (INT8, UINT8, INT16, UINT16, INT4, UINT4):
        for symmetric in (False, True):
            for reduce_range in (False, True):
                for mrr in (None, 0.0001):
                    for a, b in ranges:
                        rmin, rmax = np.array(a, dtype=np.float32), np.array(b, dtype=np.float32)
                        qmin, qmax = ort_qmin_qmax(qtype, reduce_range, symmetric)
                        zp, scale = ort_compute_scale_zp(rmin, rmax, qmin, qmax, symmetric, mrr)
                        lines.append("%d %d %d %08x %08x %08x %08x %d" % (
                            qtype, int(symmetric), int(reduce_range),
                            np.array(0 if mrr is None else mrr, dtype=np.float32).view(np.uint32),
                            rmin.view(np.uint32), rmax.view(np.uint32),
                            np.array(scale, dtype=np.float32).view(np.uint32), int(zp)))
    with open(os.path.join(out, "compute_scale_zp.txt"), "w") as f:
        f.write("# qtype symmetric reduce_range min_real_range_bits rmin_bits rmax_bits -> scale_bits zero_point\n")
        f.write("\n".join(lines) + "\n")
    return len(lines)


# ---- QuantizeLinear / DequantizeLinear cases -------------------------------------------------------

def hard_inputs(rng, n, scale, span):
    """Floats of which about a third are the hard cases, at (element-wise) `scale`."""
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float32), (n,))
    x = (rng.uniform(-span, span, n).astype(np.float32) * scale).astype(np.float32)
    kind = rng.randint(0, 14, n)
    k = rng.randint(-span - 2, span + 2, n).astype(np.float32)
    tie = ((k + np.float32(0.5)) * scale).astype(np.float32)
    x = np.where(kind == 0, tie, x)
    # Neighbours of a tie: the quotient lands just on either side, so rounding must follow the
    # true quotient.
    nb = tie.view(np.int32) + rng.randint(-2, 3, n).astype(np.int32)
    x = np.where(kind == 1, nb.view(np.float32), x)
    x = np.where(kind == 2, (rng.uniform(-1e6, 1e6, n) * scale).astype(np.float32), x)
    x = np.where(kind == 3, np.float32(np.nan), x)
    x = np.where(kind == 4, np.where(rng.randint(0, 2, n) == 1, np.float32(np.inf), np.float32(-np.inf)), x)
    sub = rng.randint(1, 0x7fffff, n).astype(np.uint32).view(np.float32) * np.where(rng.randint(0, 2, n) == 1, 1, -1)
    x = np.where(kind == 5, sub.astype(np.float32), x)
    x = np.where(kind == 6, np.where(rng.randint(0, 2, n) == 1, np.float32(0.0), np.float32(-0.0)), x)
    x = np.where(kind == 7, np.float32(3.4e38) * np.where(rng.randint(0, 2, n) == 1, 1, -1), x)
    return x.astype(np.float32)


def pack4(values):
    v = np.asarray(values).astype(np.int64).ravel() & 0xF
    if v.size % 2:
        v = np.append(v, 0)
    return (v[0::2] | (v[1::2] << 4)).astype(np.uint8).tobytes()


def raw_bytes(qtype, values):
    if qtype in (INT4, UINT4):
        return pack4(values)
    if qtype in FLOAT8:
        return np.asarray(values, dtype=np.uint8).tobytes()
    if qtype == FLOAT16:
        return np.asarray(values, dtype=np.float16).tobytes()
    if qtype == FLOAT:
        return np.asarray(values, dtype=np.float32).tobytes()
    return np.asarray(values, dtype=NP_INT[qtype]).tobytes()


def tensor_proto(name, qtype, dims, values):
    t = onnx.TensorProto()
    t.name = name
    t.data_type = qtype
    t.dims.extend(dims)
    t.raw_data = raw_bytes(qtype, values)
    return t


class Writer:
    def __init__(self, out):
        self.out = out
        self.cases = []

    def operand(self, case_dir, name, qtype, dims, values):
        fname = name + ".bin"
        with open(os.path.join(self.out, case_dir, fname), "wb") as f:
            f.write(raw_bytes(qtype, values))
        return {"dtype": NAMES[qtype], "onnx_type": qtype, "dims": list(dims), "file": case_dir + "/" + fname}

    def add(self, name, op, qtype, x_type, x_dims, x_values, scale_type, scale_dims, scales, zps,
            axis=None, block_size=None, saturate=None, note="", expected_deviations=None):
        case_dir = "cases/" + name
        os.makedirs(os.path.join(self.out, case_dir))
        attrs = {}
        if axis is not None:
            attrs["axis"] = axis
        if block_size is not None:
            attrs["block_size"] = block_size
        if saturate is not None:
            attrs["saturate"] = saturate
        feed_x = x_type not in JS_UNREADABLE and x_type != 16  # bfloat16 is not a JS tensor type either
        inits = [tensor_proto("scale", scale_type, scale_dims, scales)]
        inputs = ["x", "scale"]
        if zps is not None:
            inits.append(tensor_proto("zero_point", qtype, scale_dims, zps))
            inputs.append("zero_point")
        graph_inputs = []
        if feed_x:
            graph_inputs.append(helper.make_tensor_value_info("x", x_type, list(x_dims)))
        else:
            inits.append(tensor_proto("x", x_type, x_dims, x_values))
        nodes = [helper.make_node(op, inputs, ["y"], **attrs)]
        out_type = qtype if op == "QuantizeLinear" else scale_type
        read_as = out_type
        if op == "QuantizeLinear" and qtype in JS_UNREADABLE:
            # Cast is exact for these: int4 -> int8, uint4 -> uint8, float8 -> float.
            read_as = {INT4: INT8, UINT4: UINT8}.get(qtype, FLOAT)
            nodes[0].output[0] = "q"
            nodes.append(helper.make_node("Cast", ["q"], ["y"], to=read_as))
        graph = helper.make_graph(nodes, name, graph_inputs,
                                  [helper.make_tensor_value_info("y", read_as, list(x_dims))], initializer=inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], producer_name="quench-tests")
        model.ir_version = 10
        onnx.save(model, os.path.join(self.out, case_dir, "model.onnx"))

        case = {
            "name": name, "op": op, "type": NAMES[qtype], "onnx_type": qtype, "note": note,
            "axis": axis, "block_size": block_size, "saturate": saturate,
            "model": case_dir + "/model.onnx", "dir": case_dir,
            "x": self.operand(case_dir, "x", x_type, x_dims, x_values),
            "scale": self.operand(case_dir, "scale", scale_type, scale_dims, scales),
            "zero_point": None if zps is None else self.operand(case_dir, "zero_point", qtype, scale_dims, zps),
            "ort_output_type": NAMES[read_as],
            "feeds": [{"name": "x", "dtype": NAMES[x_type], "dims": list(x_dims), "file": case_dir + "/x.bin"}]
            if feed_x else [],
            "expected_deviations": expected_deviations or {},
        }
        self.cases.append(case)


def layouts():
    """(label, x_dims, axis, block_size) of every layout tested."""
    return [
        ("t1", [1], None, None),
        ("t37", [37], None, None),
        ("t1000", [1000], None, None),
        ("t3x7x5", [3, 7, 5], None, None),
        ("ax0", [3, 37], 0, None),
        ("ax1", [2, 5, 9], 1, None),
        ("axlast", [4, 33], -1, None),
        ("blk1", [4, 10], 1, 4),
        ("blk0short", [6, 3, 5], 0, 4),
        ("blklast16", [3, 48], -1, 16),
        ("blkmid2", [2, 9, 4], 1, 2),
    ]


def param_dims(x_dims, axis, block_size):
    if axis is None:
        return []
    a = axis % len(x_dims)
    if block_size is None:
        return [x_dims[a]]
    d = list(x_dims)
    d[a] = -(-x_dims[a] // block_size)
    return d


def element_scales(x_dims, axis, block_size, scales):
    """Each element's scale, as ONNX's reference reshape_input does."""
    n = int(np.prod(x_dims))
    if axis is None:
        return np.full(n, scales[0] if len(scales) else scales, dtype=np.float32)
    a = axis % len(x_dims)
    s = np.asarray(scales, dtype=np.float32).reshape(param_dims(x_dims, axis, block_size))
    if block_size is None:
        shape = [1] * len(x_dims)
        shape[a] = x_dims[a]
        return np.broadcast_to(s.reshape(shape), x_dims).ravel()
    s = np.repeat(s, block_size, axis=a).take(range(x_dims[a]), axis=a)
    return np.ascontiguousarray(s).ravel()


def quotient(x, es):
    with np.errstate(all="ignore"):
        return (np.asarray(x, dtype=np.float32) / es).astype(np.float32)


def float8_deviations(qtype, saturate, x, es):
    """Elements where ONNX Runtime 1.30 deviates from the ONNX spec (docs/technical/float8.md) and
    the onnx reference implementation (onnx.helper.float32_to_float8e5m2 / e4m3):
      fnuz_saturate_inf       FNUZ types, saturate=1, x / scale = +-Inf: ORT +-max, spec NaN
      e5m2_rounding_overflow  e5m2, saturate=0, 61440 <= |x / scale| < 65536 (finite values that
                              round up past the largest finite 57344): ORT NaN, spec +-Inf"""
    q = quotient(x, es)
    out = {}
    if qtype in (E4M3FNUZ, E5M2FNUZ) and saturate:
        out["fnuz_saturate_inf"] = int(np.isinf(q).sum())
    if qtype == E5M2 and not saturate:
        a = np.abs(q)
        out["e5m2_rounding_overflow"] = int(((a >= 61440) & (a < 65536)).sum())
    return out


def ort_scalar_path(qtype, x_type, dims, axis, block_size):
    """ONNX Runtime 1.30's QuantizeLinear paths that convert x / scale to int32 before saturating
    (found by comparison): float16 input, blocked along an axis other than the last, and 4-bit
    outputs with per-axis or blocked scales. There a quotient that is NaN, +-Inf or beyond
    +-2^31 makes the conversion undefined (x86 gives INT_MIN), and the result depends on the zero
    point's sign and the element's position instead of saturating."""
    if x_type == FLOAT16:
        return True
    if axis is None:
        return False
    last = axis % len(dims) == len(dims) - 1
    if block_size is not None and not last:
        return True
    return qtype in (INT4, UINT4)


def int32_overflow_count(qtype, x_type, dims, axis, block_size, x, es):
    if not ort_scalar_path(qtype, x_type, dims, axis, block_size):
        return {}
    q = quotient(x, es)
    with np.errstate(all="ignore"):
        big = ~np.isfinite(q) | (np.abs(np.rint(q)) >= 2.0 ** 31)
    return {"ort_int32_overflow": int(big.sum())}


def write_cases(out):
    w = Writer(out)
    rng = np.random.RandomState(2024)
    scale_pool = [0.25, 0.1, 0.0371, 3.0, 1e-3, 0.5]

    for qtype in (INT8, UINT8, INT16, UINT16, INT4, UINT4):
        lo, hi = INT_RANGE[qtype]
        span = min(hi - lo, 300)
        for label, dims, axis, block in layouts():
            pd = param_dims(dims, axis, block)
            count = int(np.prod(pd)) if pd else 1
            scales = rng.choice(scale_pool, count).astype(np.float32)
            if count > 1:
                scales = (scales * rng.uniform(0.5, 2.0, count)).astype(np.float32)
            zps = rng.randint(lo, hi + 1, count)
            es = element_scales(dims, axis, block, scales)
            n = int(np.prod(dims))
            x = hard_inputs(rng, n, es, span)
            w.add("q_%s_%s" % (NAMES[qtype], label), "QuantizeLinear", qtype, FLOAT, dims, x, FLOAT, pd, scales, zps,
                  axis=axis, block_size=block,
                  expected_deviations=int32_overflow_count(qtype, FLOAT, dims, axis, block, x, es))
            q = rng.randint(lo, hi + 1, n)
            w.add("dq_%s_%s" % (NAMES[qtype], label), "DequantizeLinear", qtype, qtype, dims, q, FLOAT, pd, scales,
                  zps, axis=axis, block_size=block)
    # Zero point omitted: ONNX then quantizes to uint8 with zero point 0.
    x = hard_inputs(rng, 64, np.float32(0.5), 300)
    w.add("q_uint8_nozp", "QuantizeLinear", UINT8, FLOAT, [64], x, FLOAT, [], [0.5], None)

    # int32 DequantizeLinear (bias): zero point 0, values beyond 2^24 round when converted.
    for label, dims, axis, block in layouts()[:7]:
        pd = param_dims(dims, axis, block)
        count = int(np.prod(pd)) if pd else 1
        scales = (rng.choice(scale_pool, count) * rng.uniform(0.5, 2.0, count)).astype(np.float32)
        n = int(np.prod(dims))
        q = rng.randint(-2**31, 2**31, n, dtype=np.int64).astype(np.int32)
        q[: n // 2] = rng.randint(-1000, 1000, n // 2)
        w.add("dq_int32_%s" % label, "DequantizeLinear", INT32, INT32, dims, q, FLOAT, pd, scales, np.zeros(count),
              axis=axis, block_size=block)

    # float8, saturate and not.
    for qtype in FLOAT8:
        for saturate in (1, 0):
            for label, dims, axis, block in layouts()[:8]:
                pd = param_dims(dims, axis, block)
                count = int(np.prod(pd)) if pd else 1
                scales = (rng.choice([0.25, 0.01, 3.0, 1e-3, 1e-36], count) *
                          rng.uniform(0.5, 2.0, count)).astype(np.float32)
                es = element_scales(dims, axis, block, scales)
                n = int(np.prod(dims))
                x = hard_inputs(rng, n, es, 300)
                # Values around the largest finite float8 and its overflow threshold.
                big = rng.uniform(200, 70000, n).astype(np.float32) * es * np.where(rng.randint(0, 2, n) == 1, 1, -1)
                x = np.where(rng.randint(0, 5, n) == 0, big.astype(np.float32), x).astype(np.float32)
                w.add("q_%s_sat%d_%s" % (NAMES[qtype], saturate, label), "QuantizeLinear", qtype, FLOAT, dims, x,
                      FLOAT, pd, scales, np.zeros(count, dtype=np.uint8), axis=axis, block_size=block,
                      saturate=saturate, expected_deviations=float8_deviations(qtype, saturate, x, es))
        # Every bit pattern, per tensor and per axis.
        w.add("dq_%s_all" % NAMES[qtype], "DequantizeLinear", qtype, qtype, [256], np.arange(256), FLOAT, [], [0.37],
              np.zeros(1, dtype=np.uint8))
        w.add("dq_%s_all_ax" % NAMES[qtype], "DequantizeLinear", qtype, qtype, [4, 64], np.arange(256), FLOAT, [4],
              [0.37, 2.0, 1e-3, 3e4], np.zeros(4, dtype=np.uint8), axis=0)

    # float16 input and scale (QuantizeLinear divides in float32), float16 DequantizeLinear output.
    for label, dims, axis, block in [layouts()[2], layouts()[4], layouts()[6]]:
        pd = param_dims(dims, axis, block)
        count = int(np.prod(pd)) if pd else 1
        scales = rng.choice([0.1, 0.25, 0.0371], count).astype(np.float16)
        es = element_scales(dims, axis, block, scales.astype(np.float32))
        n = int(np.prod(dims))
        x = hard_inputs(rng, n, es, 200).astype(np.float16)
        for qtype in (INT8, UINT8):
            lo, hi = INT_RANGE[qtype]
            zps = rng.randint(lo, hi + 1, count)
            w.add("q_%s_f16_%s" % (NAMES[qtype], label), "QuantizeLinear", qtype, FLOAT16, dims, x, FLOAT16, pd,
                  scales, zps, axis=axis,
                  expected_deviations=int32_overflow_count(qtype, FLOAT16, dims, axis, None, x.astype(np.float32), es))
            q = rng.randint(lo, hi + 1, n)
            w.add("dq_%s_f16_%s" % (NAMES[qtype], label), "DequantizeLinear", qtype, qtype, dims, q, FLOAT16, pd,
                  scales, zps, axis=axis)
    return w.cases


def main():
    np.seterr(all="ignore")  # overflow to Inf is part of the data
    if len(sys.argv) != 2:
        sys.exit("usage: make_ort_reference.py OUT_DIR")
    out = sys.argv[1]
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "cases"))
    rows = write_scale_zp_table(out)
    cases = write_cases(out)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"generator": "tests/quant/make_ort_reference.py", "numpy": np.__version__,
                   "onnx": onnx.__version__, "scale_zp_rows": rows, "cases": cases}, f, indent=1)
    print("wrote %d compute_scale_zp rows and %d Q/DQ cases to %s" % (rows, len(cases), out))


if __name__ == "__main__":
    main()
