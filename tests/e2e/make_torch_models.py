#!/usr/bin/env python3
"""Exports the real-network test models with torch.onnx.export, and their inputs.

Usage: make_torch_models.py OUT_DIR [--size N] [--batch B] [--opsets 9,11,13,17]

Four architectures, random weights (seeded), each at every requested opset:
  resnet      ResNet-style CNN: Conv+BatchNorm+ReLU basic blocks with strided downsampling
  mobilenet   MobileNetV3-style: depthwise convs, HardSwish/HardSigmoid, squeeze-excitation
              (GlobalAveragePool), ReLU6 as Clip
  unet        U-Net-style segmentation: MaxPool down, ConvTranspose and bilinear Resize up, Concat
  transformer encoder block: MatMul attention with Softmax, LayerNorm (decomposed before
              opset 17), GELU (Erf)
Writes OUT_DIR/<name>_op<opset>.onnx, raw float32 inputs, and OUT_DIR/manifest.json in the format
of tests/ort/run_model.js. Batch is a dynamic axis in every model.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (self.down(x) if self.down is not None else x))


class ResNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        self.layers = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class SqueezeExcite(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // 4, 1)
        self.fc2 = nn.Conv2d(c // 4, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cexp, cout, stride, se):
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(cin, cexp, 1, bias=False), nn.BatchNorm2d(cexp), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(cexp, cexp, 3, stride, 1, groups=cexp, bias=False), nn.BatchNorm2d(cexp),
                                nn.ReLU6())
        self.se = SqueezeExcite(cexp) if se else nn.Identity()
        self.project = nn.Sequential(nn.Conv2d(cexp, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.residual else y


class MobileNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.blocks = nn.Sequential(InvertedResidual(16, 32, 16, 1, True), InvertedResidual(16, 48, 24, 2, False),
                                    InvertedResidual(24, 72, 24, 1, True), InvertedResidual(24, 96, 40, 2, True))
        self.head = nn.Linear(40, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def double_conv(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, 1, 1), nn.ReLU())


class UNet(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.d1, self.d2, self.d3 = double_conv(3, 16), double_conv(16, 32), double_conv(32, 64)
        self.up2 = nn.ConvTranspose2d(64, 32, 2, 2)
        self.u2 = double_conv(64, 32)
        self.u1 = double_conv(48, 16)
        self.out = nn.Conv2d(16, classes, 1)

    def forward(self, x):
        a = self.d1(x)
        b = self.d2(F.max_pool2d(a, 2))
        c = self.d3(F.max_pool2d(b, 2))
        u = self.u2(torch.cat([self.up2(c), b], 1))
        u = F.interpolate(u, scale_factor=2, mode="bilinear", align_corners=False)
        return self.out(self.u1(torch.cat([u, a], 1)))


class Encoder(nn.Module):
    def __init__(self, d=64, heads=4, ff=128, tokens=16):
        super().__init__()
        self.heads, self.d = heads, d
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff1, self.ff2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.tokens = tokens

    def forward(self, x):  # x: [B, T, D]
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-2, -1) / (d // self.heads) ** 0.5, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = self.n1(x + self.proj(y))
        return self.n2(x + self.ff2(F.gelu(self.ff1(x))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--opsets", default="9,11,13,17")
    ap.add_argument("--models", default="resnet,mobilenet,unet,transformer")
    ap.add_argument("--batchnorm", choices=["keep", "fold"], default="keep",
                    help="keep: export the ResNet's BatchNormalization nodes (TrainingMode.PRESERVE on the eval "
                         "model) so the executor runs them; fold: let the exporter fold them into Conv, as a "
                         "default export does")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    nets = {"resnet": ResNet(), "mobilenet": MobileNet(), "unet": UNet(), "transformer": Encoder()}
    cases = []
    for name in args.models.split(","):
        net = nets[name].eval()
        # BatchNorm statistics that are not the identity, so folding and normalisation are exercised.
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
        if name == "transformer":
            shape = (args.batch, 16, 64)
        else:
            shape = (args.batch, 3, args.size, args.size)
        x = rng.standard_normal(shape).astype(np.float32)
        x.tofile(out / f"{name}_input.bin")
        for opset in [int(o) for o in args.opsets.split(",")]:
            path = out / f"{name}_op{opset}.onnx"
            with torch.no_grad():
                keep_bn = name == "resnet" and args.batchnorm == "keep"
                torch.onnx.export(net, torch.from_numpy(x), str(path), opset_version=opset, input_names=["input"],
                                  output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                                  do_constant_folding=True,
                                  training=torch.onnx.TrainingMode.PRESERVE if keep_bn else torch.onnx.TrainingMode.EVAL)
            (out / f"{name}_op{opset}").mkdir(exist_ok=True)  # ORT's outputs go here
            cases.append({"name": f"{name}_op{opset}", "model": path.name, "dir": f"{name}_op{opset}",
                          "feeds": [{"name": "input", "dtype": "float32", "dims": list(shape),
                                     "file": f"{name}_input.bin"}]})
    (out / "manifest.json").write_text(json.dumps({"cases": cases}, indent=1))
    print(f"exported {len(cases)} models to {out}")


if __name__ == "__main__":
    main()
