#!/usr/bin/env bash
# Installs what quench's build and tests need on Debian 12, skipping whatever is already there.
#   cmake/install-deps.sh build   compiler, CMake and the libraries the examples link
#   cmake/install-deps.sh test    + reference tools for the tests (python3-numpy/onnx/torch,
#                                 ONNX node test data, ONNX Runtime from npm, slurm-wlm for
#                                 the single-node Slurm test, which starts its own daemons)
# Runs as root (apt-get); safe to run any number of times.
set -euo pipefail
mode=${1:-test}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

build_pkgs=(g++ cmake ninja-build ccache pkg-config
            libeigen3-dev xtensor-dev libonnx-dev libprotobuf-dev protobuf-compiler
            doctest-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev
            libjpeg62-turbo-dev libpng-dev)
test_pkgs=(python3 python3-numpy python3-onnx python3-torch python3-sklearn libonnx-testdata clang-14 libclang-rt-14-dev
           slurm-wlm python3-yaml python3-opencv python3-pil)

want=("${build_pkgs[@]}")
[ "$mode" = test ] && want+=("${test_pkgs[@]}")
# Node.js and npm for ONNX Runtime: take the system's if present (some images ship a nodejs that
# bundles npm and conflicts with Debian's npm package), else Debian's.
if [ "$mode" = test ] && ! command -v npm >/dev/null 2>&1; then
  want+=(nodejs npm)
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages and not root; run as root or install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$mode" = test ] && [ ! -f "$root/tests/ort/node_modules/onnxruntime-node/package.json" ]; then
  echo "install-deps: installing onnxruntime-node (npm, --ignore-scripts: the CPU binaries ship in the package)"
  (cd "$root/tests/ort" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null)
fi
exit 0
