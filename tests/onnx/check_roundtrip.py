#!/usr/bin/env python3
"""Runs onnx.checker on every model that tests/onnx/model_roundtrip_test.cpp saved.

Usage: check_roundtrip.py ROUNDTRIP_DIR ORIGINAL_DIR
A saved model must pass the checker whenever its original does (a few upstream test models are
deliberately invalid for the checker of this onnx version; they must fail the same way).
"""
import sys
from pathlib import Path

import onnx
import onnx.checker

out_dir, orig_dir = Path(sys.argv[1]), Path(sys.argv[2])
saved = sorted(out_dir.rglob("*.onnx"))
if len(saved) < 1000:
    sys.exit(f"expected the round-trip test to save > 1000 models in {out_dir}, found {len(saved)}")


def check(path):
    try:
        onnx.checker.check_model(onnx.load(str(path)))
        return None
    except Exception as e:  # noqa: BLE001 - the checker raises several exception types
        return type(e).__name__


passed = both_fail = 0
bad = []
for path in saved:
    mine = check(path)
    if mine is None:
        passed += 1
        continue
    theirs = check(orig_dir / path.relative_to(out_dir))
    if theirs is None:
        bad.append(f"{path}: {mine}")
    else:
        both_fail += 1
print(f"onnx.checker: {passed} pass, {both_fail} fail exactly as their originals do, {len(bad)} regressions")
for line in bad:
    print("  " + line)
sys.exit(1 if bad else 0)
