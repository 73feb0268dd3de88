# Staged training, the language stage (issue 15; LLaVA / OmniDrive align the language side on QA with the
# perception frozen): starts from a trained long-recipe checkpoint, freezes the encoders, the token filter,
# the back-projector and the heads, and trains the LLM, the projector and the spatial position embedding on
# the text loss alone, every conversation of a sample in each step (the joint recipes keep 6 of ~26).
#     python tools/train.py configs/drivepi/drivepi_mini_long_qa_stage.py --work-dir work_dirs/mini_qa_stage \
#         --cfg-options load_from=work_dirs/mini_long_rec/iter_4000.pth
# The heads read the LLM's hidden states at the spatial tokens, which this stage changes: evaluate occupancy,
# flow and planning after it (docs/recipes.md has what it cost).
_base_ = ['./drivepi_mini_long_recovery.py']

load_from = 'work_dirs/mini_long_rec/iter_4000.pth'
max_iters = 3000
val_interval = 1000

model = dict(frozen_modules=['lidar_branch', 'camera_branch', 'fuser', 'token_filter', 'back_projector', 'heads'])
train_pipeline = [*_base_.train_pipeline[:-2], dict(type='LoadConversations'), dict(type='PackDrivePIInputs')]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters, T_max=max_iters - 100,
         eta_min_ratio=0.05),
]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
