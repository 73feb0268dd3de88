# A short iteration-based schedule for the mini config: fits in 15 min on 2 CPU cores.
max_iters = 1200
optim_wrapper = dict(
    type='GuardedOptimWrapper',  # OptimWrapper that skips steps with a non-finite loss or gradient norm
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.01),
    clip_grad=dict(max_norm=10.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, T_max=max_iters - 50,
         eta_min_ratio=0.05),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
test_cfg = dict(type='TestLoop')
