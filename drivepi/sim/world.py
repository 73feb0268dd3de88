"""A mini driving world that the closed loop can rebuild and drive in: :class:`SceneWorld`.

``worlds/<scene_name>.json`` holds everything: the street grid (hence map and ground materials),
static solids (buildings, trees, poles, sidewalk slabs), the logged expert ego track and every
agent's track at ``dt`` steps, and the sensor set-up. All poses are in the *global* frame:
ego pose = rear axle on the ground ``(x, y, yaw)``, agent boxes ``[x, y, z_bottom, l, w, h, yaw]``.

Sensors take an explicit ``ego2global`` (4,4) and explicit :class:`AgentStates`, so a caller may
move the ego and the agents anywhere (``world.agents_at(t)`` gives the logged ones).
"""
import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from drivepi.fileio import atomic_write_text, read_json
from drivepi.geometry import OPENOCC_CLASSES as OCC_CLASSES  # noqa: F401  (the generator imports it from here)
from drivepi.sim import layout, sensors
from drivepi.sim.calibration import camera_calibs, lidar2ego
from drivepi.sim.geometry import pose2d_matrix, wrap_angle
from drivepi.sim.ray_backends import get_ray_backend
from drivepi.sim.shapes import Solids, agent_solids

WORLD_FORMAT = 'drivepi-world-1'


@dataclass
class AgentStates:
    """Agents at one instant (global frame).

    Attributes:
        tokens: N instance tokens; categories: N nuScenes category names.
        boxes: (N,7) float64 ``[x, y, z_bottom, l, w, h, yaw]``; velocities: (N,2) m/s (vx, vy).
    """
    tokens: list
    categories: list
    boxes: np.ndarray
    velocities: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)

    def subset(self, mask) -> 'AgentStates':
        idx = np.flatnonzero(mask)
        return AgentStates([self.tokens[i] for i in idx], [self.categories[i] for i in idx],
                           self.boxes[idx], self.velocities[idx])


@dataclass(frozen=True)
class SensorSetup:
    """LiDAR and camera parameters of a world (the real nuScenes calibration, scaled images)."""
    image_width: int = 400
    image_height: int = 225
    lidar_azimuth_res_deg: float = 0.5
    lidar_beams: int = 32
    lidar_elevation_deg: tuple = (-30.67, 10.67)
    lidar_max_range: float = 70.0

    @property
    def lidar2ego(self) -> np.ndarray:
        return lidar2ego()

    @property
    def cameras(self) -> dict:
        return camera_calibs(self.image_width, self.image_height)


@dataclass
class SceneWorld:
    """One generated scene: static world + logged tracks (see the module docstring).

    Attributes:
        name: scene name; grid: the street grid (its ``grid2global`` places it in the global frame).
        static: :class:`Solids` of static structure (``owner`` -1).
        times: (T,) seconds from the scene start of the track samples (uniform ``dt``).
        ego_track: (T,4) rear-axle ``x, y, yaw, speed`` (m, rad, m/s).
        agents: list of dicts ``token, category, attribute, size (l,w,h), colour (3,)`` and
            ``states`` (T,6) ``x, y, z_bottom, yaw, vx, vy``.
        keyframe_times: (K,) seconds; start_timestamp_us: absolute time of ``t = 0``.
        ray_backend: how the sensors are ray-cast (:data:`~drivepi.sim.ray_backends.RAY_BACKENDS`; not saved).
    """
    name: str
    grid: layout.RoadGrid
    static: Solids
    times: np.ndarray
    ego_track: np.ndarray
    agents: list
    keyframe_times: np.ndarray
    start_timestamp_us: int
    sensors: SensorSetup = field(default_factory=SensorSetup)
    meta: dict = field(default_factory=dict)
    ray_backend: str = 'auto'

    # ------------------------------------------------------------------ logged states
    def _interp(self, values: np.ndarray, t: float) -> np.ndarray:
        if not self.times[0] - 1e-6 <= t <= self.times[-1] + 1e-6:
            raise ValueError(f'scene {self.name}: time {t:.3f} s outside [0, {self.times[-1]:.3f}] s')
        return np.array([np.interp(t, self.times, v) for v in values.T])

    def ego_pose(self, t: float) -> tuple:
        """Logged expert ego pose ``(x, y, yaw)`` (global, rear axle) at time ``t`` s."""
        x, y, yaw, _ = self._interp(self._ego_unwrapped, t)
        return float(x), float(y), float(wrap_angle(yaw))

    def ego2global(self, t: float) -> np.ndarray:
        """(4,4) ego -> global transform of the logged ego at time ``t``."""
        return pose2d_matrix(*self.ego_pose(t))

    def ego_velocity(self, t: float) -> np.ndarray:
        """(2,) logged ego velocity (vx, vy) m/s in the global frame."""
        _, _, yaw, speed = self._interp(self._ego_unwrapped, t)
        return speed * np.array([np.cos(yaw), np.sin(yaw)])

    def agents_at(self, t: float) -> AgentStates:
        """Logged states of all agents at time ``t`` s (linear interpolation of the tracks)."""
        states = np.stack([self._interp(a['states_unwrapped'], t) for a in self._agents_unwrapped]) \
            if self.agents else np.zeros((0, 6))
        sizes = np.array([a['size'] for a in self.agents]).reshape(-1, 3)
        boxes = np.c_[states[:, :3], sizes, wrap_angle(states[:, 3])]
        return AgentStates([a['token'] for a in self.agents], [a['category'] for a in self.agents],
                           boxes, states[:, 4:6])

    @cached_property
    def _ego_unwrapped(self) -> np.ndarray:
        track = self.ego_track.copy()
        track[:, 2] = np.unwrap(track[:, 2])
        return track

    @cached_property
    def _agents_unwrapped(self) -> list:
        out = []
        for a in self.agents:
            states = np.asarray(a['states'], float).copy()
            states[:, 3] = np.unwrap(states[:, 3])
            out.append(dict(states_unwrapped=states))
        return out

    # ------------------------------------------------------------------ map and ground
    @cached_property
    def map(self) -> dict:
        """Global-frame shapely map: ``drivable_area`` (Polygon), ``walkway`` and ``ped_crossing``
        (lists of Polygons), ``lane`` (list of LineStrings; coordinate order = travel direction)."""
        layers = layout.map_layers(self.grid)
        return {k: (layout.to_global(v, self.grid) if not isinstance(v, list)
                    else [layout.to_global(g, self.grid) for g in v]) for k, v in layers.items()}

    @cached_property
    def ground_materials(self) -> np.ndarray:
        """(S,S) uint8 ground-material raster of the grid frame (see :mod:`drivepi.sim.layout`)."""
        return layout.ground_raster(self.grid)

    def ground_material_at(self, xy: np.ndarray) -> np.ndarray:
        """(N,) ground material at global (N,2) points."""
        return layout.raster_lookup(self.ground_materials, self.grid, xy)

    # ------------------------------------------------------------------ geometry
    def solids(self, agents: AgentStates) -> Solids:
        """Static solids plus the solids of ``agents`` (vehicles: body + cabin; others: their box)."""
        dyn = agent_solids(agents, self.agent_colours(agents))
        return Solids(*(np.concatenate([getattr(self.static, f), getattr(dyn, f)])
                        for f in ('boxes', 'labels', 'colours', 'owner')))

    def agent_colours(self, agents: AgentStates) -> np.ndarray:
        """(N,3) body colours of agents (logged colour by token, grey for unknown tokens)."""
        by_token = {a['token']: a['colour'] for a in self.agents}
        return np.array([by_token.get(t, (0.5, 0.5, 0.5)) for t in agents.tokens]).reshape(-1, 3)

    def mesh(self, agents: AgentStates) -> 'WorldMesh':
        """The ground plane and all solids, ready for ray casting; see :class:`WorldMesh`."""
        return WorldMesh.build(self, self.solids(agents))

    # ------------------------------------------------------------------ sensors
    def scan_lidar(self, ego2global: np.ndarray, agents: AgentStates) -> np.ndarray:
        """LIDAR_TOP sweep: (N,5) float32 ``[x, y, z, intensity 0-255, ring 0-31]`` in the LiDAR frame."""
        return sensors.cast_lidar(self.mesh(agents), self.sensors, ego2global).points

    def render_cameras(self, ego2global: np.ndarray, agents: AgentStates) -> dict:
        """Six camera images: channel -> (H,W,3) uint8 RGB."""
        return {name: view.image for name, view in sensors.render_cameras(self.mesh(agents), self.sensors,
                                                                          ego2global).items()}

    # ------------------------------------------------------------------ I/O
    def to_dict(self) -> dict:
        r = lambda a, n=4: np.round(np.asarray(a, float), n).tolist()  # noqa: E731
        return dict(
            format=WORLD_FORMAT, name=self.name, grid=self.grid.to_dict(), meta=self.meta,
            sensors=self.sensors.__dict__.copy(), start_timestamp_us=int(self.start_timestamp_us),
            static=dict(boxes=r(self.static.boxes), labels=self.static.labels.tolist(),
                        colours=r(self.static.colours, 3)),
            times=r(self.times), keyframe_times=r(self.keyframe_times), ego_track=r(self.ego_track, 5),
            agents=[dict(token=a['token'], category=a['category'], attribute=a['attribute'],
                         size=r(a['size']), colour=r(a['colour'], 3), states=r(a['states'], 5))
                    for a in self.agents])

    @classmethod
    def from_dict(cls, d: dict, source: str = '<dict>') -> 'SceneWorld':
        if d.get('format') != WORLD_FORMAT:
            raise ValueError(f'{source}: not a {WORLD_FORMAT} file (format={d.get("format")!r})')
        try:
            static = Solids(np.asarray(d['static']['boxes'], float).reshape(-1, 7),
                            np.asarray(d['static']['labels'], np.uint8),
                            np.asarray(d['static']['colours'], float).reshape(-1, 3),
                            np.full(len(d['static']['labels']), -1, np.int64))
            times = np.asarray(d['times'], float)
            ego = np.asarray(d['ego_track'], float)
            agents = [dict(a, states=np.asarray(a['states'], float)) for a in d['agents']]
            sensors = SensorSetup(**{k: tuple(v) if isinstance(v, list) else v for k, v in d['sensors'].items()})
            world = cls(d['name'], layout.RoadGrid.from_dict(d['grid']), static, times, ego, agents,
                        np.asarray(d['keyframe_times'], float), int(d['start_timestamp_us']), sensors,
                        d.get('meta', {}))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f'{source}: malformed world description ({err!r})') from err
        bad = [a['token'] for a in agents if a['states'].shape != (len(times), 6)]
        if ego.shape != (len(times), 4) or bad:
            raise ValueError(f'{source}: track lengths disagree with {len(times)} time samples '
                             f'(ego {ego.shape}, agents {bad[:3]})')
        if not (np.isfinite(ego).all() and all(np.isfinite(a['states']).all() for a in agents)):
            raise ValueError(f'{source}: non-finite values in the tracks')
        return world

    def save(self, path) -> None:
        """Write ``path`` atomically (temp file in the same folder, then ``os.replace``)."""
        atomic_write_text(path, json.dumps(self.to_dict(), separators=(',', ':')))


@dataclass
class WorldMesh:
    """The geometry of one instant in the world's ray-casting backend (:mod:`drivepi.sim.ray_backends`): the
    static scene (ground quad + static solids, built once per world and backend and cached on the world) with
    the agents' solids added.

    ``solids`` lists the static solids first, then the agents' (:meth:`SceneWorld.solids`).
    """
    world: SceneWorld
    solids: Solids
    scene: object

    @classmethod
    def build(cls, world: SceneWorld, solids: Solids) -> 'WorldMesh':
        backend = get_ray_backend(world.ray_backend)
        static_scenes = world.__dict__.setdefault('_static_scenes', {})
        if backend.name not in static_scenes:
            e = world.grid.half_extent + 200.0
            ground = np.array([[-e, -e, 0, 1], [e, -e, 0, 1], [-e, e, 0, 1], [e, e, 0, 1]]) @ world.grid.grid2global.T
            static_scenes[backend.name] = backend.static_scene(ground[:, :3], world.static.boxes)
        return cls(world, solids, backend.scene(static_scenes[backend.name], solids.boxes[len(world.static.boxes):]))

    def cast(self, rays: np.ndarray) -> tuple:
        """Nearest hits of (R,6) float32 rays ``[origin, unit direction]``: distance (R,) (inf = miss),
        solid index (R,) (-1 = ground or miss) and the hit face's normal (R,3)."""
        return self.scene.cast(rays)


def load_scene_world(data_root, scene_name: str, ray_backend: str = 'auto') -> SceneWorld:
    """Rebuild a scene's world from ``<data_root>/worlds/<scene_name>.json``, its sensors ray-cast with
    ``ray_backend`` (:data:`~drivepi.sim.ray_backends.RAY_BACKENDS`).

    Raises:
        FileNotFoundError: the file is missing; ValueError: it is truncated or malformed.
    """
    path = Path(data_root) / 'worlds' / f'{scene_name}.json'
    if not path.is_file():
        raise FileNotFoundError(f'{path}: world file of scene {scene_name!r} not found')
    return replace(SceneWorld.from_dict(read_json(path, 'world file'), str(path)), ray_backend=ray_backend)
