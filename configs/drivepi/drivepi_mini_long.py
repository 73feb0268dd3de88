# The long mini recipe: the demo's data and model with a larger tiny Qwen2 (hidden 128, 4 layers), 4,000
# iterations and validation on every second held-out sample every 1,000 iterations for the learning curves
# (tools/plot_learning_curves.py). About 45 min of training on 2 free CPU cores; see docs/recipes.md.
# Its tiny Qwen2 (initial weights and the tokenizer trained on the mini set's QA text) is committed in
# model_zoo/drivepi_mini_long/, made by
#     python tools/make_tiny_llm.py --out-dir model_zoo/drivepi_mini_long/tiny_qwen2_h128_l4 \
#         --qa-file data/drivepi-mini/qa_train.jsonl --hidden-size 128 --num-layers 4
# with the trained checkpoint beside it:  python tools/train.py configs/drivepi/drivepi_mini_long.py
_base_ = ['./drivepi_mini.py']

llm_path = 'model_zoo/drivepi_mini_long/tiny_qwen2_h128_l4'
max_iters = 4000
val_interval = 1000

model = dict(llm=dict(llm_path=llm_path))
val_dataloader = dict(  # every second held-out sample during training; tools/test.py scores them all
    _delete_=True, batch_size=1, num_workers=1, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_base_.test_dataloader.dataset, indices=list(range(0, 80, 2))))
val_evaluator = {{_base_.test_evaluator}}
val_cfg = dict(_delete_=True, type='ValLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters, T_max=max_iters - 100,
         eta_min_ratio=0.05),
]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
