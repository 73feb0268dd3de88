# DrivePI, mini size: the full model (drivepi_qwen2.5-0.5b.py) with CPU sizes. 0.4 m voxels, BEV stride 4
# (50 x 50 cells of 1.6 m), a quarter of the BEV positions become LLM tokens, a small ResNet-18 camera
# branch, and a tiny Qwen2 trained in full from `python tools/make_tiny_llm.py --out-dir
# data/drivepi-mini/tiny_qwen2` (same Hugging Face loading code as real Qwen2.5 weights).
_base_ = ['./drivepi_qwen2.5-0.5b.py']

bev_channels = 32
llm_path = 'data/drivepi-mini/tiny_qwen2'

model = dict(
    lidar_branch=dict(
        voxelizer=dict(voxel_size=[0.4, 0.4, 0.4]),
        backbone=dict(_delete_=True, type='SparseBEVBackbone', stage_channels=[8, 16, 32], stage_strides=[1, 2, 2],
                      out_channels=bev_channels),
        importance_predictor=dict(_delete_=True, type='VoxelImportancePredictor', hidden_channels=8),
        voxel_filter=dict(keep_ratios=[0.4, 0.7, 1.0])),
    camera_branch=dict(
        backbone=dict(_delete_=True, type='mmdet.ResNet', depth=18, base_channels=8, num_stages=3,
                      strides=(1, 2, 2), dilations=(1, 1, 1), out_indices=(1, 2), norm_eval=False),
        neck=dict(in_channels=[16, 32], out_channels=16),
        view_transform=dict(in_channels=16, out_channels=16, depth_bins=[1.0, 41.0, 2.0], bev_cell_size=[1.6, 1.6])),
    fuser=dict(in_channels=[bev_channels, 16], out_channels=bev_channels),
    token_filter=dict(keep_ratio=0.25, hidden_channels=16),
    llm=dict(_delete_=True, type='Qwen2LLM', llm_path=llm_path, train_mode='full', gradient_checkpointing=False,
             dtype='float32', loss_weight=1.0, decode_batch_rows=64),  # a test batch's turns of a round in one
    heads=dict(
        occ=dict(mid_channels=16,
                 loss_lovasz=dict(type='LovaszSoftmaxLoss', loss_weight=1.0, max_voxels=50000)),  # CPU: subsample
        flow=dict(mid_channels=16),
        plan=dict(hidden_channels=64)),
)
