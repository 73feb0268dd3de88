# DrivePI, mini size: trains on 2 CPU cores. BEV stride 4 (50 x 50 cells of 1.6 m), a quarter of the
# BEV positions become LLM tokens, tiny Qwen2 from `python tools/make_tiny_llm.py --out-dir
# data/drivepi-mini/tiny_qwen2` (same Hugging Face loading code as real Qwen2.5 weights).
occ_range = [-40.0, -40.0, -1.0, 40.0, 40.0, 5.4]
occ_grid = [200, 200, 16]
num_occ_classes = 17  # 16 semantic classes + free (index 16)
max_answer_tokens = 64  # generation limit; the test dataset checks its QA answers fit
bev_channels = 32
llm_path = 'data/drivepi-mini/tiny_qwen2'

model = dict(
    type='DrivePI',
    data_preprocessor=dict(type='Det3DDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    lidar_branch=dict(
        type='LiDARBranch',
        voxelizer=dict(type='DynamicVoxelizer', point_cloud_range=occ_range, voxel_size=[0.4, 0.4, 0.4]),
        backbone=dict(type='SparseBEVBackbone', stage_channels=[8, 16, 32], stage_strides=[1, 2, 2],
                      out_channels=bev_channels),
        importance_predictor=dict(type='VoxelImportancePredictor', hidden_channels=8),
        voxel_filter=dict(type='DensityGuidedVoxelFilter', range_bins=[15.0, 30.0], keep_ratios=[0.4, 0.7, 1.0])),
    camera_branch=dict(
        type='CameraBranch',
        backbone=dict(type='mmdet.ResNet', depth=18, base_channels=8, num_stages=3, strides=(1, 2, 2),
                      dilations=(1, 1, 1), out_indices=(1, 2), norm_eval=False),
        neck=dict(type='mmdet.FPN', in_channels=[16, 32], out_channels=16, num_outs=2),
        view_transform=dict(type='LSSViewTransform', in_channels=16, out_channels=16,
                            depth_bins=[1.0, 41.0, 2.0], point_cloud_range=occ_range, bev_cell_size=[1.6, 1.6]),
        feat_level=0),
    fuser=dict(type='ConvBEVFuser', in_channels=[bev_channels, 16], out_channels=bev_channels),
    token_filter=dict(type='BEVTokenFilter', keep_ratio=0.25, hidden_channels=16),
    llm=dict(type='Qwen2LLM', llm_path=llm_path, train_mode='full', gradient_checkpointing=False,
             dtype='float32', loss_weight=1.0),
    projector=dict(type='MLPProjector'),
    spatial_position=dict(type='BEVPositionEmbedding', point_cloud_range=occ_range, num_frequencies=8),
    num_plan_queries=6,
    max_answer_tokens=max_answer_tokens,
    grid_size=occ_grid,
    heads=dict(
        occ=dict(type='OccupancyHead', grid_size=occ_grid, num_classes=num_occ_classes, mid_channels=16,
                 loss_ce=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                 loss_lovasz=dict(type='LovaszSoftmaxLoss', loss_weight=1.0, max_voxels=50000),  # CPU: subsample
                 use_mask_camera=True),
        flow=dict(type='FlowHead', grid_size=occ_grid, free_index=num_occ_classes - 1, mid_channels=16,
                  loss_flow=dict(type='mmdet.L1Loss', loss_weight=0.5)),
        plan=dict(type='PlanningHead', hidden_channels=64, num_waypoints=6, use_ego_status=False,
                  loss_plan=dict(type='mmdet.L1Loss', loss_weight=1.0),
                  loss_collision=dict(type='PlanCollisionLoss', ego_length=4.084, ego_width=1.85,
                                      margin=0.5, loss_weight=0.5))),
)
