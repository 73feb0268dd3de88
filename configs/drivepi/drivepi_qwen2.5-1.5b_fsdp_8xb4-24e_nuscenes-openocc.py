# Full-size DrivePI with Qwen2.5-1.5B, the whole LLM trained, parameters, gradients and AdamW state sharded over
# the GPUs (FSDP, configs/_base_/fsdp.py): 8 GPUs x 4 samples, 24 epochs, bf16 autocast, activation checkpointing.
#     bash tools/dist_train.sh configs/drivepi/drivepi_qwen2.5-1.5b_fsdp_8xb4-24e_nuscenes-openocc.py 8
# llm_path: a local Qwen2.5-1.5B-Instruct directory; without weights there the LLM starts from a random init of
# `qwen2_5_1_5b` (with a loud warning), as the 0.5B config does.
_base_ = ['./drivepi_qwen2.5-0.5b_8xb4-24e_nuscenes-openocc.py', '../_base_/fsdp.py']

# Qwen2.5-1.5B: what differs from Qwen2.5-0.5B (same vocabulary, 2 KV heads, tied embeddings, RoPE)
qwen2_5_1_5b = dict(_base_.qwen2_5_0_5b, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                    num_attention_heads=12)
model = dict(llm=dict(
    llm_path='checkpoints/Qwen2.5-1.5B-Instruct', llm_config=qwen2_5_1_5b,
    train_mode='full',  # sharding is for full training; LoRA on a frozen bf16 LLM fits a GPU without it
    gradient_checkpointing=True,  # each decoder layer recomputed in backward, inside its FSDP unit
    # float32 weights: FSDP flattens a unit's parameters into one tensor of one dtype, and the root unit holds the
    # LLM's embeddings with DrivePI's float32 layers; the bf16 compute comes from autocast (AmpOptimWrapper).
    dtype='float32',
    cuda_graphs=False,  # FSDP gathers each layer's weights at every pass: nothing a captured CUDA graph can replay
    compile_training=False))  # torch.compile of the training pass is measured without FSDP only
# Full training of a pretrained LLM: its weights move at a tenth of the learning rate of DrivePI's own layers
# (bypass_duplicate: the tied input and output embeddings are one parameter, seen through two modules).
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'llm.model': dict(lr_mult=0.1)}, bypass_duplicate=True))
