#!/usr/bin/env bash
# Build gpu_carry/ for the GPU check (scripts/gpu_check.py): the wheels in scripts/gpu_carry.txt
# for the device's Python (3.12, manylinux x86_64) and a 64-image 256 px cache of the real data.
# Needs the package index (pip download) and GGO_DATA; run from anywhere:
#   scripts/gpu_carry.sh [python version, default 3.12]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-3.12}
rm -rf gpu_carry && mkdir -p gpu_carry/wheels
python -m pip download --quiet --no-deps --only-binary=:all: --python-version "$py" \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux2014_x86_64 \
  --dest gpu_carry/wheels -r scripts/gpu_carry.txt
cache=$(python - <<'PY' 2>/dev/null | tail -1
from ggo.config import compose, to_dict
from ggo.data import prepare_from_config
cfg = to_dict(compose(["preprocess=res256"]))
print(prepare_from_config(cfg["data"], cfg["preprocess"], progress=False).path)
PY
)
python scripts/gpu_check.py --write-cache gpu_carry/cache_res256.npz --from "$cache" --n 64
du -sh gpu_carry
