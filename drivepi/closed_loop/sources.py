"""Scene sources: the two closed-loop settings behind one interface.

A :class:`SceneSource` gives the episode loop everything about one scene: the logged expert ego
poses, the logged agents at any time, the map layers, and (for the model planner) sensor data
produced for an arbitrary simulated ego pose.

- :class:`MiniWorldSource` (setting ``mini_world``): a generated mini-dataset scene rebuilt with
  :func:`drivepi.sim.world.load_scene_world`; LiDAR and the six cameras are ray-cast again from the
  simulated pose with the current agent boxes, so the model sees what its own driving caused.
- :class:`NuScenesLogSource` (setting ``nuscenes_log``): real nuScenes logs from the info files; the
  keyframe LiDAR sweep is re-expressed at the simulated pose (points to global, then into the new ego
  frame) and the camera images come from the log unchanged (an approximation written into every
  output); drivable area and lanes from ``nuscenes.map_expansion.map_api.NuScenesMap``.
"""
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from drivepi.fileio import read_pickle
from drivepi.sim.geometry import pose2d_matrix, transform_boxes, transform_points, wrap_angle
from drivepi.sim.world import AgentStates

from .geometry import MapGeometry


class SceneSource(ABC):
    """One scene the closed loop can drive in (global frame, metres, radians, seconds).

    Attributes:
        scene_name: str. setting: ``'mini_world'`` or ``'nuscenes_log'``.
        sensor_note: how the sensors are produced (written into the outputs).
        start_time, end_time: the logged time span (s).
        timestamp_offset: absolute timestamp (s, as in the info files) of time 0.
        map: :class:`MapGeometry`.
    """
    scene_name: str
    setting: str
    sensor_note: str
    start_time: float
    end_time: float
    timestamp_offset: float
    map: MapGeometry

    def ego2global(self, x: float, y: float, yaw: float, t: float) -> np.ndarray:
        """(4, 4) ego -> global transform of a simulated planar pose at time ``t`` (flat ground here)."""
        return pose2d_matrix(x, y, yaw)

    @abstractmethod
    def expert_pose(self, t: float) -> np.ndarray:
        """Logged ego rear-axle pose ``(x, y, yaw)`` at time ``t`` (extrapolated past the log end)."""

    @abstractmethod
    def agents_at(self, t: float) -> AgentStates:
        """Logged agents at time ``t``."""

    @abstractmethod
    def render_lidar(self, ego2global: np.ndarray, agents: AgentStates, t: float) -> np.ndarray:
        """LIDAR_TOP sweep (N, 5) float32 ``[x, y, z, intensity, ring]`` in the LiDAR frame, seen from
        ``ego2global`` (4, 4) with ``agents`` in the scene at time ``t``."""

    @abstractmethod
    def render_cameras(self, ego2global: np.ndarray, agents: AgentStates, t: float) -> Dict[str, np.ndarray]:
        """Camera name -> (H, W, 3) uint8 RGB image, seen from ``ego2global`` at time ``t``."""


class MiniWorldSource(SceneSource):
    """A generated mini-dataset scene (``<data_root>/worlds/<scene_name>.json``), sensors ray-cast again.

    Args:
        data_root: mini dataset root. scene_name: the scene to load.
        ray_backend: how the sensors are ray-cast (:data:`drivepi.sim.ray_backends.RAY_BACKENDS`).
    """
    setting = 'mini_world'
    sensor_note = ('mini world, sensor-level closed loop: LiDAR and the six cameras are ray-cast from '
                   'the simulated ego pose with the simulated agents at every planning step')

    def __init__(self, data_root, scene_name: str, ray_backend: str = 'auto'):
        from drivepi.sim.world import load_scene_world
        self._attach(load_scene_world(data_root, scene_name, ray_backend))

    @classmethod
    def from_world(cls, world) -> 'MiniWorldSource':
        """A source driving an in-memory :class:`~drivepi.sim.world.SceneWorld` (e.g. a benchmark world)."""
        source = cls.__new__(cls)
        source._attach(world)
        return source

    def _attach(self, world) -> None:
        self.world = world
        self.scene_name = world.name
        self.start_time, self.end_time = float(self.world.times[0]), float(self.world.times[-1])
        self.timestamp_offset = self.world.start_timestamp_us / 1e6
        layers = self.world.map
        self.map = MapGeometry(layers['drivable_area'], layers['lane'])

    def expert_pose(self, t: float) -> np.ndarray:
        t_log = float(np.clip(t, self.start_time, self.end_time))
        pose = np.array(self.world.ego_pose(t_log))
        pose[:2] += self.world.ego_velocity(t_log) * (t - t_log)
        return pose

    def agents_at(self, t: float) -> AgentStates:
        return self.world.agents_at(t)

    def render_lidar(self, ego2global: np.ndarray, agents: AgentStates, t: float) -> np.ndarray:
        return self.world.scan_lidar(ego2global, agents)

    def render_cameras(self, ego2global: np.ndarray, agents: AgentStates, t: float) -> Dict[str, np.ndarray]:
        return self.world.render_cameras(ego2global, agents)


class MiniWorldLoader:
    """``scene_name -> MiniWorldSource`` of a mini dataset root (picklable, for worker processes), ray-cast with
    ``ray_backend``, resolved here (:func:`drivepi.sim.ray_backends.resolve_ray_backend`: a bad name fails now)."""

    def __init__(self, data_root, ray_backend: str = 'auto'):
        from drivepi.sim.ray_backends import resolve_ray_backend
        self.data_root, self.ray_backend = data_root, resolve_ray_backend(ray_backend)

    def __call__(self, scene_name: str) -> MiniWorldSource:
        return MiniWorldSource(self.data_root, scene_name, self.ray_backend)


class NuScenesLogLoader:
    """``scene_name -> NuScenesLogSource`` (picklable); arguments as :class:`NuScenesLogSource`'s, with
    ``scene_infos`` mapping scene names to their keyframe infos."""

    def __init__(self, scene_infos: dict, data_root, data_prefix: dict, map_root):
        self.scene_infos, self.data_root = scene_infos, data_root
        self.data_prefix, self.map_root = data_prefix, map_root

    def __call__(self, scene_name: str) -> 'NuScenesLogSource':
        return NuScenesLogSource(self.scene_infos[scene_name], self.data_root, self.data_prefix, self.map_root)


# label index of drivepi.datasets.classes.DETECTION_CLASSES -> nuScenes category used for scoring
DETECTION_CATEGORIES = ('vehicle.car', 'vehicle.truck', 'vehicle.trailer', 'vehicle.bus.rigid',
                        'vehicle.construction', 'vehicle.bicycle', 'vehicle.motorcycle',
                        'human.pedestrian.adult', 'movable_object.trafficcone', 'movable_object.barrier')
OTHER_CATEGORY = 'movable_object.other'


def load_scene_infos(info_file) -> Tuple[Dict[str, list], dict]:
    """Scene name -> its keyframe infos in time order, and the file's metainfo, from a DrivePI info
    file (docs/contracts.md).

    Raises:
        FileNotFoundError / ValueError naming ``info_file`` when it is missing or lacks the keys.
    """
    path = Path(info_file)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: info file not found (create it with tools/create_data.py)')
    data = read_pickle(path, 'info file')
    if not isinstance(data, dict) or 'data_list' not in data or 'metainfo' not in data:
        raise ValueError(f'{path}: not an mmdet3d v2 info file (no data_list / metainfo)')
    scenes: Dict[str, list] = {}
    for info in data['data_list']:
        if 'scene_name' not in info or 'timestamp' not in info:
            raise ValueError(f'{path}: info {info.get("token")} lacks scene_name/timestamp (not a DrivePI info file)')
        scenes.setdefault(info['scene_name'], []).append(info)
    return {name: sorted(infos, key=lambda i: i['timestamp']) for name, infos in scenes.items()}, data['metainfo']


class NuScenesLogSource(SceneSource):
    """A nuScenes scene replayed from its keyframe infos (2 Hz), the ego simulated.

    Expert poses are interpolated between keyframes (linear position, shortest-arc yaw) and
    extrapolated at the last keyframe's velocity; agents are the nearest keyframe's boxes moved at
    their logged velocity. Sensors: the nearest keyframe's LiDAR sweep re-expressed at the
    simulated pose, camera images from the log. The map comes from the nuScenes map expansion.

    Args:
        infos: the scene's keyframe infos in time order (:func:`load_scene_infos`).
        data_root: dataset root. data_prefix: folders of ``pts`` and each camera, relative to data_root
            (the dataset's ``data_prefix``). map_root: folder holding ``maps/expansion/<location>.json``
            (None: no map; such a source cannot be scored, only rendered).
        map_margin: metres of map kept around the logged ego path.
    """
    setting = 'nuscenes_log'
    sensor_note = ('nuScenes log replay: the nearest keyframe LiDAR sweep re-expressed at the simulated pose '
                   '(points to global, then into the new ego frame; nothing re-rendered, earlier sweeps are the '
                   'same re-expression at earlier simulated poses), camera images from the log unchanged '
                   '(approximation), agents replayed from the log')

    def __init__(self, infos: list, data_root, data_prefix: dict, map_root=None, map_margin: float = 60.0):
        if not infos:
            raise ValueError('NuScenesLogSource: empty scene')
        self.infos, self.data_root, self.data_prefix = infos, Path(data_root), data_prefix
        self.scene_name = infos[0].get('scene_name', infos[0]['token'])
        self.timestamp_offset = float(infos[0]['timestamp'])
        self.key_times = np.array([i['timestamp'] for i in infos], dtype=np.float64) - self.timestamp_offset
        self.start_time, self.end_time = 0.0, float(self.key_times[-1])
        self.key_poses = np.array([i['ego2global'] for i in infos], dtype=np.float64)
        yaws = np.unwrap(np.arctan2(self.key_poses[:, 1, 0], self.key_poses[:, 0, 0]))
        self.key_xyyaw = np.concatenate([self.key_poses[:, :2, 3], yaws[:, None]], axis=1)
        self.map = None if map_root is None else self._load_map(Path(map_root), map_margin)

    def _nearest(self, t: float) -> int:
        return int(np.argmin(np.abs(self.key_times - t)))

    def expert_pose(self, t: float) -> np.ndarray:
        if len(self.infos) == 1:
            return self.key_xyyaw[0].copy()
        t_log = float(np.clip(t, self.start_time, self.end_time))
        pose = np.array([np.interp(t_log, self.key_times, self.key_xyyaw[:, i]) for i in range(3)])
        end = 0 if t < self.start_time else -1
        velocity = (self.key_xyyaw[end] - self.key_xyyaw[end - 1 if end else 1])[:2] / \
            (self.key_times[end] - self.key_times[end - 1 if end else 1])
        pose[:2] += velocity * (t - t_log)
        pose[2] = float(wrap_angle(pose[2]))
        return pose

    def ego2global(self, x: float, y: float, yaw: float, t: float) -> np.ndarray:
        """Planar pose lifted with the nearest keyframe's height, roll and pitch (exact at the logged pose)."""
        logged = self.key_poses[self._nearest(t)]
        logged_yaw = np.arctan2(logged[1, 0], logged[0, 0])
        mat = pose2d_matrix(x, y, yaw, logged[2, 3])
        mat[:3, :3] = mat[:3, :3] @ pose2d_matrix(0.0, 0.0, -logged_yaw)[:3, :3] @ logged[:3, :3]
        return mat

    def agents_at(self, t: float) -> AgentStates:
        k = self._nearest(t)
        info = self.infos[k]
        lidar2global = self.key_poses[k] @ np.asarray(info['lidar_points']['lidar2ego'], dtype=np.float64)
        instances = info.get('instances', [])
        boxes = np.array([i['bbox_3d'] for i in instances], dtype=np.float64).reshape(-1, 7)
        boxes = transform_boxes(lidar2global, boxes)
        vel = np.array([i.get('velocity', [0.0, 0.0])[:2] for i in instances], dtype=np.float64).reshape(-1, 2)
        vel = np.nan_to_num(vel) @ lidar2global[:2, :2].T
        boxes[:, :2] += vel * (t - self.key_times[k])
        tokens = [i.get('instance_token', f'{info["token"]}-{n}') for n, i in enumerate(instances)]
        labels = [i.get('bbox_label_3d', -1) for i in instances]
        categories = [DETECTION_CATEGORIES[c] if 0 <= c < len(DETECTION_CATEGORIES) else OTHER_CATEGORY
                      for c in labels]
        return AgentStates(tokens, categories, boxes, vel)

    def render_lidar(self, ego2global: np.ndarray, agents: AgentStates, t: float) -> np.ndarray:
        from drivepi.datasets.file_checks import check_points_file  # imports mmdet3d: only when used
        info = self.infos[self._nearest(t)]
        path = self.data_root / self.data_prefix.get('pts', '') / info['lidar_points']['lidar_path']
        check_points_file(path, 5)
        points = np.fromfile(path, dtype=np.float32).reshape(-1, 5)
        lidar2ego = np.asarray(info['lidar_points']['lidar2ego'], dtype=np.float64)
        key_lidar2global = self.key_poses[self._nearest(t)] @ lidar2ego
        new_from_key = np.linalg.inv(ego2global @ lidar2ego) @ key_lidar2global
        out = points.copy()
        out[:, :3] = transform_points(new_from_key, points[:, :3].astype(np.float64))
        return out

    def render_cameras(self, ego2global: np.ndarray, agents: AgentStates, t: float) -> Dict[str, np.ndarray]:
        from drivepi.datasets.file_checks import read_image_file
        info = self.infos[self._nearest(t)]
        # the dataset's checked reader: a missing, truncated or corrupt image is an error naming the file
        return {cam: read_image_file(self.data_root / self.data_prefix.get(cam, '') / entry['img_path'],
                                     channel_order='rgb')
                for cam, entry in info['images'].items()}

    def _load_map(self, map_root: Path, margin: float) -> MapGeometry:
        location = self.infos[0].get('map_location')
        path = map_root / 'maps' / 'expansion' / f'{location}.json'
        if location is None or not path.is_file():
            raise FileNotFoundError(f'{path}: nuScenes map expansion of scene {self.scene_name} (location '
                                    f'{location!r}) not found; install the map expansion under {map_root}/maps')
        import shapely
        from nuscenes.map_expansion.map_api import NuScenesMap
        nusc_map = NuScenesMap(dataroot=str(map_root), map_name=location)
        lo, hi = self.key_xyyaw[:, :2].min(0) - margin, self.key_xyyaw[:, :2].max(0) + margin
        records = nusc_map.get_records_in_patch((lo[0], lo[1], hi[0], hi[1]),
                                                ['drivable_area', 'lane', 'lane_connector'], mode='intersect')
        polygons = [nusc_map.extract_polygon(token) for record in records['drivable_area']
                    for token in nusc_map.get('drivable_area', record)['polygon_tokens']]
        lanes = nusc_map.discretize_lanes(records['lane'] + records['lane_connector'], resolution_meters=0.5)
        lines = [shapely.LineString(np.asarray(poses)[:, :2]) for poses in lanes.values() if len(poses) >= 2]
        return MapGeometry(shapely.union_all(polygons), lines)
