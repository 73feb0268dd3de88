"""Text-occupancy questions: what is at a place, nearest obstacle per direction, free road ahead,
counts of a class within a radius, count comparisons.

Definitions (the verifier recomputes them the slow way, :mod:`data_engine.verify`):

- obstacle voxel: a voxel whose class is not ground (``GROUND_CLASSES``) and not free; a *low*
  obstacle voxel also has its centre at most ``clearance_height`` m above the ego ground plane.
- place ``(x, y)``: the grid column whose centre it is. Its answer ``exist`` is whether the column
  holds an obstacle voxel; ``object`` is the class of its highest occupied voxel (``free`` if none);
  ``height`` is the top face z of that voxel (m, ego frame).
- direction corridor: ``ahead`` / ``behind`` = columns with ``|y_c| <= corridor_half_width`` and
  ``x_c > 0`` / ``x_c < 0``; ``left`` / ``right`` = columns with ``x_c`` in ``ego_x_span`` and
  ``y_c > 0`` / ``y_c < 0``. The nearest obstacle is the row of the corridor closest to the ego that
  holds a low obstacle voxel; its ``distance`` is the near voxel face along the axis (m from the
  ego origin) and its ``object`` the most frequent class of that row's low obstacle voxels
  (ties: the lower class index).
- free road ahead: the ``ahead`` corridor up to the first row that holds a low obstacle voxel or a
  ground voxel other than driveable surface (near face, m); the grid edge when there is none.
- counts: annotated objects of a class whose box centre lies within ``radius`` m (BEV) of the ego,
  in a region (``around`` all, ``ahead`` x > 0, ``behind`` x < 0).
"""
from dataclasses import dataclass

import numpy as np

from drivepi.evaluation.qa_accuracy import format_number

from .phrasing import make_turn, pick, place, plural, yes_no
from .scene import GROUND_CLASSES, SceneGT, display_name

DIRECTIONS = ('ahead', 'behind', 'left', 'right')
DIRECTION_WORDS = {'ahead': 'ahead of', 'behind': 'behind', 'left': 'to the left of',
                   'right': 'to the right of'}
REGIONS = ('around', 'ahead', 'behind')
REGION_WORDS = {'around': 'of', 'ahead': 'in front of', 'behind': 'behind'}

Q_PLACE_EXIST = ('Is there an obstacle at {place}?', 'Is the location {place} occupied by an obstacle?',
                 'At {place}, is anything blocking the way?')
Q_PLACE_OBJECT = ('What occupies that location?', 'What is there?', 'Which class is at that spot?')
Q_PLACE_HEIGHT = ('How high does it reach?', 'What is the height of its top?',
                  'Up to what height is that location occupied?')
Q_DIR_EXIST = ('Is there any obstacle {dir} the ego vehicle?', 'Is the space {dir} the ego vehicle blocked?',
               'Do you see an obstacle {dir} the ego vehicle?')
Q_DIR_DISTANCE = ('How far away is the nearest one?', 'What is the distance to the closest obstacle there?',
                  'How far is it from the ego vehicle?')
Q_DIR_OBJECT = ('What is it?', 'Which class is that obstacle?', 'What kind of obstacle is it?')
Q_FREE_SPACE = ('How much free road is there straight ahead?',
                'How far can the ego vehicle drive straight ahead on free road?',
                'What is the length of the free driveable space in front of the ego vehicle?')
Q_COUNT = ('How many {cls} are within {r} m {region} the ego vehicle?',
           'Count the {cls} within {r} m {region} the ego vehicle.',
           'What is the number of {cls} within {r} m {region} the ego vehicle?')
Q_COMPARE = ('Are there more {a} than {b} within {r} m of the ego vehicle?',
             'Within {r} m of the ego vehicle, do {a} outnumber {b}?')


@dataclass
class OccupancyQAConfig:
    """Question counts per sample and the geometric definitions (m)."""
    num_place: int = 2
    num_direction: int = 2
    num_count: int = 2
    num_compare: int = 1
    ask_free_space: bool = True
    corridor_half_width: float = 1.2
    ego_x_span: tuple = (-1.2, 4.0)
    clearance_height: float = 3.0
    count_radii: tuple = (10, 20, 30)


class OccupancyView:
    """Column-wise summaries of a scene's semantic grid, computed once per scene."""

    def __init__(self, scene: SceneGT, cfg: OccupancyQAConfig):
        sem = scene.semantics
        nx, ny, nz = sem.shape
        x0, y0, z0 = scene.pc_range[:3]
        size = scene.voxel_size
        self.x_c = x0 + (np.arange(nx) + 0.5) * size
        self.y_c = y0 + (np.arange(ny) + 0.5) * size
        z_c = z0 + (np.arange(nz) + 0.5) * size
        free = scene.free_label
        names = scene.occ_classes
        obstacle_lut = np.zeros(256, bool)
        obstacle_lut[[i for i, n in enumerate(names) if n not in GROUND_CLASSES and i != free]] = True
        off_road_lut = np.zeros(256, bool)
        off_road_lut[[names.index(n) for n in GROUND_CLASSES if n != 'driveable_surface']] = True
        occupied = sem != free
        top_from_above = occupied[:, :, ::-1].argmax(axis=2)
        self.top_iz = np.where(occupied.any(axis=2), nz - 1 - top_from_above, -1)
        self.top_label = np.where(self.top_iz >= 0,
                                  np.take_along_axis(sem, np.maximum(self.top_iz, 0)[..., None], 2)[..., 0],
                                  free)
        self.top_z = z0 + (self.top_iz + 1) * size
        obstacle = obstacle_lut[sem]
        self.obstacle_column = obstacle.any(axis=2)
        self.low_obstacle = obstacle & (z_c <= cfg.clearance_height)
        self.off_road = off_road_lut[sem].any(axis=2)
        observed = scene.mask_camera.any(axis=2) if scene.mask_camera is not None else None
        self.candidate = observed if observed is not None and observed.any() else np.ones((nx, ny), bool)
        self.size, self.sem, self.cfg = size, sem, cfg

    def corridor(self, direction: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of a direction's corridor, nearest first.

        Returns:
            low_obstacle (R, C, Z) bool, labels (R, C, Z), near_face (R,) distances in m.
        """
        cfg, half = self.cfg, self.size / 2
        if direction in ('ahead', 'behind'):
            cols = np.abs(self.y_c) <= cfg.corridor_half_width
            rows = np.flatnonzero(self.x_c > 0) if direction == 'ahead' else np.flatnonzero(self.x_c < 0)[::-1]
            near = np.abs(self.x_c[rows]) - half
            return self.low_obstacle[rows][:, cols], self.sem[rows][:, cols], near
        cols = (self.x_c >= cfg.ego_x_span[0]) & (self.x_c <= cfg.ego_x_span[1])
        rows = np.flatnonzero(self.y_c > 0) if direction == 'left' else np.flatnonzero(self.y_c < 0)[::-1]
        near = np.abs(self.y_c[rows]) - half
        return (self.low_obstacle[:, rows][cols].transpose(1, 0, 2), self.sem[:, rows][cols].transpose(1, 0, 2),
                near)

    def nearest_obstacle(self, direction: str) -> tuple[float, int] | None:
        """(distance m, class label) of the nearest low obstacle in a direction, None if clear."""
        low, labels, near = self.corridor(direction)
        hit_rows = np.flatnonzero(low.any(axis=(1, 2)))
        if hit_rows.size == 0:
            return None
        row = hit_rows[0]
        counts = np.bincount(labels[row][low[row]], minlength=1)
        return float(near[row]), int(counts.argmax())

    def free_road_ahead(self) -> float:
        """Free driveable length straight ahead (m), see module docstring."""
        low, _, near = self.corridor('ahead')
        cols = np.abs(self.y_c) <= self.cfg.corridor_half_width
        rows = np.flatnonzero(self.x_c > 0)
        blocked = low.any(axis=(1, 2)) | self.off_road[rows][:, cols].any(axis=1)
        hit = np.flatnonzero(blocked)
        return float(near[hit[0]]) if hit.size else float(near[-1] + self.size)


def _place_turns(view: OccupancyView, scene: SceneGT, rng: np.random.Generator) -> list:
    has_obstacle = view.obstacle_column & view.candidate
    has_none = ~view.obstacle_column & view.candidate
    options = [flag for flag, cols in ((True, has_obstacle), (False, has_none)) if cols.any()]
    want = options[int(rng.integers(len(options)))]
    columns = has_obstacle if want else has_none
    labels = np.unique(view.top_label[columns])
    label = labels[int(rng.integers(len(labels)))]
    cells = np.argwhere(columns & (view.top_label == label))
    ix, iy = cells[int(rng.integers(len(cells)))]
    x, y = round(float(view.x_c[ix]), 1), round(float(view.y_c[iy]), 1)
    turns = [make_turn(pick(rng, Q_PLACE_EXIST, place=place(x, y)), yes_no(want), 'exist',
                       'place_exist', x=x, y=y),
             make_turn(pick(rng, Q_PLACE_OBJECT), display_name(scene.occ_classes[label]), 'object',
                       'place_object', x=x, y=y)]
    if view.top_iz[ix, iy] >= 0:
        turns.append(make_turn(pick(rng, Q_PLACE_HEIGHT), format_number(view.top_z[ix, iy], 'm'),
                               'height', 'place_height', x=x, y=y))
    return turns


def _direction_turns(view: OccupancyView, scene: SceneGT, rng: np.random.Generator, direction: str) -> list:
    nearest = view.nearest_obstacle(direction)
    turns = [make_turn(pick(rng, Q_DIR_EXIST, dir=DIRECTION_WORDS[direction]), yes_no(nearest is not None),
                       'exist', 'direction_exist', direction=direction)]
    if nearest is not None:
        distance, label = nearest
        turns += [make_turn(pick(rng, Q_DIR_DISTANCE), format_number(distance, 'm'), 'distance',
                            'direction_distance', direction=direction),
                  make_turn(pick(rng, Q_DIR_OBJECT), display_name(scene.occ_classes[label]), 'object',
                            'direction_object', direction=direction)]
    return turns


def count_objects(scene: SceneGT, name: str, radius: float, region: str) -> int:
    """Annotated objects of class ``name`` within ``radius`` m (BEV) in a region, see module docstring."""
    centers = scene.objects.centers
    inside = np.hypot(centers[:, 0], centers[:, 1]) <= radius
    if region == 'ahead':
        inside &= centers[:, 0] > 0
    elif region == 'behind':
        inside &= centers[:, 0] < 0
    return int(sum(1 for keep, n in zip(inside, scene.objects.names) if keep and n == name))


def _count_turns(scene: SceneGT, rng: np.random.Generator, cfg: OccupancyQAConfig, class_pool: list) -> list:
    radius = int(cfg.count_radii[int(rng.integers(len(cfg.count_radii)))])
    region = REGIONS[int(rng.integers(len(REGIONS)))]
    name = class_pool[int(rng.integers(len(class_pool)))]
    count = count_objects(scene, name, radius, region)
    question = pick(rng, Q_COUNT, cls=plural(display_name(name)), r=radius, region=REGION_WORDS[region])
    return [make_turn(question, str(count), 'count', 'count', name=name, radius=radius, region=region)]


def _compare_turns(scene: SceneGT, rng: np.random.Generator, cfg: OccupancyQAConfig, class_pool: list) -> list:
    radius = int(cfg.count_radii[-1])
    a, b = rng.choice(len(class_pool), size=2, replace=False)
    counts = {n: count_objects(scene, n, radius, 'around') for n in (class_pool[a], class_pool[b])}
    a, b = sorted(counts, key=counts.get, reverse=bool(rng.random() < 0.5))  # 'yes' half of the time
    answer = counts[a] > counts[b]
    question = pick(rng, Q_COMPARE, a=plural(display_name(a)), b=plural(display_name(b)), r=radius)
    return [make_turn(question, yes_no(answer), 'comparison', 'compare', a=a, b=b, radius=radius)]


def _class_pool(scene: SceneGT, rng: np.random.Generator, all_classes: list) -> list:
    """Classes to count: those present, plus one absent class so that ``0`` answers occur too."""
    present = sorted(set(scene.objects.names))
    absent = [n for n in all_classes if n not in present]
    return present + ([absent[int(rng.integers(len(absent)))]] if absent else [])


def generate_occupancy(scene: SceneGT, rng: np.random.Generator, cfg: OccupancyQAConfig,
                       object_classes: list) -> list[list]:
    """Text-occupancy conversations of one scene (lists of :class:`QATurn`).

    Place, direction and free-road questions need the occupancy grid and are skipped without it;
    count questions need only the annotated objects (``object_classes``: all detection classes).
    """
    conversations = []
    if scene.semantics is not None:
        view = OccupancyView(scene, cfg)
        conversations += [_place_turns(view, scene, rng) for _ in range(cfg.num_place)]
        for direction in rng.permutation(DIRECTIONS)[:cfg.num_direction]:
            conversations.append(_direction_turns(view, scene, rng, str(direction)))
        if cfg.ask_free_space:
            conversations.append([make_turn(pick(rng, Q_FREE_SPACE), format_number(view.free_road_ahead(), 'm'),
                                            'distance', 'free_space')])
    pool = _class_pool(scene, rng, object_classes)
    conversations += [_count_turns(scene, rng, cfg, pool) for _ in range(cfg.num_count)]
    if len(pool) >= 2:
        conversations += [_compare_turns(scene, rng, cfg, pool) for _ in range(cfg.num_compare)]
    return conversations
