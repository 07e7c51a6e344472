#!/usr/bin/env python3
"""Writes the small .npy files that tests/adapt/npy_test.cpp reads, with NumPy itself.

Run: /usr/bin/python3 tests/adapt/make_npy_samples.py tests/data/npy
The outputs are committed (a few hundred bytes); rerunning gives identical files.
"""
import sys
from pathlib import Path

import numpy as np

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
np.save(out / "f32_2x3.npy", np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5)
np.save(out / "i4_be_3.npy", np.array([1, -2, 300000], dtype=">i4"))
np.save(out / "bool_scalar.npy", np.array(True))
np.save(out / "f16_4.npy", np.array([1.0, -0.5, 65504.0, np.inf], dtype=np.float16))
np.save(out / "f64_fortran.npy", np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)))
np.save(out / "u8_empty.npy", np.zeros((0, 3), dtype=np.uint8))
np.save(out / "c64_2.npy", np.zeros(2, dtype=np.complex64))
