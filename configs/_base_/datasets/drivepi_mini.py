# The generated mini set (tools/create_mini_dataset.py, then tools/create_data.py ... --version
# v1.0-drivepi-mini) and its QA files (data_engine/generate_qa.py). Small images, few sweeps: CPU-sized.
dataset_type = 'DrivePIDataset'
data_root = 'data/drivepi-mini/'
qa_train_file = data_root + 'qa_train.jsonl'  # also the QA metric's most-common-answer baseline
class_names = ['car', 'truck', 'trailer', 'bus', 'construction_vehicle', 'bicycle', 'motorcycle', 'pedestrian',
               'traffic_cone', 'barrier']
occ_classes = ['car', 'truck', 'trailer', 'bus', 'construction_vehicle', 'bicycle', 'motorcycle', 'pedestrian',
               'traffic_cone', 'barrier', 'driveable_surface', 'other_flat', 'sidewalk', 'terrain', 'manmade',
               'vegetation', 'free']
point_cloud_range = [-40.0, -40.0, -1.0, 40.0, 40.0, 5.4]  # the occupancy range, ego frame
cam_names = ['CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK', 'CAM_BACK_LEFT', 'CAM_BACK_RIGHT']
img_size = (128, 352)  # (H, W)
num_sweeps = 3
metainfo = dict(classes=class_names, occ_classes=occ_classes)
data_prefix = dict(pts='samples/LIDAR_TOP', sweeps='sweeps/LIDAR_TOP', **{cam: f'samples/{cam}' for cam in cam_names})
input_modality = dict(use_lidar=True, use_camera=True)
backend_args = None

train_pipeline = [
    dict(type='DrivePILoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=5, backend_args=backend_args),
    dict(type='DrivePILoadPointsFromMultiSweeps', sweeps_num=num_sweeps, load_dim=5, use_dim=[0, 1, 2, 3, 4],
         remove_close=True, backend_args=backend_args),
    dict(type='PointsToEgo'),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='DrivePILoadMultiViewImageFromFiles', cam_names=cam_names, backend_args=backend_args),
    dict(type='MultiViewImageResizeCrop', final_size=img_size, scale_range=(0.94, 1.1), random_crop=True),
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
    dict(type='BoxesToEgo'),
    dict(type='LoadOccFlowGT', num_classes=len(occ_classes), with_flow=True),
    dict(type='LoadPlanningGT'),
    dict(type='LoadConversations', max_conversations=6),
    dict(type='PackDrivePIInputs'),
]
test_pipeline = [
    dict(type='DrivePILoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=5, backend_args=backend_args),
    dict(type='DrivePILoadPointsFromMultiSweeps', sweeps_num=num_sweeps, load_dim=5, use_dim=[0, 1, 2, 3, 4],
         remove_close=True, test_mode=True, backend_args=backend_args),
    dict(type='PointsToEgo'),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='DrivePILoadMultiViewImageFromFiles', cam_names=cam_names, backend_args=backend_args),
    dict(type='MultiViewImageResizeCrop', final_size=img_size),
    dict(type='LoadOccFlowGT', num_classes=len(occ_classes), with_flow=True),
    dict(type='LoadPlanningGT'),
    dict(type='LoadConversations'),
    dict(type='PackDrivePIInputs'),
]

train_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='drivepi_infos_train.pkl',
                 qa_file=qa_train_file, pipeline=train_pipeline, metainfo=metainfo,
                 modality=input_modality, data_prefix=data_prefix, test_mode=False, box_type_3d='LiDAR',
                 backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='drivepi_infos_val.pkl',
                 qa_file=data_root + 'qa_val.jsonl', pipeline=test_pipeline, metainfo=metainfo,
                 modality=input_modality, data_prefix=data_prefix, test_mode=True, box_type_3d='LiDAR',
                 backend_args=backend_args))
test_dataloader = val_dataloader
