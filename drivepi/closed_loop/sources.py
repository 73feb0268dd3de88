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

from .agents import AgentBoxes
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
    def agents_at(self, t: float) -> AgentBoxes:
        """Logged agents at time ``t``."""

    @abstractmethod
    def render(self, ego2global: np.ndarray, agents: AgentBoxes, t: float) -> SensorFrame:
        """Sensor data seen from ``ego2global`` (4, 4) with ``agents`` in the scene at time ``t``."""

    @abstractmethod
    def calibration_info(self) -> dict:
        """Info-file fields of the scene's sensor rig (``lidar_points.lidar2ego``, ``images[cam]``
        ``cam2img`` / ``cam2ego`` / ``lidar2cam``) in the docs/contracts.md layout."""
