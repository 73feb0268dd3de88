"""Default sensor calibration of the mini worlds: the real nuScenes LIDAR_TOP and six cameras.

Values are the calibrated_sensor records of nuScenes log n015-2018-07-24-11-22-45+0800
(the demo keyframe in ``shared/data/nuscenes_demo``; ``tests/sim/test_calibration.py`` checks
them against it). Rotations are quaternions (w, x, y, z) sensor->ego, translations in metres.
Keeping the real ~90 deg LIDAR_TOP yaw and the real camera extrinsics makes frame bugs visible.
"""
from dataclasses import dataclass

import numpy as np
from pyquaternion import Quaternion

NUSCENES_IMAGE_SIZE = (1600, 900)  # (width, height) of the real nuScenes cameras, pixels

LIDAR_TOP_CALIB = dict(rotation=[0.70779552, -0.00649224, 0.01064621, -0.7063073],
                       translation=[0.943713, 0.0, 1.84023])

# channel: (rotation wxyz, translation xyz, (f, cx, cy) at 1600x900)
CAMERA_CALIBS = {
    'CAM_FRONT': ([-0.49980156, 0.50303162, -0.4997798, 0.49737083], [1.700791, 0.015946, 1.510958],
                  (1266.417203, 816.26702, 491.507066)),
    'CAM_FRONT_RIGHT': ([0.20603479, -0.20269405, 0.68245078, -0.67136108], [1.550848, -0.493405, 1.495748],
                        (1260.847445, 807.968245, 495.334427)),
    'CAM_FRONT_LEFT': ([0.6757265, -0.67362665, 0.21214014, -0.21122827], [1.523878, 0.494631, 1.509328],
                       (1272.597947, 826.615493, 479.751654)),
    'CAM_BACK': ([0.50378728, -0.4974025, -0.49418503, 0.50454961], [0.028326, 0.003451, 1.579103],
                 (809.220991, 829.2196, 481.778424)),
    'CAM_BACK_LEFT': ([-0.69241855, 0.70316194, 0.11648343, -0.11203318], [1.035691, 0.484795, 1.59097],
                      (1256.741481, 792.112574, 492.775747)),
    'CAM_BACK_RIGHT': ([-0.1228098, 0.13240084, 0.70043058, -0.69049604], [1.014878, -0.480568, 1.562395],
                       (1259.513741, 807.252905, 501.195799)),
}
CAMERA_NAMES = tuple(CAMERA_CALIBS)


def pose_matrix(rotation_wxyz, translation) -> np.ndarray:
    """4x4 float64 homogeneous transform from a quaternion (w, x, y, z) and a translation (m)."""
    mat = np.eye(4)
    mat[:3, :3] = Quaternion(rotation_wxyz).rotation_matrix
    mat[:3, 3] = translation
    return mat


@dataclass(frozen=True)
class CameraCalib:
    """One pinhole camera: ``cam2ego`` (4,4), ``intrinsic`` (3,3) pixels, image ``width`` x ``height``."""
    name: str
    cam2ego: np.ndarray
    intrinsic: np.ndarray
    width: int
    height: int


def lidar2ego() -> np.ndarray:
    """(4,4) LIDAR_TOP -> ego transform of the real nuScenes car."""
    return pose_matrix(LIDAR_TOP_CALIB['rotation'], LIDAR_TOP_CALIB['translation'])


def camera_calibs(width: int, height: int) -> dict:
    """The six nuScenes cameras with intrinsics scaled from 1600x900 to ``width`` x ``height``.

    Returns:
        dict channel -> :class:`CameraCalib`, in nuScenes channel order.
    """
    sx, sy = width / NUSCENES_IMAGE_SIZE[0], height / NUSCENES_IMAGE_SIZE[1]
    calibs = {}
    for name, (rot, trans, (focal, cx, cy)) in CAMERA_CALIBS.items():
        intrinsic = np.array([[focal * sx, 0, cx * sx], [0, focal * sy, cy * sy], [0, 0, 1]])
        calibs[name] = CameraCalib(name, pose_matrix(rot, trans), intrinsic, width, height)
    return calibs
