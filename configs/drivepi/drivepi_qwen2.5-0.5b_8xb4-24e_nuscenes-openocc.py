# Full-size DrivePI (Qwen2.5-0.5B, 10-sweep LiDAR, six 256x704 cameras, 200x200x16 outputs) on real
# nuScenes with OpenOcc v2 occupancy and flow: 8 GPUs x 4 samples, 24 epochs, bf16.
#     bash tools/dist_train.sh configs/drivepi/drivepi_qwen2.5-0.5b_8xb4-24e_nuscenes-openocc.py 8
# tools/benchmark.py measures this config's training step and inference speed on one GPU.
_base_ = [
    '../_base_/datasets/nuscenes_openocc.py',
    '../_base_/models/drivepi_qwen2.5-0.5b.py',
    '../_base_/schedules/gpu_24e.py',
    '../_base_/closed_loop.py',
    '../_base_/default_runtime.py',
]

train_dataloader = dict(batch_size=4, num_workers=8)
val_evaluator = [
    dict(type='OccupancyMetric', data_root={{_base_.data_root}}, ann_file='drivepi_infos_val.pkl',
         class_names={{_base_.occ_classes}}),
    dict(type='PlanningMetric'),
    dict(type='QAMetric'),
]
test_evaluator = val_evaluator
env_cfg = dict(cudnn_benchmark=True)  # fixed input sizes: let cuDNN pick the fastest convolutions
# Closed loop on real nuScenes: replay the val logs (the generated benchmark worlds are mini-dataset sensors).
closed_loop = dict(episodes='info_file', setting='nuscenes_log', data_root='data/nuscenes/',
                   info_file='data/nuscenes/drivepi_infos_val.pkl')
