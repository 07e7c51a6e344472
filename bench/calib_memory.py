#!/usr/bin/env python3
"""Peak RSS of `quench calibrate` on 1,000 and on 20,000 samples: calibration must stream.

  /usr/bin/python3 bench/calib_memory.py QUENCH_BINARY [WORK_DIR] [--small 1000] [--large 20000]
                   [--methods minmax,entropy,percentile] [--batch 32] [--source npy,npz,files]

Builds the MobileNetV3-style network of the executor issue (tests/e2e/make_torch_models.py,
mobilenet at opset 13, input [N, 3, 32, 32]), writes seeded normal samples as float32 .npy
(20,000 x 3 x 32 x 32 = 245 MB; written through a memmap, so this script stays small too), runs
`quench calibrate` once per method and size, and reads each child's peak RSS from wait4() (the
kernel's ru_maxrss of that process alone). Pass: peak at --large within 10 % of peak at --small
for every method. Not run in CI (a few minutes); the figures go to README.

`--source npz` also calibrates from the same samples in one np.savez archive, `--source files`
from a directory of one .npy per sample (only --small and a tenth of --large files, to keep the
directory small).

ONNX Runtime's calibrator (onnxruntime.quantization.calibrate) cannot run here: the machine has
onnxruntime-node for the tests but no onnxruntime Python package, so there is no same-machine
figure for it.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def peak_rss_mib(cmd):
    """Runs cmd; returns (peak RSS in MiB, seconds). Fails loudly on a non-zero exit."""
    t0 = time.perf_counter()
    p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"FAILED ({p.returncode}): {' '.join(map(str, cmd))}\n{out.decode()}\n{err.decode()}")
    return usage.ru_maxrss / 1024.0, seconds  # Linux: KiB


def make_samples(path, n, seed):
    if path.exists() and np.load(path, mmap_mode="r").shape[0] == n:
        return
    a = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 3, 32, 32))
    rng = np.random.default_rng(seed)
    for i in range(0, n, 1000):
        k = min(1000, n - i)
        a[i:i + k] = rng.standard_normal((k, 3, 32, 32), dtype=np.float32)
    a.flush()
    del a


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("quench")
    ap.add_argument("work", nargs="?", default="/tmp/quench_calib_memory")
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--large", type=int, default=20000)
    ap.add_argument("--methods", default="minmax,entropy,percentile")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--source", default="npy")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = work / "models" / "mobilenet_op13.onnx"
    if not model.exists():
        subprocess.run(["/usr/bin/python3", REPO / "tests/e2e/make_torch_models.py", work / "models", "--models", "mobilenet",
                        "--opsets", "13"], check=True, capture_output=True)
    sizes = [args.small, args.large]
    files = {n: work / f"calib_{n}.npy" for n in sizes}
    for n in sizes:
        make_samples(files[n], n, seed=n)
    sources = {}
    for kind in args.source.split(","):
        for n in sizes:
            if kind == "npy":
                sources[(kind, n)] = [f"input={files[n]}"]
            elif kind == "npz":
                z = work / f"calib_{n}.npz"
                if not z.exists():
                    np.savez(z, input=np.load(files[n], mmap_mode="r"))
                sources[(kind, n)] = [str(z)]
            elif kind == "files":
                m = n if n == args.small else n // 10
                d = work / f"files_{m}"
                if not d.exists():
                    d.mkdir()
                    a = np.load(files[n], mmap_mode="r")
                    for i in range(m):
                        np.save(d / f"s{i:06d}.npy", a[i])
                sources[(kind, n)] = [f"input={d}"]
            else:
                sys.exit(f"unknown --source {kind}")
    print(f"quench calibrate, MobileNetV3-style network [N, 3, 32, 32], batch {args.batch}, peak RSS of the process")
    print(f"{'source':<8} {'method':<11} {'samples':>8} {'peak RSS MiB':>13} {'seconds':>8} {'samples/s':>10}")
    ok = True
    for kind in args.source.split(","):
        for method in args.methods.split(","):
            peaks = []
            for n in sizes:
                out = work / f"state_{kind}_{method}_{n}.json"
                peak, sec = peak_rss_mib([args.quench, "calibrate", model, "--data", *sources[(kind, n)], "-m", method, "-b", args.batch,
                                          "-q", "-o", out])
                count = n if kind != "files" or n == args.small else n // 10
                peaks.append(peak)
                print(f"{kind:<8} {method:<11} {count:>8} {peak:>13.1f} {sec:>8.1f} {count / sec:>10.0f}")
            ratio = peaks[1] / peaks[0]
            flat = ratio <= 1.10
            ok = ok and flat
            print(f"{kind:<8} {method:<11} ratio {ratio:.3f} ({'flat' if flat else 'NOT FLAT'}: target <= 1.10)")
    print("ONNX Runtime's calibrator: not measured (no onnxruntime Python package on this machine)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
