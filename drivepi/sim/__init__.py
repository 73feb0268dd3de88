"""Generated mini driving worlds in nuScenes format (see docs/mini_dataset.md).

Modules: ``calibration`` (real nuScenes sensor set-up), ``geometry`` (poses, boxes), ``layout``
(street grid, ground materials, map), ``motion`` / ``traffic`` (paths, kinematics, agents, ego route),
``shapes`` (solids, agent shapes, occupancy labels of categories and materials), ``generator`` (one world
from a seed), ``world`` (:class:`SceneWorld`, ``load_scene_world``), ``ray_backends`` (nearest hits of rays,
Embree or torch), ``sensors`` (ray-cast LiDAR and cameras), ``occupancy`` (OpenOcc GT), ``nuscenes_export``
(tables), ``mini_dataset`` (``generate_mini_dataset``). Atomic file writers: :mod:`drivepi.fileio`; grid, classes
and ego size: :mod:`drivepi.geometry`. Imports go one way: shapes <- sensors <- world, ray_backends <- world (no
function-level imports, except of the optional ``open3d``).
"""
