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
from dataclasses import dataclass, field
from typing import Dict

import numpy as np

from drivepi.sim.world import AgentStates

from .geometry import MapGeometry


@dataclass
class SensorFrame:
    """Sensor data for one simulated ego pose.

    Attributes:
        points: (N, 5) float32 ``[x, y, z, intensity, ring]`` in the LiDAR frame (nuScenes ``.pcd.bin`` layout).
        images: camera name -> (H, W, 3) uint8 RGB image.
        timestamp: s.
    """
    points: np.ndarray
    images: Dict[str, np.ndarray] = field(default_factory=dict)
    timestamp: float = 0.0


class SceneSource(ABC):
    """One scene the closed loop can drive in (global frame, metres, radians, seconds).

    Attributes:
        scene_name: str. setting: ``'mini_world'`` or ``'nuscenes_log'``.
        sensor_note: how the sensors are produced (written into the outputs).
        start_time, end_time: the logged time span (s).
        map: :class:`MapGeometry`.
    """
    scene_name: str
    setting: str
    sensor_note: str
    start_time: float
    end_time: float
    map: MapGeometry

    @abstractmethod
    def expert_pose(self, t: float) -> np.ndarray:
        """Logged ego rear-axle pose ``(x, y, yaw)`` at time ``t`` (extrapolated past the log end)."""

    @abstractmethod
    def agents_at(self, t: float) -> AgentStates:
        """Logged agents at time ``t``."""

    @abstractmethod
    def render(self, ego2global: np.ndarray, agents: AgentStates, t: float) -> SensorFrame:
        """Sensor data seen from ``ego2global`` (4, 4) with ``agents`` in the scene at time ``t``."""


class MiniWorldSource(SceneSource):
    """A generated mini-dataset scene (``<data_root>/worlds/<scene_name>.json``), sensors ray-cast again.

    Args:
        data_root: mini dataset root. scene_name: the scene to load.
    """
    setting = 'mini_world'
    sensor_note = ('mini world, sensor-level closed loop: LiDAR and the six cameras are ray-cast from '
                   'the simulated ego pose with the simulated agents at every planning step')

    def __init__(self, data_root, scene_name: str):
        from drivepi.sim.world import load_scene_world
        self.world = load_scene_world(data_root, scene_name)
        self.scene_name = scene_name
        self.start_time, self.end_time = float(self.world.times[0]), float(self.world.times[-1])
        layers = self.world.map
        self.map = MapGeometry(layers['drivable_area'], layers['lane'])

    def expert_pose(self, t: float) -> np.ndarray:
        t_log = float(np.clip(t, self.start_time, self.end_time))
        pose = np.array(self.world.ego_pose(t_log))
        pose[:2] += self.world.ego_velocity(t_log) * (t - t_log)
        return pose

    def agents_at(self, t: float) -> AgentStates:
        return self.world.agents_at(t)

    def render(self, ego2global: np.ndarray, agents: AgentStates, t: float) -> SensorFrame:
        return SensorFrame(points=self.world.scan_lidar(ego2global, agents),
                           images=self.world.render_cameras(ego2global, agents), timestamp=t)
