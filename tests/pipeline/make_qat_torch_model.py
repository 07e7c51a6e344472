#!/usr/bin/env python3
"""A small QAT CNN trained with torch.ao.quantization fake quants, exported to ONNX QDQ.

Usage: make_qat_torch_model.py OUT_DIR

Model: QuantStub -> Conv-BN-ReLU (fused, ConvBnReLU2d) -> MaxPool -> Conv-BN (ConvBn2d) ->
add_relu(., pool) (FloatFunctional: one fake quant on its output) -> Flatten -> Linear -> DeQuantStub.
qconfig: FakeQuantize per-tensor affine quint8 activations (moving-average min-max) and
per-channel symmetric qint8 weights; 30 SGD steps on seeded random data, then observers and BN
statistics frozen. Writes, into OUT_DIR:
  qat.onnx        torch.onnx.export (opset 13): QuantizeLinear/DequantizeLinear on activations and
                  on the (BN-scaled) float weights
  float.onnx      qat.onnx with every Q->DQ pair removed (the float model the parameters belong to)
  qat_params.json the trained scale/zero point of every fake quant module, named by the ONNX
                  tensor it quantizes (the format of quench/pipeline/qat_export.hpp)
  input.npy       one batch; torch_out.npy: torch's fake-quant model output on it
"""
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.ao.quantization as tq


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(8)
        self.add = nn.quantized.FloatFunctional()
        self.fc = nn.Linear(8 * 4 * 4, 10)
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        p = self.pool(self.relu1(self.bn1(self.conv1(x))))
        y = self.add.add_relu(self.bn2(self.conv2(p)), p)
        return self.dequant(self.fc(torch.flatten(y, 1)))


def fake_quants(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, tq.FakeQuantize)]


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = Net()
    model.train()
    model = tq.fuse_modules_qat(model, [["conv1", "bn1", "relu1"], ["conv2", "bn2"]])
    model.qconfig = tq.QConfig(
        activation=tq.FakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                                             dtype=torch.quint8, qscheme=torch.per_tensor_affine),
        weight=tq.FakeQuantize.with_args(observer=tq.MovingAveragePerChannelMinMaxObserver, quant_min=-128,
                                         quant_max=127, dtype=torch.qint8, qscheme=torch.per_channel_symmetric))
    tq.prepare_qat(model, inplace=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(1)
    target_w = torch.randn(10, 3 * 8 * 8, generator=gen)
    for _ in range(30):
        x = torch.randn(16, 3, 8, 8, generator=gen) * 1.5 + 0.2
        loss = nn.functional.cross_entropy(model(x), (x.flatten(1) @ target_w.T).argmax(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.apply(tq.disable_observer)
    model.apply(torch.nn.intrinsic.qat.freeze_bn_stats)
    model.eval()

    x = torch.randn(4, 3, 8, 8, generator=gen) * 1.5 + 0.2
    with torch.no_grad():
        y = model(x)
    np.save(out / "input.npy", x.numpy())
    np.save(out / "torch_out.npy", y.numpy())
    torch.onnx.export(model, x, str(out / "qat.onnx"), opset_version=13, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, do_constant_folding=True)
    qat = onnx.load(str(out / "qat.onnx"))
    float_model, renamed = strip_qdq(onnx.load(str(out / "qat.onnx")))
    onnx.save(float_model, str(out / "float.onnx"))
    (out / "qat_params.json").write_text(json.dumps(params_json(model, qat, renamed), indent=1) + "\n")

    # The same model with 4-bit weights: every weight fake quant narrowed to [-8, 7] with its scale
    # widened by 127/7 (the observers are off, so the trained ranges stay as they were).
    for name, m in fake_quants(model):
        if m.qscheme == torch.per_channel_symmetric:
            # FakeQuantize.forward clamps to its observer's range (torch 1.13), so both change.
            m.quant_min, m.quant_max = -8, 7
            m.activation_post_process.quant_min, m.activation_post_process.quant_max = -8, 7
            m.scale.copy_(m.scale * (127.0 / 7.0))
    with torch.no_grad():
        np.save(out / "torch_out_int4.npy", model(x).numpy())
    (out / "qat_params_int4.json").write_text(json.dumps(params_json(model, qat, renamed), indent=1) + "\n")


def params_json(model, qat, renamed):
    """The fake quants' parameters, each under the name of the ONNX tensor its QuantizeLinear reads
    (as float.onnx names it: `renamed` maps a tensor that became a graph output to that name).

    torch.onnx.export names a fake quant's scale initializer '<module path>.scale', which ties
    each QuantizeLinear to its module."""
    modules = dict(model.named_modules())
    doc = {"format": "quench.qat_params", "version": 1, "activations": {}, "weights": {}}
    inits = {i.name for i in qat.graph.initializer}
    for n in qat.graph.node:
        if n.op_type != "QuantizeLinear":
            continue
        path = n.input[1][: -len(".scale")]
        fq = modules[path]
        if not isinstance(fq, tq.FakeQuantize):  # the module's activation_post_process
            fq = fq.activation_post_process
        assert isinstance(fq, tq.FakeQuantize), path
        # torch keeps dtype qint8 for a 4-bit fake quant ([-8, 7]); the file names the storage type.
        four_bit = (int(fq.quant_min), int(fq.quant_max)) == (-8, 7)
        entry = {"dtype": "int4" if four_bit else {torch.quint8: "uint8", torch.qint8: "int8"}[fq.dtype],
                 "quant_min": int(fq.quant_min), "quant_max": int(fq.quant_max)}
        if fq.qscheme in (torch.per_channel_symmetric, torch.per_channel_affine):
            entry.update(axis=int(fq.ch_axis), scales=[float(s) for s in fq.scale],
                         zero_points=[int(z) for z in fq.zero_point])
            doc["weights"][n.input[0]] = entry
        else:
            entry.update(scale=float(fq.scale), zero_point=int(fq.zero_point))
            name = renamed.get(n.input[0], n.input[0])
            doc["weights" if n.input[0] in inits else "activations"][name] = entry
    return doc


def strip_qdq(m):
    """Every QuantizeLinear -> DequantizeLinear pair removed: the float model (tensor names kept,
    except that a producer whose DQ was a graph output takes the output's name). Returns the model
    and {old producer output: graph output name}."""
    g = m.graph
    producer = {o: n for n in g.node for o in n.output}
    rename = {}
    drop = set()
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in producer and producer[n.input[0]].op_type == "QuantizeLinear":
            q = producer[n.input[0]]
            rename[n.output[0]] = q.input[0]
            drop.update([id(n), id(q)])
    outputs = {o.name for o in g.output}
    keep = [n for n in g.node if id(n) not in drop]
    took = {}
    for n in keep:  # graph outputs keep their names: the producer takes it
        for i, o in enumerate(n.output):
            for dq_out, src in rename.items():
                if src == o and dq_out in outputs:
                    n.output[i] = dq_out
                    took[o] = dq_out
                    rename = {k: (dq_out if v == o else v) for k, v in rename.items()}
    for n in keep:
        for i, name in enumerate(n.input):
            while name in rename:
                name = rename[name]
            n.input[i] = name
    used = {i for n in keep for i in n.input} | outputs
    changed = True
    while changed:  # dead nodes (the Identity nodes of the zero points)
        changed = False
        for n in list(keep):
            if not any(o in used for o in n.output):
                keep.remove(n)
                changed = True
        used = {i for n in keep for i in n.input} | outputs
    del g.node[:]
    g.node.extend(keep)
    inits = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)
    onnx.checker.check_model(m)
    return m, took

if __name__ == "__main__":
    main()
