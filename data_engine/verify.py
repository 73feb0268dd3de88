"""Recompute every generated answer from ground truth, the slow and plain way.

Each turn's ``meta['check']`` names the rule and its parameters; this module re-implements every
rule directly from the definitions in the family modules' docstrings (voxel lists, loops over
objects) instead of the families' vectorised column summaries, and compares the canonical answer
string with the stored one. Template captions are recomputed with the template captioner (the
template is their definition); nuScenes-QA and VLM-caption turns are counted as unverifiable.

Usage::

    python data_engine/verify.py --info INFO_PKL --qa QA_JSONL [--data-root DIR] [--config CFG.py]
"""
import argparse
import functools
import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from data_engine.captions import TemplateCaptioner
from data_engine.flow import HEADINGS
from data_engine.generate_qa import QAEngineConfig, load_infos
from data_engine.phrasing import yes_no
from data_engine.scene import STEP_SECONDS, SceneGT, display_name, load_scene
from drivepi.datasets.qa_schema import QARecord, iter_qa_records
from drivepi.evaluation.qa_accuracy import format_number, format_waypoints
from drivepi.geometry import COMMANDS, GROUND_CLASSES

UNVERIFIABLE = ('nuscenes_qa',)


@dataclass
class VerifyReport:
    """Outcome of a verification: turns checked, mismatches, turns that cannot be checked."""
    checked: int = 0
    mismatches: list = field(default_factory=list)
    unverifiable: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.mismatches


class SceneOracle:
    """Reference answers of one scene, computed straight from the definitions."""

    def __init__(self, scene: SceneGT, cfg: QAEngineConfig):
        self.scene, self.cfg = scene, cfg
        self.tokens = {t: i for i, t in enumerate(scene.objects.tokens)}
        self._corridors: Dict[Tuple[str, str], list] = {}

    # ---- occupancy ------------------------------------------------------------------------
    def _column(self, meta: dict) -> np.ndarray:
        s = self.scene
        ix = math.floor((meta['x'] - s.pc_range[0]) / s.voxel_size)
        iy = math.floor((meta['y'] - s.pc_range[1]) / s.voxel_size)
        return s.semantics[ix, iy]

    def _is_obstacle(self, label: int) -> bool:
        return label != self.scene.free_label and self.scene.occ_classes[label] not in GROUND_CLASSES

    def _top(self, meta: dict) -> Optional[int]:
        column = self._column(meta)
        for iz in range(len(column) - 1, -1, -1):
            if column[iz] != self.scene.free_label:
                return iz
        return None

    def place_exist(self, meta):
        return yes_no(any(self._is_obstacle(int(v)) for v in self._column(meta)))

    def place_object(self, meta):
        iz = self._top(meta)
        label = self.scene.free_label if iz is None else int(self._column(meta)[iz])
        return display_name(self.scene.occ_classes[label])

    def place_height(self, meta):
        return format_number(self.scene.pc_range[2] + (self._top(meta) + 1) * self.scene.voxel_size, 'm')

    @functools.cached_property
    def _voxels(self) -> List[Tuple[float, float, float, int]]:
        """(x, y, z, label) of every occupied voxel that lies in one of the direction corridors
        (``|y| <= corridor_half_width`` or ``x`` in ``ego_x_span``), centres in m."""
        s, occ = self.scene, self.cfg.occupancy
        idx = np.argwhere(s.semantics != s.free_label)
        centres = np.asarray(s.pc_range[:3]) + (idx + 0.5) * s.voxel_size
        near_axes = ((np.abs(centres[:, 1]) <= occ.corridor_half_width)
                     | ((centres[:, 0] >= occ.ego_x_span[0]) & (centres[:, 0] <= occ.ego_x_span[1])))
        idx, centres = idx[near_axes], centres[near_axes]
        labels = s.semantics[tuple(idx.T)]
        return [(float(x), float(y), float(z), int(lab)) for (x, y, z), lab in zip(centres, labels)]

    def _corridor_voxels(self, direction: str, rule: str) -> List[Tuple[float, int]]:
        """(near-face distance, label) of the voxels in a direction's corridor that the blocking
        ``rule`` (``low_obstacle`` or ``off_road``) keeps."""
        if (direction, rule) not in self._corridors:
            self._corridors[direction, rule] = self._scan_corridor(direction, rule)
        return self._corridors[direction, rule]

    def _scan_corridor(self, direction: str, rule: str) -> List[Tuple[float, int]]:
        occ, half = self.cfg.occupancy, self.scene.voxel_size / 2
        blocking = self._low_obstacle if rule == 'low_obstacle' else self._off_road
        out = []
        for x, y, z, label in self._voxels:
            if not blocking(label, z):
                continue
            if direction in ('ahead', 'behind'):
                along, inside = (x if direction == 'ahead' else -x), abs(y) <= occ.corridor_half_width
            else:
                along = y if direction == 'left' else -y
                inside = occ.ego_x_span[0] <= x <= occ.ego_x_span[1]
            if inside and along > 0:
                out.append((along - half, label))
        return out

    def _off_road(self, label: int, z: float) -> bool:
        name = self.scene.occ_classes[label]
        return self._low_obstacle(label, z) or (name in GROUND_CLASSES and name != 'driveable_surface')

    def _low_obstacle(self, label: int, z: float) -> bool:
        return self._is_obstacle(label) and z <= self.cfg.occupancy.clearance_height

    def _nearest(self, direction):
        hits = self._corridor_voxels(direction, 'low_obstacle')
        if not hits:
            return None
        distance = min(d for d, _ in hits)
        labels = Counter(lab for d, lab in hits if abs(d - distance) < 1e-6)
        best = max(labels.values())
        return distance, min(lab for lab, n in labels.items() if n == best)

    def direction_exist(self, meta):
        return yes_no(self._nearest(meta['direction']) is not None)

    def direction_distance(self, meta):
        return format_number(self._nearest(meta['direction'])[0], 'm')

    def direction_object(self, meta):
        return display_name(self.scene.occ_classes[self._nearest(meta['direction'])[1]])

    def free_space(self, meta):
        hits = self._corridor_voxels('ahead', 'off_road')
        return format_number(min(d for d, _ in hits) if hits else self.scene.pc_range[3], 'm')

    def _count(self, name, radius, region):
        n = 0
        for (x, y, _), cls in zip(self.scene.objects.centers, self.scene.objects.names):
            in_region = region == 'around' or (region == 'ahead' and x > 0) or (region == 'behind' and x < 0)
            n += int(cls == name and in_region and math.hypot(x, y) <= radius)
        return n

    def count(self, meta):
        return str(self._count(meta['name'], meta['radius'], meta['region']))

    def compare(self, meta):
        radius = meta['radius']
        return yes_no(self._count(meta['a'], radius, 'around') > self._count(meta['b'], radius, 'around'))

    # ---- flow -----------------------------------------------------------------------------
    def _velocity(self, meta):
        return self.scene.objects.velocities[self.tokens[meta['token']]]

    def _moving(self, v) -> bool:
        return math.hypot(v[0], v[1]) > self.cfg.flow.moving_speed

    def object_status(self, meta):
        return 'moving' if self._moving(self._velocity(meta)) else 'static'

    def object_speed(self, meta):
        v = self._velocity(meta)
        return format_number(math.hypot(v[0], v[1]), 'm/s')

    def object_heading(self, meta):
        v = self._velocity(meta)
        degrees = math.degrees(math.atan2(v[1], v[0])) % 360
        return HEADINGS[int(((degrees + 22.5) % 360) // 45)]

    def object_relative_speed(self, meta):
        v, ego = self._velocity(meta), self.scene.ego_status
        return format_number(math.hypot(v[0] - ego[0], v[1] - ego[1]), 'm/s')

    def _known_objects(self):
        s = self.scene
        x0, y0, _, x1, y1, _ = s.pc_range
        for c, v, name in zip(s.objects.centers, s.objects.velocities, s.objects.names):
            if x0 <= c[0] <= x1 and y0 <= c[1] <= y1 and np.isfinite(v).all():
                yield c, v, name

    def _approacher(self):
        best = None
        for c, v, name in self._known_objects():
            dist = math.hypot(c[0], c[1])
            closing = -(c[0] * v[0] + c[1] * v[1]) / max(dist, 1e-6)
            if (self._moving(v) and closing > self.cfg.flow.moving_speed and dist <= self.cfg.flow.approach_radius
                    and (best is None or closing > best[0])):
                best = (closing, dist, name)
        return best

    def approach_object(self, meta):
        best = self._approacher()
        return 'none' if best is None else display_name(best[2])

    def approach_distance(self, meta):
        return format_number(self._approacher()[1], 'm')

    def approach_speed(self, meta):
        return format_number(self._approacher()[0], 'm/s')

    def _fastest(self):
        moving = [(math.hypot(v[0], v[1]), name) for _, v, name in self._known_objects() if self._moving(v)]
        return max(moving, key=lambda m: m[0]) if moving else None

    def any_moving(self, meta):
        return yes_no(self._fastest() is not None)

    def fastest_object(self, meta):
        return display_name(self._fastest()[1])

    def fastest_speed(self, meta):
        return format_number(self._fastest()[0], 'm/s')

    # ---- planning and captions --------------------------------------------------------------
    def action(self, meta):
        s, plan = self.scene, self.cfg.planning
        (x0, y0), (x1, y1) = s.fut_traj[0], s.fut_traj[1]
        planned = math.hypot(x1 - x0, y1 - y0) / STEP_SECONDS
        command = COMMANDS[s.command]
        if planned < plan.stop_speed:
            return 'stop'
        if command in ('turn left', 'turn right'):
            return command
        change = planned - math.hypot(s.ego_status[0], s.ego_status[1])
        return 'accelerate' if change > plan.speed_change else 'slow down' if change < -plan.speed_change \
            else 'keep speed'

    def reason(self, meta):
        s, plan = self.scene, self.cfg.planning
        ahead = [(c[0], v, name) for c, v, name in zip(s.objects.centers, s.objects.velocities, s.objects.names)
                 if 0 < c[0] <= plan.path_length and abs(c[1]) <= plan.path_half_width]
        if ahead:
            x, v, name = min(ahead, key=lambda a: a[0])
            crossing = ' crossing' if np.isfinite(v[1]) and abs(v[1]) > plan.crossing_speed else ''
            return f'{display_name(name)}{crossing} {format_number(x, "m")} ahead'
        action = self.action(meta)
        return f'route {action.replace("turn", "turns")}' if action.startswith('turn') else 'road ahead is clear'

    def trajectory(self, meta):
        return format_waypoints(self.scene.fut_traj)

    def caption(self, meta):
        return TemplateCaptioner(radius=self.cfg.caption_radius)(self.scene)

    def answer(self, meta: dict) -> str:
        """The reference answer of a turn's ``meta``."""
        return getattr(self, meta['check'])(meta)


def verify_record(record: QARecord, scene: SceneGT, cfg: QAEngineConfig, report: VerifyReport) -> None:
    """Check every turn of one record against its scene; add the outcome to ``report``."""
    oracle = SceneOracle(scene, cfg)
    for conv in record.conversations:
        for k, turn in enumerate(conv.turns):
            check = turn.meta.get('check')
            if check in UNVERIFIABLE or (check == 'caption' and turn.meta.get('source') != 'template'):
                report.unverifiable[check] += 1
                continue
            if not callable(getattr(SceneOracle, check or '', None)) or check == 'answer':
                raise ValueError(f'sample {record.sample_token!r} {conv.id} turn {k}: unknown check {check!r}')
            expected = oracle.answer(turn.meta)
            report.checked += 1
            if expected != turn.answer:
                report.mismatches.append(dict(sample_token=record.sample_token, conversation=conv.id, turn=k,
                                              question=turn.question, answer=turn.answer, expected=expected))


def verify_file(info_path, qa_path, data_root=None, cfg: Optional[QAEngineConfig] = None,
                progress: bool = True) -> VerifyReport:
    """Verify a QA JSONL file against the ground truth of its info file."""
    cfg = cfg or QAEngineConfig()
    infos = load_infos(info_path)
    by_token = {info['token']: info for info in infos['data_list']}
    data_root = Path(data_root) if data_root is not None else Path(info_path).parent
    report = VerifyReport()
    for record in tqdm(list(iter_qa_records(qa_path)), desc='verify QA', unit='sample', disable=not progress):
        if record.sample_token not in by_token:
            raise KeyError(f'{qa_path}: sample {record.sample_token!r} is not in {info_path}')
        scene = load_scene(by_token[record.sample_token], data_root, infos['metainfo'])
        verify_record(record, scene, cfg, report)
    return report


def main(argv=None) -> VerifyReport:
    parser = argparse.ArgumentParser(description='Recompute every QA answer from ground truth')
    parser.add_argument('--info', required=True)
    parser.add_argument('--qa', required=True)
    parser.add_argument('--data-root')
    parser.add_argument('--config', help='the data-engine config the QA file was generated with')
    args = parser.parse_args(argv)
    cfg = QAEngineConfig.from_file(args.config) if args.config else QAEngineConfig()
    report = verify_file(args.info, args.qa, args.data_root, cfg)
    print(f'checked {report.checked} turns: {len(report.mismatches)} mismatches; '
          f'unverifiable {dict(report.unverifiable)}')
    for m in report.mismatches[:20]:
        print(m)
    return report


if __name__ == '__main__':
    sys.exit(0 if main().ok else 1)
