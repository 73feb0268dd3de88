# The mini recipe with a multi-mode planner (configs/_base_/models/plan_modes.py, docs/closed_loop.md).
# The anchors come from the mini set's training infos:
#     python tools/make_plan_anchors.py --info data/drivepi-mini/drivepi_infos_train.pkl \
#         --out model_zoo/plan_anchors/drivepi_mini_m6.npy --num-modes 6 --seed 0
# A/B switches: --cfg-options model.heads.plan.num_modes=1 (the single-mode head: the drivepi_mini.py recipe),
# model.plan_refiner.select_modes=False (best-scoring mode, then the stop), model.plan_refiner.hysteresis_margin=0,
# 'model.plan_refiner.lateral_offsets=[]' (brake only), model.plan_refiner=None (the raw best-scoring mode).
_base_ = ['./drivepi_mini.py', '../_base_/models/plan_modes.py']

model = dict(heads=dict(plan=dict(_base_.modes_plan_head, anchors='model_zoo/plan_anchors/drivepi_mini_m6.npy')),
             plan_refiner=_base_.modes_plan_refiner)
