#!/usr/bin/python3
"""Reference pruning masks from torch.nn.utils.prune, for tests/prune/prune_test.cpp.

Usage: /usr/bin/python3 make_prune_reference.py OUTPUT_DIR

Every case prunes the weights of real torch modules (nn.Linear, nn.Conv2d) with the functions of
torch.nn.utils.prune -- l1_unstructured, ln_structured, global_unstructured -- once or twice in a row
(the second call goes through torch's PruningContainer), and saves the weights and the final
`weight_mask` buffers. Weights are seeded normal values, re-drawn until no two magnitudes (and no two
channel norms) coincide, because torch.topk leaves the choice among ties unspecified.

Writes OUTPUT_DIR/cases.json:
  {"cases": [{"name", "weights": [files], "masks": [files],
              "steps": [{"method": "l1" | "ln" | "global", "amount": x, "count": bool,
                         "n": number or "inf" / "-inf", "dim": d}]}]}
and the .npy files (weights float32, masks uint8).
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.utils.prune as prune

SEED = 20240807


def distinct(w):
    a = np.abs(w).reshape(-1)
    return len(np.unique(a)) == a.size


def channel_norms_distinct(w, n):
    for dim in range(w.ndim):
        dims = [d for d in range(w.ndim) if d != dim]
        norms = torch.norm(torch.from_numpy(w), p=n, dim=dims).numpy()
        if len(np.unique(norms)) != norms.size:
            return False
        srt = np.sort(norms)
        if np.any(np.diff(srt) < 1e-5 * np.abs(srt[1:])):  # torch's float32 norms vs quench's double
            return False
    return True


def make_weight(rng, shape):
    while True:
        w = rng.standard_normal(shape).astype(np.float32)
        if distinct(w) and all(channel_norms_distinct(w, n) for n in (1, 2, math.inf)):
            return w


def module_for(shape):
    if len(shape) == 2:
        m = nn.Linear(shape[1], shape[0])
    else:
        m = nn.Conv2d(shape[1], shape[0], shape[2])
    return m


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    cases = []

    def run(name, shapes, steps):
        weights = [make_weight(rng, s) for s in shapes]
        modules = []
        for w in weights:
            m = module_for(w.shape)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(w))
            modules.append(m)
        for step in steps:
            amount = int(step["amount"]) if step["count"] else float(step["amount"])
            if step["method"] == "l1":
                prune.l1_unstructured(modules[0], "weight", amount=amount)
            elif step["method"] == "ln":
                n = {"inf": math.inf, "-inf": -math.inf}.get(step["n"], step["n"])
                prune.ln_structured(modules[0], "weight", amount=amount, n=n, dim=step["dim"])
            elif step["method"] == "global":
                prune.global_unstructured([(m, "weight") for m in modules], pruning_method=prune.L1Unstructured,
                                          amount=amount)
        files_w, files_m = [], []
        for i, (w, m) in enumerate(zip(weights, modules)):
            fw, fm = "%s.%d.w.npy" % (name, i), "%s.%d.mask.npy" % (name, i)
            np.save(os.path.join(out, fw), w)
            mask = getattr(m, "weight_mask", torch.ones_like(m.weight)).detach().numpy().astype(np.uint8)
            np.save(os.path.join(out, fm), mask)
            files_w.append(fw)
            files_m.append(fm)
        cases.append({"name": name, "weights": files_w, "masks": files_m, "steps": steps})

    def l1(amount, count=False):
        return {"method": "l1", "amount": amount, "count": count}

    def ln(amount, n, dim, count=False):
        return {"method": "ln", "amount": amount, "count": count, "n": n, "dim": dim}

    def glob(amount, count=False):
        return {"method": "global", "amount": amount, "count": count}

    # l1_unstructured: fractions (Python round half to even) and counts, Linear and Conv.
    for amount in (0.1, 0.3, 0.5, 0.7, 0.9):
        run("l1_5_%g" % amount, [(5, 1)], [l1(amount)])  # 5 weights: 0, 2, 2, 4, 4 pruned
    for amount, count in ((0.3, False), (0.5, False), (0.0, False), (1.0, False), (7, True), (0, True), (1, True)):
        run("l1_linear_%g%s" % (amount, "n" if count else ""), [(20, 30)], [l1(amount, count)])
    run("l1_conv_0.45", [(8, 4, 3, 3)], [l1(0.45)])
    # ln_structured for n = 1, 2, inf along dims 0 and 1.
    for n in (1, 2, "inf"):
        for dim in (0, 1):
            run("ln_conv_n%s_dim%d" % (n, dim), [(8, 6, 3, 3)], [ln(0.25, n, dim)])
            run("ln_linear_n%s_dim%d" % (n, dim), [(10, 12)], [ln(3, n, dim, True)])
    run("ln_conv_n2_dim-1", [(8, 6, 3, 3)], [ln(0.5, 2, -1)])
    run("ln_linear_n-inf_dim0", [(10, 12)], [ln(0.3, "-inf", 0)])
    run("ln_linear_n3_dim1", [(10, 12)], [ln(0.4, 3, 1)])
    # global_unstructured over three modules.
    run("global_0.4", [(10, 12), (8, 4, 3, 3), (5, 10)], [glob(0.4)])
    run("global_50n", [(10, 12), (8, 4, 3, 3), (5, 10)], [glob(50, True)])
    # Two rounds: the second amount applies to what the first left (PruningContainer).
    run("iter_l1_l1", [(20, 30)], [l1(0.3), l1(0.3)])
    run("iter_l1_l1_count", [(20, 30)], [l1(0.5), l1(100, True)])
    run("iter_l1_ln", [(8, 6, 3, 3)], [l1(0.5), ln(0.25, 2, 0)])
    run("iter_ln_l1", [(10, 12)], [ln(0.5, 1, 1), l1(0.4)])
    run("iter_ln_ln", [(8, 6, 3, 3)], [ln(0.25, 2, 0), ln(0.5, 1, 1)])
    run("iter_ln_ln_same_dim", [(16, 6, 3, 3)], [ln(0.25, 2, 0), ln(0.25, 2, 0)])
    run("iter_global_global", [(10, 12), (8, 4, 3, 3)], [glob(0.3), glob(0.3)])

    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump({"cases": cases}, f, indent=1)
    print("wrote %d pruning cases to %s" % (len(cases), out))


if __name__ == "__main__":
    main()
