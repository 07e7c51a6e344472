#!/usr/bin/env python3
"""cv2 side of bench/image_preprocess_bench.cpp, run by it in the same session.

    image_cv2_bench.py DIR    writes DIR/bench.jpg (640x480, quality 90) if missing, then prints
                              {"decode", "resize", "resize_area", "decode_resize", "pipeline"}: the
                              best of 30 (resize: 200) runs of cv2.imread; cv2.resize of the
                              decoded image to 224x224 INTER_LINEAR / INTER_AREA; imread + resize; + the
                              float32 ImageNet normalization and HWC->CHW transpose. One thread.
"""
import json
import os
import sys
import time

import cv2
import numpy as np


def best(f, reps=30):
    t = 1e30
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        t = min(t, time.perf_counter() - t0)
    return t


def main():
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "bench.jpg")
    if not os.path.exists(path):
        rng = np.random.default_rng(7)
        y, x = np.mgrid[0:480, 0:640].astype(np.float32)
        img = np.stack([128 + 100 * np.sin(x / (9 + k) + y / (13 + 2 * k)) for k in range(3)], -1)
        img = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    cv2.setNumThreads(1)
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)

    def pipeline():
        img = cv2.resize(cv2.imread(path, cv2.IMREAD_COLOR), (224, 224), interpolation=cv2.INTER_LINEAR)
        x = (img[:, :, ::-1].astype(np.float32) * np.float32(1 / 255.0) - mean) / std
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    decoded = cv2.imread(path, cv2.IMREAD_COLOR)
    print(json.dumps({
        "decode": best(lambda: cv2.imread(path, cv2.IMREAD_COLOR)),
        "resize": best(lambda: cv2.resize(decoded, (224, 224), interpolation=cv2.INTER_LINEAR), 200),
        "resize_area": best(lambda: cv2.resize(decoded, (224, 224), interpolation=cv2.INTER_AREA), 200),
        "decode_resize": best(lambda: cv2.resize(cv2.imread(path, cv2.IMREAD_COLOR), (224, 224),
                                                 interpolation=cv2.INTER_LINEAR)),
        "pipeline": best(pipeline),
    }))


if __name__ == "__main__":
    main()
