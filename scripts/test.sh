#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors and runs every
# test (C unit tests, Python tests against Pillow/torchvision/python-lmdb).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --test
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DIMGPACK_WERROR=ON >/dev/null
cmake --build build -j "$(nproc)"
cd build
ctest -j "$(nproc)" --output-on-failure --timeout 900
