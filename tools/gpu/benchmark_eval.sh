#!/usr/bin/env bash
# Evaluation throughput of tools/test.py (data loading, model, metrics) on this machine's GPU: the model-zoo
# checkpoint of the long mini recipe on a mini set (or the subset tools/gpu/pack_eval_subset.py packs),
# without questions (configs/drivepi/drivepi_mini_long_no_questions.py: occupancy, flow and planning metrics
# only) and with them (greedy answers, QA metric). Prints each run's frames/s and the share of the steady time
# spent waiting for data (tools/test.py's last line; no predictions written). The configs' batch of 8 frames; the
# held-out samples are repeated to FRAMES (default 112) so that a small subset leaves steady iterations after the
# throughput hook's 5 warm-up iterations (40 frames at batch 8).
# PROFILE=1 also profiles each run's main process (cProfile): OUT_DIR/eval_<run>_tottime.txt lists its 40 costliest
# functions by own time.
# Usage (repo root, packages installed):  [FRAMES=N] [PROFILE=1] bash tools/gpu/benchmark_eval.sh MINI_DATA [OUT_DIR]
set -euo pipefail
MINI_DATA="${1:?a mini set, e.g. .bench/drivepi-mini}"
OUT_DIR="${2:-work_dirs/benchmarks}"
mkdir -p "$OUT_DIR"
CKPT="$(ls model_zoo/drivepi_mini_long/drivepi_mini_long-*.pth | head -n 1)"
INDICES="$(python3 -c "
from drivepi.fileio import read_pickle
n = len(read_pickle('$MINI_DATA/drivepi_infos_val.pkl')['data_list'])
print('[' + ','.join(str(i % n) for i in range(max(n, ${FRAMES:-112}))) + ']')")"
DATA="test_dataloader.dataset.indices=$INDICES test_dataloader.dataset.data_root=$MINI_DATA/
      test_evaluator.0.data_root=$MINI_DATA/ test_dataloader.num_workers=8 test_dataloader.persistent_workers=True"
for run in no_questions questions; do
  if [ "$run" = no_questions ]; then
    CONFIG=configs/drivepi/drivepi_mini_long_no_questions.py EXTRA=""
  else
    CONFIG=configs/drivepi/drivepi_mini_long.py
    # answers up to 96 tokens: the GPU recipe's sets have 65-token trajectory answers, which the dataset refuses
    # for a model that decodes 64 (the model-zoo config's limit)
    EXTRA="test_dataloader.dataset.qa_file=$MINI_DATA/qa_val.jsonl test_evaluator.2.majority_qa_file=$MINI_DATA/qa_train.jsonl
           model.max_answer_tokens=96"
  fi
  # shellcheck disable=SC2086
  python3 ${PROFILE:+-m cProfile -o "$OUT_DIR/eval_$run.prof"} tools/test.py "$CONFIG" "$CKPT" \
    --work-dir "$OUT_DIR/eval_logs" --cfg-options $DATA $EXTRA \
    > "$OUT_DIR/eval_$run.log" 2>&1 || { tail -30 "$OUT_DIR/eval_$run.log"; exit 1; }
  grep -E '^evaluated ' "$OUT_DIR/eval_$run.log" | sed "s/^/$run: /"
  if [ -n "${PROFILE:-}" ]; then
    python3 -c "import pstats, sys; pstats.Stats(sys.argv[1]).sort_stats('tottime').print_stats(40)" \
      "$OUT_DIR/eval_$run.prof" > "$OUT_DIR/eval_${run}_tottime.txt"
  fi
done
