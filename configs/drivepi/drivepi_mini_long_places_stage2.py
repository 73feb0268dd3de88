# Stage 2 of the long mini recipe with place tokens (docs/recipes.md, round 4): from the joint checkpoint of
# drivepi_mini_long_places.py, the encoders and the token filter are frozen (DrivePI(frozen_modules=...)) and
# the LLM, projectors and heads train on every loss with every conversation of a sample in each step (the
# joint stage keeps 6 of ~26), so the language side gets four times the QA turns per step while the heads keep
# up with the LLM states they read (freezing them as well cost 9-11 RayIoU points in the language-stage A/B).
#     python tools/train.py configs/drivepi/drivepi_mini_long_places_stage2.py --work-dir work_dirs/mini_long_places_s2
_base_ = ['./drivepi_mini_long_places.py']

load_from = 'work_dirs/mini_long_places/iter_4000.pth'
max_iters = 1500
val_interval = 500

model = dict(frozen_modules=['lidar_branch', 'camera_branch', 'fuser', 'token_filter'])
train_pipeline = [*_base_.train_pipeline[:-2], dict(type='LoadConversations'), dict(type='PackDrivePIInputs')]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, T_max=max_iters,
                        eta_min_ratio=0.05)]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
