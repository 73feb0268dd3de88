"""LiDAR branch: voxelization, Ada3D filtering (``drivepi.models.ada3d``), spconv backbone to BEV."""
from . import spconv_compat  # noqa: F401  (CPU backward fix, fx log filter; must load first)
from .lidar_branch import LiDARBranch
from .sparse_backbone import SparseBEVBackbone
from .voxelizer import DynamicVoxelizer, check_points

__all__ = ['DynamicVoxelizer', 'check_points', 'SparseBEVBackbone', 'LiDARBranch']
