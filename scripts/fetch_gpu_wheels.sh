#!/usr/bin/env bash
# Download, on a machine with a package index, the wheels scripts/gpu_check.sh installs on
# a GPU machine that has python3.12 + torch 2.11 (+ numpy, pandas, scipy, matplotlib,
# scikit-learn, joblib, tqdm, threadpoolctl) but no index: into .whl/ at the repo root.
#
#   bash scripts/fetch_gpu_wheels.sh            # then the GPU machine runs gpu_check.sh
#
# .whl/ is not committed (add /.whl/ to .git/info/exclude in the checkout that ships it).
# Binary wheels are for CPython 3.12 on manylinux x86_64; torchvision 0.26 is the release
# built against torch 2.11. antlr4-python3-runtime 4.9.3 (omegaconf's pin) has no wheel
# on PyPI: it is built here from its sdist (pure Python).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.whl
mkdir -p "$DEST"
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64)
binary() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${PLAT[@]}" -d "$DEST" "$@"
}
pure() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d "$DEST" "$@"
}
binary PyYAML==6.0.3 torchvision==0.26.0
pure hydra-core==1.3.2 omegaconf==2.3.0 \
  pytest==8.4.2 pluggy==1.6.0 iniconfig==2.1.0 pygments==2.19.2 \
  byzfl==0.0.11 seaborn==0.13.2
if ! ls "$DEST"/antlr4_python3_runtime-4.9.3-*.whl >/dev/null 2>&1; then
  python3 -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" antlr4-python3-runtime==4.9.3
fi
ls -1 "$DEST"
du -sh "$DEST"
