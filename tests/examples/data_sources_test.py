#!/usr/bin/env python3
"""Every kind of calibration data source of the quench CLI gives the calibration state of the
equivalent .npy, on the torch-exported MobileNetV3-style model ([N, 3, 32, 32] float32).

  data_sources_test.py QUENCH_BINARY MODEL.onnx WORK_DIR [--images]

Sources: .npz (bare and NAME=), a directory of per-sample .npy (with and without a leading 1),
a list file of per-sample .npz, raw float32 files (one file, and a directory of batch files),
a seeded shuffle that still merges exactly over shards, --samples, bad files (NaN, wrong shape,
truncated; an error naming the file, or --skip-bad that skips, counts and names them), shape and
dtype checks against the model input, np.savez_compressed refused; with --images, PNG files
preprocessed by --shape/--mean/--std (and the same in --preprocess JSON) against cv2 + numpy.
quantize --eval-data and compare --data take the same sources.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def run(*args, fail=False):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if (r.returncode != 0) != fail:
        sys.exit(f"{'expected a failure' if fail else 'FAILED'}: {' '.join(map(str, args))}\n{r.stdout}\n{r.stderr}")
    return r


def tensors(path):
    return json.loads(Path(path).read_text())["tensors"]


def main():
    quench, model, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    images = "--images" in sys.argv[4:]
    work.mkdir(parents=True, exist_ok=True)
    for f in work.rglob("*"):
        if f.is_file():
            f.unlink()
    n = 24
    x = np.random.default_rng(0).standard_normal((n, 3, 32, 32)).astype(np.float32)
    np.save(work / "calib.npy", x)

    def calibrate(out, *data, method="entropy", extra=()):
        run(quench, "calibrate", model, *data, "-m", method, "-b", "5", "-q", "-o", work / out, *extra)
        return tensors(work / out)

    ref = calibrate("ref.json", "--data", f"input={work / 'calib.npy'}")
    ref_minmax = calibrate("ref_minmax.json", "--data", f"input={work / 'calib.npy'}", method="minmax")

    def same(name, state):
        if state != ref:
            sys.exit(f"{name}: calibration state differs from the .npy's")
        print(f"{name}: same state as the .npy")

    # .npz: a bare archive maps its arrays by name; NAME= picks the array or the only one.
    np.savez(work / "calib.npz", input=x)
    np.savez(work / "other_name.npz", images=x)
    same("npz (bare)", calibrate("npz.json", "--data", work / "calib.npz"))
    same("npz (NAME=, only array)", calibrate("npz2.json", "--data", f"input={work / 'other_name.npz'}"))
    np.savez_compressed(work / "compressed.npz", input=x)
    r = run(quench, "calibrate", model, "--data", work / "compressed.npz", "-o", work / "bad.json", fail=True)
    assert "np.savez instead of np.savez_compressed" in r.stderr and "compressed.npz" in r.stderr, r.stderr

    # A directory of per-sample .npy: odd samples stored with a leading axis of 1.
    d = work / "npy_dir"
    d.mkdir(exist_ok=True)
    for i in range(n):
        np.save(d / f"s{i:03d}.npy", x[i:i + 1] if i % 2 else x[i])
    same("directory of per-sample .npy", calibrate("dir.json", "--data", f"input={d}"))

    # A list file of per-sample .npz (relative paths), in the list's order.
    z = work / "npz_files"
    z.mkdir(exist_ok=True)
    for i in range(n):
        np.savez(z / f"sample_{i}.npz", input=x[i])
    (work / "list.txt").write_text("# one sample per line\n" + "".join(f"npz_files/sample_{i}.npz\n" for i in range(n)))
    same("list file of per-sample .npz", calibrate("list.json", "--data", work / "list.txt"))

    # Raw float32 (TensorRT-style): one file with shape from the model, and batch files in a directory.
    x.tofile(work / "calib.bin")
    same("raw file (shape and dtype from the model)", calibrate("raw.json", "--data", f"input={work / 'calib.bin'}", extra=["--raw-dtype", "float32"]))
    rd = work / "raw_dir"
    rd.mkdir(exist_ok=True)
    x[:16].tofile(rd / "batch0.bin")
    x[16:].tofile(rd / "batch1.bin")
    same("directory of raw batch files", calibrate("rawdir.json", "--data", f"input={rd}", extra=["--raw-shape", "3,32,32", "--raw-dtype", "float32"]))
    (work / "odd.bin").write_bytes(x.tobytes()[:-4])
    r = run(quench, "calibrate", model, "--data", f"input={work / 'odd.bin'}", "--raw-dtype", "float32", "-o", work / "bad.json", fail=True)
    assert "odd.bin" in r.stderr and "whole number of samples" in r.stderr, r.stderr

    # Seeded shuffle: deterministic, min-max unchanged, and 3 shards of it merge to the one pass.
    for method in ["minmax", "entropy", "percentile"]:
        one = calibrate(f"shuf_{method}.json", "--data", work / "calib.npz", method=method, extra=["--shuffle", "--seed", "3"])
        shards = []
        for k in range(3):
            shards.append(work / f"shuf_{method}_{k}.json")
            calibrate(shards[-1].name, "--data", work / "calib.npz", method=method, extra=["--shuffle", "--seed", "3", "--shard", f"{k}/3"])
        run(quench, "merge", *shards, "-o", work / f"shuf_{method}_merged.json")
        if tensors(work / f"shuf_{method}_merged.json") != one:
            sys.exit(f"{method}: shards of a shuffled source do not merge to the single pass")
    if tensors(work / "shuf_minmax.json") != ref_minmax:
        sys.exit("a shuffle changed the min-max state")
    print("shuffle: 3 shards merge to the single pass (minmax, entropy, percentile); minmax unchanged")
    a = calibrate("sub_a.json", "--data", work / "calib.npz", extra=["--samples", "10", "--seed", "1"])
    b = calibrate("sub_b.json", "--data", work / "calib.npz", extra=["--samples", "10", "--seed", "1"])
    c = calibrate("sub_c.json", "--data", work / "calib.npz", extra=["--samples", "10", "--seed", "2"])
    meta = json.loads((work / "sub_a.json").read_text())["metadata"]
    assert meta["samples"] == "10", meta
    assert a == b and a != c and a != ref, "--samples must be deterministic given the seed"
    print("--samples 10: deterministic per seed")

    # Bad files among good ones: an error naming the file, or skipped, counted and named.
    bad = work / "bad_dir"
    bad.mkdir(exist_ok=True)
    for i in range(n):
        np.save(bad / f"s{i:03d}.npy", x[i])
    nan = x[3].copy()
    nan[1, 2, 3] = np.nan
    np.save(bad / "s003_nan.npy", nan)
    np.save(bad / "s010_shape.npy", x[0, :, :16, :16])
    np.save(bad / "s020_trunc.npy", x[5])
    (bad / "s020_trunc.npy").write_bytes((bad / "s020_trunc.npy").read_bytes()[:-100])
    r = run(quench, "calibrate", model, "--data", f"input={bad}", "-o", work / "bad.json", fail=True)
    assert "s003_nan.npy" in r.stderr and "NaN at element" in r.stderr, r.stderr
    assert not (work / "bad.json").exists()
    r = run(quench, "calibrate", model, "--data", f"input={bad}", "-m", "entropy", "-b", "5", "-q", "--skip-bad", "-o", work / "skip.json")
    assert f"skipped 3 bad samples of {n + 3}" in r.stderr, r.stderr
    for name in ["s003_nan.npy", "s010_shape.npy", "s020_trunc.npy"]:
        assert name in r.stderr, (name, r.stderr)
    same("--skip-bad (3 bad files skipped and named)", tensors(work / "skip.json"))

    # Checked against the model input: shape and dtype.
    np.save(work / "small.npy", x[:, :, :16, :16])
    r = run(quench, "calibrate", model, "--data", f"input={work / 'small.npy'}", "-o", work / "bad.json", fail=True)
    assert "expected samples of shape [3, 32, 32] for the model input, found [3, 16, 16]" in r.stderr, r.stderr
    np.save(work / "f64.npy", x.astype(np.float64))
    r = run(quench, "calibrate", model, "--data", f"input={work / 'f64.npy'}", "-o", work / "bad.json", fail=True)
    assert "expected float for the model input, found double" in r.stderr, r.stderr
    r = run(quench, "calibrate", model, "--data", f"images={work / 'calib.npy'}", "-o", work / "bad.json", fail=True)
    assert "'images' is not a graph input" in r.stderr, r.stderr

    # quantize --eval-data and compare --data take the same sources.
    r = run(quench, "quantize", model, "-o", work / "q.onnx", "--data", work / "calib.npz", "--method", "minmax", "--eval-data", f"input={d}",
            "--report-samples", "4", "-q")
    assert (work / "q.onnx").exists()
    r = run(quench, "compare", model, model, "--data", f"input={d}", "-q")
    assert f"{n} samples" in r.stdout and "inf" in r.stdout, r.stdout
    print("quantize --eval-data DIR, compare --data DIR: OK")

    if images:
        import cv2
        imgs = work / "png"
        imgs.mkdir(exist_ok=True)
        rng = np.random.default_rng(1)
        ref_x = []
        mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
        for i in range(12):
            h, w = (32, 32) if i % 3 else (48, 40)
            cv2.imwrite(str(imgs / f"img_{i:02d}.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            img = cv2.imread(str(imgs / f"img_{i:02d}.png"))
            img = cv2.resize(img, (32, 32), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
            ref_x.append(((img.astype(np.float32) * np.float32(1 / 255) - mean) / std).transpose(2, 0, 1))
        np.save(work / "png_ref.npy", np.ascontiguousarray(np.stack(ref_x)))
        want = calibrate("png_ref.json", "--data", f"input={work / 'png_ref.npy'}")
        got = calibrate("png.json", "--images", imgs, "--shape", "3,32,32", "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225")
        if got != want:
            sys.exit("--images: state differs from cv2 + numpy preprocessing of the same PNGs")
        (work / "pre.json").write_text(json.dumps({"shape": [3, 32, 32], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}))
        if calibrate("png_json.json", "--images", imgs, "--preprocess", work / "pre.json") != want:
            sys.exit("--preprocess JSON: state differs from the flags'")
        if calibrate("png_dir.json", "--data", f"input={imgs}", "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225") != want:
            sys.exit("--data DIR of images: state differs")
        print("--images PNG folder (--shape/--mean/--std, --preprocess JSON, --data DIR): same state as cv2 + numpy")
    print("data sources CLI: OK")


if __name__ == "__main__":
    main()
