# DrivePI on the generated mini dataset: trains on 2 CPU cores in about 15 minutes (bash tools/demo_mini.sh).
_base_ = [
    '../_base_/datasets/drivepi_mini.py',
    '../_base_/models/drivepi_mini.py',
    '../_base_/schedules/mini_cpu.py',
    '../_base_/closed_loop.py',
    '../_base_/default_runtime.py',
]

# The ego status (speed, acceleration, yaw rate) conditions the planner, as in the paper's "with ego
# status" setting: a 15-minute CPU run cannot learn speed from LiDAR motion cues alone.
model = dict(heads=dict(plan=dict(use_ego_status=True)))

test_evaluator = [
    dict(type='OccupancyMetric', data_root={{_base_.data_root}}, ann_file='drivepi_infos_val.pkl',
         class_names={{_base_.occ_classes}}),
    dict(type='PlanningMetric'),
    dict(type='QAMetric', majority_qa_file={{_base_.qa_train_file}}),
]
# No validation inside the short CPU run: tools/test.py evaluates the final checkpoint.
val_dataloader = None
val_cfg = None
val_evaluator = None

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),  # validation at its iteration
    checkpoint=dict(type='CheckpointHook', interval=300, by_epoch=False, max_keep_ckpts=2, save_last=True))
