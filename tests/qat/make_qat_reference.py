#!/usr/bin/python3
"""Reference data for quench's QAT layer (include/quench/qat/), made by the installed torch 1.13.

Usage:
  /usr/bin/python3 make_qat_reference.py OUTPUT_DIR

Every output is computed by torch itself, single-threaded, on the CPU:

  fake_quant   torch.ops.aten.fake_quantize_per_tensor_affine_cachemask / _per_channel_affine_cachemask
               (forward and mask) and autograd through torch.fake_quantize_per_tensor_affine /
               _per_channel_affine (dx): float32, float64 and float16; int8, uint8, int4, uint4,
               narrow, reduce-range and int16 ranges; zero points at the range edges; per channel
               on every axis. The inputs mix exact rounding ties (and the floats one ulp either
               side), the half-step boundaries at both ends of the range, values far outside,
               NaN, -Inf, +-0, subnormals and, where marked, +Inf and quotients beyond 2^63
               (torch 1.13 converts those to int64 as INT64_MIN; the test checks quench's
               documented quant_max for exactly those elements).
  learnable    torch._fake_quantize_learnable_per_tensor_affine / _per_channel_affine: forward, dx,
               dscale, dzero_point through autograd, with fractional, tied and out-of-range zero
               points and grad_factor 1 or LSQ's 1/sqrt(n * quant_max). The per-element scale and
               zero-point terms come from the same torch kernel run with one channel per element
               (x reshaped to [n, 1], per-channel op on axis 0, the backward zero point broadcast),
               so the test can compare them bit for bit; math.fsum of those terms gives the exact
               sums.
  observers    MovingAverageMinMaxObserver / MovingAveragePerChannelMinMaxObserver over batches:
               min_val, max_val and calculate_qparams after every batch.
  fake_quantizer  torch.ao.quantization.FakeQuantize stepped with its observer and fake-quant
               switches toggled: output, mask, scale and zero point after every step.
  learnable_quantizer  torch.ao.quantization._LearnableFakeQuantize through its three modes, with
               plain SGD steps on the scale and zero point (done in numpy, each operation rounded to
               float32): output, dx, parameters and their gradients after every step.

Files in OUTPUT_DIR: raw little-endian arrays (<name>.f32/.f64/.f16/.u8) and reference.json, which
describes every case (floats as uint32 bit patterns, exact sums as JSON doubles).
"""

import json
import math
import os
import sys
import time
import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore")
torch.set_num_threads(1)

SEED = 20250109
F32 = np.float32
OUT = None
ARRAYS = {}


def bits(v):
    return int(np.array(v, dtype=np.float32).view(np.uint32))


def bits_list(a):
    return [int(v) for v in np.asarray(a, dtype=np.float32).reshape(-1).view(np.uint32)]


def save(name, arr):
    """Writes `arr` raw and returns the file name."""
    arr = np.ascontiguousarray(arr)
    ext = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64", np.dtype(np.float16): "f16",
           np.dtype(np.uint8): "u8", np.dtype(np.bool_): "u8"}[arr.dtype]
    fname = f"{name}.{ext}"
    with open(os.path.join(OUT, fname), "wb") as f:
        f.write(arr.astype(np.uint8).tobytes() if arr.dtype == np.bool_ else arr.tobytes())
    return fname


# ---- inputs ----------------------------------------------------------------------------------

def hard_inputs(rng, s, z, qmin, qmax, positive_overflow):
    """float32 inputs for per-element scales `s` and zero points `z` (float64 arrays of one length):
    every hard case of the fake-quant kernel, mixed at random positions."""
    n = s.size
    s32 = s.astype(F32)
    kind = rng.integers(0, 16, n)
    x = np.empty(n, dtype=np.float64)
    lo_q, hi_q = qmin - z, qmax - z  # x / s bounds in quanta
    u = rng.uniform(lo_q - 3, hi_q + 3)
    x[:] = u * s32
    k = rng.integers(np.floor(lo_q - 4).astype(np.int64), np.floor(hi_q + 5).astype(np.int64))
    tie = (k + 0.5) * s32.astype(np.float64)
    x = np.where(kind <= 4, tie, x)                                       # exact / near ties
    edge = np.where(rng.integers(0, 2, n) == 0, (lo_q - 0.5), (hi_q + 0.5)) * s32.astype(np.float64)
    x = np.where(kind == 5, edge, x)                                      # half-step beyond the range
    far = rng.uniform(1e3, 1e7, n) * np.where(rng.integers(0, 2, n) == 0, -1.0, 1.0) * s32
    x = np.where(kind == 6, far, x)                                       # far outside
    x32 = x.astype(F32)
    nudge = rng.integers(-1, 2, n)
    near = kind <= 5
    x32 = np.where(near & (nudge > 0), np.nextafter(x32, F32(np.inf)), x32)
    x32 = np.where(near & (nudge < 0), np.nextafter(x32, F32(-np.inf)), x32)
    special = np.array([np.nan, -np.inf, 0.0, -0.0, 1e-40, -1e-40, -3e38], dtype=F32)
    if positive_overflow:
        special = np.concatenate([special, np.array([np.inf, 3e38, 1e30], dtype=F32)])
    pick = rng.integers(0, special.size, n)
    x32 = np.where(kind == 7, special[pick], x32)
    return x32.astype(F32)


def channel_params(shape, axis, per_channel_values):
    """Broadcasts a per-channel vector to every element of a tensor of `shape`."""
    if axis is None:
        return np.full(int(np.prod(shape)), per_channel_values[0])
    view = [1] * len(shape)
    view[axis] = shape[axis]
    return np.broadcast_to(np.asarray(per_channel_values).reshape(view), shape).reshape(-1)


# ---- fake_quantize (STE) -------------------------------------------------------------------------

def torch_overflow_flags(x32, s32, z):
    """Elements whose z + rint(x * (1/s)) is >= 2^63 in float32: torch 1.13's int64 conversion gives
    INT64_MIN for them (so output quant_min) where quench saturates to quant_max. (Its float64
    kernel saturates, as quench.)"""
    inv = (F32(1.0) / s32).astype(F32)
    with np.errstate(over="ignore", invalid="ignore"):
        q = (np.rint((x32 * inv).astype(F32)) + z.astype(F32)).astype(F32)
    return np.isfinite(q) & (q >= F32(2.0 ** 63)) | (q == F32(np.inf))


def fake_quant_case(rng, name, dtype, shape, axis, qmin, qmax, scales, zps, positive_overflow=True):
    scales = np.asarray(scales, dtype=F32)
    zps = np.asarray(zps, dtype=np.int32)
    s_el = channel_params(shape, axis, scales.astype(np.float64))
    z_el = channel_params(shape, axis, zps.astype(np.float64))
    x32 = hard_inputs(rng, s_el, z_el, qmin, qmax, positive_overflow)
    np_dtype = {"float32": np.float32, "float64": np.float64, "float16": np.float16}[dtype]
    t_dtype = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16}[dtype]
    x = x32.astype(np_dtype).reshape(shape)
    n = x.size
    dy = rng.standard_normal(n).astype(np_dtype)
    dy[rng.integers(0, n, max(1, n // 97))] = -0.0
    dy[rng.integers(0, n, max(1, n // 211))] = np.nan
    dy = dy.reshape(shape)

    xt = torch.from_numpy(x.copy())
    if axis is None:
        y, mask = torch.ops.aten.fake_quantize_per_tensor_affine_cachemask(xt, float(scales[0]), int(zps[0]), qmin, qmax)
        xg = torch.from_numpy(x.copy()).requires_grad_()
        y2 = torch.fake_quantize_per_tensor_affine(xg, float(scales[0]), int(zps[0]), qmin, qmax)
        # The tensor-qparams overload (what FakeQuantize calls) must agree.
        y3 = torch.fake_quantize_per_tensor_affine(xt, torch.tensor([float(scales[0])]),
                                                   torch.tensor([int(zps[0])], dtype=torch.int32), qmin, qmax)
        assert torch.equal(y.view(torch.uint8 if dtype != "float64" else torch.uint8), y3.view(torch.uint8))
    else:
        st, zt = torch.from_numpy(scales.copy()), torch.from_numpy(zps.copy())
        y, mask = torch.ops.aten.fake_quantize_per_channel_affine_cachemask(xt, st, zt, axis, qmin, qmax)
        xg = torch.from_numpy(x.copy()).requires_grad_()
        y2 = torch.fake_quantize_per_channel_affine(xg, st, zt, axis, qmin, qmax)
    y2.backward(torch.from_numpy(dy.copy()))
    assert np.array_equal(y.numpy().view(np.uint8), y2.detach().numpy().view(np.uint8)), name
    assert y.dtype == t_dtype
    # float32 and float16 run through torch's float32 kernel; its float64 instantiation saturates.
    flags = (torch_overflow_flags(x.reshape(-1).astype(F32), s_el.astype(F32), z_el) if dtype != "float64"
             else np.zeros(n, dtype=bool))
    return {
        "name": name, "dtype": dtype, "shape": list(shape),
        "granularity": "per_tensor" if axis is None else "per_axis", "axis": 0 if axis is None else axis,
        "qmin": qmin, "qmax": qmax, "scales": bits_list(scales), "zero_points": [int(v) for v in zps],
        "x": save(name + "_x", x), "dy": save(name + "_dy", dy), "y": save(name + "_y", y.numpy()),
        "mask": save(name + "_mask", mask.numpy()), "dx": save(name + "_dx", xg.grad.numpy()),
        "torch_int64_overflow": [int(i) for i in np.flatnonzero(flags)],
    }


def fake_quant_cases(rng):
    cases = []
    ranges = {
        "int8": (-128, 127), "uint8": (0, 255), "int4": (-8, 7), "uint4": (0, 15), "narrow": (-127, 127),
        "reduce_u8": (0, 127), "reduce_s8": (-64, 63), "int16": (-32768, 32767), "wide": (-3, 300),
    }
    scales = [0.1, 1.0 / 3.0, 0.0078125, 0.02, 3.7, 1e-5, 0.5]
    i = 0
    for rname, (qmin, qmax) in ranges.items():
        mid = (qmin + qmax) // 2
        for zp in sorted({0 if qmin <= 0 <= qmax else qmin, qmin, qmax, mid, min(qmax, qmin + 3)}):
            s = scales[i % len(scales)]
            i += 1
            cases.append(fake_quant_case(rng, f"fq_t_{rname}_z{zp}".replace("-", "m"), "float32", (4099,), None,
                                         qmin, qmax, [s], [zp]))
    # Per channel on every axis, and rank 1.
    for axis, shape in [(0, (7, 33, 5)), (1, (3, 16, 21)), (2, (5, 6, 19)), (0, (37,)), (1, (2, 130))]:
        for rname in ["int8", "uint8", "int4", "narrow"]:
            qmin, qmax = ranges[rname]
            c = shape[axis]
            sc = rng.uniform(0.005, 0.5, c).astype(F32)
            sc[0] = 0.0625  # a power of two: exact ties
            zp = rng.integers(qmin, qmax + 1, c)
            zp[0], zp[-1] = qmin, qmax
            cases.append(fake_quant_case(rng, f"fq_c{axis}_{len(shape)}d_{rname}", "float32", shape, axis, qmin,
                                         qmax, sc, zp))
    # Long per-tensor runs (every SIMD block size and tail), double and half.
    cases.append(fake_quant_case(rng, "fq_t_long_int8", "float32", (65536 + 37,), None, -128, 127, [0.037], [5]))
    for dtype in ["float64", "float16"]:
        for rname in ["int8", "uint8", "int4"]:
            qmin, qmax = ranges[rname]
            cases.append(fake_quant_case(rng, f"fq_t_{dtype}_{rname}", dtype, (2053,), None, qmin, qmax, [0.0625],
                                         [qmin + 1], positive_overflow=(dtype == "float64")))
            sc = np.array([0.03, 0.25, 0.11], dtype=F32)
            cases.append(fake_quant_case(rng, f"fq_c_{dtype}_{rname}", dtype, (3, 257), 0, qmin, qmax, sc,
                                         [qmin, 0 if qmin <= 0 else qmin, qmax], positive_overflow=(dtype == "float64")))
    return cases


# ---- learnable ---------------------------------------------------------------------------------

def learnable_case(rng, name, shape, axis, qmin, qmax, scales, zps, lsq):
    scales = np.asarray(scales, dtype=F32)
    zps = np.asarray(zps, dtype=F32)
    n = int(np.prod(shape))
    # Backward zero points, as torch computes them (the per-element-terms run needs them exactly).
    if axis is None:
        zb = np.array([math.trunc(min(max(float(F32(zps[0]) + F32(0.5)), qmin), qmax))], dtype=np.float64)
    else:
        zb = np.clip(np.round(zps.astype(np.float64)), qmin, qmax)
    zf = np.clip(np.round(zps.astype(np.float64)), qmin, qmax)
    s_el = channel_params(shape, axis, scales.astype(np.float64))
    z_el = channel_params(shape, axis, zf)
    x = hard_inputs(rng, s_el, z_el, qmin, qmax, positive_overflow=False).reshape(shape)
    dy = rng.standard_normal(n).astype(F32)
    dy[rng.integers(0, n, max(1, n // 53))] = 0.0
    dy = dy.reshape(shape)
    gf = 1.0 / (n * qmax) ** 0.5 if lsq else 1.0

    xg = torch.from_numpy(x.copy()).requires_grad_()
    sg = torch.from_numpy(scales.copy()).requires_grad_()
    zg = torch.from_numpy(zps.copy()).requires_grad_()
    if axis is None:
        y = torch._fake_quantize_learnable_per_tensor_affine(xg, sg, zg, qmin, qmax, gf)
    else:
        y = torch._fake_quantize_learnable_per_channel_affine(xg, sg, zg, axis, qmin, qmax, gf)
    y.backward(torch.from_numpy(dy.copy()))

    # One channel per element: the per-element terms of the same kernel.
    x1 = torch.from_numpy(x.reshape(n, 1).copy()).requires_grad_()
    s1 = torch.from_numpy(s_el.astype(F32).copy()).requires_grad_()
    zb_el = channel_params(shape, axis, zb) if axis is not None else np.full(n, zb[0])
    z1 = torch.from_numpy(zb_el.astype(F32).copy()).requires_grad_()
    y1 = torch._fake_quantize_learnable_per_channel_affine(x1, s1, z1, 0, qmin, qmax, gf)
    y1.backward(torch.from_numpy(dy.reshape(n, 1).copy()))
    assert np.array_equal(x1.grad.numpy().reshape(-1).view(np.uint32), xg.grad.numpy().reshape(-1).view(np.uint32)), name
    ts, tz = s1.grad.numpy().astype(np.float64), z1.grad.numpy().astype(np.float64)
    if axis is None:
        groups = [np.arange(n)]
    else:
        idx = np.arange(n).reshape(shape)
        groups = [np.take(idx, c, axis=axis).reshape(-1) for c in range(shape[axis])]
    exact_s = [math.fsum(ts[g]) for g in groups]
    exact_z = [math.fsum(tz[g]) for g in groups]
    abs_s = [math.fsum(np.abs(ts[g])) for g in groups]
    abs_z = [math.fsum(np.abs(tz[g])) for g in groups]
    return {
        "name": name, "shape": list(shape), "granularity": "per_tensor" if axis is None else "per_axis",
        "axis": 0 if axis is None else axis, "qmin": qmin, "qmax": qmax, "scale": bits_list(scales),
        "zero_point": bits_list(zps), "grad_factor": bits(F32(gf)), "grad_factor_double": gf,
        "x": save(name + "_x", x), "dy": save(name + "_dy", dy), "y": save(name + "_y", y.detach().numpy()),
        "dx": save(name + "_dx", xg.grad.numpy()), "dscale": bits_list(sg.grad.numpy()),
        "dzero_point": bits_list(zg.grad.numpy()),
        "terms_scale": save(name + "_ts", s1.grad.numpy()), "terms_zero_point": save(name + "_tz", z1.grad.numpy()),
        "terms_zero_points_used": bits_list(zb), "exact_dscale": exact_s, "exact_dzero_point": exact_z,
        "abs_dscale": abs_s, "abs_dzero_point": abs_z,
    }


def learnable_cases(rng):
    cases = []
    per_tensor = [
        ("u8", 0, 255, 0.05, 128.0), ("u8_tie", 0, 255, 0.0625, 2.5), ("s8", -128, 127, 0.1, 0.0),
        ("s8_frac", -128, 127, 1.0 / 3.0, -2.7), ("s8_half", -128, 127, 0.02, 1.5), ("s4", -8, 7, 0.37, -2.5),
        ("u4_clamp", 0, 15, 0.2, 20.0), ("s4_clamp", -8, 7, 0.125, -30.0), ("narrow", -127, 127, 0.011, 0.49),
        ("reduce", 0, 127, 0.07, 63.5),
    ]
    for lsq in (False, True):
        for tag, qmin, qmax, s, z in per_tensor:
            cases.append(learnable_case(rng, f"lfq_t_{tag}{'_lsq' if lsq else ''}", (3001,), None, qmin, qmax, [s],
                                        [z], lsq))
    for n in (16, 1000, 65536, 262144 + 5):
        cases.append(learnable_case(rng, f"lfq_t_n{n}", (n,), None, -128, 127, [0.03], [3.0], True))
    for axis, shape in [(0, (6, 40, 3)), (1, (4, 9, 17)), (2, (3, 11, 24)), (1, (300, 16))]:
        for tag, qmin, qmax in [("s8", -128, 127), ("u8", 0, 255), ("s4", -8, 7)]:
            c = shape[axis]
            sc = rng.uniform(0.01, 0.4, c).astype(F32)
            zp = rng.uniform(qmin - 3, qmax + 3, c).astype(F32)
            zp[0] = F32(0.5 + qmin + 2)  # a tie
            cases.append(learnable_case(rng, f"lfq_c{axis}_{len(shape)}d_{tag}", shape, axis, qmin, qmax, sc, zp,
                                        tag == "u8"))
    return cases


# ---- observers and FakeQuantize ------------------------------------------------------------------

from torch.ao.quantization.observer import MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver  # noqa: E402
from torch.ao.quantization.fake_quantize import FakeQuantize  # noqa: E402

TORCH_DTYPE = {"int8": torch.qint8, "uint8": torch.quint8, "uint4": torch.quint4x2}


def observer_kwargs(o):
    kw = dict(dtype=TORCH_DTYPE[o["type"]], reduce_range=o["reduce_range"], averaging_constant=o["averaging_constant"],
              eps=float(o["eps"]))
    if o.get("range"):
        kw["quant_min"], kw["quant_max"] = o["range"]
    per_channel = o["per_channel"]
    if per_channel:
        kw["qscheme"] = torch.per_channel_symmetric if o["symmetric"] else torch.per_channel_affine
        kw["ch_axis"] = o["ch_axis"]
    else:
        kw["qscheme"] = torch.per_tensor_symmetric if o["symmetric"] else torch.per_tensor_affine
    return kw


def batch(rng, shape, k, dtype):
    scale = [1.0, 3.0, 0.2, 10.0, 0.5, 2.0][k % 6]
    shift = [0.0, 1.5, -0.7, 4.0, -3.0, 0.1][k % 6]
    x = (rng.standard_normal(shape) * scale + shift).astype(F32)
    if k == 3:
        x = np.zeros(shape, dtype=F32)  # min == max == 0
    if k == 4:
        x = np.full(shape, F32(-0.75))  # constant, negative
    if k == 5 and len(shape) > 1:
        x[0] = np.abs(x[0])  # channel 0 (axis 0) one-sided
    return x.astype({"float32": np.float32, "float64": np.float64, "float16": np.float16}[dtype])


def observer_case(rng, name, o, shapes, dtype="float32"):
    obs_cls = MovingAveragePerChannelMinMaxObserver if o["per_channel"] else MovingAverageMinMaxObserver
    obs = obs_cls(**observer_kwargs(o))
    batches, after = [], []
    for k, shape in enumerate(shapes):
        x = batch(rng, shape, k, dtype)
        obs(torch.from_numpy(x.copy()))
        s, z = obs.calculate_qparams()
        batches.append({"file": save(f"{name}_b{k}", x), "shape": list(shape), "dtype": dtype})
        after.append({"min": bits_list(obs.min_val.numpy()), "max": bits_list(obs.max_val.numpy()),
                      "scale": bits_list(s.numpy()), "zero_point": [int(v) for v in z.reshape(-1)],
                      "quant_min": obs.quant_min, "quant_max": obs.quant_max})
    return {"name": name, "options": o, "batches": batches, "after": after}


def observer_options(type_, symmetric, per_channel=False, reduce_range=False, rng_=None, c=0.01, eps=None, ch_axis=0):
    return {"type": type_, "symmetric": symmetric, "reduce_range": reduce_range, "range": rng_,
            "averaging_constant": c, "eps": float(np.finfo(np.float32).eps) if eps is None else eps,
            "per_channel": per_channel, "ch_axis": ch_axis}


def observer_cases(rng):
    cases = []
    shapes = [(64, 9), (128, 9), (7, 9), (33, 9), (50, 9), (80, 9), (64, 9)]
    configs = [
        ("s8_sym", observer_options("int8", True)),
        ("s8_aff", observer_options("int8", False)),
        ("u8_aff", observer_options("uint8", False)),
        ("u8_sym", observer_options("uint8", True)),
        ("u8_aff_rr", observer_options("uint8", False, reduce_range=True)),
        ("s8_sym_rr", observer_options("int8", True, reduce_range=True)),
        ("u8_custom_rr", observer_options("uint8", False, reduce_range=True, rng_=[0, 255])),
        ("u8_sym_custom", observer_options("uint8", True, rng_=[0, 15])),
        ("s8_custom4", observer_options("int8", True, rng_=[-8, 7])),
        ("s8_aff_custom_rr", observer_options("int8", False, reduce_range=True, rng_=[-127, 127])),
        ("u4", observer_options("uint4", False)),
        ("u4_sym", observer_options("uint4", True)),
        ("c_half", observer_options("uint8", False, c=0.5)),
        ("c_one", observer_options("int8", True, c=1.0)),
        ("eps_big", observer_options("int8", True, eps=2.0 ** -12, rng_=[-127, 127])),
    ]
    for tag, o in configs:
        cases.append(observer_case(rng, f"obs_t_{tag}", o, shapes))
    for dtype in ["float64", "float16"]:
        cases.append(observer_case(rng, f"obs_t_{dtype}", observer_options("uint8", False, c=0.1), shapes, dtype))
    pc_shapes = {0: [(8, 5, 3)] * 6, 1: [(4, 6, 7)] * 6, -1: [(3, 5, 11)] * 6, 2: [(2, 3, 40)] * 6}
    for axis, sh in pc_shapes.items():
        for tag, sym, t in [("s8_sym", True, "int8"), ("u8_aff", False, "uint8")]:
            o = observer_options(t, sym, per_channel=True, ch_axis=axis, c=0.2)
            cases.append(observer_case(rng, f"obs_c{axis}_{tag}".replace("-", "m"), o, sh))
    cases.append(observer_case(rng, "obs_c0_s8_default", observer_options("int8", True, per_channel=True,
                                                                          rng_=[-128, 127]), [(16, 3, 3, 3)] * 4))
    return cases


def fake_quantizer_case(rng, name, o, shape, steps):
    kw = observer_kwargs(o)
    obs_cls = MovingAveragePerChannelMinMaxObserver if o["per_channel"] else MovingAverageMinMaxObserver
    fq = FakeQuantize(observer=obs_cls, **kw)
    out = []
    for k, (obs_on, fq_on) in enumerate(steps):
        fq.enable_observer(obs_on)
        fq.enable_fake_quant(fq_on)
        x = batch(rng, shape, k % 3, "float32")
        x[tuple(0 for _ in shape)] = F32(40.0)  # beyond the running range: a blocked gradient
        xt = torch.from_numpy(x.copy()).requires_grad_()
        y = fq(xt)
        y.backward(torch.ones_like(y))
        out.append({"x": save(f"{name}_s{k}_x", x), "observer_enabled": obs_on, "fake_quant_enabled": fq_on,
                    "y": save(f"{name}_s{k}_y", y.detach().numpy()), "dx": save(f"{name}_s{k}_dx", xt.grad.numpy()),
                    "scale": bits_list(fq.scale.numpy()), "zero_point": [int(v) for v in fq.zero_point.reshape(-1)]})
    return {"name": name, "options": o, "shape": list(shape), "steps": out}


def fake_quantizer_cases(rng):
    steps = [(True, True), (True, True), (True, True), (False, True), (False, True), (True, False), (False, False),
             (False, True)]
    act = observer_options("uint8", False, reduce_range=True, rng_=[0, 255])
    wt = observer_options("int8", True, rng_=[-128, 127])
    pcw = observer_options("int8", True, per_channel=True, rng_=[-128, 127])
    return [
        fake_quantizer_case(rng, "fqm_activation", act, (32, 17), steps),
        fake_quantizer_case(rng, "fqm_weight", wt, (12, 7), steps),
        fake_quantizer_case(rng, "fqm_per_channel_weight", pcw, (6, 4, 3), steps),
    ]


def learnable_quantizer_case(rng, name, o, qmin, qmax, channels, use_grad_scaling, shape, steps):
    from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize
    kw = observer_kwargs(o)
    kw.pop("quant_min", None)
    kw.pop("quant_max", None)
    obs_cls = MovingAveragePerChannelMinMaxObserver if channels else MovingAverageMinMaxObserver
    lfq = _LearnableFakeQuantize(observer=obs_cls, quant_min=qmin, quant_max=qmax, channel_len=channels or -1,
                                 use_grad_scaling=use_grad_scaling, **kw)
    out = []
    for k, (mode, lr) in enumerate(steps):
        getattr(lfq, "enable_" + mode)()
        x = batch(rng, shape, k % 3, "float32")
        x[tuple(0 for _ in shape)] = F32(30.0)
        dy = rng.standard_normal(shape).astype(F32)
        xt = torch.from_numpy(x.copy()).requires_grad_()
        y = lfq(xt)
        y.backward(torch.from_numpy(dy.copy()))
        rec = {"mode": mode, "x": save(f"{name}_s{k}_x", x), "dy": save(f"{name}_s{k}_dy", dy),
               "y": save(f"{name}_s{k}_y", y.detach().numpy()), "dx": save(f"{name}_s{k}_dx", xt.grad.numpy()),
               "scale": bits_list(lfq.scale.detach().numpy()), "zero_point": bits_list(lfq.zero_point.detach().numpy())}
        if lfq.scale.grad is not None:
            g_s, g_z = lfq.scale.grad.numpy().copy(), lfq.zero_point.grad.numpy().copy()
            rec["scale_grad"], rec["zero_point_grad"] = bits_list(g_s), bits_list(g_z)
            # Plain SGD in numpy, each operation rounded to float32 (not torch's optimizer, whose
            # fused or unfused arithmetic is not this test's subject).
            lr32 = F32(lr)
            s_new = (lfq.scale.detach().numpy() - (lr32 * g_s).astype(F32)).astype(F32)
            z_new = (lfq.zero_point.detach().numpy() - (lr32 * g_z).astype(F32)).astype(F32)
            with torch.no_grad():
                lfq.scale.copy_(torch.from_numpy(s_new))
                lfq.zero_point.copy_(torch.from_numpy(z_new))
            lfq.scale.grad = None
            lfq.zero_point.grad = None
            rec["scale_after"], rec["zero_point_after"] = bits_list(s_new), bits_list(z_new)
        out.append(rec)
    s, z = lfq.calculate_qparams()
    return {"name": name, "options": o, "qmin": qmin, "qmax": qmax, "channels": channels,
            "use_grad_scaling": use_grad_scaling, "shape": list(shape), "steps": out,
            "final_scale": bits_list(s.numpy()), "final_zero_point": [int(v) for v in z.reshape(-1)]}


def learnable_quantizer_cases(rng):
    steps = [("static_estimate", 0), ("static_estimate", 0), ("param_learning", 0.01), ("param_learning", 0.05),
             ("param_learning", 0.02), ("static_observation", 0), ("param_learning", 0.01)]
    return [
        learnable_quantizer_case(rng, "lfqm_act", observer_options("uint8", False), 0, 255, 0, False, (16, 9), steps),
        learnable_quantizer_case(rng, "lfqm_act_lsq", observer_options("uint8", False, c=0.5), 0, 15, 0, True,
                                 (40, 3), steps),
        learnable_quantizer_case(rng, "lfqm_weight_sym", observer_options("int8", True), -128, 127, 0, True, (8, 8),
                                 steps),
        learnable_quantizer_case(rng, "lfqm_per_channel", observer_options("int8", True, per_channel=True), -8, 7, 6,
                                 True, (6, 5, 4), steps),
        learnable_quantizer_case(rng, "lfqm_per_channel_aff", observer_options("uint8", False, per_channel=True,
                                                                              ch_axis=1), 0, 255, 5, False, (3, 5, 7),
                                 steps),
    ]


def main():
    global OUT
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    OUT = sys.argv[1]
    os.makedirs(OUT, exist_ok=True)
    t0 = time.time()
    rng = np.random.default_rng(SEED)
    ref = {
        "format": "quench-qat-reference-1",
        "torch_version": torch.__version__,
        "fake_quant": fake_quant_cases(rng),
        "learnable": learnable_cases(rng),
        "observers": observer_cases(rng),
        "fake_quantizer": fake_quantizer_cases(rng),
        "learnable_quantizer": learnable_quantizer_cases(rng),
    }
    with open(os.path.join(OUT, "reference.json.tmp"), "w") as f:
        json.dump(ref, f)
    os.replace(os.path.join(OUT, "reference.json.tmp"), os.path.join(OUT, "reference.json"))
    print(f"qat reference: {len(ref['fake_quant'])} fake-quant, {len(ref['learnable'])} learnable, "
          f"{len(ref['observers'])} observer, {len(ref['fake_quantizer'])} FakeQuantize, "
          f"{len(ref['learnable_quantizer'])} _LearnableFakeQuantize cases in "
          f"{time.time() - t0:.1f} s -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
