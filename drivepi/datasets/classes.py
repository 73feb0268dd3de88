"""Class and sensor name lists shared by the converter, the dataset, configs and metrics."""

# The 10 nuScenes detection classes (mmdet3d NuScenesDataset order); labels index this tuple.
DETECTION_CLASSES = ('car', 'truck', 'trailer', 'bus', 'construction_vehicle', 'bicycle', 'motorcycle',
                     'pedestrian', 'traffic_cone', 'barrier')

# OpenOcc (v2) occupancy classes: 16 semantic classes + free (index 16).
OPENOCC_CLASSES = ('car', 'truck', 'trailer', 'bus', 'construction_vehicle', 'bicycle', 'motorcycle',
                   'pedestrian', 'traffic_cone', 'barrier', 'driveable_surface', 'other_flat', 'sidewalk',
                   'terrain', 'manmade', 'vegetation', 'free')

# Occ3D-nuScenes occupancy classes: 17 semantic classes + free (index 17).
OCC3D_CLASSES = ('others', 'barrier', 'bicycle', 'bus', 'car', 'construction_vehicle', 'motorcycle',
                 'pedestrian', 'traffic_cone', 'trailer', 'truck', 'driveable_surface', 'other_flat',
                 'sidewalk', 'terrain', 'manmade', 'vegetation', 'free')

OCC_CLASSES = dict(openocc=OPENOCC_CLASSES, occ3d=OCC3D_CLASSES)

# The six nuScenes cameras in the order of the view axis V (mmdet3d v2 info order).
CAMERA_NAMES = ('CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK', 'CAM_BACK_LEFT',
                'CAM_BACK_RIGHT')
