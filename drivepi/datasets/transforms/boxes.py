"""GT boxes of the keyframe from the LiDAR frame to the ego frame."""
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.structures import LiDARInstance3DBoxes

from drivepi.datasets.converters.ego_motion import boxes_global_to_frame
from drivepi.registry import TRANSFORMS


@TRANSFORMS.register_module()
class BoxesToEgo(BaseTransform):
    """Move ``results['gt_bboxes_3d']`` (``LiDARInstance3DBoxes``, LiDAR frame) to the ego frame.

    The full 3D ``lidar2ego`` moves the box centres; the yaw is the heading direction rotated into
    the ego frame. Required keys: ``gt_bboxes_3d``, ``lidar_points['lidar2ego']`` (4,4).
    Modified keys: ``gt_bboxes_3d`` (``LiDARInstance3DBoxes`` ``[x, y, z_bottom, l, w, h, yaw]``, ego frame).
    """

    def transform(self, results: dict) -> dict:
        boxes = results['gt_bboxes_3d']
        lidar2ego = np.asarray(results['lidar_points']['lidar2ego'], dtype=np.float64)
        # boxes_global_to_frame maps "global" -> frame; with frame2global = ego2lidar it maps LiDAR -> ego.
        ego_boxes = boxes_global_to_frame(np.linalg.inv(lidar2ego), boxes.gravity_center.numpy(),
                                          boxes.dims.numpy(), boxes.yaw.numpy())
        results['gt_bboxes_3d'] = LiDARInstance3DBoxes(ego_boxes, box_dim=7)
        return results
