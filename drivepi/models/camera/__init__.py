"""Camera branch: image backbone + neck, LSS view transform to a camera BEV."""
from .camera_branch import CameraBranch, check_camera_inputs
from .lss_view_transform import LSSViewTransform, frustum_points

__all__ = ['CameraBranch', 'check_camera_inputs', 'LSSViewTransform', 'frustum_points']
