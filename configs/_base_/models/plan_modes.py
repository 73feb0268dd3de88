# The multi-mode planner (VAD / SparseDrive style), for the recipes that turn it on (drivepi_mini_modes.py,
# drivepi_mini_gpu.py): 6 k-means anchors per driving command (tools/make_plan_anchors.py on the recipe's
# training infos), an offset and a score per mode trained winner-take-all, and at inference the choice among the
# modes and their occupancy-guided alternatives (shift around a static obstacle, brake) by a cost from the
# model's own occupancy, flow and drivable area, with hysteresis across replans in closed loop
# (docs/closed_loop.md). A recipe sets `anchors` to its own file.
modes_plan_head = dict(num_modes=6, assign_by='anchor', collision_on='winner',
                       loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=0.5))
modes_plan_refiner = dict(lateral_offsets=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0, -0.5, -1.0], swerve_static_only=True,
                          select_modes=True, score_weight=1.0, collision_weight=5.0, offroad_weight=5.0,
                          offset_weight=0.5, progress_weight=0.1, hysteresis_margin=0.5)
