#!/usr/bin/env python3
"""Makes the models of issue 11's "proof on models no one here wrote" (bench/recover/run_table.py).

Usage: /usr/bin/python3 bench/recover/make_models.py OUT_DIR [--node NODE --run-npy tests/ort/run_npy.js]

Writes into OUT_DIR:
  mbv2_digits.onnx        MobileNetV2-style CNN (inverted residual blocks: 1x1 expand Conv-ReLU,
                          3x3 depthwise Conv-ReLU, 1x1 project Conv, residual Adds; BatchNorm folded
                          in torch before export), trained on scikit-learn's 8x8 digits upsampled to
                          16x16 (one channel), opset 13, input "input" [N,1,16,16], output "logits".
  mbv2_digits_hard.onnx   the same function after an exact rescaling: every conv whose output goes
                          through a ReLU (or a GlobalAveragePool) into exactly one next layer has its
                          output channels multiplied by factors drawn log-uniformly from [1/64, 64],
                          and the next layer's matching input channels divided by them (ReLU and
                          averaging are positively homogeneous, so the float function is unchanged;
                          ReLU6 would not be, which is why the network uses ReLU).
  mbv2_calib.npy / mbv2_test.npy / mbv2_test_labels.npy
                          256 calibration images (from the training split), 500 held-out test
                          images (the same split as examples/data/digits) and their labels.
  outlier_transformer.onnx
                          a small pre-LN transformer (embedding MatMul from [N,T,32] to D=64, two
                          blocks of LayerNormalization -> MatMul QKV -> 4-head attention (MatMul,
                          Softmax) -> MatMul out + residual, LayerNormalization -> MatMul-Gelu-MatMul +
                          residual, final LayerNormalization and a MatMul head), opset 17, input
                          "input" [N,16,32]. Random but fixed weights (seeded, not trained); evaluated
                          by output SQNR. Every LayerNormalization's gamma is multiplied by 50-100 on
                          3 channels and the matching rows of the next MatMul's weight divided by the
                          same factors: the function is the one of the ordinary network, but those
                          activation channels are 50-100x above the rest, as in real LLMs.
  transformer_calib.npy / transformer_test.npy
                          256 / 128 inputs [.,16,32] drawn from N(0, 1).
  models.json             FP32 accuracies, the rescaling check (max relative output difference) and
                          the outlier ratios, for run_table.py.

Deterministic: seeded, single-threaded; a few tens of seconds on one CPU core.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 0
N_TEST = 500
N_CALIB = 256
EPOCHS = 30
BATCH = 64
LR = 3e-3
SIZE = 16
SCALE_LO, SCALE_HI = 1.0 / 64, 64.0


# ---------------------------------------------------------------- data (the split of examples/data/digits)
def load_splits():
    """(x_train, y_train, x_calib, x_test, y_test): the split of examples/data/digits/make_digits.py,
    images upsampled bilinearly from 8x8 to SIZE x SIZE."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    x = F.interpolate(torch.from_numpy(x), size=(SIZE, SIZE), mode="bilinear", align_corners=False).numpy()
    y = d.target.astype(np.int64)
    perm = np.random.RandomState(SEED).permutation(len(x))
    test_idx, train_idx = perm[:N_TEST], perm[N_TEST:]
    calib_idx = train_idx[np.random.RandomState(SEED + 1).choice(len(train_idx), N_CALIB, replace=False)]
    return (x[train_idx], y[train_idx], np.ascontiguousarray(x[calib_idx]),
            np.ascontiguousarray(x[test_idx]), y[test_idx])


# ---------------------------------------------------------------- MobileNetV2-style network
def conv_bn(cin, cout, k, stride=1, groups=1, relu=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand=4):
        super().__init__()
        c = cin * expand
        self.expand = conv_bn(cin, c, 1)
        self.dw = conv_bn(c, c, 3, stride, groups=c)
        self.project = conv_bn(c, cout, 1, relu=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.dw(self.expand(x)))
        return x + y if self.residual else y


class MobileNetV2Digits(nn.Module):
    """1x16x16 -> 10 logits: stem, five inverted residual blocks (three with a skip), 1x1 head,
    global average pool, linear classifier."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 16, 3)
        self.blocks = nn.Sequential(
            InvertedResidual(16, 16, 1), InvertedResidual(16, 24, 2), InvertedResidual(24, 24, 1),
            InvertedResidual(24, 32, 2), InvertedResidual(32, 32, 1))
        self.head = conv_bn(32, 128, 1)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def fold_bn(model):
    """Replaces every Conv+BatchNorm of the trained (eval) model by one Conv with a bias, in place."""
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        if len(seq) >= 2 and isinstance(seq[0], nn.Conv2d) and isinstance(seq[1], nn.BatchNorm2d):
            conv, bn = seq[0], seq[1]
            std = torch.sqrt(bn.running_var + bn.eps)
            k = bn.weight / std
            folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                               groups=conv.groups, bias=True)
            with torch.no_grad():
                folded.weight.copy_(conv.weight * k.reshape(-1, 1, 1, 1))
                folded.bias.copy_(bn.bias - bn.running_mean * k)
            seq[0] = folded
            seq[1] = nn.Identity()
    return model


def rescale_hard(model, rng):
    """The function-preserving rescaling (see the module docstring). Returns the pairs rescaled."""
    def factors(n):
        return torch.from_numpy(np.exp(rng.uniform(np.log(SCALE_LO), np.log(SCALE_HI), n)).astype(np.float32))

    pairs = []
    with torch.no_grad():
        for i, b in enumerate(model.blocks):
            e, d, p = b.expand[0], b.dw[0], b.project[0]
            # expand -> ReLU -> depthwise: depthwise channel c reads only expand channel c.
            s = factors(e.out_channels)
            e.weight.mul_(s.reshape(-1, 1, 1, 1))
            e.bias.mul_(s)
            d.weight.div_(s.reshape(-1, 1, 1, 1))
            pairs.append(f"blocks.{i}.expand -> blocks.{i}.dw")
            # depthwise -> ReLU -> project.
            s = factors(d.out_channels)
            d.weight.mul_(s.reshape(-1, 1, 1, 1))
            d.bias.mul_(s)
            p.weight.div_(s.reshape(1, -1, 1, 1))
            pairs.append(f"blocks.{i}.dw -> blocks.{i}.project")
        # head -> ReLU -> GlobalAveragePool -> fc.
        h = model.head[0]
        s = factors(h.out_channels)
        h.weight.mul_(s.reshape(-1, 1, 1, 1))
        h.bias.mul_(s)
        model.fc.weight.div_(s.reshape(1, -1))
        pairs.append("head -> fc")
    return pairs


def train_mbv2(x_tr, y_tr):
    torch.manual_seed(SEED)
    model = MobileNetV2Digits()
    opt = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(EPOCHS):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        for s in range(0, len(xt), BATCH):
            idx = order[s:s + BATCH]
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()


# ---------------------------------------------------------------- outlier transformer
class Block(nn.Module):
    def __init__(self, d, heads, hidden):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x):
        n, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q = q.reshape(n, t, h, d // h).transpose(1, 2)
        k = k.reshape(n, t, h, d // h).transpose(1, 2)
        v = v.reshape(n, t, h, d // h).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) / float(np.sqrt(d // h)), dim=-1)
        x = x + self.out((a @ v).transpose(1, 2).reshape(n, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class OutlierTransformer(nn.Module):
    def __init__(self, din=32, d=64, heads=4, hidden=128, blocks=2):
        super().__init__()
        self.embed = nn.Linear(din, d)
        self.blocks = nn.Sequential(*[Block(d, heads, hidden) for _ in range(blocks)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, d)

    def forward(self, x):
        return self.head(self.ln(self.blocks(self.embed(x))))


def make_transformer(rng):
    torch.manual_seed(SEED)
    model = OutlierTransformer().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):  # an ordinary (trained-looking) LayerNorm first
                m.weight.copy_(torch.from_numpy(rng.uniform(0.8, 1.2, m.weight.shape).astype(np.float32)))
                m.bias.copy_(torch.from_numpy(rng.normal(0, 0.05, m.bias.shape).astype(np.float32)))
    ref = OutlierTransformer().eval()
    ref.load_state_dict(model.state_dict())
    # Outliers: gamma and beta x f on 3 channels, the next MatMul's rows / f.
    outliers = {}
    with torch.no_grad():
        followers = [(b.ln1, [b.qkv]) for b in model.blocks] + [(b.ln2, [b.fc1]) for b in model.blocks]
        followers.append((model.ln, [model.head]))
        for ln, nexts in followers:
            ch = rng.choice(ln.weight.shape[0], 3, replace=False)
            f = rng.uniform(50, 100, 3).astype(np.float32)
            for c, fc in zip(ch, f):
                ln.weight[c] *= float(fc)
                ln.bias[c] *= float(fc)
                for lin in nexts:
                    lin.weight[:, c] /= float(fc)
            outliers[id(ln)] = (ch.tolist(), f.tolist())
    return ref, model, [v for v in outliers.values()]


# ---------------------------------------------------------------- checks
def rel_diff(a, b):
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))


def ort_outputs(node, run_npy, model_path, x):
    """The model's first output in ONNX Runtime (onnxruntime-node) on x, or None without node."""
    if not node:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        xin = os.path.join(tmp, "x.npy")
        np.save(xin, x)
        subprocess.run([node, run_npy, model_path, "--input", f"input={xin}", "--output-dir", tmp, "--threads", "1"],
                       check=True, stdout=subprocess.DEVNULL)
        outs = [f for f in os.listdir(tmp) if f != "x.npy"]
        assert len(outs) == 1, outs
        return np.load(os.path.join(tmp, outs[0]))


def export(model, example, path, opset, output, fold=True):
    # fold=False keeps the BatchNormalization nodes (an eval-mode export merges them into the
    # convs; TrainingMode.PRESERVE of a model in eval mode writes them as inference BatchNorms),
    # so quench's data-free steps can read their statistics.
    extra = {} if fold else {"do_constant_folding": False, "training": torch.onnx.TrainingMode.PRESERVE}
    torch.onnx.export(model, example, path, opset_version=opset, input_names=["input"], output_names=[output],
                      dynamic_axes={"input": {0: "batch"}, output: {0: "batch"}}, **extra)
    onnx.checker.check_model(onnx.load(path), full_check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--node", default="", help="node, to check the exports in ONNX Runtime")
    ap.add_argument("--run-npy", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "ort", "run_npy.js"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    info = {}
    t0 = time.time()

    # MobileNetV2 on digits.
    x_tr, y_tr, x_cal, x_te, y_te = load_splits()
    model = train_mbv2(x_tr, y_tr)
    with torch.no_grad():
        acc_bn = float((model(torch.from_numpy(x_te)).argmax(1).numpy() == y_te).mean())
    p_bn = os.path.join(args.out, "mbv2_digits_bn.onnx")
    export(model, torch.from_numpy(x_te[:1]), p_bn, 13, "logits", fold=False)
    n_bn = sum(n.op_type == "BatchNormalization" for n in onnx.load(p_bn).graph.node)
    print(f"mbv2_digits_bn: the same network with its {n_bn} BatchNormalization nodes kept")
    with torch.no_grad():
        fold_bn(model)
        plain = model(torch.from_numpy(x_te)).numpy()
    acc = float((plain.argmax(1) == y_te).mean())
    print(f"mbv2_digits: {sum(p.numel() for p in model.parameters())} parameters, FP32 test top-1 "
          f"{100 * acc:.2f}% ({N_TEST} images; {100 * acc_bn:.2f}% before BN folding), trained in {time.time() - t0:.1f} s")
    if acc < 0.95:
        sys.exit(f"make_models: MobileNetV2 test top-1 {acc:.4f} below 0.95")
    p_plain = os.path.join(args.out, "mbv2_digits.onnx")
    export(model, torch.from_numpy(x_te[:1]), p_plain, 13, "logits")

    pairs = rescale_hard(model, np.random.RandomState(SEED + 2))
    with torch.no_grad():
        hard = model(torch.from_numpy(x_te)).numpy()
    p_hard = os.path.join(args.out, "mbv2_digits_hard.onnx")
    export(model, torch.from_numpy(x_te[:1]), p_hard, 13, "logits")
    d_torch = rel_diff(plain, hard)
    spread = max(float(m.weight.abs().amax(dim=(1, 2, 3)).max() / m.weight.abs().amax(dim=(1, 2, 3)).min())
                 for m in model.modules() if isinstance(m, nn.Conv2d))
    print(f"mbv2_digits_hard: {len(pairs)} rescaled pairs, factors in [1/64, 64]; largest per-channel weight "
          f"range spread of a conv {spread:.0f}x; max |hard - plain| / max |plain| over the test logits: "
          f"{d_torch:.2e} (torch)", end="")
    d_ort = None
    o_plain, o_hard = ort_outputs(args.node, args.run_npy, p_plain, x_te), ort_outputs(args.node, args.run_npy, p_hard, x_te)
    if o_plain is not None:
        d_ort = rel_diff(o_plain, o_hard)
        print(f", {d_ort:.2e} (ONNX Runtime; ORT vs torch {rel_diff(plain, o_plain):.2e})", end="")
    print()
    if d_torch > 1e-4 or (d_ort is not None and d_ort > 1e-4):
        sys.exit("make_models: the rescaling changed the function")
    np.save(os.path.join(args.out, "mbv2_calib.npy"), x_cal)
    np.save(os.path.join(args.out, "mbv2_test.npy"), x_te)
    np.save(os.path.join(args.out, "mbv2_test_labels.npy"), y_te)
    info["mbv2_digits"] = {"fp32_top1": acc, "params": sum(p.numel() for p in model.parameters())}
    info["mbv2_digits_hard"] = {"fp32_top1": float((hard.argmax(1) == y_te).mean()), "rel_diff_torch": d_torch,
                                "rel_diff_ort": d_ort, "pairs": pairs, "max_weight_spread": spread}

    # Outlier transformer.
    rng = np.random.RandomState(SEED + 3)
    t_cal = rng.normal(0, 1, (N_CALIB, 16, 32)).astype(np.float32)
    t_te = rng.normal(0, 1, (128, 16, 32)).astype(np.float32)
    ref, tr, outliers = make_transformer(np.random.RandomState(SEED + 4))
    with torch.no_grad():
        y_ref = ref(torch.from_numpy(t_te)).numpy()
        y_out = tr(torch.from_numpy(t_te)).numpy()
        acts = tr.blocks[0].ln1(tr.embed(torch.from_numpy(t_te))).abs().amax(dim=(0, 1)).numpy()
    ch = outliers[0][0]
    rest = np.delete(acts, ch)
    ratio = float(acts[ch].min() / np.median(rest))
    d_tr = rel_diff(y_ref, y_out)
    p_tr = os.path.join(args.out, "outlier_transformer.onnx")
    export(tr, torch.from_numpy(t_te[:1]), p_tr, 17, "output")
    ops = sorted({n.op_type for n in onnx.load(p_tr).graph.node})
    print(f"outlier_transformer: random fixed weights (not trained), ops {', '.join(ops)}; first LayerNorm output "
          f"channels {ch} are >= {ratio:.0f}x the median channel's max |x|; outliers vs ordinary network: max rel "
          f"diff {d_tr:.2e} (torch)", end="")
    o_tr = ort_outputs(args.node, args.run_npy, p_tr, t_te)
    if o_tr is not None:
        print(f", ONNX Runtime vs torch {rel_diff(y_out, o_tr):.2e}", end="")
    print()
    if "LayerNormalization" not in ops or d_tr > 1e-4:
        sys.exit("make_models: transformer export is not what was meant")
    np.save(os.path.join(args.out, "transformer_calib.npy"), t_cal)
    np.save(os.path.join(args.out, "transformer_test.npy"), t_te)
    info["outlier_transformer"] = {"outlier_channels": ch, "outlier_ratio": ratio, "rel_diff_torch": d_tr,
                                   "trained": False}
    with open(os.path.join(args.out, "models.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"make_models: wrote {args.out} in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
