# Full-size DrivePI with Qwen2.5-3B, sharded as the 1.5B config (FSDP, the whole LLM trained, bf16 autocast,
# activation checkpointing): 8 GPUs x 4 samples, 24 epochs.
#     bash tools/dist_train.sh configs/drivepi/drivepi_qwen2.5-3b_fsdp_8xb4-24e_nuscenes-openocc.py 8
# llm_path: a local Qwen2.5-3B-Instruct directory (random init of `qwen2_5_3b` without weights there).
_base_ = ['./drivepi_qwen2.5-1.5b_fsdp_8xb4-24e_nuscenes-openocc.py']

qwen2_5_3b = dict(_base_.qwen2_5_1_5b, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                  num_attention_heads=16)
model = dict(llm=dict(llm_path='checkpoints/Qwen2.5-3B-Instruct', llm_config=qwen2_5_3b))
