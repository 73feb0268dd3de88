# Real nuScenes (v1.0-trainval) with OpenOcc v2 occupancy + flow GT (<data_root>/openocc_v2/<scene>/<token>/
# labels.npz): python tools/create_data.py nuscenes --root-path data/nuscenes --out-dir data/nuscenes
#     --version v1.0-trainval --occ-format openocc --occ-root openocc_v2
# The other dataset configs inherit this one and override only what differs (nuscenes_occ3d.py: classes and
# no flow; drivepi_mini.py: root, image size, sweeps); they rebuild the pipelines from the shared steps below.
# Grid, range and class lists agree with drivepi/geometry.py (tests/test_geometry.py checks it).
dataset_type = 'DrivePIDataset'
data_root = 'data/nuscenes/'
class_names = ['car', 'truck', 'trailer', 'bus', 'construction_vehicle', 'bicycle', 'motorcycle', 'pedestrian',
               'traffic_cone', 'barrier']
occ_classes = ['car', 'truck', 'trailer', 'bus', 'construction_vehicle', 'bicycle', 'motorcycle', 'pedestrian',
               'traffic_cone', 'barrier', 'driveable_surface', 'other_flat', 'sidewalk', 'terrain', 'manmade',
               'vegetation', 'free']
point_cloud_range = [-40.0, -40.0, -1.0, 40.0, 40.0, 5.4]  # the occupancy range, ego frame
cam_names = ['CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK', 'CAM_BACK_LEFT', 'CAM_BACK_RIGHT']
img_size = (256, 704)  # (H, W)
num_sweeps = 10
metainfo = dict(classes=class_names, occ_classes=occ_classes)
data_prefix = dict(pts='samples/LIDAR_TOP', sweeps='sweeps/LIDAR_TOP', **{cam: f'samples/{cam}' for cam in cam_names})
input_modality = dict(use_lidar=True, use_camera=True)
backend_args = None

# pipeline steps, shared by the train and test pipelines and by the configs that inherit this one
load_points = dict(type='DrivePILoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=5,
                   backend_args=backend_args)
load_sweeps = dict(type='DrivePILoadPointsFromMultiSweeps', sweeps_num=num_sweeps, load_dim=5,
                   use_dim=[0, 1, 2, 3, 4], remove_close=True, backend_args=backend_args)
points_to_ego = [dict(type='PointsToEgo'), dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range)]
load_images = dict(type='DrivePILoadMultiViewImageFromFiles', cam_names=cam_names, backend_args=backend_args)
train_resize = dict(type='MultiViewImageResizeCrop', final_size=img_size, scale_range=(0.94, 1.1), random_crop=True)
test_resize = dict(type='MultiViewImageResizeCrop', final_size=img_size)
load_occ = dict(type='LoadOccFlowGT', num_classes=len(occ_classes), with_flow=True)
load_planning = dict(type='LoadPlanningGT')
train_tail = [dict(type='LoadConversations', max_conversations=6), dict(type='PackDrivePIInputs')]
test_tail = [dict(type='LoadConversations'), dict(type='PackDrivePIInputs')]

train_pipeline = [load_points, load_sweeps, *points_to_ego, load_images, train_resize, load_occ, load_planning,
                  *train_tail]
test_pipeline = [load_points, dict(load_sweeps, test_mode=True), *points_to_ego, load_images, test_resize, load_occ,
                 load_planning, *test_tail]

train_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='drivepi_infos_train.pkl',
                 qa_file=data_root + 'qa_train.jsonl', pipeline=train_pipeline, metainfo=metainfo,
                 modality=input_modality, data_prefix=data_prefix, test_mode=False, box_type_3d='LiDAR',
                 backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='drivepi_infos_val.pkl',
                 qa_file=data_root + 'qa_val.jsonl', pipeline=test_pipeline, metainfo=metainfo,
                 modality=input_modality, data_prefix=data_prefix, test_mode=True, box_type_3d='LiDAR',
                 backend_args=backend_args))
# tools/test.py: 8 frames a batch (one pass of the model for all; their answers decoded together on a GPU): on an
# H100 ~5x the frames/s of batch 1 (docs/benchmarks.md); in-training validation keeps batch 1
test_dataloader = dict(val_dataloader, batch_size=8)
