"""The training files of the official DrivePI release, written from our info and QA files, and read back by the
official loader's rules.

The official code (GitHub ``happinesslz/DrivePI``, code of 2026-03-21: ``emova/data/feature_dataset.py``,
``emova/model/occ_head.py``, ``emova/model/action_diffusion_head.py``, ``evaluate_plan.py``) ships no data
engine; these are the formats it reads, as that code reads them (facts only; the code below is ours):

- **QA records**: JSON lists (or JSONL) of LLaVA-style records ``{"image": ..., "conversations": [{"from":
  "human", "value": "<image>\\n..."}, {"from": "gpt", "value": ...}, ...], "history": {"token": <sample token>,
  ...}}``. The loader keys a record by ``history.token`` and needs the ``image`` key to be present (its value
  is not read: the features come from ``<bev_feature_folder>/<token>.npz``; the release's evaluation scripts
  take the token from an ``image`` path ending in ``<token>.npy``, which we write); turns alternate human /
  gpt, only the gpt turns are supervised, ``<image>`` (the 3,600 BEV tokens) once, in the first human turn.
  nuScenes-QA records carry ``"image": []`` and ``history`` = ``split, sample_token, question, answer,
  num_hop, template_type, token``; occupancy records ``history`` = ``token, label, category_all``.
- **Cells**: ``<OCC>(i, j, k)</OCC>``, integer indices of the 200 x 200 x 16 occupancy grid, (0, 0) the
  bottom-left corner, the ego at ``<OCC>(100, 100, 0)</OCC>``. The official occupancy head and GT grids are
  indexed ``[Dx, Dy, Dz]`` (OpenOcc layout, our ``[ix, iy, iz]``), so ``(i, j, k)`` is the voxel of centre
  ``(-40 + 0.4 (i + 0.5), -40 + 0.4 (j + 0.5), -1 + 0.4 (k + 0.5))`` m. The release has no code that writes
  or parses these tags (only a question in a comment), so the index order is this reading of the grid layout.
- **Planning targets**: ``<planning_dir>/<token>.npy``, a pickled dict whose values (``fut_boxes`` removed)
  go through ``torch.from_numpy``, each with a leading batch axis of 1 (the trainer stacks and squeezes axis
  1; ``evaluate_plan.py`` indexes ``[0]``): ``ego_status`` (1, 10), ``gt_ego_fut_cmd`` (1, 3) one-hot
  (turn right, turn left, go straight), ``gt_ego_fut_trajs`` (1, 6, 2) per-step displacements (the evaluation
  sums them), ``gt_ego_fut_masks`` (1, 6), ``fut_boxes`` a list with one ``(1, N, >= 7)`` array per valid
  future step. SparseDrive's converter (the source of these fields) makes them in the nuScenes LiDAR frame
  (x right, y forward): the trajectory is the LiDAR's position at each future keyframe, the last valid one
  repeated after the scene ends, the command from its final lateral x (>= 2 m right, <= -2 m left), the
  ego status = CAN-bus acceleration (3), rotation rate (3), velocity (3) and steering angle, boxes
  ``[x, y, z_centre, l, w, h, yaw]`` (+ velocity).
- **Occupancy / flow GT**: ``<occ_grid_dir>/<token>.npz`` and ``<occ_flow_dir>/<token>.npz``, key ``data``:
  the (200, 200, 16) labels (OpenOcc classes) and the (200, 200, 16, 2) flow.

What our files cannot say in the official form (and how they are written): see :data:`FORMAT_GAPS`.
"""
import json
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from drivepi.evaluation.planning_metrics import lidar_from_rear, rear_from_lidar
from drivepi.evaluation.qa_accuracy import find_places, format_place
from drivepi.geometry import OCC_GRID, OCC_RANGE, OCC_VOXEL_SIZE

IMAGE_TOKEN = '<image>'
EGO_CELL = (100, 100, 0)
NUM_STEPS = 6
OFFICIAL_COMMANDS = ('turn right', 'turn left', 'go straight')   # one-hot order of gt_ego_fut_cmd (= ours)
TURN_THRESHOLD_M = 2.0
CELL_PATTERN = re.compile(r'<OCC>\((\d+), (\d+), (\d+)\)</OCC>')
COLUMN_PATTERN = re.compile(r'the column <OCC>\((\d+), (\d+), 0\)</OCC> to <OCC>\((\d+), (\d+), (\d+)\)</OCC>')
GRID_PREAMBLE = (
    'Places are named as cells <OCC>(i, j, k)</OCC> of a 200 x 200 x 16 grid of 0.4 m cubes: i counts forward '
    'and j to the left over 80 m x 80 m from (0, 0) at the bottom-left corner, k counts 0.4 m height bins from '
    '1 m below the ground; you are at <OCC>(100, 100, 0)</OCC>.\n')

# our QA family -> official-style file stem (files: <stem>_<split>.json)
FAMILY_FILES = {'caption': 'captions_all', 'occupancy': 'occ_text', 'flow': 'occ_flow', 'planning': 'action',
                'nuscenes_qa': 'nuscenes_qa'}
GT_FILES = {'occ_class': 'occ_class', 'occ_yorn': 'occ_yorn'}   # cell questions made from the GT grid

FORMAT_GAPS = (
    'A place of our questions is a BEV column (x, y), the official cells are voxels (i, j, k): a place is '
    'written as the column "the column <OCC>(i, j, 0)</OCC> to <OCC>(i, j, 15)</OCC>" of the cell holding it '
    '(the 0.1 m place rounded to its 0.4 m cell; a place outside the grid stays in metres).',
    'Our occupancy, flow, planning and caption families have no official twin (the official files were made '
    'by an unreleased engine): they are written in the official record form under their own file names.',
    'The official captions come per camera group (front, back, all): ours describe the whole scene (all).',
    'The official detection QA has no counterpart in our engine and is not written.',
    'ego_status: the official 10 values are CAN-bus acceleration (3), rotation rate (3), velocity (3) and '
    'steering; our infos hold vx, vy, ax, ay and the yaw rate: az, the roll and pitch rates, vz and the steering '
    'angle are written as 0.',
    'fut_boxes: ours are the annotated boxes of the 10 detection classes; SparseDrive keeps every annotated box '
    'with a LiDAR point (other categories too) and appends the velocity, which we do not have for future boxes '
    '(7 columns instead of 9; the evaluation reads the first 7).',
    'gt_ego_fut_trajs are LiDAR positions; where the info file does not hold the future keyframes (recovery '
    'samples) the LiDAR is placed ahead of our rear-axle waypoint along the heading estimated from the waypoints '
    '(lidar_from_rear), not the true yaw, and its lateral mounting offset (0 on nuScenes) is ignored; like '
    'SparseDrive\'s, the positions are 2-d in the tilted LiDAR frame (its z dropped).',
    'Our cell questions (occ_class, occ_yorn) and the grid sentence that opens every question naming cells are our '
    'own wording of the official facts (the official engine is unreleased); the ego "at <OCC>(100, 100, 0)</OCC>" '
    'is the official convention: that cell lies 0.2 m ahead-left of our rear axle and 1.0-0.6 m below the ground.',
    'Our conversations are multi-turn: a record holds all turns (the official Qwen2 template trains every answer); '
    'the official files seen in the release hold one question each.',
    'The action family\'s trajectory answers stay in our frame (rear axle, x forward), not the official LiDAR frame.',
    'The camera-visibility mask is not written (the official loader reads none); flow GT only for OpenOcc labels.',
    'The command follows the official rule (final LiDAR x, 2 m), ours the rear axle\'s final lateral offset '
    '(2 m): they can differ near the threshold.',
)


# ---------------------------------------------------------------- cells
def cell_of(x: float, y: float, z: Optional[float] = None) -> Optional[Tuple[int, ...]]:
    """Grid indices ``(i, j)`` (or ``(i, j, k)`` with ``z``) of the cell holding an ego-frame point (m); None
    outside the grid."""
    coords = (x, y) if z is None else (x, y, z)
    cell = tuple(int(np.floor((c - OCC_RANGE[a]) / OCC_VOXEL_SIZE + 1e-9)) for a, c in enumerate(coords))
    return cell if all(0 <= c < OCC_GRID[a] for a, c in enumerate(cell)) else None


def cell_center(cell: Sequence[int]) -> Tuple[float, ...]:
    """Centre (m, ego frame) of a cell ``(i, j)`` or ``(i, j, k)``."""
    return tuple(round(OCC_RANGE[a] + (c + 0.5) * OCC_VOXEL_SIZE, 6) for a, c in enumerate(cell))


def format_cell(i: int, j: int, k: int) -> str:
    return f'<OCC>({i}, {j}, {k})</OCC>'


def format_column(i: int, j: int) -> str:
    """A BEV column as two official cells, its bottom and its top."""
    return f'the column {format_cell(i, j, 0)} to {format_cell(i, j, OCC_GRID[2] - 1)}'


def places_to_cells(text: str) -> str:
    """Every place ``x = .. m, y = .. m`` of a question written as the column of the cell holding it."""
    for start, end, x, y in reversed(find_places(text)):
        cell = cell_of(x, y)
        if cell is not None:
            text = text[:start] + format_column(*cell) + text[end:]
    return text


def cells_to_places(text: str) -> str:
    """The inverse of :func:`places_to_cells`: each column back to the place of its centre."""
    def place(match: re.Match) -> str:
        i, j, i2, j2, k = map(int, match.groups())
        if (i, j, k) != (i2, j2, OCC_GRID[2] - 1):
            return match.group(0)
        return format_place(*cell_center((i, j)))
    return COLUMN_PATTERN.sub(place, text)


# ---------------------------------------------------------------- records
def official_record(token: str, turns: Sequence[Tuple[str, str]], history: dict, image=None) -> dict:
    """A LLaVA-style record: ``<image>`` and, if a question names cells, :data:`GRID_PREAMBLE` open the first
    human turn; ``history`` starts with the sample token."""
    needs_grid = any(CELL_PATTERN.search(q) for q, _ in turns)
    conversations = []
    for n, (question, answer) in enumerate(turns):
        if n == 0:
            question = f'{IMAGE_TOKEN}\n' + (GRID_PREAMBLE if needs_grid else '') + question
        conversations += [{'from': 'human', 'value': question}, {'from': 'gpt', 'value': answer}]
    return {'image': f'{token}.npy' if image is None else image, 'conversations': conversations,
            'history': {'token': token, **history}}


def record_from_conversation(token: str, conversation) -> dict:
    """The record of one of our :class:`~drivepi.datasets.qa_schema.QAConversation` (places as cells)."""
    turns = [(places_to_cells(t.question), t.answer) for t in conversation.turns]
    history = dict(family=conversation.family, conversation_id=conversation.id,
                   types=[t.type for t in conversation.turns])
    return official_record(token, turns, history)


def nuscenes_qa_record(token: str, question: str, answer: str, template_type: str, num_hop, split: str) -> dict:
    """A nuScenes-QA question in the official form (``"image": []``, the question's fields in ``history``)."""
    history = dict(split=split, sample_token=token, question=question, answer=answer, num_hop=num_hop,
                   template_type=template_type)
    record = official_record(token, [(question, answer)], history, image=[])
    record['history'] = {**history, 'token': token}   # the official key order: token last
    return record


def write_records(path: Path, records: List[dict]) -> None:
    """A JSON list, one record per line (``json.load`` reads it as the official loader does)."""
    from drivepi.fileio import atomic_write_text
    atomic_write_text(path, '[\n' + ',\n'.join(json.dumps(r, ensure_ascii=False) for r in records) + '\n]\n')


# ---------------------------------------------------------------- cell questions from the GT grid
def sample_cells(semantics: np.ndarray, mask_camera: Optional[np.ndarray], free_label: int, num: int,
                 rng: np.random.Generator) -> List[Tuple[int, int, int, int]]:
    """``num`` cells ``(i, j, k, label)`` of camera-visible voxels (all voxels without a mask): half occupied,
    their class drawn uniformly among the classes present, half free; without repeats."""
    visible = mask_camera.astype(bool) if mask_camera is not None and mask_camera.any() else np.ones_like(
        semantics, bool)
    labels = np.unique(semantics[visible & (semantics != free_label)])
    picked, seen = [], set()
    for n in range(num):
        want_free = n % 2 == 1 or labels.size == 0
        label = free_label if want_free else int(labels[int(rng.integers(labels.size))])
        cells = np.argwhere(visible & (semantics == label))
        if not len(cells):
            continue
        i, j, k = (int(v) for v in cells[int(rng.integers(len(cells)))])
        if (i, j, k) not in seen:
            seen.add((i, j, k))
            picked.append((i, j, k, label))
    return picked


def cell_records(token: str, semantics: np.ndarray, mask_camera: Optional[np.ndarray], occ_classes: Sequence[str],
                 num: int, rng: np.random.Generator) -> Dict[str, List[dict]]:
    """The cell-class and cell yes/no records of one sample (``history`` as the official occupancy records)."""
    free = len(occ_classes) - 1
    out = {'occ_class': [], 'occ_yorn': []}
    for n, (i, j, k, label) in enumerate(sample_cells(semantics, mask_camera, free, num, rng)):
        history = dict(label=label, category_all=list(occ_classes))
        cell = format_cell(i, j, k)
        if n % 4 < 2:
            question = f'What occupies the cell {cell}? Name its class, or answer free if it is empty.'
            out['occ_class'].append(official_record(token, [(question, occ_classes[label])], history))
        else:
            question = f'Is the cell {cell} occupied? Answer yes or no.'
            out['occ_yorn'].append(official_record(token, [(question, 'no' if label == free else 'yes')], history))
    return out


# ---------------------------------------------------------------- planning targets
def _yaw(rotation: np.ndarray) -> float:
    return float(np.arctan2(rotation[1, 0], rotation[0, 0]))


def _valid_steps(info: dict) -> int:
    """Number of valid future steps (the mask is a prefix: keyframes exist up to the scene's end)."""
    mask = np.asarray(info['ego_fut_mask']) > 0
    return int(np.argmin(mask)) if not mask.all() else len(mask)


def future_infos(info: dict, by_token: Dict[str, dict], count: int) -> List[dict]:
    """Up to ``count`` following keyframes of the same scene found in the info file (``next`` chain)."""
    found, current = [], info
    while len(found) < count and current.get('next') and current['next'] in by_token:
        current = by_token[current['next']]
        if current.get('scene_token') != info.get('scene_token'):
            break
        found.append(current)
    return found


def lidar_positions(info: dict, following: List[dict]) -> Tuple[np.ndarray, bool]:
    """The LiDAR's position (current LiDAR frame, m) at each valid future step ``(n, 3)``, and whether it came
    from the future keyframes' poses (else from our rear-axle waypoints: :func:`lidar_from_rear`)."""
    n = _valid_steps(info)
    lidar2ego = np.asarray(info['lidar_points']['lidar2ego'], np.float64)
    lidar2global = np.asarray(info['ego2global'], np.float64) @ lidar2ego
    if len(following) >= n:
        return np.array([(np.linalg.solve(lidar2global, np.asarray(f['ego2global'], np.float64)
                                          @ np.asarray(f['lidar_points']['lidar2ego'], np.float64)))[:3, 3]
                         for f in following[:n]]).reshape(n, 3), True
    traj = np.asarray(info['ego_fut_traj'], np.float64)[:n]
    ego = np.c_[lidar_from_rear(traj, lidar2ego[0, 3]), np.full(n, lidar2ego[2, 3])].reshape(n, 3)
    return (np.c_[ego, np.ones(n)] @ np.linalg.inv(lidar2ego).T)[:, :3], False


def boxes_to_lidar(boxes: np.ndarray, lidar2ego: np.ndarray) -> np.ndarray:
    """Ego-frame boxes ``[x, y, z_bottom, l, w, h, yaw]`` -> LiDAR-frame ``[x, y, z_centre, l, w, h, yaw]``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
    centres = boxes[:, :3] + np.c_[np.zeros((len(boxes), 2)), boxes[:, 5] / 2]
    out = boxes.copy()
    out[:, :3] = (np.c_[centres, np.ones(len(boxes))] @ np.linalg.inv(lidar2ego).T)[:, :3]
    out[:, 6] = np.arctan2(np.sin(boxes[:, 6] - _yaw(lidar2ego)), np.cos(boxes[:, 6] - _yaw(lidar2ego)))
    return out


def boxes_from_lidar(boxes: np.ndarray, lidar2ego: np.ndarray) -> np.ndarray:
    """The inverse of :func:`boxes_to_lidar` (first 7 columns)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, np.shape(boxes)[-1])[:, :7]
    out = boxes.copy()
    out[:, :3] = (np.c_[boxes[:, :3], np.ones(len(boxes))] @ lidar2ego.T)[:, :3]
    out[:, 2] -= boxes[:, 5] / 2
    out[:, 6] = np.arctan2(np.sin(boxes[:, 6] + _yaw(lidar2ego)), np.cos(boxes[:, 6] + _yaw(lidar2ego)))
    return out


def official_command(positions: np.ndarray) -> np.ndarray:
    """One-hot (3,) by the official rule: final LiDAR x (right) >= 2 m turn right, <= -2 m turn left."""
    x = positions[-1, 0] if len(positions) else 0.0
    index = 0 if x >= TURN_THRESHOLD_M else 1 if x <= -TURN_THRESHOLD_M else 2
    return np.eye(3, dtype=np.float32)[index]


def official_ego_status(ego_status: Sequence[float]) -> np.ndarray:
    """Our ``[vx, vy, ax, ay, yaw_rate]`` as the official 10 values (accel 3, rotation rate 3, velocity 3,
    steering); what we do not have is 0."""
    vx, vy, ax, ay, yaw_rate = (float(v) for v in ego_status)
    return np.array([ax, ay, 0, 0, 0, yaw_rate, vx, vy, 0, 0], np.float32)


def planning_target(info: dict, by_token: Dict[str, dict]) -> dict:
    """The official planning-target dict of one info entry (module docstring; every array with batch axis 1)."""
    n = _valid_steps(info)
    positions, _ = lidar_positions(info, future_infos(info, by_token, n))
    track = np.zeros((NUM_STEPS + 1, 2))
    for step in range(1, NUM_STEPS + 1):
        track[step] = positions[step - 1, :2] if step <= n else track[step - 1]
    mask = np.zeros(NUM_STEPS, np.float32)
    mask[:n] = 1
    lidar2ego = np.asarray(info['lidar_points']['lidar2ego'], np.float64)
    fut_boxes = [boxes_to_lidar(info['fut_boxes'][step], lidar2ego).astype(np.float32)[None] for step in range(n)]
    return dict(ego_status=official_ego_status(info['ego_status'])[None],
                gt_ego_fut_cmd=official_command(track[1:])[None],
                gt_ego_fut_trajs=np.diff(track, axis=0).astype(np.float32)[None],
                gt_ego_fut_masks=mask[None], fut_boxes=fut_boxes)


def save_planning_target(path: Path, target: dict) -> None:
    """``np.save`` of the dict (a pickled 0-d object array, read back with ``np.load(allow_pickle=True).item()``)."""
    from drivepi.fileio import atomic_open
    with atomic_open(path, 'wb') as f:
        np.save(f, np.array(target, dtype=object), allow_pickle=True)


def lidar_track_to_ego(positions: np.ndarray, lidar2ego: np.ndarray) -> np.ndarray:
    """Official trajectory points (LiDAR positions, current LiDAR frame, z taken as 0) -> our rear-axle waypoints
    (ego frame): :func:`~drivepi.evaluation.planning_metrics.rear_from_lidar`, the exact inverse of how the
    exporter and the ``sparsedrive`` collision boxes place the LiDAR ahead of a rear-axle waypoint."""
    positions = np.asarray(positions, np.float64).reshape(-1, 2)
    lidar = (np.c_[positions, np.zeros(len(positions)), np.ones(len(positions))] @ lidar2ego.T)[:, :2]
    return rear_from_lidar(lidar, lidar2ego[0, 3])


# ---------------------------------------------------------------- reading back by the official loader's rules
def read_record_files(paths: Iterable) -> List[dict]:
    """Records of ``.json`` (a list) and ``.jsonl`` files and of the files in folders, as the official loader
    reads its ``data_path`` list."""
    records = []
    for path in map(Path, paths):
        files = sorted(path.iterdir()) if path.is_dir() else [path]
        for file in files:
            if file.suffix == '.json':
                records += json.loads(file.read_text(encoding='utf-8'))
            elif file.suffix == '.jsonl':
                records += [json.loads(line) for line in file.read_text(encoding='utf-8').splitlines() if line]
            else:
                raise ValueError(f'{file}: the official loader reads .json, .jsonl or .pkl files only')
    return records


def record_turns(record: dict) -> Tuple[str, List[Tuple[str, str]]]:
    """``(sample token, [(question, answer), ...])`` of a record, checked as the official loader and its Qwen2
    template need it: the ``image`` key, ``history.token``, human / gpt turns alternating from a human one,
    ``<image>`` once, opening the first question (returned without it and without :data:`GRID_PREAMBLE`)."""
    if 'image' not in record:
        raise ValueError('record without "image": the official loader would not load its BEV features')
    token = record['history']['token']
    turns = record['conversations']
    roles = [t['from'] for t in turns]
    if roles != ['human', 'gpt'] * (len(turns) // 2) or not turns:
        raise ValueError(f'record {token}: turns must alternate human / gpt, got {roles}')
    text = ''.join(t['value'] for t in turns)
    first = turns[0]['value']
    if text.count(IMAGE_TOKEN) != 1 or not first.startswith(IMAGE_TOKEN + '\n'):
        raise ValueError(f'record {token}: "<image>\\n" must open the first question, once')
    first = first[len(IMAGE_TOKEN) + 1:]
    if first.startswith(GRID_PREAMBLE):
        first = first[len(GRID_PREAMBLE):]
    questions = [first] + [t['value'] for t in turns[2::2]]
    return token, list(zip(questions, [t['value'] for t in turns[1::2]]))


def load_planning_target(path: Path) -> Tuple[dict, dict]:
    """A planning ``.npy`` read twice, as the official trainer reads it (``fut_boxes`` removed, every value an
    array for ``torch.from_numpy``, batch axes removed) and as ``evaluate_plan.py`` reads it (summed
    trajectory, all-valid mask, command index, ``fut_boxes[t][0]``)."""
    raw = np.load(path, allow_pickle=True).item()
    evaluation = dict(trajectory=np.cumsum(raw['gt_ego_fut_trajs'], axis=-2)[0],
                      all_valid=bool(np.all(raw['gt_ego_fut_masks'])),
                      command=int(np.argmax(raw['gt_ego_fut_cmd'], axis=-1).item()),
                      fut_boxes=[np.asarray(b)[0] for b in raw['fut_boxes']])
    train = {k: v for k, v in raw.items() if k != 'fut_boxes'}
    for key, value in train.items():
        if not isinstance(value, np.ndarray) or value.dtype == object or value.shape[0] != 1:
            raise ValueError(f'{path}: {key} must be a numeric array with a batch axis of 1')
    return {k: v[0] for k, v in train.items()}, evaluation
