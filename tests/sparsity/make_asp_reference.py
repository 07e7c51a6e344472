#!/usr/bin/python3
"""Reference N:M masks from apex ASP's algorithm, for tests/sparsity/nm_mask_test.cpp.

Usage: /usr/bin/python3 make_asp_reference.py OUTPUT_DIR

apex is not packaged for Debian, so this is a torch transcription of ASP's mask library written from
its description (apex/contrib/sparsity/sparse_masklib.py, create_mask / mn_1d_best / m4n2_1d):

  * create_mask casts to float and views the tensor as 2-D rows of input features:
    1-D (N) -> (1, N); 2-D (K, C) as is; 3-D (K, C, R) -> permute(0, 2, 1) -> (K*R, C);
    4-D (K, C, R, S) -> permute(2, 3, 0, 1) -> (R*S*K, C); the mask is permuted back.
  * mn_1d_best(matrix, m, n): the candidate patterns are set(permutations([1]*n + [0]*(m-n))) in
    Python's set iteration order; every group of m consecutive columns scores |w| @ patterns.T and
    keeps torch.argmax (the first maximum).

Groups along another axis (an ONNX MatMul weight [C, N] grouped along C) are ASP's mask of the
transposed tensor, transposed back.

Writes OUTPUT_DIR/cases.txt, one case per line:
    name axis n m dtype weights.npy mask.npy
(dtype float32 | float16 | bfloat16; bfloat16 weights are stored as their uint16 bit patterns) and
OUTPUT_DIR/pattern_order.txt: "m n p1 p2 ..." with Python's set order of the patterns for every
M <= 8, for detail/asp_pattern_order.hpp.
"""

import os
import sys
from itertools import permutations

import numpy as np
import torch

SEED = 20240805


def valid_patterns(m, n):
    p = torch.zeros(m)
    p[:n] = 1
    return torch.Tensor(list(set(permutations(p.tolist()))))


def mn_1d_best(matrix, m, n):
    patterns = valid_patterns(m, n)
    mask = torch.ones_like(matrix, dtype=torch.int32).view(-1, m)
    mat = matrix.reshape(-1, m)
    pmax = torch.argmax(torch.matmul(mat.abs(), patterns.t()), dim=1)
    mask[:] = patterns[pmax[:]]
    return mask.view(matrix.shape)


def create_mask(tensor, m, n):
    shape = tensor.shape
    t = tensor.float().contiguous()
    if len(shape) == 1:
        return mn_1d_best(t.view(1, shape[0]), m, n).view(shape)
    if len(shape) == 2:
        return mn_1d_best(t, m, n).view(shape)
    if len(shape) == 3:
        t = t.permute(0, 2, 1).contiguous().view(shape[0] * shape[2], shape[1])
        mask = mn_1d_best(t, m, n)
        return mask.view(shape[0], shape[2], shape[1]).permute(0, 2, 1).contiguous()
    if len(shape) == 4:
        t = t.permute(2, 3, 0, 1).contiguous().view(shape[2] * shape[3] * shape[0], shape[1])
        mask = mn_1d_best(t, m, n)
        return mask.view(shape[2], shape[3], shape[0], shape[1]).permute(2, 3, 0, 1).contiguous()
    raise ValueError("ASP has no mask for rank %d" % len(shape))


def mask_along(tensor, axis, m, n):
    """ASP's mask with groups along `axis` (ASP itself groups along axis 1, or 0 for 1-D)."""
    if tensor.dim() == 1 or axis == 1:
        return create_mask(tensor, m, n)
    assert tensor.dim() == 2 and axis == 0
    return create_mask(tensor.t().contiguous(), m, n).t().contiguous()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    lines = []

    def add(name, w, axis, n=2, m=4, dtype="float32"):
        t = torch.from_numpy(np.ascontiguousarray(w))
        if dtype == "float16":
            t = t.half()
        elif dtype == "bfloat16":
            t = t.bfloat16()
        mask = mask_along(t, axis, m, n).to(torch.uint8).numpy()
        if dtype == "bfloat16":
            stored = t.view(torch.int16).numpy().view(np.uint16)
        else:
            stored = t.numpy()
        np.save(os.path.join(out, name + ".w.npy"), stored)
        np.save(os.path.join(out, name + ".mask.npy"), mask)
        lines.append("%s %d %d %d %s %s.w.npy %s.mask.npy" % (name, axis, n, m, dtype, name, name))

    normal = lambda *s: rng.standard_normal(s).astype(np.float32)
    # The layouts of every operator, with shapes that exercise the vector bodies and their tails.
    add("linear_64x128", normal(64, 128), 1)
    add("linear_odd_rows_7x36", normal(7, 36), 1)
    add("conv_32x64x3x3", normal(32, 64, 3, 3), 1)
    add("conv_16x32x5x5", normal(16, 32, 5, 5), 1)
    add("conv_8x16x4x4", normal(8, 16, 4, 4), 1)
    add("conv_8x16x1x1", normal(8, 16, 1, 1), 1)
    add("conv1d_16x32x5", normal(16, 32, 5), 1)
    add("conv_8x8x2x3", normal(8, 8, 2, 3), 1)
    add("vector_64", normal(64), 0)
    add("matmul_128x72_axis0", normal(128, 72), 0)
    add("matmul_64x19_axis0", normal(64, 19), 0)
    # Ties: all-equal and all-zero groups, small integers (many equal pair sums), signed zeros.
    add("all_equal_16x32", np.full((16, 32), 0.25, np.float32), 1)
    add("all_zero_8x16", np.zeros((8, 16), np.float32), 1)
    add("integers_64x64", rng.integers(-2, 3, (64, 64)).astype(np.float32), 1)
    add("integers_conv_8x16x3x3", rng.integers(-1, 2, (8, 16, 3, 3)).astype(np.float32), 1)
    add("integers_axis0_64x40", rng.integers(-2, 3, (64, 40)).astype(np.float32), 0)
    signed = np.where(rng.random((16, 32)) < 0.5, -0.0, 0.0).astype(np.float32)
    signed[:, ::5] = 1.0
    add("signed_zeros_16x32", signed, 1)
    # Pair sums that round to the same float32 although the exact sums differ: ASP keeps the first.
    rounding = np.tile(np.array([1.0, 1e-8, 2e-8, 0.0], np.float32), (8, 8))
    rounding[1::2] = np.tile(np.array([3e-8, 1.0, 0.0, 2e-8], np.float32), (4, 8))
    add("rounding_ties_16x32", rounding, 1)
    # Subnormal magnitudes (torch's matmul must not flush them for this to be a fair reference).
    add("subnormal_16x32", (normal(16, 32) * np.float32(1e-39)).astype(np.float32), 1)
    # Weights stored in half precision: ASP scores tensor.float(), exact for both.
    add("linear_fp16_32x64", normal(32, 64), 1, dtype="float16")
    add("conv_fp16_16x32x3x3", normal(16, 32, 3, 3), 1, dtype="float16")
    add("linear_bf16_32x64", normal(32, 64), 1, dtype="bfloat16")
    add("ties_bf16_16x32", rng.integers(-2, 3, (16, 32)).astype(np.float32), 1, dtype="bfloat16")
    # Other N:M patterns, random and tied.
    for n, m in [(1, 2), (1, 4), (3, 4), (2, 8), (4, 8), (1, 8), (6, 8)]:
        add("linear_%d_%d_32x64" % (n, m), normal(32, 64), 1, n, m)
        add("integers_%d_%d_32x64" % (n, m), rng.integers(-2, 3, (32, 64)).astype(np.float32), 1, n, m)
        add("all_equal_%d_%d_8x16" % (n, m), np.ones((8, 16), np.float32), 1, n, m)
    add("conv_4_8_16x32x3x3", normal(16, 32, 3, 3), 1, 4, 8)
    add("matmul_2_8_64x24_axis0", rng.integers(-2, 3, (64, 24)).astype(np.float32), 0, 2, 8)

    with open(os.path.join(out, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")

    with open(os.path.join(out, "pattern_order.txt"), "w") as f:
        for m in range(2, 9):
            for n in range(1, m):
                order = valid_patterns(m, n).int().tolist()
                f.write("%d %d %s\n" % (m, n, " ".join("".join(str(x) for x in p) for p in order)))
    print("wrote %d cases to %s" % (len(lines), out))


if __name__ == "__main__":
    main()
