"""LiDAR branch: voxelization, Ada3D importance filtering, SP-BN, spconv backbone to BEV."""
from . import spconv_compat  # noqa: F401  (CPU backward fix, must load first)
from .density_filter import DensityGuidedVoxelFilter
from .importance_predictor import BEVImportancePredictor, VoxelImportancePredictor
from .lidar_branch import LiDARBranch
from .sp_batchnorm import SparsityPreservingBatchNorm2d
from .sparse_backbone import SparseBEVBackbone
from .voxelizer import DynamicVoxelizer, check_points, voxel_ranges

__all__ = ['DynamicVoxelizer', 'check_points', 'voxel_ranges', 'VoxelImportancePredictor', 'BEVImportancePredictor',
           'DensityGuidedVoxelFilter', 'SparsityPreservingBatchNorm2d', 'SparseBEVBackbone', 'LiDARBranch']
