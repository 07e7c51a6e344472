"""Writes the small .npz files of tests/data/npz (committed) that sample_sources_test.cpp reads.

  /usr/bin/python3 tests/data/make_npz.py tests/data/npz

Values are arange-based so the C++ test can check them without numpy.
"""
import os
import sys

import numpy as np

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
x = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3)          # x[i, j, k] = 6 i + 3 j + k
ids = (np.arange(5 * 4, dtype=np.int64).reshape(5, 4) * 10)          # ids[i, j] = 10 (4 i + j)
np.savez(os.path.join(out, "two_inputs.npz"), x=x, ids=ids)
np.savez_compressed(os.path.join(out, "compressed.npz"), x=x)
# One sample per file, with and without a leading axis of 1 (sample i = x[i]).
np.savez(os.path.join(out, "sample_0.npz"), x=x[0:1], ids=ids[0:1])
np.savez(os.path.join(out, "sample_1.npz"), x=x[1], ids=ids[1])
