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
from typing import List, Optional, Tuple

import numpy as np

from drivepi.evaluation.qa_accuracy import format_number, format_place
from drivepi.geometry import GROUND_CLASSES

from .phrasing import make_turn, pick, plural, yes_no
from .scene import SceneGT, display_name

DIRECTIONS = ('ahead', 'behind', 'left', 'right')
DIRECTION_WORDS = {'ahead': 'ahead of', 'behind': 'behind', 'left': 'to the left of',
                   'right': 'to the right of'}
REGIONS = ('around', 'ahead', 'behind')
REGION_WORDS = {'around': 'of', 'ahead': 'in front of', 'behind': 'behind'}

Q_PLACE_EXIST = ('Is there an obstacle at {place}?', 'Is the location {place} occupied by an obstacle?',
                 'At {place}, is there an obstacle above the ground?')
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


def column_any(grid: np.ndarray) -> np.ndarray:
    """(X, Y) True where a 1-byte (X, Y, Z) grid has any non-zero value; Z must be a multiple of 8
    (the columns are read as 64-bit words, ~10x faster than ``grid.any(axis=2)``)."""
    words = np.ascontiguousarray(grid).view(np.uint64)
    out = words[..., 0].copy()
    for k in range(1, words.shape[-1]):
        out |= words[..., k]
    return out != 0


class OccupancyView:
    """Column-wise summaries of a scene's semantic grid, computed once per scene.

    The grid is handled z-major, ``(Z, X, Y)``, so that reductions over the 16 heights run as
    whole-plane operations.
    """

    def __init__(self, scene: SceneGT, cfg: OccupancyQAConfig):
        sem = np.ascontiguousarray(scene.semantics.transpose(2, 0, 1))  # (Z, X, Y)
        nz, nx, ny = sem.shape
        x0, y0, z0 = scene.pc_range[:3]
        size = scene.voxel_size
        self.x_c = x0 + (np.arange(nx) + 0.5) * size
        self.y_c = y0 + (np.arange(ny) + 0.5) * size
        num_low = int(np.sum(z0 + (np.arange(nz) + 0.5) * size <= cfg.clearance_height))
        free, names = scene.free_label, scene.occ_classes
        self.obstacle_labels = np.array([i for i, n in enumerate(names) if n not in GROUND_CLASSES and i != free])
        off_road_labels = [names.index(n) for n in GROUND_CLASSES if n != 'driveable_surface']
        levels = np.arange(1, nz + 1, dtype=np.uint8)[:, None, None]
        self.top_iz = ((sem != free) * levels).max(axis=0).astype(int) - 1  # -1: empty column
        self.top_label = np.take_along_axis(sem, np.maximum(self.top_iz, 0)[None], 0)[0]
        self.top_label[self.top_iz < 0] = free
        self.top_z = z0 + (self.top_iz + 1) * size
        if len(names) > 32:
            raise ValueError(f'at most 32 occupancy classes are supported, got {len(names)}')
        class_bits = np.left_shift(np.uint32(1), sem, dtype=np.uint32)  # (Z, X, Y), one bit per class
        present = np.bitwise_or.reduce(class_bits, axis=0)  # (X, Y) classes of each column
        present_low = np.bitwise_or.reduce(class_bits[:num_low], axis=0)  # ... below the clearance
        obstacle_bits = np.uint32(sum(1 << int(i) for i in self.obstacle_labels))
        off_road_bits = np.uint32(sum(1 << i for i in off_road_labels))
        self.obstacle_column = (present & obstacle_bits) != 0
        self.low_column = (present_low & obstacle_bits) != 0
        self.off_road_column = (present & off_road_bits) != 0
        observed = column_any(scene.mask_camera) if scene.mask_camera is not None else None
        self.candidate = observed if observed is not None and observed.any() else np.ones((nx, ny), bool)
        self.size, self.sem, self.num_low, self.cfg = size, sem, num_low, cfg

    def corridor(self, direction: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A direction's corridor: row indices (nearest first), column mask, near faces (m)."""
        cfg, half = self.cfg, self.size / 2
        if direction in ('ahead', 'behind'):
            cols = np.abs(self.y_c) <= cfg.corridor_half_width
            rows = np.flatnonzero(self.x_c > 0) if direction == 'ahead' else np.flatnonzero(self.x_c < 0)[::-1]
            return rows, cols, np.abs(self.x_c[rows]) - half
        cols = (self.x_c >= cfg.ego_x_span[0]) & (self.x_c <= cfg.ego_x_span[1])
        rows = np.flatnonzero(self.y_c > 0) if direction == 'left' else np.flatnonzero(self.y_c < 0)[::-1]
        return rows, cols, np.abs(self.y_c[rows]) - half

    @staticmethod
    def _take(array: np.ndarray, direction: str, rows, cols) -> np.ndarray:
        """``array[..., X, Y]`` restricted to a corridor as ``[..., row, column]``."""
        if direction in ('ahead', 'behind'):
            return array[..., rows, :][..., cols]
        return np.swapaxes(array[..., cols, :][..., rows], -1, -2)

    def nearest_obstacle(self, direction: str) -> Optional[Tuple[float, int]]:
        """(distance m, class label) of the nearest low obstacle in a direction, None if clear."""
        rows, cols, near = self.corridor(direction)
        hit_rows = np.flatnonzero(self._take(self.low_column, direction, rows, cols).any(axis=1))
        if hit_rows.size == 0:
            return None
        labels = self._take(self.sem[:self.num_low], direction, rows[hit_rows[:1]], cols)
        hits = labels[np.isin(labels, self.obstacle_labels)]
        return float(near[hit_rows[0]]), int(np.bincount(hits).argmax())

    def free_road_ahead(self) -> float:
        """Free driveable length straight ahead (m), see module docstring."""
        rows, cols, near = self.corridor('ahead')
        blocked = self._take(self.low_column | self.off_road_column, 'ahead', rows, cols).any(axis=1)
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
    turns = [make_turn(pick(rng, Q_PLACE_EXIST, place=format_place(x, y)), yes_no(want), 'exist',
                       'place_exist', x=x, y=y),
             make_turn(pick(rng, Q_PLACE_OBJECT), display_name(scene.occ_classes[label]), 'object',
                       'place_object', x=x, y=y)]
    if want:  # heights of obstacles only: a ground column would always answer the road level
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
                       object_classes: list) -> List[list]:
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
