"""Ada3D: the whole spatial-redundancy filtering method of DrivePI, in one package.

Reference: T. Zhao et al., "Ada3D: Exploiting the Spatial Redundancy with Adaptive Inference for
Efficient 3D Object Detection", ICCV 2023 (arXiv:2307.08209). Map from the paper's method section to
the modules here (sections by title; the paper's Method section presents them in this order):

============================================  ==========================================================
Paper (Method section)                        Module
============================================  ==========================================================
Importance predictor (light network scoring   :mod:`.importance_predictor`: ``VoxelImportancePredictor``
the input, supervised by foreground)          (3x3x3 submanifold conv), ``BEVImportancePredictor`` (the
                                              paper's 2D CNN on the BEV of the voxels)
  - its training targets                      :mod:`.targets`: foreground from the GT occupancy (DrivePI
                                              has occupancy, not boxes, as dense supervision)
Density-guided spatial filtering (keep fewer  :mod:`.density_filter`: ``DensityGuidedVoxelFilter``
voxels near the sensor where LiDAR is dense)  (top-scoring quota per range ring) and
                                              :func:`.density_filter.filter_and_gate_voxels`, the
                                              filtering step the LiDAR branch runs before its backbone
Sparsity preserving batch normalization       :mod:`.sp_batchnorm`: ``SparsityPreservingBatchNorm2d``
(statistics over active BEV cells only,       (used by ``drivepi.models.lidar.SparseBEVBackbone``)
empty cells stay zero)
Adaptive inference on the 2D BEV map          :mod:`.token_filter`: ``BEVTokenFilter`` keeps the top-K
                                              BEV positions as LLM tokens (DrivePI's use of the idea:
                                              the 2D stage is the LLM)
(DrivePI addition) end-to-end training of     :mod:`.straight_through`: ``straight_through_gate``, a
the scorers                                   bit-exact forward gate routing task gradients to the scores
============================================  ==========================================================

Where it runs: ``drivepi.models.lidar.LiDARBranch`` (voxel predictor, density filter, gate; SP-BN in its
backbone) and ``drivepi.models.DrivePI`` (BEV token filter between the fused BEV and the LLM).
"""
from .density_filter import DensityGuidedVoxelFilter, filter_and_gate_voxels, voxel_ranges
from .importance_predictor import BEVImportancePredictor, VoxelImportancePredictor
from .sp_batchnorm import SparsityPreservingBatchNorm2d
from .straight_through import straight_through_gate
from .token_filter import BEVTokenFilter, gather_tokens, num_kept_tokens, scatter_tokens

__all__ = ['VoxelImportancePredictor', 'BEVImportancePredictor', 'DensityGuidedVoxelFilter', 'filter_and_gate_voxels',
           'voxel_ranges', 'SparsityPreservingBatchNorm2d', 'straight_through_gate', 'BEVTokenFilter',
           'gather_tokens', 'num_kept_tokens', 'scatter_tokens']
