#!/usr/bin/env python3
"""Reference data for tests/image: test images and what python3-opencv makes of them.

    make_image_reference.py OUT_DIR

Writes into OUT_DIR (the build tree; run as the ctest fixture image_reference_data):
  files/*.png, *.jpg        generated images: gray, RGB, RGBA, gray+alpha, 16-bit, palette (with
                            and without tRNS), 1-bit gray, baseline/progressive/4:4:4/4:2:2/gray/CMYK JPEG,
                            EXIF orientations 2..8
  decode/<file>.color.npy   cv2.imread(f, IMREAD_COLOR)
  decode/<file>.gray.npy    cv2.imread(f, IMREAD_GRAYSCALE)
  decode/<file>.any.npy     cv2.imread(f, IMREAD_ANYDEPTH | IMREAD_COLOR) (16-bit files only)
  decode/<file>.noorient.npy  cv2.imread(f, IMREAD_COLOR | IMREAD_IGNORE_ORIENTATION) (EXIF files)
  decode.txt                one file name per line
  resize/<i>.src.npy, <i>.dst.npy and resize.txt "i sh sw cn dh dw interp dtype": cv2.resize on
                            random uint8 images and on float32 ones (integer and fractional values)
  preprocess/<i>.npy and preprocess.txt "i file<TAB>json": the preprocessing pipeline written out
                            with cv2 and numpy float32 arithmetic, one line per (file, config)
"""
import json
import math
import os
import sys

import cv2
import numpy as np
from PIL import Image

INTERP = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "nearest": cv2.INTER_NEAREST}


def scene(h, w, c, rng):
    """Smooth gradients, a few edges and noise: what JPEG's DCT and chroma subsampling see in photos."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    chans = []
    for k in range(c):
        v = 128 + 90 * np.sin(x / (7 + 3 * k) + y / (11 + k)) + 30 * ((x // 9 + y // 13 + k) % 2)
        chans.append(v + rng.normal(0, 12, (h, w)))
    return np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8)


def make_files(d, rng):
    os.makedirs(d, exist_ok=True)
    names = []

    def cv_write(name, img, params=()):
        assert cv2.imwrite(os.path.join(d, name), img, list(params)), name
        names.append(name)

    def pil_write(name, img, **kw):
        img.save(os.path.join(d, name), **kw)
        names.append(name)

    rgb = scene(37, 53, 3, rng)
    cv_write("gray.png", scene(29, 31, 1, rng)[:, :, 0])
    cv_write("rgb.png", rgb)
    rgba = np.concatenate([rgb, rng.integers(0, 256, (37, 53, 1), dtype=np.uint8)], -1)
    cv_write("rgba.png", rgba)
    pil_write("gray_alpha.png", Image.fromarray(np.stack([rgb[:, :, 0], rgb[:, :, 1]], -1), "LA"))
    cv_write("rgb16.png", (scene(23, 19, 3, rng).astype(np.uint16) * 257 + rng.integers(0, 257, (23, 19, 3))).astype(np.uint16))
    cv_write("gray16.png", rng.integers(0, 65536, (17, 21), dtype=np.uint16))
    pal = Image.fromarray(rgb[:, :, ::-1].copy(), "RGB").quantize(colors=40)
    pil_write("palette.png", pal)
    pal_t = pal.copy()
    pal_t.info["transparency"] = 3
    pil_write("palette_trns.png", pal_t, transparency=3)
    pil_write("bits1.png", Image.fromarray(rng.integers(0, 2, (13, 27), dtype=np.uint8) * 255, "L").convert("1"))
    big = scene(120, 160, 3, rng)
    cv_write("baseline.jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    cv_write("odd.jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 75])
    cv_write("progressive.jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 85, cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    cv_write("restart.jpg", rgb, [cv2.IMWRITE_JPEG_RST_INTERVAL, 2])
    cv_write("gray.jpg", big[:, :, 1])
    pil_write("s444.jpg", Image.fromarray(big[:, :, ::-1].copy(), "RGB"), quality=92, subsampling=0)
    pil_write("s422.jpg", Image.fromarray(rgb[:, :, ::-1].copy(), "RGB"), quality=80, subsampling=1)
    pil_write("cmyk.jpg", Image.fromarray(scene(33, 45, 4, rng), "CMYK"), quality=90)
    # EXIF orientation 2..8 (cv2.imread applies it), little- and big-endian TIFF headers.
    for o in range(2, 9):
        ex = Image.Exif()
        ex[0x0112] = o
        pil_write(f"exif{o}.jpg", Image.fromarray(rgb[:, :, ::-1].copy(), "RGB"), quality=90, exif=ex.tobytes())
    be = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00\x00\x00"
    pil_write("exif6be.jpg", Image.fromarray(rgb[:, :, ::-1].copy(), "RGB"), quality=90, exif=be)
    return names


def write_decode(out, names):
    dd = os.path.join(out, "decode")
    os.makedirs(dd, exist_ok=True)
    for n in names:
        f = os.path.join(out, "files", n)
        np.save(os.path.join(dd, n + ".color.npy"), cv2.imread(f, cv2.IMREAD_COLOR))
        np.save(os.path.join(dd, n + ".gray.npy"), cv2.imread(f, cv2.IMREAD_GRAYSCALE))
        if n.startswith("exif"):
            np.save(os.path.join(dd, n + ".noorient.npy"), cv2.imread(f, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION))
        if "16" in n:
            np.save(os.path.join(dd, n + ".any.npy"), cv2.imread(f, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR))
    with open(os.path.join(out, "decode.txt"), "w") as fh:
        fh.write("".join(n + "\n" for n in names))


def write_resize(out, rng):
    d = os.path.join(out, "resize")
    os.makedirs(d, exist_ok=True)
    # (sh, sw, dh, dw): up, down, integer factors (2x2 takes the area path), non-integer area
    # weights, one-pixel and one-row edges, mixed up/down axes.
    sizes = [(17, 23, 9, 11), (31, 40, 64, 80), (100, 100, 50, 50), (64, 48, 32, 24), (37, 53, 100, 120),
             (160, 240, 112, 112), (33, 33, 7, 5), (10, 300, 20, 100), (90, 120, 30, 40), (101, 77, 50, 150),
             (5, 5, 1, 1), (1, 7, 3, 2), (150, 100, 50, 50), (96, 96, 32, 32), (41, 29, 41, 60)]
    lines = []
    i = 0
    for sh, sw, dh, dw in sizes:
        for cn in (1, 3, 4):
            for interp in ("linear", "area", "nearest"):
                for kind in ("uint8", "float32", "float32frac"):
                    img = rng.integers(0, 256, (sh, sw, cn), dtype=np.uint8)
                    src = img if kind == "uint8" else img.astype(np.float32)
                    if kind == "float32frac":
                        src = (src * np.float32(1 / 255.0) - np.float32(0.45)).astype(np.float32)
                    r = cv2.resize(src[:, :, 0] if cn == 1 else src, (dw, dh), interpolation=INTERP[interp])
                    np.save(os.path.join(d, f"{i}.src.npy"), src)
                    np.save(os.path.join(d, f"{i}.dst.npy"), np.ascontiguousarray(r).reshape(dh, dw, cn))
                    lines.append(f"{i} {sh} {sw} {cn} {dh} {dw} {interp} {kind}\n")
                    i += 1
    with open(os.path.join(out, "resize.txt"), "w") as fh:
        fh.write("".join(lines))


def reference_preprocess(path, cfg, keep_16bit=False):
    """The pipeline preprocess_options describes, in cv2 + numpy float32."""
    C, H, W = cfg.get("shape", [3, 224, 224])
    img = cv2.imread(path, (cv2.IMREAD_GRAYSCALE if C == 1 else cv2.IMREAD_COLOR) | (cv2.IMREAD_ANYDEPTH if keep_16bit else 0))
    img = img.reshape(img.shape[0], img.shape[1], C)
    h, w = img.shape[:2]
    interp = INTERP[cfg.get("interp", "linear")]
    u8 = cfg.get("dtype", "float32") == "uint8"
    src = img.astype(np.float32) if (cfg.get("resize_float") or img.dtype == np.uint16) and not u8 else img

    def rs(a, ww, hh):
        return cv2.resize(a, (ww, hh), interpolation=interp).reshape(hh, ww, C)

    mode = cfg.get("resize", "exact")
    if mode == "exact":
        r, valid = rs(src, W, H), W
    elif mode == "short_crop":
        s = cfg.get("resize_short", 0) or max(H, W)
        if h <= w:
            nh, nw = s, (w * s * 2 + h) // (2 * h)
        else:
            nw, nh = s, (h * s * 2 + w) // (2 * w)
        top, left = (nh - H) // 2, (nw - W) // 2
        r, valid = rs(src, nw, nh)[top:top + H, left:left + W], W
    else:  # keep_pad, PaddleOCR resize_norm_img
        ratio = w / float(h)
        rw = W if math.ceil(H * ratio) > W else int(math.ceil(H * ratio))
        r, valid = rs(src, rw, H), rw
    if C == 3 and cfg.get("order", "rgb") == "rgb":
        r = r[:, :, ::-1]
    pad = cfg.get("pad_value", 0.0)
    if u8:
        out = np.full((H, W, C), min(255, max(0, round(pad))), np.uint8)
        out[:, :valid] = r
    else:
        def per_channel(key, default):
            v = np.asarray(cfg.get(key, default), np.float32).reshape(-1)
            return v if v.size == C else np.full(C, v[0], np.float32)
        x = r.astype(np.float32)
        if "ncnn_mean" in cfg or "ncnn_norm" in cfg:
            x = (x * np.float32(1.0) - per_channel("ncnn_mean", 0.0)) * per_channel("ncnn_norm", 1.0)
        else:
            x = x * np.float32(cfg.get("scale", 1 / 255.0))
            x = (x - per_channel("mean", 0.0)) / per_channel("std", 1.0)
        out = np.full((H, W, C), np.float32(pad), np.float32)
        out[:, :valid] = x
    if cfg.get("layout", "nchw") == "nchw":
        out = out.transpose(2, 0, 1)
    return np.ascontiguousarray(out)


IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
CONFIGS = [
    ({"shape": [3, 48, 64], **IMAGENET}, ["baseline.jpg", "rgb.png", "palette.png", "rgba.png"]),
    ({"shape": [3, 32, 32], "resize": "short_crop", "resize_short": 40, "interp": "area", "order": "bgr",
      "layout": "nhwc", **IMAGENET}, ["baseline.jpg", "odd.jpg", "gray.png"]),
    ({"shape": [3, 56, 56], "resize": "short_crop", "interp": "linear"}, ["odd.jpg", "progressive.jpg"]),
    ({"shape": [3, 32, 100], "resize": "keep_pad", "scale": 1 / 255.0, "mean": 0.5, "std": 0.5},
     ["baseline.jpg", "odd.jpg", "gray.jpg", "s422.jpg"]),
    ({"shape": [3, 16, 40], "resize": "keep_pad", "pad_value": -1.0, "mean": 0.5, "std": 0.5}, ["baseline.jpg"]),
    ({"shape": [1, 28, 28], "interp": "nearest", "mean": 0.1307, "std": 0.3081}, ["gray.png", "baseline.jpg", "cmyk.jpg"]),
    ({"shape": [1, 20, 30], "interp": "area"}, ["rgb16.png", "bits1.png", "palette_trns.png"]),
    ({"shape": [3, 40, 30], "dtype": "uint8", "layout": "nhwc"}, ["baseline.jpg", "s444.jpg", "cmyk.jpg"]),
    ({"shape": [3, 32, 60], "resize": "keep_pad", "dtype": "uint8", "pad_value": 7}, ["odd.jpg"]),
    ({"shape": [3, 36, 36], "ncnn_mean": [104.0, 117.0, 123.0], "ncnn_norm": [0.017, 0.017, 0.017], "order": "bgr"},
     ["baseline.jpg", "restart.jpg"]),
    ({"shape": [3, 50, 70], "resize_float": True, "interp": "linear", **IMAGENET}, ["baseline.jpg", "rgb.png"]),
    ({"shape": [3, 60, 80], "interp": "linear"}, ["baseline.jpg"]),  # 2x2 downscale: cv2's area path
]


def write_preprocess(out):
    d = os.path.join(out, "preprocess")
    os.makedirs(d, exist_ok=True)
    lines = []
    i = 0
    for cfg, files in CONFIGS:
        for f in files:
            np.save(os.path.join(d, f"{i}.npy"), reference_preprocess(os.path.join(out, "files", f), cfg))
            lines.append(f"{i} {f}\t{json.dumps(cfg)}\n")
            i += 1
    with open(os.path.join(out, "preprocess.txt"), "w") as fh:
        fh.write("".join(lines))
    # 16-bit samples kept (IMREAD_ANYDEPTH): resized as float32, scaled by 1/65535.
    lines = []
    for i, (cfg, f) in enumerate([({"shape": [3, 12, 10], "scale": 1 / 65535.0, "interp": "linear"}, "rgb16.png"),
                                  ({"shape": [1, 8, 7], "scale": 1 / 65535.0, "interp": "area", "mean": 0.5}, "gray16.png")]):
        np.save(os.path.join(d, f"16_{i}.npy"), reference_preprocess(os.path.join(out, "files", f), cfg, keep_16bit=True))
        lines.append(f"16_{i} {f}\t{json.dumps(cfg)}\n")
    with open(os.path.join(out, "preprocess16.txt"), "w") as fh:
        fh.write("".join(lines))


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(20261203)
    names = make_files(os.path.join(out, "files"), rng)
    write_decode(out, names)
    write_resize(out, rng)
    write_preprocess(out)
    print(f"image reference data in {out}: {len(names)} files, cv2 {cv2.__version__}")


if __name__ == "__main__":
    main()
