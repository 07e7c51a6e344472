#!/usr/bin/python3
"""Reference 2:4 compressed matrices for tests/sparsity/compress_test.cpp.

Usage: /usr/bin/python3 make_compress_reference.py OUTPUT_DIR

A numpy transcription, written from the description of PyTorch's CUTLASS-backend encoder
(torch/sparse/_semi_structured_conversions.py, sparse_semi_structured_from_dense_cutlass, which
Debian's torch 1.13 predates) of:

  * the 4-bit code of a group of four: idx0 | idx1 << 2 for the kept positions idx0 < idx1; groups
    with fewer than two non-zeros use PyTorch's fillers (none, only 2, only 3 -> {2, 3}; only 0 ->
    {0, 2}; only 1 -> {1, 2});
  * the kept values, group after group, lower position first;
  * metadata words: 4 codes per int16 word (8 per int32 word for int8 values), first group in the
    low bits;
  * CUTLASS's metadata reordering (reorder_meta into ColumnMajorInterleaved<2>): rows in blocks of
    32 (16 for 32-bit words) interleaved by 8-row quarters with interweave 4 (2), the off-diagonal
    words of every 2x2 block swapped, then column-major over column pairs.

float32 uses the same 2:4 codes in 16-bit words (quench's storage format; PyTorch's fp32 path is
1:2 pairs). Writes OUTPUT_DIR/compress/cases.txt ("name dtype rows cols") and per case
<name>.dense.npy, .values.npy, .meta.npy (row-major words), .meta_cutlass.npy; bfloat16 data is
stored as uint16 bit patterns.
"""

import os
import sys

import numpy as np
import torch

SEED = 20240806
FILLER = {0b0000: (2, 3), 0b0001: (0, 2), 0b0010: (1, 2), 0b0100: (2, 3), 0b1000: (2, 3)}


def compress(bits_nonzero, dense):
    rows, cols = dense.shape
    groups = cols // 4
    nz = bits_nonzero.reshape(rows, groups, 4)
    values = np.zeros((rows, cols // 2), dense.dtype)
    codes = np.zeros((rows, groups), np.uint32)
    for r in range(rows):
        for g in range(groups):
            kept = [j for j in range(4) if nz[r, g, j]]
            assert len(kept) <= 2
            if len(kept) == 2:
                i0, i1 = kept
            else:
                i0, i1 = FILLER[sum(1 << j for j in kept)]
            codes[r, g] = i0 | (i1 << 2)
            values[r, 2 * g] = dense[r, 4 * g + i0] if nz[r, g, i0] else 0
            values[r, 2 * g + 1] = dense[r, 4 * g + i1] if nz[r, g, i1] else 0
    return values, codes


def pack(codes, per_word):
    rows, groups = codes.shape
    words = -(-groups // per_word)
    out = np.zeros((rows, words), np.uint64)
    for g in range(groups):
        out[:, g // per_word] |= codes[:, g].astype(np.uint64) << np.uint64(4 * (g % per_word))
    return out.astype(np.uint32 if per_word == 8 else np.uint16)


def cutlass_reorder(meta):
    m, ncols = meta.shape
    itemsize = meta.dtype.itemsize
    dst_rows = np.repeat(np.arange(m)[:, None], ncols, axis=1)
    dst_cols = np.repeat(np.arange(ncols)[None, :], m, axis=0)
    group = 32 if itemsize == 2 else 16
    interweave = 4 if itemsize == 2 else 2
    dst_rows = dst_rows // group * group + (dst_rows % 8) * interweave + (dst_rows % group) // 8
    topright = ((dst_rows % 2 == 0) & (dst_cols % 2 == 1)).astype(np.int64)
    bottomleft = ((dst_rows % 2 == 1) & (dst_cols % 2 == 0)).astype(np.int64)
    dst_rows = dst_rows + topright - bottomleft
    dst_cols = dst_cols - topright + bottomleft
    offsets = (dst_cols // 2) * m * 2 + dst_rows * 2 + dst_cols % 2
    out = np.zeros(m * ncols, meta.dtype)
    out[offsets.reshape(-1)] = meta.reshape(-1)
    return out.reshape(m, ncols)


def main():
    out = os.path.join(sys.argv[1], "compress")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    lines = []
    for name, dtype, rows, cols in [("fp16_64x128", "float16", 64, 128), ("bf16_32x64", "bfloat16", 32, 64),
                                    ("fp32_32x96", "float32", 32, 96), ("int8_32x128", "int8", 32, 128),
                                    ("int8_16x64", "int8", 16, 64), ("fp16_odd_8x20", "float16", 8, 20)]:
        x = rng.standard_normal((rows, cols)).astype(np.float32) + np.float32(0.1)
        # Keep 2, 1 or 0 of every four (mostly 2), at random positions.
        keep = np.zeros((rows, cols // 4, 4), bool)
        for r in range(rows):
            for g in range(cols // 4):
                k = rng.choice([2, 2, 2, 1, 0])
                keep[r, g, rng.choice(4, size=k, replace=False)] = True
        x = np.where(keep.reshape(rows, cols), x, np.float32(0))
        if dtype == "int8":
            dense = np.clip(np.round(x * 40), -128, 127).astype(np.int8)
            dense[keep.reshape(rows, cols) & (dense == 0)] = 1
            stored = dense
        elif dtype == "bfloat16":
            t = torch.from_numpy(x).bfloat16()
            stored = t.view(torch.int16).numpy().view(np.uint16)
            dense = stored
        else:
            dense = x.astype(dtype)
            stored = dense
        nonzero = stored.view(np.uint8).reshape(rows, cols, -1).any(axis=2)
        values, codes = compress(nonzero, stored)
        meta = pack(codes, 8 if dtype == "int8" else 4)
        np.save(os.path.join(out, name + ".dense.npy"), stored)
        np.save(os.path.join(out, name + ".values.npy"), values)
        np.save(os.path.join(out, name + ".meta.npy"), meta)
        if rows % (16 if dtype == "int8" else 32) == 0 and meta.shape[1] % 2 == 0:
            np.save(os.path.join(out, name + ".meta_cutlass.npy"), cutlass_reorder(meta))
        lines.append("%s %s %d %d" % (name, dtype, rows, cols))
    with open(os.path.join(out, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d compression cases to %s" % (len(lines), out))


if __name__ == "__main__":
    main()
