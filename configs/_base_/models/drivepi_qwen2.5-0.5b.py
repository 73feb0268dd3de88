# DrivePI, full size: Qwen2.5-0.5B LLM (hidden 896, 24 layers, 14 heads, 2 KV heads, vocab 151936),
# 0.2 m LiDAR voxels, BEV stride 2 (100 x 100 cells of 0.8 m), ResNet-50 + FPN cameras.
# `llm_path` is a local Hugging Face checkpoint directory (e.g. Qwen2.5-0.5B-Instruct); without weights
# there the LLM starts from a random init of `qwen2_5_0_5b` with a loud warning, and, with no tokenizer
# there either, uses the tiny checkpoint's tokenizer (`fallback_tokenizer_path`) for smoke runs.
occ_range = [-40.0, -40.0, -1.0, 40.0, 40.0, 5.4]
occ_grid = [200, 200, 16]
num_occ_classes = 17
max_answer_tokens = 64  # generation limit; the test dataset checks its QA answers fit
bev_channels = 256
camera_channels = 80
llm_path = 'checkpoints/Qwen2.5-0.5B-Instruct'
qwen2_5_0_5b = dict(
    vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
    num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6, tie_word_embeddings=True,
    rope_parameters=dict(rope_type='default', rope_theta=1000000.0), bos_token_id=151643, eos_token_id=151645)

model = dict(
    type='DrivePI',
    # Det3DDataPreprocessor with pinned, non-blocking copies; ground truth stays on the host for the heads
    data_preprocessor=dict(type='DrivePIDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    lidar_branch=dict(
        type='LiDARBranch',
        voxelizer=dict(type='DynamicVoxelizer', point_cloud_range=occ_range, voxel_size=[0.2, 0.2, 0.2]),
        backbone=dict(type='SparseBEVBackbone', stage_channels=[16, 32, 64], stage_strides=[1, 2, 2],
                      blocks_per_stage=2, out_channels=bev_channels),
        # Ada3D: a BEV importance predictor and density-guided filtering keep 54 % of the non-empty voxels
        # of a 10-sweep nuScenes frame (fewer near the sensor, where LiDAR is densest)
        importance_predictor=dict(type='BEVImportancePredictor', hidden_channels=16),
        voxel_filter=dict(type='DensityGuidedVoxelFilter', range_bins=[15.0, 30.0], keep_ratios=[0.3, 0.6, 0.9])),
    camera_branch=dict(
        type='CameraBranch',
        backbone=dict(type='mmdet.ResNet', depth=50, num_stages=4, out_indices=(2, 3), norm_eval=False,
                      init_cfg=None),
        neck=dict(type='mmdet.FPN', in_channels=[1024, 2048], out_channels=256, num_outs=2),
        view_transform=dict(type='LSSViewTransform', in_channels=256, out_channels=camera_channels,
                            depth_bins=[1.0, 60.0, 0.5], point_cloud_range=occ_range, bev_cell_size=[0.8, 0.8]),
        feat_level=0),
    fuser=dict(type='ConvBEVFuser', in_channels=[bev_channels, camera_channels], out_channels=bev_channels),
    token_filter=dict(type='BEVTokenFilter', keep_ratio=0.2, hidden_channels=64),
    llm=dict(type='Qwen2LLM', llm_path=llm_path, tokenizer_path=None,
             fallback_tokenizer_path='data/drivepi-mini/tiny_qwen2', llm_config=qwen2_5_0_5b,
             train_mode='lora',
             # no LoRA dropout and no gradient checkpointing: 1.4-1.8x the training throughput of dropout 0.05
             # with checkpointing, at 17.5 GiB peak for batch 4 instead of 7.8 (docs/benchmarks.md)
             lora_cfg=dict(r=16, lora_alpha=32, lora_dropout=0.0,
                           target_modules=['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj',
                                           'down_proj']),
             gradient_checkpointing=False, dtype='bfloat16', loss_weight=1.0,
             # the training pass through torch.compile on a GPU: 15.07 instead of 12.80 samples/s at batch 4,
             # 17.3 instead of 19.2 GiB (one H100, 2026-12-08); the first step waits ~5 min for the compilation
             compile_training=True),
    projector=dict(type='MLPProjector'),
    spatial_position=dict(type='BEVPositionEmbedding', point_cloud_range=occ_range, num_frequencies=8),
    num_plan_queries=6,
    max_answer_tokens=max_answer_tokens,
    grid_size=occ_grid,
    heads=dict(
        occ=dict(type='OccupancyHead', grid_size=occ_grid, num_classes=num_occ_classes, mid_channels=128,
                 loss_ce=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                 loss_lovasz=dict(type='LovaszSoftmaxLoss', loss_weight=1.0), use_mask_camera=True),
        flow=dict(type='FlowHead', grid_size=occ_grid, free_index=num_occ_classes - 1, mid_channels=64,
                  loss_flow=dict(type='mmdet.L1Loss', loss_weight=0.5)),
        # num_modes > 1: k-means anchors per command, an offset and a score per mode (drivepi_mini_modes.py)
        plan=dict(type='PlanningHead', hidden_channels=256, num_waypoints=6, use_ego_status=False, num_modes=1,
                  loss_plan=dict(type='mmdet.L1Loss', loss_weight=1.0),
                  loss_collision=dict(type='PlanCollisionLoss', ego_length=4.084, ego_width=1.85,
                                      margin=0.5, loss_weight=0.5))),
    # at inference the plan brakes before the first collision with the model's own occupancy and flow
    # (UniAD-style; drivepi/models/occupancy_guided_stop.py); plan_refiner=None gives the raw planning head
    plan_refiner=dict(type='OccupancyGuidedStop'),
)
