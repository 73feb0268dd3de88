"""Generated mini driving worlds in nuScenes format (see docs/mini_dataset.md).

Modules: ``calibration`` (real nuScenes sensor set-up), ``geometry`` (poses, boxes), ``layout``
(street grid, ground materials, map), ``motion`` / ``traffic`` (paths, kinematics, agents, ego route),
``shapes`` (agent solids), ``generator`` (one world from a seed), ``world`` (:class:`SceneWorld`,
``load_scene_world``), ``sensors`` (ray-cast LiDAR and cameras), ``occupancy`` (OpenOcc GT),
``nuscenes_export`` (tables), ``mini_dataset`` (``generate_mini_dataset``), ``files`` (atomic writers).
"""
