#!/usr/bin/env bash
# Build gpu_carry/ for the GPU check (python -m ggo.bench.gpu): the wheels in scripts/gpu_carry.txt
# for the device's Python (3.12, manylinux x86_64) and a 64-image 256 px cache of the real data
# (its 256 px cache is built first if missing). Needs the package index (pip download) and
# GGO_DATA; run from anywhere:
#   scripts/gpu_carry.sh [python version, default 3.12]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-3.12}
rm -rf gpu_carry && mkdir -p gpu_carry/wheels
python -m pip download --quiet --no-deps --only-binary=:all: --python-version "$py" \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux2014_x86_64 \
  --dest gpu_carry/wheels -r scripts/gpu_carry.txt
python -m ggo.bench.gpu --write-cache gpu_carry/cache_res256.npz --resolution 256 --n 64
du -sh gpu_carry
