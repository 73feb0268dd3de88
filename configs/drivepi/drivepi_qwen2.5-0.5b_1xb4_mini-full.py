# The full-size model trained from scratch on one GPU (issue 26, point 5; docs/recipes.md): the Qwen2.5-0.5B
# architecture with the real Qwen2.5 vocabulary and random weights (no pretrained weights can be had offline),
# the whole LLM trained, on a mini set generated at the 'full' preset (10 LiDAR sweeps per keyframe, six 704x396
# cameras resized to 256x704, the real-size LiDAR), evaluated on that set's own held-out scenes:
#     bash tools/gpu/train_mini.sh OUT --config configs/drivepi/drivepi_qwen2.5-0.5b_1xb4_mini-full.py \
#         --preset full --scenes 12 --recovery 0 --llm-size qwen2.5 --eval-data same --budget-min 5
_base_ = ['./drivepi_qwen2.5-0.5b_8xb4-24e_nuscenes-openocc.py']

data_root = 'data/drivepi-mini-s1-n12-r0-full/'  # tools/gpu/train_mini.sh's name for this set
llm_path = data_root + 'qwen2.5-0.5b-random'
max_iters = 3000
val_interval = 1000

model = dict(place_tokens=True,
             llm=dict(llm_path=llm_path, train_mode='full', dtype='float32', loss_average='answer',
                      # a budgeted run of minutes: the compilation's ~5 min would take it all (not measured here)
                      compile_training=False))
train_dataloader = dict(
    num_workers=12, pin_memory=True, sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, qa_file=data_root + 'qa_train.jsonl'))
val_dataloader = dict(dataset=dict(data_root=data_root, qa_file=data_root + 'qa_val.jsonl'))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='OccupancyMetric', data_root=data_root, ann_file='drivepi_infos_val.pkl',
         class_names={{_base_.occ_classes}}),
    dict(type='PlanningMetric'),
    dict(type='QAMetric', majority_qa_file=data_root + 'qa_train.jsonl'),
]
test_evaluator = val_evaluator
closed_loop = dict(episodes='benchmark', setting='mini_world', data_root=data_root,
                   info_file=data_root + 'drivepi_infos_val.pkl')

optim_wrapper = dict(optimizer=dict(lr=3e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=200, end=max_iters, T_max=max_iters - 200,
         eta_min_ratio=0.02),
]
train_cfg = dict(_delete_=True, type='FastResumeIterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(by_epoch=False, interval=val_interval, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
custom_hooks = [dict(type='TrainTimeBudgetHook', budget_s=None)]
