#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors and runs every
# test (C unit tests, Python tests against Pillow/torchvision/python-lmdb),
# then the sanitizer and fuzzing runs:
#   build/        Release: the whole suite
#   build-asan/   gcc ASan + UBSan: the whole suite again (Python tests
#                 preload libasan to load the library through ctypes)
#   build-tsan/   gcc TSan: the C tests (queue, pool via the command,
#                 store, reader threads); TSan under ctypes is not supported
#   build-fuzz/   clang ASan + UBSan + libFuzzer: each fuzz target for
#                 FUZZ_SECONDS (default 30) from its corpus
# Any sanitizer report fails its test, and so the run. About 8 minutes on
# 2 cores; README.md says how to run one part alone or fuzz longer.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc)
fuzz_seconds=${FUZZ_SECONDS:-30}

# Sanitizer reports stop the process with a non-zero status: no report is
# ever just printed and survived.
export ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

scripts/install-deps.sh --test

echo "== Release build: every test"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DIMGPACK_WERROR=ON >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest -j "$jobs" --output-on-failure --timeout 900)

echo "== ASan + UBSan build: every test"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMGPACK_WERROR=ON \
      -DIMGPACK_ASAN=ON -DIMGPACK_UBSAN=ON >/dev/null
cmake --build build-asan -j "$jobs"
(cd build-asan && ctest -j "$jobs" --output-on-failure --timeout 1500)

echo "== TSan build: the threaded C tests"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMGPACK_WERROR=ON \
      -DIMGPACK_TSAN=ON >/dev/null
cmake --build build-tsan -j "$jobs"
(cd build-tsan && ctest -j "$jobs" -L quick --output-on-failure --timeout 600)

echo "== libFuzzer (clang, ASan + UBSan): ${fuzz_seconds} s per target"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DIMGPACK_WERROR=ON -DIMGPACK_FUZZ=ON -DIMGPACK_ASAN=ON \
      -DIMGPACK_UBSAN=ON -DIMGPACK_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
cmake --build build-fuzz -j "$jobs" --target fuzz_decode fuzz_record \
      replay_decode replay_record
(cd build-fuzz && ctest -j "$jobs" -L fuzz --output-on-failure)
