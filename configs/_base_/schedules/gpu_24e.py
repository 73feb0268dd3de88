# 24 epochs on GPUs: bf16 autocast (AmpOptimWrapper, guarded: a step with a non-finite loss or gradient norm is
# not applied, drivepi/engine/nonfinite_guard.py), fused AdamW, warm-up + cosine decay.
# lr is for 8 GPUs x 4 samples; MMEngine's auto_scale_lr rescales it for another total batch size.
max_epochs = 24
optim_wrapper = dict(
    type='GuardedAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.01, fused=True),
    clip_grad=dict(max_norm=35.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, T_max=max_epochs, eta_min_ratio=1e-3),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=32)
