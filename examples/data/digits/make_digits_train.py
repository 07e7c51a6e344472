#!/usr/bin/env python3
"""Writes the training split of make_digits.py as .npy, for examples/qat_digits.cpp (which trains in C++).

digits_train.npy float32 [1297,1,8,8] in [0,1] and digits_train_labels.npy int64 [1297]: every
scikit-learn digit that is not in digits_test.npy (digits_calib.npy is a subset of it). Same split,
same seed as make_digits.py, and no torch involved, so the bytes depend only on sklearn's bundled data.

Run: /usr/bin/python3 examples/data/digits/make_digits_train.py [OUTDIR]   (default: this folder)
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_digits import load_splits  # noqa: E402


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    x_tr, y_tr, x_cal, x_te, _ = load_splits()
    # The bundled test and calibration files come from the same split: check, so a changed sklearn
    # cannot silently mix test images into training.
    here = os.path.dirname(os.path.abspath(__file__))
    if os.path.exists(os.path.join(here, "digits_test.npy")):
        if not np.array_equal(np.load(os.path.join(here, "digits_test.npy")), x_te):
            sys.exit("make_digits_train: digits_test.npy is not this split's test set")
    np.save(os.path.join(out, "digits_train.npy"), np.ascontiguousarray(x_tr))
    np.save(os.path.join(out, "digits_train_labels.npy"), y_tr)
    print(f"train {x_tr.shape} labels {np.bincount(y_tr).tolist()}")


if __name__ == "__main__":
    main()
