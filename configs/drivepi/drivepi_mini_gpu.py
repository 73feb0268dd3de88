# The GPU mini recipe (issue 26; docs/recipes.md): the long recipe with place tokens and the answer-averaged
# text loss, on a larger training set (50 generated scenes of dataset seed 1: 40 train scenes + their recovery
# samples, 10 held-out scenes) with a larger tiny Qwen2 (hidden 256, 5 layers) and the multi-mode planner
# (configs/_base_/models/plan_modes.py; anchors from this training set), batch 16 in bf16 on one GPU.
# It is evaluated on the CPU recipes' 80 held-out samples (scenes 8-9 of the seed-0 set, data/drivepi-mini) and,
# as a second held-out set fixed beforehand, on every fifth sample of its own 10 held-out scenes.
# One command makes the data, trains under a wall-clock budget, evaluates and drives (tools/gpu/train_mini.sh):
#     bash tools/gpu/train_mini.sh work_dirs/gpu_job1 --budget-min 5
#     bash tools/gpu/train_mini.sh work_dirs/gpu_job2 --budget-min 6 --resume   # the next job continues the run
_base_ = ['./drivepi_mini_long_places.py', '../_base_/models/plan_modes.py']

data_root = 'data/drivepi-mini-s1-n50-r1-default/'  # tools/gpu/train_mini.sh's name for this set
eval_root = 'data/drivepi-mini-s0-n10-r0-default/'  # the seed-0 set of the CPU recipes (data/drivepi-mini)
qa_train_file = data_root + 'qa_train.jsonl'
llm_path = data_root + 'tiny_qwen2_h256_l5'
batch_size = 16
max_iters = 5000
val_interval = 1000

# answers up to 96 tokens: a 16-scene set of seed 1 has a 65-token trajectory answer (2026-12-07), and the
# dataset refuses answers that decoding would cut
model = dict(llm=dict(llm_path=llm_path), max_answer_tokens=96,
             heads=dict(plan=dict(_base_.modes_plan_head, anchors=data_root + 'plan_anchors_m6.npy')),
             plan_refiner=_base_.modes_plan_refiner)
train_dataloader = dict(
    batch_size=batch_size, num_workers=12, persistent_workers=True, pin_memory=True,
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, qa_file=qa_train_file))
test_dataloader = dict(num_workers=8, dataset=dict(data_root=eval_root, qa_file=eval_root + 'qa_val.jsonl'))
val_dataloader = dict(  # every fourth of the 80 held-out samples, for the learning curves
    num_workers=4, dataset=dict(data_root=eval_root, qa_file=eval_root + 'qa_val.jsonl',
                                indices=list(range(0, 80, 4))))
test_evaluator = [
    dict(type='OccupancyMetric', data_root=eval_root, ann_file='drivepi_infos_val.pkl',
         class_names={{_base_.occ_classes}}),
    dict(type='PlanningMetric'),
    dict(type='QAMetric', majority_qa_file=eval_root + 'qa_train.jsonl'),
]
val_evaluator = test_evaluator
closed_loop = dict(info_file=eval_root + 'drivepi_infos_val.pkl')

# the CPU recipes' learning rate (they train at batch 1), a longer warm-up: 200 steps
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=200, end=max_iters, T_max=max_iters - 200,
         eta_min_ratio=0.02),
]
train_cfg = dict(type='FastResumeIterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=val_interval, max_keep_ckpts=1))
# the wall-clock budget of a time-limited job (tools/gpu/train_mini.sh sets it from --budget-min); the schedule is
# fitted to it (iterations 10-40 timed), so a short job ends its cosine instead of stopping near the peak rate
custom_hooks = [dict(type='TrainTimeBudgetHook', budget_s=None, fit_schedule=True)]
