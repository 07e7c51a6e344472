#!/usr/bin/env python3
"""Ctrl-C (SIGINT) or SIGTERM during `quench calibrate` / `quench quantize` leaves no output file
and no temporary file, and the process ends by the signal.

  interrupt_test.py QUENCH_BINARY MODEL.onnx WORK_DIR

Each command runs on enough samples to take several seconds; the signal is sent once it is
calibrating (after a delay that is a fraction of a full run's time, measured first on a small
set). The write itself is interrupted in tests/core/atomic_file_test.cpp, where the signal can
be raised inside write_file_atomically.
"""
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def main():
    quench, model, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    work.mkdir(parents=True, exist_ok=True)
    for f in work.iterdir():
        if f.is_file():
            f.unlink()
    data = work / "many.npy"
    # Long enough to be mid-run after start-up on any machine (about 5 s at 800 samples/s).
    np.save(data, np.random.default_rng(0).standard_normal((4000, 3, 32, 32)).astype(np.float32))
    # Start-up time (load, probe run, first batch): the signal goes this long plus a margin after launch.
    small = work / "small.npy"
    np.save(small, np.random.default_rng(1).standard_normal((8, 3, 32, 32)).astype(np.float32))
    t0 = time.perf_counter()
    subprocess.run([quench, "calibrate", model, "--data", f"input={small}", "-m", "entropy", "-q", "-o", str(work / "probe.json")], check=True,
                   capture_output=True)
    startup = time.perf_counter() - t0
    (work / "probe.json").unlink()
    commands = {
        "calibrate": [quench, "calibrate", model, "--data", f"input={data}", "-m", "entropy", "-q", "-o", str(work / "out.json")],
        "quantize": [quench, "quantize", model, "--data", f"input={data}", "--method", "entropy", "-q", "-o", str(work / "out.onnx")],
    }
    for name, cmd in commands.items():
        for sig in [signal.SIGINT, signal.SIGTERM]:
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(min(5.0, startup + 0.3))
            if p.poll() is not None:
                sys.exit(f"{name}: finished before the signal; give it more samples ({p.returncode})")
            p.send_signal(sig)
            out, err = p.communicate(timeout=60)
            if p.returncode != -sig:
                sys.exit(f"{name}: expected to end by signal {sig.name}, exit status {p.returncode}\n{err.decode()}")
            left = sorted(f.name for f in work.iterdir() if f.name not in (data.name, small.name))
            if left:
                sys.exit(f"{name} after {sig.name}: left {left}")
            print(f"{name}: {sig.name} mid-run left no output and no temporary")
    print("interrupt: OK")


if __name__ == "__main__":
    main()
