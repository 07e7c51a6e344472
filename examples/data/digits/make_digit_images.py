#!/usr/bin/python3
"""The quick start's image folder: digits_calib.npy written as 8x8 grayscale PNGs.

    /usr/bin/python3 make_digit_images.py

Each sample x in [0, 1] becomes one 8-bit PNG with pixels round(x * 255), in images/NNN.png, so
`quench quantize digits_cnn.onnx --images images` (default preprocessing: the model input's shape,
scale 1/255) calibrates on the same pictures as --data input=digits_calib.npy, within half a
pixel step (1/510). Deterministic: reruns give the same bytes with the same Pillow.
"""
from pathlib import Path

import numpy as np
from PIL import Image

here = Path(__file__).resolve().parent
x = np.load(here / "digits_calib.npy")  # [256, 1, 8, 8] float32 in [0, 1]
out = here / "images"
out.mkdir(exist_ok=True)
pixels = np.rint(x[:, 0] * 255.0).astype(np.uint8)
for i, p in enumerate(pixels):
    Image.fromarray(p, mode="L").save(out / f"{i:03d}.png", optimize=True)
print(f"{len(pixels)} images in {out}")
