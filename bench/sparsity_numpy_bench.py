#!/usr/bin/python3
"""Baselines for bench/sparsity_bench.cpp: apex ASP's m4n2_1d, vectorised, in torch and in numpy.

Usage: /usr/bin/python3 sparsity_numpy_bench.py WEIGHTS.npy MASK_OUT.npy

Reads the float32 weights the C++ benchmark wrote (a Linear [K, C] or a Conv [K, C, R, S] weight),
computes the 2:4 mask as ASP's sparse_masklib does -- create_mask's reshape to rows of input
channels, |w| @ patterns.T over the six patterns in Python's set order, argmax, gather -- once with
torch (ASP's own code path, on the CPU) and once with numpy, each the best of three runs, and prints
one JSON line {"torch_s", "numpy_s", "same"}; the mask (torch's) goes to MASK_OUT.npy so the C++ side
can check it computed the same one. The C++ kernel is single-threaded, so the baselines run on one
thread too (torch.set_num_threads(1); the benchmark sets OMP/OPENBLAS_NUM_THREADS=1).
"""

import json
import sys
import time
from itertools import permutations

import numpy as np
import torch

torch.set_num_threads(1)

PATTERNS = list(set(permutations([1.0, 1.0, 0.0, 0.0])))  # ASP's order: a Python set of float tuples


def rows_of(t):
    """create_mask's 2-D view: groups of four along the input channels."""
    if t.dim() == 2:
        return t, lambda m: m
    k, c, r, s = t.shape
    v = t.permute(2, 3, 0, 1).contiguous().view(r * s * k, c)
    return v, lambda m: m.view(r, s, k, c).permute(2, 3, 0, 1).contiguous()


def mask_torch(w):
    patterns = torch.tensor(PATTERNS)
    mat, back = rows_of(w.float())
    scores = torch.matmul(mat.reshape(-1, 4).abs(), patterns.t())
    mask = patterns[torch.argmax(scores, dim=1)].view(mat.shape)
    return back(mask)


def mask_numpy(w):
    patterns = np.array(PATTERNS, np.float32)
    if w.ndim == 2:
        mat = w
    else:
        k, c, r, s = w.shape
        mat = np.ascontiguousarray(w.transpose(2, 3, 0, 1)).reshape(r * s * k, c)
    scores = np.abs(mat.reshape(-1, 4)) @ patterns.T
    mask = patterns[np.argmax(scores, axis=1)].reshape(mat.shape)
    if w.ndim == 2:
        return mask
    return np.ascontiguousarray(mask.reshape(r, s, k, c).transpose(2, 3, 0, 1))


def best_of(f, runs=3):
    best, out = float("inf"), None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main():
    w = np.load(sys.argv[1])
    wt = torch.from_numpy(w)
    torch_s, mt = best_of(lambda: mask_torch(wt))
    numpy_s, mn = best_of(lambda: mask_numpy(w))
    mt = mt.numpy().astype(np.uint8)
    np.save(sys.argv[2], mt)
    print(json.dumps({"torch_s": torch_s, "numpy_s": numpy_s, "same": bool((mt == mn.astype(np.uint8)).all())}))


if __name__ == "__main__":
    main()
