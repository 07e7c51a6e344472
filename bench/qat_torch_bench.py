#!/usr/bin/python3
"""PyTorch's CPU fake-quant ops timed single-threaded: the baseline of bench/qat_bench.cpp.

Usage:
  /usr/bin/python3 bench/qat_torch_bench.py [--n N] [--reps R]     one JSON line of seconds
  /usr/bin/python3 bench/qat_torch_bench.py --compare BENCH_BINARY  also runs quench_qat_bench
                                                                    (same machine, same run) and
                                                                    prints the ratios as a table

The data and parameters are those of quench_qat_bench: N = 16 Mi float32 values, x ~ N(0, 5),
int8 [-128, 127], scale 0.1, zero point 3 (about 1 % of the values clip); per channel [256, N/256]
on axis 0 with scales 0.05 .. 0.15 and zero points -8 .. 8. Each figure is the fastest of R runs
(the machine may be shared), torch.set_num_threads(1):

  fq_fwd_bwd            fake_quantize_per_tensor_affine_cachemask (y, mask) + its backward
                        (dY * mask): what autograd runs for torch.fake_quantize_per_tensor_affine
  fq_fwd                the forward alone
  fq_autograd           y = torch.fake_quantize_per_tensor_affine(x); y.backward(dy) (the same
                        kernels plus autograd's bookkeeping)
  fq_pc_fwd_bwd         the per-channel pair
  learnable_fwd_bwd     _fake_quantize_learnable_per_tensor_affine + its backward (dx, dscale,
                        dzero_point), grad_factor 1/sqrt(N * 127)
  learnable_pc_fwd_bwd  the per-channel learnable pair
  copy                  torch's copy_ of the 64 MiB input (for reference)
"""

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import torch

torch.set_num_threads(1)
aten = torch.ops.aten


def best(fn, reps):
    b = float("inf")
    fn()  # warm-up: first-touch page faults of the outputs
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        b = min(b, time.perf_counter() - t0)
    return b


def measure(n, reps):
    rng = np.random.default_rng(1)
    x = torch.from_numpy((rng.standard_normal(n) * 5).astype(np.float32))
    dy = torch.from_numpy(rng.standard_normal(n).astype(np.float32))
    scale, zp, qmin, qmax = 0.1, 3, -128, 127
    c = 256
    xc, dyc = x.view(c, n // c), dy.view(c, n // c)
    sc = torch.linspace(0.05, 0.15, c)
    zc = (torch.arange(c, dtype=torch.int32) % 17) - 8
    gf = 1.0 / (n * qmax) ** 0.5
    s_t, z_t = torch.tensor([scale]), torch.tensor([float(zp)])
    zcf = zc.float()
    out = {"torch_version": torch.__version__, "threads": torch.get_num_threads(), "n": n}

    def fq_fwd_bwd():
        y, m = aten.fake_quantize_per_tensor_affine_cachemask(x, scale, zp, qmin, qmax)
        aten.fake_quantize_per_tensor_affine_cachemask_backward(dy, m)

    def fq_fwd():
        aten.fake_quantize_per_tensor_affine_cachemask(x, scale, zp, qmin, qmax)

    xr = x.clone().requires_grad_()

    def fq_autograd():
        xr.grad = None
        torch.fake_quantize_per_tensor_affine(xr, scale, zp, qmin, qmax).backward(dy)

    def fq_pc_fwd_bwd():
        y, m = aten.fake_quantize_per_channel_affine_cachemask(xc, sc, zc, 0, qmin, qmax)
        aten.fake_quantize_per_channel_affine_cachemask_backward(dyc, m)

    def learnable_fwd_bwd():
        torch._fake_quantize_learnable_per_tensor_affine(x, s_t, z_t, qmin, qmax, gf)
        aten._fake_quantize_learnable_per_tensor_affine_backward(dy, x, s_t, z_t, qmin, qmax, gf)

    def learnable_pc_fwd_bwd():
        torch._fake_quantize_learnable_per_channel_affine(xc, sc, zcf, 0, qmin, qmax, gf)
        aten._fake_quantize_learnable_per_channel_affine_backward(dyc, xc, sc, zcf, 0, qmin, qmax, gf)

    dst = torch.empty_like(x)
    for name, fn in [("fq_fwd_bwd", fq_fwd_bwd), ("fq_fwd", fq_fwd), ("fq_autograd", fq_autograd),
                     ("fq_pc_fwd_bwd", fq_pc_fwd_bwd), ("learnable_fwd_bwd", learnable_fwd_bwd),
                     ("learnable_pc_fwd_bwd", learnable_pc_fwd_bwd), ("copy", lambda: dst.copy_(x))]:
        out[name] = best(fn, reps)
    return out


def compare(binary, torch_times):
    """Runs quench_qat_bench (without its own torch child) and prints quench vs torch."""
    res = subprocess.run([binary, "--benchmark_format=json", "--benchmark_filter=^(fq|learnable|memcpy)"],
                         capture_output=True, text=True, env={"QUENCH_QAT_BENCH_NO_TORCH": "1"}, check=True)
    # Names carry Google Benchmark's suffixes ("fq_fwd_bwd/best/min_time:1.000/real_time").
    rows = {b["name"].split("/min_time")[0]: b for b in json.loads(res.stdout)["benchmarks"]}
    pairs = [("fq_fwd_bwd/best", "fq_fwd_bwd"), ("fq_fwd/best", "fq_fwd"), ("fq_pc_fwd_bwd/best", "fq_pc_fwd_bwd"),
             ("learnable_fwd_bwd/best", "learnable_fwd_bwd"), ("learnable_pc_fwd_bwd/best", "learnable_pc_fwd_bwd")]
    print(f"{'benchmark':28s} {'quench ms':>10s} {'torch ms':>10s} {'speedup':>8s} {'vs memcpy':>10s}")
    for qname, tname in pairs:
        q = rows.get(qname)
        if not q:
            continue
        qs = q["quench_ms"] / 1e3
        print(f"{qname:28s} {qs * 1e3:10.2f} {torch_times[tname] * 1e3:10.2f} {torch_times[tname] / qs:8.2f} "
              f"{q['ratio_to_memcpy']:10.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16 << 20)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--compare", metavar="BENCH_BINARY")
    a = ap.parse_args()
    t = measure(a.n, a.reps)
    print(json.dumps(t))
    sys.stdout.flush()
    if a.compare:
        compare(a.compare, t)


if __name__ == "__main__":
    main()
