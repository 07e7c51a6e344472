#!/usr/bin/env bash
# The two commands of README.md's quick start.
#   bash cmake/quickstart.sh demo   install what is missing, build, run the main job on the bundled example
#   bash cmake/quickstart.sh test   install what is missing, build everything, run every test,
#                                   then rebuild the unit tests with ASan + UBSan and run them
set -euo pipefail
mode=${1:-}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)
launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

case "$mode" in
  demo)
    bash cmake/install-deps.sh build
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" >/dev/null
    cmake --build build -j"$jobs" --target quench_cli
    # The main job: post-training INT8 quantization of the bundled digits CNN (examples/data/digits),
    # calibrated on a folder of PNG images (preprocessed to the model input's shape, pixels / 255),
    # with FP32 / INT8 accuracy on the held-out images, sizes and the worst tensors by SQNR.
    d=examples/data/digits
    build/bin/quench quantize $d/digits_cnn.onnx -o build/digits_cnn.int8.onnx --images $d/images \
        --method percentile --eval-data input=$d/digits_test.npy --labels $d/digits_test_labels.npy \
        --report-samples 64 --report build/digits_cnn.int8.report.json
    ;;
  test)
    bash cmake/install-deps.sh test
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" >/dev/null
    cmake --build build -j"$jobs"
    ctest --test-dir build --output-on-failure -j"$jobs"
    # The sanitizer build runs the unit tests (not the packaging test: it rebuilds nothing new).
    cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DQUENCH_SANITIZE=ON \
          -DQUENCH_BUILD_BENCH=OFF -DQUENCH_BUILD_EXAMPLES=OFF "${launcher[@]}" >/dev/null
    cmake --build build-asan -j"$jobs"
    ctest --test-dir build-asan --output-on-failure -j"$jobs"
    ;;
  *)
    echo "usage: bash cmake/quickstart.sh demo|test" >&2
    exit 2
    ;;
esac
