# The long mini recipe: DrivePI on a bigger generated mini set (24 scenes: 19 train with one recovery
# sample per keyframe, 5 held out), a larger tiny Qwen2 (hidden 128, 4 layers), 6,000 iterations, with
# validation on a spread-out quarter of the held-out samples every 1,500 iterations for the learning
# curves (tools/plot_learning_curves.py). About 1.5 h on 2 CPU cores; see docs/recipes.md.
#     python tools/create_mini_dataset.py --out-dir data/drivepi-mini-long --num-scenes 24 --seed 0 \
#         --recovery-per-keyframe 1   (then create_data, generate_qa, make_tiny_llm: docs/recipes.md)
_base_ = ['./drivepi_mini.py']

data_root = 'data/drivepi-mini-long/'
llm_path = data_root + 'tiny_qwen2_h128_l4'
qa_train_file = data_root + 'qa_train.jsonl'
max_iters = 6000
val_interval = 1500

model = dict(llm=dict(llm_path=llm_path))
train_dataloader = dict(dataset=dict(data_root=data_root, qa_file=qa_train_file))
test_dataloader = dict(dataset=dict(data_root=data_root, qa_file=data_root + 'qa_val.jsonl', tokenizer_path=llm_path))
# validation during training: every 4th held-out sample (all 5 scenes), the full set in tools/test.py
val_dataloader = dict(
    batch_size=1, num_workers=1, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(test_dataloader['dataset'], indices=list(range(0, 200, 4))))
test_evaluator = [
    dict(type='OccupancyMetric', data_root=data_root, ann_file='drivepi_infos_val.pkl',
         class_names={{_base_.occ_classes}}),
    dict(type='PlanningMetric'),
    dict(type='QAMetric', majority_qa_file=qa_train_file),
]
val_evaluator = test_evaluator
val_cfg = dict(type='ValLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters, T_max=max_iters - 100,
         eta_min_ratio=0.05),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=val_interval, by_epoch=False,
                                     max_keep_ckpts=2, save_last=True))
closed_loop = dict(data_root=data_root, info_file=data_root + 'drivepi_infos_val.pkl')
