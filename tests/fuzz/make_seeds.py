#!/usr/bin/env python3
"""Extra fuzz seeds for what the libonnx-testdata models never contain.

    make_seeds.py OUT_DIR

The node tests hold no external data, no Constant with an external tensor, no sub-graph reading
an outer initializer two levels up, no int4/float8 initializers. Mutating a protobuf into any of
those by chance is unlikely, so they are written here as starting points. External tensors point
into w.bin, the 65,536-byte file run_fuzz.cmake puts in QUENCH_FUZZ_EXTERNAL_DIR.
"""
import os
import sys

import onnx
from onnx import TensorProto, helper

W_BIN = 65536


def external(name, data_type, dims, offset, length=None, location="w.bin"):
    t = TensorProto()
    t.name = name
    t.data_type = data_type
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    entries = [("location", location), ("offset", str(offset))]
    if length is not None:
        entries.append(("length", str(length)))
    for k, v in entries:
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


def model(nodes, inputs, outputs, inits, opset=17, extra_opsets=()):
    g = helper.make_graph(nodes, "seed", inputs, outputs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset), *extra_opsets], producer_name="fuzz_seed")


def vi(name, t=TensorProto.FLOAT, shape=None):
    return helper.make_tensor_value_info(name, t, shape)


def seeds():
    x = vi("x", TensorProto.FLOAT, ["N", 16])
    # MatMul with an external weight, the bias inline; offset at the end of the file for a range edge.
    yield "external_matmul", model(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
        [x], [vi("y")],
        [external("w", TensorProto.FLOAT, [16, 16], 0, 1024),
         external("b", TensorProto.FLOAT, [16], W_BIN - 64)])
    # Constant whose tensor attribute is external; QDQ around it with int8 and uint8 zero points.
    c = helper.make_node("Constant", [], ["c"], value=external("cv", TensorProto.INT8, [16, 16], 4096, 256))
    yield "external_constant_qdq", model(
        [c,
         helper.make_node("DequantizeLinear", ["c", "s"], ["w"]),
         helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"]),
         helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xd"]),
         helper.make_node("MatMul", ["xd", "w"], ["y"])],
        [x], [vi("y")],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]), helper.make_tensor("zp", TensorProto.UINT8, [], [128])])
    # If inside Loop: the innermost branch reads an external initializer of the main graph.
    then_g = helper.make_graph([helper.make_node("Add", ["li", "w"], ["t_out"])], "then", [], [vi("t_out")])
    else_g = helper.make_graph([helper.make_node("Sub", ["li", "w"], ["e_out"])], "else", [], [vi("e_out")])
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("If", ["cond_in"], ["li_next"], then_branch=then_g, else_branch=else_g),
         helper.make_node("Identity", ["li_next"], ["scan_out"])],
        "body", [vi("iter", TensorProto.INT64, []), vi("cond_in", TensorProto.BOOL, []), vi("li")],
        [vi("cond_out", TensorProto.BOOL, []), vi("li_next"), vi("scan_out")])
    yield "nested_outer_external", model(
        [helper.make_node("Loop", ["trip", "cond", "x"], ["y", "scan"], body=body)],
        [x, vi("trip", TensorProto.INT64, []), vi("cond", TensorProto.BOOL, [])], [vi("y"), vi("scan")],
        [external("w", TensorProto.FLOAT, [16], 8192, 64)])
    # Types newer than the onnx 1.12 protobuf headers: int4/uint4 (packed) and float8, raw and typed.
    i4 = TensorProto(name="i4", data_type=22, dims=[5], raw_data=b"\x12\x34\x05")
    u4 = TensorProto(name="u4", data_type=21, dims=[3], int32_data=[0x21, 0x03])
    f8 = TensorProto(name="f8", data_type=17, dims=[4], raw_data=b"\x00\x38\x7e\xff")
    f8e = external("f8e", 19, [32], 100, 32)
    yield "new_types", model(
        [helper.make_node("DequantizeLinear", ["i4", "s"], ["a"]),
         helper.make_node("DequantizeLinear", ["u4", "s"], ["b"]),
         helper.make_node("Cast", ["f8"], ["c"], to=TensorProto.FLOAT),
         helper.make_node("Cast", ["f8e"], ["d"], to=TensorProto.FLOAT)],
        [], [vi("a"), vi("b"), vi("c"), vi("d")],
        [i4, u4, f8, f8e, helper.make_tensor("s", TensorProto.FLOAT, [], [0.5])], opset=21)
    # Custom domain, value_info, metadata, a sparse initializer, and an IR 3 initializer-as-input.
    m = model([helper.make_node("Custom", ["x", "w"], ["y"], domain="com.example", alpha=1.5)],
              [x, vi("w", TensorProto.FLOAT, [16])], [vi("y")],
              [helper.make_tensor("w", TensorProto.FLOAT, [16], [0.0] * 16)],
              extra_opsets=[helper.make_opsetid("com.example", 1)])
    m.graph.value_info.append(vi("y", TensorProto.FLOAT, ["N", 16]))
    sp = helper.make_sparse_tensor(helper.make_tensor("sv", TensorProto.FLOAT, [2], [1.0, 2.0]),
                                   helper.make_tensor("si", TensorProto.INT64, [2], [0, 3]), [4])
    m.graph.sparse_initializer.append(sp)
    helper.set_model_props(m, {"author": "fuzz"})
    m.ir_version = 3
    yield "misc_fields", m


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, m in seeds():
        with open(os.path.join(out, f"seed_{name}.onnx"), "wb") as f:
            f.write(m.SerializeToString())


if __name__ == "__main__":
    main()
