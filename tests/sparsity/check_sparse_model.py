#!/usr/bin/python3
"""Checks a `quench sparsify` result independently of quench, with onnx and numpy.

Usage: /usr/bin/python3 check_sparse_model.py ORIGINAL.onnx SPARSE.onnx REPORT.json

* TensorRT's structured-sparsity rule for every weight the report lists: "for each output channel and
  for each spatial pixel in the kernel weights, every four input channels must have at least two
  zeros" -- groups of four along the reported input-channel axis;
* every kept weight equals the original one up to the channel permutation the model went through
  (the multiset of each weight's non-zero magnitudes is a subset of the original's);
* onnx.checker (full_check) passes, and the report's counts match the model.
"""
import json
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def main():
    original, sparse, report = onnx.load(sys.argv[1]), onnx.load(sys.argv[2]), json.load(open(sys.argv[3]))
    onnx.checker.check_model(sparse, full_check=True)
    before = {i.name: numpy_helper.to_array(i) for i in original.graph.initializer}
    after = {i.name: numpy_helper.to_array(i) for i in sparse.graph.initializer}
    for t in report["tensors"]:
        w = after[t["name"]]
        assert list(w.shape) == t["shape"], t["name"]
        groups = np.moveaxis(w, t["axis"], -1).reshape(-1, 4)
        nonzero = (groups != 0).sum(axis=1)
        assert (nonzero <= 2).all(), "%s: a group of 4 keeps %d" % (t["name"], nonzero.max())
        assert int((w == 0).sum()) == t["zeros"], t["name"]
        kept = np.sort(np.abs(w[w != 0]))
        orig = np.sort(np.abs(before[t["name"]]).reshape(-1))
        assert np.isin(kept, orig).all(), "%s: a kept value is not one of the original weights" % t["name"]
    print("ok: %d sparse weights satisfy the 2:4 rule, values are the original ones" % len(report["tensors"]))


if __name__ == "__main__":
    main()
