# Real nuScenes (v1.0-trainval) with Occ3D-nuScenes occupancy GT, no flow (<data_root>/gts/<scene>/<token>/
# labels.npz): python tools/create_data.py nuscenes --root-path data/nuscenes --out-dir data/nuscenes
#     --version v1.0-trainval --occ-format occ3d --occ-root gts --info-prefix drivepi_occ3d
# The OpenOcc config with what differs: the 18 Occ3D classes (drivepi.geometry.OCC3D_CLASSES), no flow GT,
# the Occ3D info files.
_base_ = ['./nuscenes_openocc.py']

occ_classes = ['others', 'barrier', 'bicycle', 'bus', 'car', 'construction_vehicle', 'motorcycle', 'pedestrian',
               'traffic_cone', 'trailer', 'truck', 'driveable_surface', 'other_flat', 'sidewalk', 'terrain',
               'manmade', 'vegetation', 'free']
metainfo = dict(occ_classes=occ_classes)
load_occ = dict(type='LoadOccFlowGT', num_classes=len(occ_classes), with_flow=False)

# `_base_` is the inherited config (MMEngine provides it while parsing this file)
train_pipeline = [_base_.load_points, _base_.load_sweeps, *_base_.points_to_ego, _base_.load_images,
                  _base_.train_resize, load_occ, _base_.load_planning, *_base_.train_tail]
test_pipeline = [_base_.load_points, dict(_base_.load_sweeps, test_mode=True), *_base_.points_to_ego,
                 _base_.load_images, _base_.test_resize, load_occ, _base_.load_planning, *_base_.test_tail]

train_dataloader = dict(dataset=dict(ann_file='drivepi_occ3d_infos_train.pkl', pipeline=train_pipeline,
                                     metainfo=metainfo))
val_dataloader = dict(dataset=dict(ann_file='drivepi_occ3d_infos_val.pkl', pipeline=test_pipeline, metainfo=metainfo))
test_dataloader = val_dataloader
