#!/usr/bin/python3
"""Reference for quench's AdaRound (include/quench/recover/adaround.hpp), made by torch 1.13.

Usage:
  /usr/bin/python3 make_adaround_reference.py OUTPUT_DIR

A fixed small Conv layer (x [8, 4, 7, 7], W [6, 2, 3, 3], group 2, stride 2, pads 1, per-channel
4-bit scales) and a Gemm layer (x [64, 12], W [5, 12], transB) run the paper's AdaRound written
directly in torch, float32, autograd for the gradients, torch.optim.Adam for the steps:

  W_soft = s * clamp(floor(W / s) + h(V), qmin, qmax),  h(V) = clamp(sigmoid(V) * 1.2 - 0.1, 0, 1)
  V0     = -log(1.2 / (frac(W / s) + 0.1) - 1)
  loss   = ((layer(x, W) - layer(x, W_soft))^2).sum(channels).mean(positions)
           + (t >= warm) * lambda * sum(1 - |2 h(V) - 1|^beta),
  beta   = end + (start - end) / 2 * (1 + cos(pi * (t - warm) / (iters - warm)))   (AIMET's schedule)

V starts at V0 plus fixed noise (<case>_v0.npy; at V0 itself the gradient is rounding noise).
Full batch at every step (every output position of every sample), as quench optimizes. Files per
case: <case>_x.npy, <case>_w.npy, <case>_scale.npy, <case>_v.npy (V after the iterations, in W's
element order), <case>_q.npy (hard rounding, h >= 0.5, as int32).
"""
import math
import os
import sys

import numpy as np
import torch

ZETA, GAMMA = 1.1, -0.1
ITERS, LR, REG, WARMUP, BETA0, BETA1 = 40, 1e-2, 0.01, 0.2, 20.0, 2.0
QMIN, QMAX = -8, 7


def h_of(v):
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0, 1)


def run(layer, x, w, s):
    wf = torch.floor(w / s)
    rest = w / s - wf
    v = (-torch.log((ZETA - GAMMA) / (rest - GAMMA) - 1)).detach()
    # Start away from V0, where W_soft = W and the reconstruction gradient is zero up to rounding
    # noise, which Adam's first step would normalise to +-lr in either implementation.
    v0 = v + 0.5 * torch.randn(v.shape, generator=torch.Generator().manual_seed(9))
    v = v0.clone().requires_grad_(True)
    opt = torch.optim.Adam([v], lr=LR)
    y = layer(x, w).detach()
    warm = WARMUP * ITERS
    for t in range(ITERS):
        opt.zero_grad()
        ws = s * torch.clamp(wf + h_of(v), QMIN, QMAX)
        rec = ((y - layer(x, ws)) ** 2).sum(1).mean()
        loss = rec
        if t >= warm:
            beta = BETA1 + 0.5 * (BETA0 - BETA1) * (1 + math.cos((t - warm) / (ITERS - warm) * math.pi))
            loss = loss + REG * (1 - (2 * h_of(v) - 1).abs().pow(beta)).sum()
        loss.backward()
        opt.step()
    q = torch.clamp(wf + (h_of(v) >= 0.5).float(), QMIN, QMAX)
    return v0, v.detach(), q.to(torch.int32)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(5)

    def save(case, x, w, s, v0, v, q):
        np.save(os.path.join(out, case + "_v0.npy"), v0.numpy().astype(np.float32))
        np.save(os.path.join(out, case + "_x.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(out, case + "_w.npy"), w.numpy().astype(np.float32))
        np.save(os.path.join(out, case + "_scale.npy"), s.reshape(-1).numpy().astype(np.float32))
        np.save(os.path.join(out, case + "_v.npy"), v.numpy().astype(np.float32))
        np.save(os.path.join(out, case + "_q.npy"), q.numpy())

    x = torch.randn(8, 4, 7, 7, generator=g)
    w = torch.randn(6, 2, 3, 3, generator=g) * 0.3
    s = (w.abs().amax(dim=(1, 2, 3)) / 7.5).reshape(6, 1, 1, 1)
    conv = lambda x, w: torch.nn.functional.conv2d(x, w, stride=2, padding=1, groups=2)
    v0, v, q = run(conv, x, w, s)
    save("conv", x, w, s, v0, v, q)

    x = torch.randn(64, 12, generator=g)
    w = torch.randn(5, 12, generator=g) * 0.3
    s = (w.abs().amax(dim=1) / 7.5).reshape(5, 1)
    gemm = lambda x, w: x @ w.t()
    v0, v, q = run(gemm, x, w, s)
    save("gemm", x, w, s, v0, v, q)


if __name__ == "__main__":
    main()
