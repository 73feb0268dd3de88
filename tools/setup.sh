#!/usr/bin/env bash
# Set up DrivePI on this machine: idempotent, safe to run again (a second run takes seconds).
#   - Debian libraries open3d needs (libusb-1.0-0; libvulkan1 + mesa-vulkan-drivers for headless rendering)
#   - a virtual environment in .venv (override with DRIVEPI_VENV)
#   - torch (CPU build 2.13.0 unless a torch is already installed: a GPU user keeps their own)
#   - mmcv 2.1.0 with compiled ops, built ONCE into a wheel cache outside the repository
#     (DRIVEPI_CACHE, default ~/.cache/drivepi) and reused afterwards (the build takes ~11 min on 2 cores)
#   - drivepi itself (editable) with the pinned dependency set of requirements/constraints.txt
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DRIVEPI_VENV:-$REPO/.venv}"
CACHE="${DRIVEPI_CACHE:-$HOME/.cache/drivepi}"
WHEELS="$CACHE/wheels"
CONSTRAINTS="$REPO/requirements/constraints.txt"
MMCV_VERSION=2.1.0
log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

install_debian_libs() {
  local missing=()
  for pkg in libusb-1.0-0 libvulkan1 mesa-vulkan-drivers; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    log "WARNING: cannot install ${missing[*]} (no apt-get): open3d rendering may fail"; return 0
  fi
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  log "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

make_venv() {
  [ -x "$VENV/bin/python" ] || { log "creating $VENV"; python3 -m venv "$VENV"; }
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
}

# pip install, quiet on success; on failure print pip's output and stop.
pip_quiet() {
  local out; out="$(mktemp)"
  if ! python -m pip install -q --disable-pip-version-check "$@" >"$out" 2>&1; then
    grep -vE '^WARNING: Location' "$out" >&2; rm -f "$out"; return 1
  fi
  rm -f "$out"
}

install_torch() {
  has_modules torch && return 0
  log "installing torch (CPU build)"
  pip_quiet -c "$CONSTRAINTS" torch
}

mmcv_wheel() {
  local tag; tag="$(python -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
  ls "$WHEELS"/mmcv-"$MMCV_VERSION"-"$tag"-*.whl 2>/dev/null | head -n 1
}

build_mmcv_wheel() {
  log "building mmcv $MMCV_VERSION with compiled ops into $WHEELS (once; ~11 min on 2 cores)"
  mkdir -p "$WHEELS"
  local torch_setuptools; torch_setuptools="$(python -c 'import setuptools; print(setuptools.__version__)')"
  pip_quiet "setuptools<70" wheel ninja   # mmcv's setup.py imports pkg_resources
  local tmp; tmp="$(mktemp -d "$WHEELS/.build.XXXXXX")"
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" python -m pip wheel -q --no-deps --no-build-isolation \
    -w "$tmp" "mmcv==$MMCV_VERSION"
  mv "$tmp"/mmcv-*.whl "$WHEELS"/ && rmdir "$tmp"
  pip_quiet "setuptools==$torch_setuptools"   # torch declares setuptools>=77: restore it
}

install_mmcv() {
  python -c 'import mmcv._ext' 2>/dev/null && return 0
  [ -n "$(mmcv_wheel)" ] || build_mmcv_wheel
  log "installing $(basename "$(mmcv_wheel)") from the cache"
  pip_quiet --no-deps "$(mmcv_wheel)"
}

# True when every named module can be found (without importing it: the full imports take seconds).
has_modules() {
  python - "$@" <<'EOF'
import importlib.util, sys
sys.exit(any(importlib.util.find_spec(name) is None for name in sys.argv[1:]))
EOF
}

install_drivepi() {
  local stamp; stamp="$VENV/.drivepi-$(cat "$REPO/setup.cfg" "$CONSTRAINTS" | sha1sum | cut -c1-12)"
  [ -f "$stamp" ] && has_modules drivepi mmdet3d mmdet mmengine spconv open3d nuscenes transformers && return 0
  log "installing drivepi and its pinned dependencies"
  pip_quiet -c "$CONSTRAINTS" -e "$REPO[tests]"
  rm -f "$VENV"/.drivepi-* && touch "$stamp"
}

check() {
  python - <<'EOF'
import mmcv.ops, mmdet3d.structures, spconv.pytorch, open3d, nuscenes, transformers, shapely, drivepi
print('[setup] ok: torch', __import__('torch').__version__, '| mmcv', mmcv.__version__,
      '| mmdet3d', mmdet3d.__version__, '| open3d', open3d.__version__)
EOF
}

install_debian_libs
make_venv
install_torch
install_mmcv
install_drivepi
check
