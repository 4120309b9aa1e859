#!/usr/bin/env bash
# Installs what is missing, builds, packs the bundled sample (24 ImageNet
# photos in ImageFolder layout) and shows what came out.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" >/dev/null

rm -rf build/demo.imgpack
build/imgpack pack --synsets examples/sample.synsets.txt \
    examples/sample build/demo.imgpack
echo
build/imgpack info build/demo.imgpack
echo
echo "sqlite3 build/demo.imgpack/catalog.db: the five largest source images"
sqlite3 -header -column build/demo.imgpack/catalog.db \
    "SELECT i.idx, c.description, i.src_width || 'x' || i.src_height AS source,
            i.src_bytes, substr(i.sha256, 1, 12) AS sha256
     FROM images AS i JOIN classes AS c USING (class_id)
     ORDER BY i.src_width * i.src_height DESC LIMIT 5"
