# The mini recipe with a multi-mode planner (VAD / SparseDrive style): 6 k-means anchors per driving command,
# an offset and a score per mode trained winner-take-all, and at inference the choice among the modes and their
# occupancy-guided alternatives (shift around a static obstacle, brake) by a cost from the model's own
# occupancy, flow and drivable area, with hysteresis across replans in closed loop (docs/closed_loop.md).
# The anchors come from the mini set's training infos:
#     python tools/make_plan_anchors.py --info data/drivepi-mini/drivepi_infos_train.pkl \
#         --out model_zoo/plan_anchors/drivepi_mini_m6.npy --num-modes 6 --seed 0
# A/B switches: --cfg-options model.heads.plan.num_modes=1 (the single-mode head: the drivepi_mini.py recipe),
# model.plan_refiner.select_modes=False (best-scoring mode, then the stop), model.plan_refiner.hysteresis_margin=0,
# 'model.plan_refiner.lateral_offsets=[]' (brake only), model.plan_refiner=None (the raw best-scoring mode).
_base_ = ['./drivepi_mini.py']

model = dict(
    heads=dict(plan=dict(num_modes=6, anchors='model_zoo/plan_anchors/drivepi_mini_m6.npy', assign_by='anchor',
                         collision_on='winner',
                         loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=0.5))),
    plan_refiner=dict(lateral_offsets=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0, -0.5, -1.0], swerve_static_only=True,
                      select_modes=True, score_weight=1.0, collision_weight=5.0, offroad_weight=5.0,
                      offset_weight=0.5, progress_weight=0.1, hysteresis_margin=0.5))
