#!/usr/bin/env bash
# The main job on the built-in mini dataset, from a fresh clone:
#   set up -> generate the mini worlds -> info files -> QA -> tiny LLM -> train briefly -> evaluate
#   -> drive closed loop -> render a picture.
# Every step is skipped when its output already exists, so a second run only redoes what is missing
# (delete DATA or WORK to start over). Settings: DATA (data root), WORK (work dir), SCENES, CONFIG.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
DATA="${DATA:-data/drivepi-mini}"
WORK="${WORK:-work_dirs/drivepi_mini}"
SCENES="${SCENES:-10}"
CONFIG="${CONFIG:-configs/drivepi/drivepi_mini.py}"
VERSION=v1.0-drivepi-mini
step() { printf '\n==== [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

step "set-up (tools/setup.sh)"
bash tools/setup.sh
# shellcheck disable=SC1091
. "${DRIVEPI_VENV:-$REPO/.venv}/bin/activate"

step "mini dataset: $SCENES generated scenes in nuScenes format -> $DATA"
[ -f "$DATA/$VERSION/scene.json" ] || python tools/create_mini_dataset.py --out-dir "$DATA" --num-scenes "$SCENES" --seed 0

step "info files (tools/create_data.py)"
[ -f "$DATA/drivepi_infos_val.pkl" ] || python tools/create_data.py nuscenes --root-path "$DATA" --out-dir "$DATA" --version "$VERSION"

step "QA conversations (data_engine/generate_qa.py)"
for split in train val; do
  [ -f "$DATA/qa_$split.jsonl" ] || python data_engine/generate_qa.py --info "$DATA/drivepi_infos_$split.pkl" --out "$DATA/qa_$split.jsonl" --seed 0
done

step "tiny Qwen2 checkpoint with a BPE tokenizer trained on the QA text"
[ -f "$DATA/tiny_qwen2/config.json" ] || python tools/make_tiny_llm.py --out-dir "$DATA/tiny_qwen2" --qa-file "$DATA/qa_train.jsonl"

step "train (tools/train.py $CONFIG)"
# --resume continues an interrupted run; a finished run resumes at max_iters and stops at once.
python tools/train.py "$CONFIG" --work-dir "$WORK" --resume
CKPT="$(cat "$WORK/last_checkpoint")"

step "evaluate (tools/test.py, with the blind pass: QA with the spatial tokens zeroed) -> $WORK/results"
python tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK" --out-dir "$WORK/results" --blind

ZOO_CKPT="$(ls model_zoo/drivepi_mini_long/drivepi_mini_long-*.pth 2>/dev/null | head -n 1)"
if [ -n "$ZOO_CKPT" ]; then
  step "evaluate the committed long-recipe checkpoint too (docs/recipes.md) -> $WORK/results_long_recipe"
  python tools/test.py configs/drivepi/drivepi_mini_long.py "$ZOO_CKPT" --work-dir "$WORK" \
    --out-dir "$WORK/results_long_recipe"
fi

step "closed-loop driving: the benchmark's demo subset, one episode per scenario type (tools/closed_loop.py) -> $WORK/closed_loop"
python tools/closed_loop.py "$CONFIG" "$CKPT" --out-dir "$WORK/closed_loop" \
  --cfg-options closed_loop.subset=demo closed_loop.workers=2

step "render (visualization/render_occupancy.py) -> $WORK/pictures"
python visualization/render_occupancy.py --info "$DATA/drivepi_infos_val.pkl" --data-root "$DATA" \
  --results "$WORK/results" --out-dir "$WORK/pictures"
step "done: metrics in $WORK/results/metrics.json, closed loop in $WORK/closed_loop, pictures in $WORK/pictures"
ls "$WORK/pictures"
