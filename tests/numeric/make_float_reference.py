#!/usr/bin/python3
"""Reference data for quench's float16 / bfloat16 / float8 conversions.

Usage: /usr/bin/python3 make_float_reference.py OUTPUT_DIR

Writes raw little-endian files into OUTPUT_DIR (created if missing):

  inputs.f32.u32              N float32 inputs as uint32 bit patterns
  numpy_f16.u16               numpy  inputs.astype(np.float16)           (N x uint16)
  torch_bf16.u16              torch  from_numpy(inputs).to(bfloat16)     (N x uint16)
  f8_<type>_sat<0|1>.u8       float8 bits from the spec reference below  (N x uint8)
  numpy_f16_to_f32.u32        all 65536 float16 patterns .astype(np.float32)
  torch_bf16_to_f32.u32       all 65536 bfloat16 patterns .to(torch.float32)
  f8_<type>_decode.u32        all 256 codes decoded by the spec reference (float32 bits)
  count.txt                   N

<type> is e4m3fn, e4m3fnuz, e5m2, e5m2fnuz. Run by ctest as the fixture
`numeric_reference_data`; the C++ tests in tests/numeric/ read the files.

The float8 reference is written from the ONNX Cast specification (opset 19, docs/Operators.md,
"Float 8 type" tables), not from quench's bit manipulation: it enumerates the finite values of a
format as float64, rounds to the nearest with ties to the even code (= even mantissa), and applies
the saturate table. torch 1.13 and onnx 1.12 have no float8 types, so there is nothing to call.
"""

import os
import sys

import numpy as np
import torch

N = 1 << 20
SEED = 20240601

# name: exponent bits, mantissa bits, bias, fnuz
FLOAT8 = {
    "e4m3fn": (4, 3, 7, False),
    "e4m3fnuz": (4, 3, 8, True),
    "e5m2": (5, 2, 15, False),
    "e5m2fnuz": (5, 2, 16, True),
}


def f32(bits):
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


# ---- float8 reference, from the format definition ---------------------------------------------

def f8_decode(name, code):
    """float64 value of a float8 code from the format table (NaN/Inf per the ONNX type docs)."""
    ebits, mbits, bias, fnuz = FLOAT8[name]
    sign = -1.0 if code & 0x80 else 1.0
    e = (code >> mbits) & ((1 << ebits) - 1)
    m = code & ((1 << mbits) - 1)
    if fnuz:
        if code == 0x80:
            return float("nan")
    elif ebits == 4:
        if e == 15 and m == 7:  # e4m3fn: S.1111.111 is NaN, no Inf
            return float("nan")
    else:
        if e == 31:  # e5m2: IEEE-like
            return sign * float("inf") if m == 0 else float("nan")
    if e == 0:
        v = (m / (1 << mbits)) * 2.0 ** (1 - bias)
    else:
        v = (1.0 + m / (1 << mbits)) * 2.0 ** (e - bias)
    return sign * v


def f8_table(name):
    """Finite non-negative values and their codes, ascending, plus a virtual code one step above
    the maximum (the value the top binade would continue with) so that rounding past max is
    detectable."""
    ebits, mbits, bias, fnuz = FLOAT8[name]
    codes = [c for c in range(0x80) if np.isfinite(f8_decode(name, c))]
    vals = [f8_decode(name, c) for c in codes]
    assert all(a < b for a, b in zip(vals, vals[1:]))
    top_exp = (codes[-1] >> mbits) - bias
    vals.append(vals[-1] + 2.0 ** (top_exp - mbits))
    codes.append(codes[-1] + 1)
    return np.array(vals, dtype=np.float64), np.array(codes, dtype=np.int64)


def f8_encode(name, x, saturate):
    """ONNX Cast float32 -> float8 for an array `x` of float32."""
    ebits, mbits, bias, fnuz = FLOAT8[name]
    vals, codes = f8_table(name)
    max_code = int(codes[-2])
    bits = x.view(np.uint32)
    sign = ((bits >> 24) & 0x80).astype(np.int64)
    with np.errstate(invalid="ignore"):
        ax = np.abs(x.astype(np.float64))
    nan = np.isnan(x)
    inf = np.isinf(x)
    fin = ~nan & ~inf

    # Nearest value: vals[i-1] < ax <= vals[i]; compare with the exact midpoint (dyadic, so exact
    # in float64), ties to the even code.
    axf = np.where(fin, ax, 0.0)
    i = np.searchsorted(vals, axf, side="left")
    beyond = i >= len(vals)  # above the virtual value: certainly overflow
    i = np.minimum(i, len(vals) - 1)
    lo = np.maximum(i - 1, 0)
    exact = vals[i] == axf
    mid = (vals[lo] + vals[i]) / 2
    pick_hi = (axf > mid) | ((axf == mid) & (codes[i] % 2 == 0))
    code = np.where(exact, codes[i], np.where(pick_hi, codes[i], codes[lo]))
    overflow = fin & (beyond | (code > max_code))

    nan_val = np.full_like(sign, 0x80) if fnuz else sign | 0x7F
    if saturate:
        ovf_val = sign | max_code
        inf_val = nan_val if fnuz else sign | max_code
    else:
        if ebits == 5 and not fnuz:
            ovf_val = sign | 0x7C
        else:
            ovf_val = nan_val
        inf_val = ovf_val
    zero_val = np.zeros_like(sign) if fnuz else sign
    out = np.where(code == 0, zero_val, sign | code)
    out = np.where(overflow, ovf_val, out)
    out = np.where(inf, inf_val, out)
    out = np.where(nan, nan_val, out)
    return out.astype(np.uint8)


# ---- inputs -----------------------------------------------------------------------------------

def build_inputs(rng):
    parts = []

    def add(bits):
        parts.append(np.asarray(bits, dtype=np.uint64).astype(np.uint32))

    def with_signs(bits):
        b = np.asarray(bits, dtype=np.uint64) & 0x7FFFFFFF
        add(b)
        add(b | 0x80000000)

    # Every float32 exponent (incl. 0 = zero/subnormal and 255 = Inf/NaN), random mantissas.
    for e in range(256):
        m = rng.integers(0, 1 << 23, size=400, dtype=np.uint64)
        m[:4] = [0, 1, (1 << 23) - 1, 1 << 22]
        with_signs((np.uint64(e) << np.uint64(23)) | m)

    # float16: every midpoint between consecutive finite halves (both parities of the lower one),
    # one float32 ulp either side, and the exact halves. Midpoints are exact in float32.
    h = np.arange(0, 0x7C00, dtype=np.uint16)
    hv = h.view(np.float16).astype(np.float64)
    nxt = np.append(hv[1:], 65536.0)  # above 65504 the next step would be 65536
    mids = ((hv + nxt) / 2).astype(np.float32).view(np.uint32).astype(np.uint64)
    assert np.all(((hv + nxt) / 2) == mids.astype(np.uint32).view(np.float32).astype(np.float64))
    with_signs(mids)
    with_signs(mids + 1)
    with_signs(np.maximum(mids, 1) - 1)
    with_signs(hv.astype(np.float32).view(np.uint32))

    # bfloat16: every midpoint (low half exactly 0x8000) between consecutive finite bfloat16,
    # float32 subnormal ones included, and one ulp either side.
    b = np.arange(0, 0x7F80, dtype=np.uint64)
    mids = (b << np.uint64(16)) | np.uint64(0x8000)
    with_signs(mids)
    with_signs(mids + 1)
    with_signs(mids - 1)

    # float32 subnormals (bfloat16 rounds them; vcvtneps2bf16 would flush them): random ones and
    # bfloat16 ties among them.
    sub = rng.integers(1, 1 << 23, size=10000, dtype=np.uint64)
    with_signs(sub)
    with_signs((sub & np.uint64(0x7F0000)) | np.uint64(0x8000))

    # float8: every finite value, every midpoint, one float32 ulp either side of each midpoint,
    # and the virtual value above max.
    for name in FLOAT8:
        vals, _ = f8_table(name)
        pts = np.concatenate([vals, (vals[:-1] + vals[1:]) / 2])
        pb = pts.astype(np.float32).view(np.uint32).astype(np.uint64)
        with_signs(pb)
        with_signs(pb + 1)
        with_signs(np.maximum(pb, 1) - 1)

    # NaN payloads: quiet and signalling, single-bit and random payloads, both signs.
    single = np.uint64(0x7F800000) | (np.uint64(1) << np.arange(23, dtype=np.uint64))
    with_signs(single)
    with_signs(single | np.uint64(0x400000))
    with_signs(np.uint64(0x7F800000) | rng.integers(1, 1 << 23, size=2000, dtype=np.uint64))
    with_signs([0x7FC00000, 0x7F800001, 0x7FBFFFFF, 0x7FFFFFFF, 0x7FA00000, 0x7F802000, 0x7F801FFF])

    # Boundaries named in the reference notes (compression.md 4.1) and the bf16 maximum.
    edges = [
        0x00000000, 0x00000001, 0x007FFFFF, 0x00800000,  # zero, float subnormals, min normal
        0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FF001, 0x47800000,  # 65504 .. 65536
        0x38800000, 0x387FFFFF, 0x33800000, 0x33000000, 0x33000001, 0x33C00000,  # half min normal/sub
        0x3F7FF000, 0x3F801000, 0x3F803000,  # ties around 1.0
        0x7F7F7FFF, 0x7F7F8000, 0x7F7F8001, 0x7F7FFFFF, 0x7F800000,  # bf16 max .. Inf
        0x00008000, 0x00018000, 0x00007FFF, 0x00008001,  # bf16 ties in float subnormals
        0x43E00000, 0x43E80000, 0x43E80001, 0x43F00000,  # 448, 464, 464+ulp, 480 (e4m3fn)
        0x43700000, 0x43780000, 0x43780001,  # 240, 248, 248+ulp (e4m3fnuz)
        0x47600000, 0x47700000, 0x476FFFFF, 0x47800000,  # 57344, 61440, 61440-ulp, 65536 (e5m2)
    ]
    with_signs(edges)

    # Typical weight and activation values.
    add(rng.normal(0.0, 0.02, size=100000).astype(np.float32).view(np.uint32))
    add(rng.normal(0.0, 30.0, size=100000).astype(np.float32).view(np.uint32))

    special = np.concatenate(parts)
    assert len(special) < N, len(special)
    rest = rng.integers(0, 1 << 32, size=N - len(special), dtype=np.uint64).astype(np.uint32)
    allbits = np.concatenate([special, rest])
    # Shuffle so that NaN, Inf, ties and ordinary values share SIMD vectors.
    return allbits[rng.permutation(N)]


def write(path, arr):
    tmp = path + ".tmp"
    arr.astype(arr.dtype.newbyteorder("<"), copy=False).tofile(tmp)
    os.replace(tmp, path)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_float_reference.py OUTPUT_DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(SEED)

    bits = build_inputs(rng)
    x = bits.view(np.float32)
    write(os.path.join(out, "inputs.f32.u32"), bits)

    with np.errstate(over="ignore", invalid="ignore"):
        write(os.path.join(out, "numpy_f16.u16"), x.astype(np.float16).view(np.uint16))
    # torch takes its vectorised path on a tensor this large (the one that writes 0xffff for NaN).
    tb = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    write(os.path.join(out, "torch_bf16.u16"), tb)

    for name in FLOAT8:
        for sat in (0, 1):
            write(os.path.join(out, f"f8_{name}_sat{sat}.u8"), f8_encode(name, x, bool(sat)))
        dec = np.array([f8_decode(name, c) for c in range(256)], dtype=np.float64)
        write(os.path.join(out, f"f8_{name}_decode.u32"), dec.astype(np.float32).view(np.uint32))

    all16 = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    write(os.path.join(out, "numpy_f16_to_f32.u32"), all16.view(np.float16).astype(np.float32).view(np.uint32))
    t16 = torch.from_numpy(all16.view(np.int16).copy()).view(torch.bfloat16).to(torch.float32)
    write(os.path.join(out, "torch_bf16_to_f32.u32"), t16.numpy().view(np.uint32))

    with open(os.path.join(out, "count.txt"), "w") as f:
        f.write(f"{N}\n")


if __name__ == "__main__":
    main()
