# The long mini recipe without Ada3D: no importance predictor and no voxel filter, every non-empty voxel reaches
# the sparse backbone. The other half of the accuracy-vs-speed comparison of a model trained with and without the
# filter (docs/benchmarks.md, issue 28); everything else as drivepi_mini_long.py.
#     python tools/train.py configs/drivepi/drivepi_mini_long_no_ada3d.py --work-dir work_dirs/mini_long_no_ada3d
_base_ = ['./drivepi_mini_long.py']

model = dict(lidar_branch=dict(importance_predictor=None, voxel_filter=None))
