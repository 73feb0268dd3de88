# Runtime defaults shared by every DrivePI config (MMEngine Runner).
default_scope = 'drivepi'
custom_imports = dict(imports=['drivepi.datasets', 'drivepi.models', 'drivepi.evaluation', 'drivepi.engine'],
                      allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # steps with a non-finite loss or gradient norm are skipped (Guarded*OptimWrapper of the schedules); after
    # max_skipped_in_a_row of them in a row training stops naming the last good checkpoint; no checkpoint with a
    # non-finite weight is written (drivepi/engine/nonfinite_guard.py)
    nonfinite_guard=dict(type='NonFiniteGuardHook', max_skipped_in_a_row=3),
    # loader workers hand tensors over by shared-memory file name, not one socket fetch of a file descriptor per
    # tensor (drivepi/engine/tensor_sharing_hook.py)
    tensor_sharing=dict(type='TensorSharingHook', strategy='file_system'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=20, by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
