#!/usr/bin/env python3
"""Makes the bundled example model and data in examples/data/digits/.

A small CNN trained on scikit-learn's bundled 8x8 digits (no download), exported to ONNX,
plus the calibration and held-out test images quench's quick start quantizes and scores with.
The network is tiny but holds what an INT8 quantizer has to get right: Conv+BN+ReLU
(BN folded by the exporter), a residual Add whose two inputs carry different ranges, MaxPool,
Flatten and two Gemm layers.

Run: /usr/bin/python3 examples/data/digits/make_digits.py [OUTDIR]   (default: this folder)
Same machine and torch build -> same bytes; training is seeded and single-threaded.
"""
import os
import sys

import numpy as np
import onnx
import onnx.helper
import onnx.numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 0
N_TEST = 500
N_CALIB = 256
EPOCHS = 40
BATCH = 64
LR = 3e-3


class DigitsCNN(nn.Module):
    """1x8x8 -> 10 logits, about 18k parameters."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(16)
        self.res1 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.res1_bn = nn.BatchNorm2d(16)
        self.res2 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.res2_bn = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.conv3_bn = nn.BatchNorm2d(32)
        self.fc1 = nn.Linear(32 * 2 * 2, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        # Identity skip: the Add sees the post-ReLU stem (non-negative) and a signed BN output,
        # so its two inputs need different int8 scales.
        y = F.relu(self.res1_bn(self.res1(x)))
        y = self.res2_bn(self.res2(y))
        x = F.relu(x + y)
        x = F.max_pool2d(x, 2)                      # 16x4x4
        x = F.relu(self.conv3_bn(self.conv3(x)))
        x = F.max_pool2d(x, 2)                      # 32x2x2
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


def load_splits():
    """(x_train, y_train, x_calib, x_test, y_test); calib is drawn from train, never from test."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    perm = np.random.RandomState(SEED).permutation(len(x))
    test_idx, train_idx = perm[:N_TEST], perm[N_TEST:]
    calib_idx = train_idx[np.random.RandomState(SEED + 1).choice(len(train_idx), N_CALIB, replace=False)]
    return (x[train_idx], y[train_idx], np.ascontiguousarray(x[calib_idx]),
            np.ascontiguousarray(x[test_idx]), y[test_idx])


def top1(logits, labels):
    return float((np.asarray(logits).argmax(1) == labels).mean())


# No onnxruntime for python on Debian, so the export is run by this small numpy interpreter,
# enough for the ops the exporter emits for DigitsCNN; an op outside that list is an error, not
# a silent skip.
def _conv(x, w, b, pads, strides, dilations, group):
    assert group == 1 and all(d == 1 for d in dilations)
    n, c, h, wd = x.shape
    m, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (xp.shape[2] - kh) // strides[0] + 1
    ow = (xp.shape[3] - kw) // strides[1] + 1
    out = np.zeros((n, m, oh, ow), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + strides[0] * oh:strides[0], j:j + strides[1] * ow:strides[1]]
            out += np.einsum("nchw,mc->nmhw", patch, w[:, :, i, j])
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def _maxpool(x, k, s, pads):
    assert not any(pads)
    n, c, h, w = x.shape
    oh, ow = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
    out = np.full((n, c, oh, ow), -np.inf)
    for i in range(k[0]):
        for j in range(k[1]):
            out = np.maximum(out, x[:, :, i:i + s[0] * oh:s[0], j:j + s[1] * ow:s[1]])
    return out


def run_onnx(model, x):
    env = {t.name: onnx.numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    env[model.graph.input[0].name] = x.astype(np.float64)
    for node in model.graph.node:
        a = {at.name: onnx.helper.get_attribute_value(at) for at in node.attribute}
        ins = [env[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Conv":
            k = len(ins[1].shape) - 2
            r = _conv(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a.get("pads", [0] * 2 * k),
                      a.get("strides", [1] * k), a.get("dilations", [1] * k), a.get("group", 1))
        elif op == "Relu":
            r = np.maximum(ins[0], 0)
        elif op == "Add":
            r = ins[0] + ins[1]
        elif op == "MaxPool":
            k = a["kernel_shape"]
            r = _maxpool(ins[0], k, a.get("strides", [1] * len(k)), a.get("pads", [0] * 2 * len(k)))
        elif op == "Flatten":
            ax = a.get("axis", 1)
            r = ins[0].reshape(int(np.prod(ins[0].shape[:ax])), -1)
        elif op == "Gemm":
            A = ins[0].T if a.get("transA", 0) else ins[0]
            B = ins[1].T if a.get("transB", 0) else ins[1]
            r = a.get("alpha", 1.0) * A @ B
            if len(ins) > 2:
                r = r + a.get("beta", 1.0) * ins[2]
        else:
            raise NotImplementedError("run_onnx: op " + op)
        env[node.output[0]] = r
    return env[model.graph.output[0].name]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    x_tr, y_tr, x_cal, x_te, y_te = load_splits()
    model = DigitsCNN()
    print("parameters:", sum(p.numel() for p in model.parameters()))
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        for s in range(0, len(xt), BATCH):
            idx = order[s:s + BATCH]
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()

    model.eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(x_te)).numpy()
    acc_torch = top1(ref, y_te)
    print(f"fp32 torch top1 on {N_TEST} test images: {acc_torch:.4f}")
    if acc_torch < 0.97:
        sys.exit(f"make_digits: test top1 {acc_torch:.4f} below 0.97")

    onnx_path = os.path.join(out, "digits_cnn.onnx")
    torch.onnx.export(model, torch.from_numpy(x_te[:1]), onnx_path, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    m = onnx.load(onnx_path)
    onnx.checker.check_model(m, full_check=True)
    got = run_onnx(m, x_te)
    print(f"fp32 onnx  top1 on {N_TEST} test images: {top1(got, y_te):.4f}"
          f"  (max |onnx - torch| logit {np.abs(got - ref).max():.2e},"
          f" argmax agreement {(got.argmax(1) == ref.argmax(1)).mean():.4f})")

    np.save(os.path.join(out, "digits_calib.npy"), x_cal)
    np.save(os.path.join(out, "digits_test.npy"), x_te)
    np.save(os.path.join(out, "digits_test_labels.npy"), y_te)
    np.savez(os.path.join(out, "digits_cnn_weights.npz"),
             **{k: v.detach().numpy() for k, v in model.state_dict().items()})


if __name__ == "__main__":
    main()
