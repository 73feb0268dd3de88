# Sharded data-parallel training (FSDP, FULL_SHARD) for the larger LLMs: MMEngine's FlexibleRunner with
# DrivePIFSDPStrategy (drivepi/engine/fsdp.py). Parameters, gradients and AdamW state are split over all
# processes; each LLM decoder layer is an FSDP unit, gathered only while it runs. Checkpoints are gathered into
# one ordinary file on rank 0 ('full'), which tools/test.py reads as any other.
# Launch as data-parallel training: bash tools/dist_train.sh CONFIG NGPUS.
# The FlexibleRunner builds its strategy before it enters the config's default scope: hence 'drivepi.' names.
runner_type = 'FlexibleRunner'
strategy = dict(
    type='drivepi.DrivePIFSDPStrategy',
    model_wrapper=dict(auto_wrap_policy='drivepi.llm_layer_policy', use_orig_params=True),
    state_dict_cfg='full')
