#!/usr/bin/env python3
"""Builds the models that test quench's graph passes against ONNX Runtime.

    /usr/bin/python3 make_pass_models.py OUT_DIR

Writes OUT_DIR/<case>_op<opset>.onnx for opsets 9, 11, 13 and 17 and OUT_DIR/manifest.txt, one
line per model:

    <file>\t<pass>\t<op>=<count> <op>=<count> ...

naming the pass (or "standard" for quench::passes::standard_passes) the C++ test runs on it, and
the node counts expected afterwards ("rewrites=N" pins the pass's rewrite count, which must
otherwise be positive). tests/onnx/passes_ort_test.cpp applies the passes and saves
<case>_op<opset>.passes.onnx beside each model; tests/ort/compare_models.js then runs both in
ONNX Runtime on the same random inputs.

Every model is written the way exporters write them (PyTorch's Constant weights, Identity and
Dropout left in inference graphs, shape subgraphs for flatten), with weights from a seeded
generator, and passes onnx.checker. When torch is importable, a small CNN exported by
torch.onnx itself is added.
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSETS = (9, 11, 13, 17)
IR_VERSION = {9: 4, 11: 6, 13: 7, 17: 8}


class Builder:
    """Collects nodes and initializers of one graph, with fresh names."""

    def __init__(self, opset, seed):
        self.opset = opset
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.inits = []
        self.count = 0

    def name(self, prefix):
        self.count += 1
        return f"{prefix}_{self.count}"

    def init(self, array, prefix="w"):
        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), n))
        return n

    def weight(self, *shape, scale=0.5, prefix="w"):
        return self.init(self.rng.normal(0, scale, shape).astype(np.float32), prefix)

    def node(self, op, inputs, outputs=1, **attrs):
        outs = [self.name(op.lower()) for _ in range(outputs)] if isinstance(outputs, int) else outputs
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.name(op + "_node"), **attrs))
        return outs[0] if len(outs) == 1 else outs

    def constant(self, array):
        """A Constant node holding `array` (how PyTorch exports many weights)."""
        n = self.name("const")
        t = numpy_helper.from_array(np.asarray(array), n + "_value")
        self.nodes.append(helper.make_node("Constant", [], [n], name=self.name("Constant_node"), value=t))
        return n

    def batch_norm(self, x, channels, eps=1e-5, out=None):
        scale = self.init(self.rng.uniform(0.5, 2.0, channels).astype(np.float32), "bn_scale")
        bias = self.init(self.rng.normal(0, 0.5, channels).astype(np.float32), "bn_bias")
        mean = self.init(self.rng.normal(0, 0.5, channels).astype(np.float32), "bn_mean")
        var = self.init(self.rng.uniform(0.25, 2.0, channels).astype(np.float32), "bn_var")
        outs = [out] if out else 1
        return self.node("BatchNormalization", [x, scale, bias, mean, var], outs, epsilon=eps, momentum=0.9)

    def dropout(self, x, ratio=0.25, mask=False, out=None):
        outs = [out or self.name("dropout")] + ([self.name("mask")] if mask else [])
        if self.opset < 12:
            self.node("Dropout", [x], outs, ratio=ratio)
        else:
            r = self.init(np.array(ratio, dtype=np.float32), "ratio")
            mode = self.init(np.array(False), "training_mode")
            self.node("Dropout", [x, r, mode], outs)
        return outs[0]

    def unsqueeze(self, x, axes):
        if self.opset < 13:
            return self.node("Unsqueeze", [x], axes=axes)
        return self.node("Unsqueeze", [x, self.init(np.array(axes, dtype=np.int64), "axes")])

    def slice(self, x, starts, ends):
        if self.opset < 10:
            return self.node("Slice", [x], starts=starts, ends=ends)
        return self.node("Slice", [x, self.init(np.array(starts, dtype=np.int64), "starts"),
                                   self.init(np.array(ends, dtype=np.int64), "ends")])

    def flatten_by_shape(self, x, use_gather=False):
        """Reshape(x, Concat(Shape(x)[0:1], [-1])): the flatten PyTorch's x.view(x.size(0), -1) exports."""
        shape = self.node("Shape", [x])
        if use_gather:
            batch = self.unsqueeze(self.node("Gather", [shape, self.init(np.array(0, dtype=np.int64), "idx")], axis=0), [0])
        else:
            batch = self.slice(shape, [0], [1])
        target = self.node("Concat", [batch, self.init(np.array([-1], dtype=np.int64), "minus1")], axis=0)
        return self.node("Reshape", [x, target])

    def model(self, name, inputs, outputs):
        graph = helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.inits)
        m = helper.make_model(graph, producer_name="quench make_pass_models.py",
                              opset_imports=[helper.make_opsetid("", self.opset)])
        m.ir_version = IR_VERSION[self.opset]
        onnx.checker.check_model(m)
        return m


def tensor(name, *shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


# Each case builds a model for one opset and returns (model, pass, expected counts).

def conv_bn(b, bias=True, group=1, c_in=3, c_out=4, name="conv_bn"):
    w = b.weight(c_out, c_in // group, 3, 3)
    ins = ["x", w] + ([b.weight(c_out, prefix="b")] if bias else [])
    c = b.node("Conv", ins, pads=[1, 1, 1, 1], group=group)
    b.batch_norm(c, c_out, eps=1e-3, out="y")
    return b.model(name, [tensor("x", 1, c_in, 8, 8)], [tensor("y", 1, c_out, 8, 8)])


def case_conv_bn(b):
    return conv_bn(b), "fold_batch_norm", {"BatchNormalization": 0, "Conv": 1}


def case_conv_nobias_bn(b):
    return conv_bn(b, bias=False), "fold_batch_norm", {"BatchNormalization": 0, "Conv": 1}


def case_grouped_conv_bn(b):
    return conv_bn(b, group=2, c_in=4, c_out=6), "fold_batch_norm", {"BatchNormalization": 0, "Conv": 1}


def case_depthwise_conv_bn(b):
    w = b.weight(4, 1, 3, 3)
    c = b.node("Conv", ["x", w], pads=[1, 1, 1, 1], group=4, strides=[2, 2])
    bn = b.batch_norm(c, 4)
    b.node("Relu", [bn], ["y"])
    m = b.model("depthwise_conv_bn", [tensor("x", 1, 4, 8, 8)], [tensor("y", 1, 4, 4, 4)])
    return m, "fold_batch_norm", {"BatchNormalization": 0, "Conv": 1, "Relu": 1}


def case_convtranspose_bn(b):
    w = b.weight(4, 3, 3, 3)
    c = b.node("ConvTranspose", ["x", w, b.weight(3, prefix="b")], strides=[2, 2])
    b.batch_norm(c, 3, out="y")
    m = b.model("convtranspose_bn", [tensor("x", 1, 4, 5, 5)], [tensor("y", 1, 3, 11, 11)])
    return m, "fold_batch_norm", {"BatchNormalization": 0, "ConvTranspose": 1}


def case_convtranspose_grouped_bn(b):
    # C_in = 4, group = 2, weight [4, 2, 3, 3]: 4 output channels, scaled along axis 1 per group.
    w = b.weight(4, 2, 3, 3)
    c = b.node("ConvTranspose", ["x", w], group=2, pads=[1, 1, 1, 1])
    b.batch_norm(c, 4, out="y")
    m = b.model("convtranspose_grouped_bn", [tensor("x", 1, 4, 5, 5)], [tensor("y", 1, 4, 5, 5)])
    return m, "fold_batch_norm", {"BatchNormalization": 0, "ConvTranspose": 1}


def gemm_bn(b, trans_b):
    w = b.weight(6, 5) if trans_b else b.weight(5, 6)
    g = b.node("Gemm", ["x", w, b.weight(6, prefix="c")], transB=int(trans_b), alpha=0.7, beta=1.3)
    b.batch_norm(g, 6, out="y")
    m = b.model(f"gemm_bn_transb{int(trans_b)}", [tensor("x", 2, 5)], [tensor("y", 2, 6)])
    return m, "fold_batch_norm", {"BatchNormalization": 0, "Gemm": 1}


def case_gemm_bn_transb0(b):
    return gemm_bn(b, False)


def case_gemm_bn_transb1(b):
    return gemm_bn(b, True)


def case_shared_weight_conv_bn(b):
    # Two Convs read one weight; only the first is followed by a BatchNorm: the fold clones it.
    w = b.weight(4, 3, 3, 3)
    c1 = b.node("Conv", ["x", w], pads=[1, 1, 1, 1])
    b.batch_norm(c1, 4, out="y1")
    b.node("Conv", ["x", w], ["y2"], pads=[1, 1, 1, 1])
    m = b.model("shared_weight_conv_bn", [tensor("x", 1, 3, 6, 6)], [tensor("y1", 1, 4, 6, 6), tensor("y2", 1, 4, 6, 6)])
    return m, "fold_batch_norm", {"BatchNormalization": 0, "Conv": 2}


def case_conv_mul_add(b):
    c = b.node("Conv", ["x", b.weight(4, 3, 3, 3), b.weight(4, prefix="b")], pads=[1, 1, 1, 1])
    m1 = b.node("Mul", [c, b.init(b.rng.uniform(0.5, 2, (4, 1, 1)).astype(np.float32), "s")])
    a1 = b.node("Add", [b.init(b.rng.normal(0, 1, (1, 4, 1, 1)).astype(np.float32), "t"), m1])
    s1 = b.node("Sub", [a1, b.init(np.array(0.25, dtype=np.float32), "u")])
    c2 = b.node("Conv", [s1, b.weight(2, 4, 1, 1)])  # no bias: the Add below creates one
    m2 = b.node("Mul", [c2, b.init(np.array([3.0], dtype=np.float32), "k")])
    b.node("Add", [m2, b.init(b.rng.normal(0, 1, (2, 1, 1)).astype(np.float32), "t")], ["y"])
    m = b.model("conv_mul_add", [tensor("x", 1, 3, 6, 6)], [tensor("y", 1, 2, 6, 6)])
    return m, "fold_conv_mul_add", {"Mul": 0, "Add": 0, "Sub": 0, "Conv": 2}


def case_linear_mul_add(b):
    # Gemm -> Mul -> Add, and MatMul -> Add(bias) -> Mul -> Add.
    # C became optional in opset 11; before, a zero C stands in.
    c = [] if b.opset >= 11 else [b.init(np.zeros(6, dtype=np.float32), "c")]
    g = b.node("Gemm", ["x", b.weight(6, 5)] + c, transB=1)
    g = b.node("Mul", [g, b.init(b.rng.uniform(0.5, 2, 6).astype(np.float32), "s")])
    g = b.node("Add", [g, b.init(b.rng.normal(0, 1, (1, 6)).astype(np.float32), "t")])
    mm = b.node("MatMul", [g, b.weight(6, 3)])
    mm = b.node("Add", [mm, b.weight(3, prefix="bias")])
    mm = b.node("Mul", [mm, b.init(np.array(1.5, dtype=np.float32), "k")])
    b.node("Add", [mm, b.init(b.rng.normal(0, 1, 3).astype(np.float32), "t")], ["y"])
    m = b.model("linear_mul_add", [tensor("x", 2, 5)], [tensor("y", 2, 3)])
    return m, "fold_conv_mul_add", {"Mul": 0, "Add": 1, "Gemm": 1, "MatMul": 1}


def case_constant_weights(b):
    w = b.constant(b.rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32))
    bias = b.constant(b.rng.normal(0, 0.5, 4).astype(np.float32))
    c = b.node("Conv", ["x", w, bias], pads=[1, 1, 1, 1])
    if b.opset >= 12:
        # value_ints / value_float, which opset 12 introduced.
        shape = b.name("shape")
        b.nodes.append(helper.make_node("Constant", [], [shape], value_ints=[1, -1]))
        k = b.name("k")
        b.nodes.append(helper.make_node("Constant", [], [k], value_float=0.5))
        c = b.node("Mul", [b.node("Reshape", [c, shape]), k])
    else:
        c = b.node("Reshape", [c, b.constant(np.array([1, -1], dtype=np.int64))])
    b.node("Relu", [c], ["y"])
    m = b.model("constant_weights", [tensor("x", 1, 3, 5, 5)], [tensor("y", 1, 100)])
    return m, "constants_to_initializers", {"Constant": 0, "Conv": 1, "Reshape": 1}


def case_identity_dropout(b):
    a = b.node("Identity", ["x"])
    r = b.node("Relu", [a])
    d = b.dropout(r, mask=True)  # the mask output exists but nothing reads it
    d = b.node("Identity", [d])
    c = b.node("Conv", [d, b.weight(3, 3, 1, 1)])
    d2 = b.dropout(c, ratio=0.5)
    b.node("Identity", [d2], ["y"])  # the graph output keeps its name
    b.node("Identity", [r], ["r_out"])  # a second output, from an intermediate read elsewhere
    m = b.model("identity_dropout", [tensor("x", 1, 3, 4, 4)], [tensor("y", 1, 3, 4, 4), tensor("r_out", 1, 3, 4, 4)])
    return m, "remove_identity", {"Identity": 0, "Dropout": 0, "Relu": 1, "Conv": 1}


def case_shape_reshape(b):
    f = b.flatten_by_shape("x")
    b.node("Relu", [f], ["y"])
    m = b.model("shape_reshape", [tensor("x", 2, 3, 4, 5)], [tensor("y", 2, 60)])
    return m, "fold_constants", {"Shape": 0, "Slice": 0, "Concat": 0, "Reshape": 1}


def case_shape_gather(b):
    f = b.flatten_by_shape("x", use_gather=True)
    b.node("Relu", [f], ["y"])
    m = b.model("shape_gather", [tensor("x", 2, 3, 4, 5)], [tensor("y", 2, 60)])
    return m, "fold_constants", {"Shape": 0, "Gather": 0, "Unsqueeze": 0, "Concat": 0, "Reshape": 1}


def case_shape_dynamic(b):
    # A symbolic batch: the shape subgraph must stay, and the model must still run.
    f = b.flatten_by_shape("x")
    b.node("Relu", [f], ["y"])
    m = b.model("shape_dynamic", [tensor("x", "N", 3, 4, 5)], [tensor("y", "N", 60)])
    return m, "fold_constants", {"Shape": 1, "Concat": 1, "Reshape": 1, "rewrites": 0}


def case_mixed(b):
    # Constant weights -> Conv -> BN -> Relu -> Identity -> grouped Conv without bias -> Mul -> Add
    # -> Dropout -> flatten by shape (of an intermediate: needs shape inference) -> Gemm -> BN ->
    # Identity -> output, with a side branch that keeps its BatchNorm (after a Relu).
    c = b.node("Conv", ["x", b.constant(b.rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32)),
                        b.constant(b.rng.normal(0, 0.5, 4).astype(np.float32))], pads=[1, 1, 1, 1])
    c = b.node("Relu", [b.batch_norm(c, 4)])
    c = b.node("Identity", [c])
    c = b.node("Conv", [c, b.weight(4, 2, 3, 3)], group=2, pads=[1, 1, 1, 1], strides=[2, 2])
    c = b.node("Mul", [c, b.init(b.rng.uniform(0.5, 2, (1, 4, 1, 1)).astype(np.float32), "s")])
    c = b.node("Add", [c, b.init(b.rng.normal(0, 1, (4, 1, 1)).astype(np.float32), "t")])
    side = b.batch_norm(b.node("Relu", [c]), 4, out="side")
    c = b.dropout(c)
    f = b.flatten_by_shape(c, use_gather=True)
    g = b.node("Gemm", [f, b.weight(10, 36), b.weight(10, prefix="c")], transB=1)
    g = b.batch_norm(g, 10)
    b.node("Identity", [g], ["y"])
    m = b.model("mixed", [tensor("x", 1, 3, 6, 6)], [tensor("y", 1, 10), tensor(side, 1, 4, 3, 3)])
    expect = {"BatchNormalization": 1, "Identity": 0, "Dropout": 0, "Constant": 0, "Mul": 0, "Add": 0,
              "Shape": 0, "Gather": 0, "Unsqueeze": 0, "Concat": 0, "Conv": 2, "Gemm": 1, "Reshape": 1, "Relu": 2}
    return m, "standard", expect


def torch_export(b, dynamic):
    """A small CNN exported by torch.onnx the way users export: eval mode, but with
    TrainingMode.PRESERVE so the exporter does not fuse BatchNorm itself, and x.view(x.size(0), -1)
    as the flatten (a Shape/Gather/Unsqueeze/Concat subgraph when the batch is dynamic)."""
    import io

    import torch
    from torch import nn

    torch.manual_seed(b.opset)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
            self.c2, self.b2 = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8)
            self.ct, self.b3 = nn.ConvTranspose2d(8, 4, 2, stride=2), nn.BatchNorm2d(4)
            self.drop = nn.Dropout(0.2)
            self.fc, self.b4 = nn.Linear(4 * 8 * 8, 10), nn.BatchNorm1d(10)

        def forward(self, x):
            y = torch.relu(self.b1(self.c1(x)))
            y = torch.relu(self.b2(self.c2(y))) * 0.5 + 1.0
            y = self.drop(self.b3(self.ct(y)))
            return self.b4(self.fc(y.view(y.size(0), -1)))

    net = Net().eval()
    for m in net.modules():  # trained-looking statistics, so the folds matter numerically
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
    f = io.BytesIO()
    axes = {"x": {0: "N"}, "y": {0: "N"}} if dynamic else None
    torch.onnx.export(net, torch.randn(2, 3, 4, 4), f, opset_version=b.opset, do_constant_folding=False,
                      training=torch.onnx.TrainingMode.PRESERVE, input_names=["x"], output_names=["y"],
                      dynamic_axes=axes)
    m = onnx.load_from_string(f.getvalue())
    onnx.checker.check_model(m)
    expect = {"BatchNormalization": 0, "Constant": 0, "Dropout": 0, "Conv": 2, "ConvTranspose": 1, "Gemm": 1,
              "Reshape": 1, "Relu": 2}
    expect.update({"Shape": 1} if dynamic else {"Shape": 0, "Concat": 0, "Unsqueeze": 0, "Gather": 0})
    return m, "standard", expect


def case_torch_export(b):
    return torch_export(b, dynamic=False)


def case_torch_export_dynamic(b):
    return torch_export(b, dynamic=True)


CASES = [
    case_conv_bn, case_conv_nobias_bn, case_grouped_conv_bn, case_depthwise_conv_bn, case_convtranspose_bn,
    case_convtranspose_grouped_bn, case_gemm_bn_transb0, case_gemm_bn_transb1, case_shared_weight_conv_bn,
    case_conv_mul_add, case_linear_mul_add, case_constant_weights, case_identity_dropout, case_shape_reshape,
    case_shape_gather, case_shape_dynamic, case_mixed,
]
try:
    import torch  # noqa: F401  (optional: the exporter cases need it)
    CASES += [case_torch_export, case_torch_export_dynamic]
except ImportError:
    print("make_pass_models: torch not found, skipping the torch.onnx export cases", file=sys.stderr)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_pass_models.py OUT_DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    lines = []
    for i, case in enumerate(CASES):
        for opset in OPSETS:
            model, pass_name, expect = case(Builder(opset, seed=1000 * i + opset))
            file = f"{case.__name__[len('case_'):]}_op{opset}.onnx"
            tmp = os.path.join(out, file + ".tmp")
            onnx.save(model, tmp)
            os.replace(tmp, os.path.join(out, file))
            counts = " ".join(f"{op}={n}" for op, n in sorted(expect.items()))
            lines.append(f"{file}\t{pass_name}\t{counts}\n")
    with open(os.path.join(out, "manifest.txt.tmp"), "w") as f:
        f.writelines(lines)
    os.replace(os.path.join(out, "manifest.txt.tmp"), os.path.join(out, "manifest.txt"))
    print(f"make_pass_models: {len(lines)} models in {out}")


if __name__ == "__main__":
    main()
