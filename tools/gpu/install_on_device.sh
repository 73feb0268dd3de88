#!/usr/bin/env bash
# Install DrivePI's missing packages on a bare GPU machine from .whl/ (see prepare_wheels.sh) into
# /tmp/site. mmcv 2.1.0 (CPU ops only: imports need them, the hot path is torch/spconv) is unpacked from
# .whl/mmcv-2.1.0-built-<python>-torch<version>.tar.xz when that exists; otherwise it is built there
# (~2 min on 16 cores) and, when $OUT is set, packed into $OUT under that name (~1 MB): copy it into
# .whl/ and later calls skip the build.
# Usage (on the device, from the repo root):  source tools/gpu/install_on_device.sh
set -e
SITE=/tmp/site
mkdir -p "$SITE"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
tar -C "$SITE" -xJf .whl/spconv_cumm_cu126.tar.xz
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
BUILT="mmcv-2.1.0-built-$(python3 -c 'import sys, torch; print(f"py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__}".replace("+", "_"))').tar.xz"
if [ -f ".whl/$BUILT" ]; then
  tar -C "$SITE" -xJf ".whl/$BUILT"
fi
if ! python3 -c 'import mmcv._ext' 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/buildtools .whl/build/*.whl
  rm -rf /tmp/mmcv-src && mkdir -p /tmp/mmcv-src && tar -C /tmp/mmcv-src -xzf .whl/mmcv-2.1.0.tar.gz
  (cd /tmp/mmcv-src/mmcv-2.1.0 && PYTHONPATH="/tmp/buildtools:$PYTHONPATH" CUDA_VISIBLE_DEVICES='' MMCV_WITH_OPS=1 MAX_JOBS=16 \
     python3 -m pip install -q --no-deps --no-build-isolation --target "$SITE" . > /tmp/mmcv-build.log 2>&1) \
     || { tail -30 /tmp/mmcv-build.log; return 1 2>/dev/null || exit 1; }
  if [ -n "${OUT:-}" ]; then  # stripped, without the C++ sources: ~1 MB instead of 16
    (cd "$SITE" && strip --strip-unneeded mmcv/_ext*.so \
       && tar --exclude=mmcv/ops/csrc -cf - mmcv mmcv-*.dist-info | xz -T0 -9 > "$OUT/$BUILT")
  fi
fi
# byte code once (pip ran with --no-compile): later processes skip compiling sources at import (a profile of
# tools/test.py on an H100 machine, 2026-12-07: 15 s of its start-up in 5,209 compile calls)
python3 -m compileall -q -j 0 "$SITE" "$PWD/drivepi" > /dev/null || true
python3 -c 'import mmcv._ext, mmdet3d, spconv.pytorch, torch; print("device ready:", torch.cuda.get_device_name(0))'
