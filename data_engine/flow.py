"""Text-flow questions about the motion of annotated objects, in the ego frame.

Definitions (recomputed independently by :mod:`data_engine.verify`):

- candidate objects: box centre inside the occupancy range in x and y, velocity annotated
  (nuScenes leaves some velocities NaN; those objects are not asked about);
- ``status``: ``moving`` when the speed ``|v|`` exceeds ``moving_speed`` m/s, else ``static``;
- ``speed``: ``|v|`` (m/s); relative speed: ``|v - v_ego|`` with ``v_ego`` from ``ego_status``;
- ``heading``: direction of ``v`` in the ego frame, one of :data:`HEADINGS` (45 degree sectors
  centred on forward, forward-left, left, ...);
- approaching: a moving object whose own velocity points at the ego, with closing speed
  ``-(p . v) / |p| > moving_speed``; the answer is the one with the largest closing speed within
  ``approach_radius`` m (``none`` if there is none);
- fastest: the moving object with the largest ``|v|``.
Objects are referred to by their box centre, ``x = .. m, y = .. m`` rounded to 0.1 m.
"""
from dataclasses import dataclass
from typing import List

import numpy as np

from drivepi.evaluation.qa_accuracy import format_number, format_place

from .phrasing import make_turn, pick, yes_no
from .scene import SceneGT, display_name

HEADINGS = ('forward', 'forward-left', 'left', 'backward-left', 'backward', 'backward-right', 'right',
            'forward-right')

Q_STATUS = ('Is the {cls} at {place} moving or static?', 'Is the {cls} at {place} moving, or is it static?',
            'What is the motion status of the {cls} at {place}?')
Q_SPEED = ('How fast is it moving?', 'What is its speed?', 'At what speed does it travel?')
Q_HEADING = ('In which direction is it moving relative to the ego vehicle?',
             'Where is it heading, seen from the ego vehicle?', 'What is its direction of motion?')
Q_REL_SPEED = ('What is its speed relative to the ego vehicle?',
               'How fast does it move relative to the ego vehicle?')
Q_APPROACH = ('Which object is moving towards the ego vehicle fastest?',
              'What is approaching the ego vehicle?', 'Is any object heading towards the ego vehicle? Which one?')
Q_APPROACH_DISTANCE = ('How far away is it?', 'What is its distance from the ego vehicle?')
Q_CLOSING_SPEED = ('How fast is it closing in?', 'At what speed does it approach?')
Q_ANY_MOVING = ('Is any object around the ego vehicle moving?', 'Are there moving objects around?',
                'Does anything around the ego vehicle move?')
Q_FASTEST = ('Which object moves fastest?', 'What is the fastest moving object?',
             'Which object has the highest speed?')


@dataclass
class FlowQAConfig:
    """Question counts per sample and the motion thresholds."""
    num_object: int = 2
    ask_approach: bool = True
    ask_fastest: bool = True
    moving_speed: float = 0.5
    approach_radius: float = 30.0


def heading_name(vx: float, vy: float) -> str:
    """The 45-degree sector of a direction in the ego frame (x forward, y left)."""
    sector = int(np.round(np.arctan2(vy, vx) / (np.pi / 4))) % 8
    return HEADINGS[sector]


def candidates(scene: SceneGT) -> np.ndarray:
    """Indices of the objects asked about (see module docstring)."""
    x0, y0, _, x1, y1, _ = scene.pc_range
    c, v = scene.objects.centers, scene.objects.velocities
    inside = (c[:, 0] >= x0) & (c[:, 0] <= x1) & (c[:, 1] >= y0) & (c[:, 1] <= y1)
    return np.flatnonzero(inside & np.isfinite(v).all(axis=1))


def _object_turns(scene: SceneGT, rng: np.random.Generator, cfg: FlowQAConfig, idx: np.ndarray) -> list:
    speeds = np.linalg.norm(scene.objects.velocities[idx], axis=1)
    groups = [g for g in (idx[speeds > cfg.moving_speed], idx[speeds <= cfg.moving_speed]) if g.size]
    group = groups[int(rng.integers(len(groups)))]  # moving / static half of the time each
    i = int(group[int(rng.integers(len(group)))])
    x, y = (round(float(c), 1) for c in scene.objects.centers[i, :2])
    v = scene.objects.velocities[i]
    moving = bool(np.linalg.norm(v) > cfg.moving_speed)
    ref = dict(token=scene.objects.tokens[i])
    turns = [make_turn(pick(rng, Q_STATUS, cls=display_name(scene.objects.names[i]), place=format_place(x, y)),
                       'moving' if moving else 'static', 'status', 'object_status', **ref)]
    if moving:
        turns += [make_turn(pick(rng, Q_SPEED), format_number(np.linalg.norm(v), 'm/s'), 'speed',
                            'object_speed', **ref),
                  make_turn(pick(rng, Q_HEADING), heading_name(*v), 'heading', 'object_heading', **ref)]
    relative = np.linalg.norm(v - scene.ego_status[:2])
    turns.append(make_turn(pick(rng, Q_REL_SPEED), format_number(relative, 'm/s'), 'speed',
                           'object_relative_speed', **ref))
    return turns


def _approach_turns(scene: SceneGT, rng: np.random.Generator, cfg: FlowQAConfig, idx: np.ndarray) -> list:
    p, v = scene.objects.centers[idx, :2], scene.objects.velocities[idx]
    dist = np.linalg.norm(p, axis=1)
    closing = -(p * v).sum(axis=1) / np.maximum(dist, 1e-6)
    ok = (closing > cfg.moving_speed) & (np.linalg.norm(v, axis=1) > cfg.moving_speed) & (dist <= cfg.approach_radius)
    if not ok.any():
        return [make_turn(pick(rng, Q_APPROACH), 'none', 'object', 'approach_object')]
    best = np.flatnonzero(ok)[closing[ok].argmax()]
    return [make_turn(pick(rng, Q_APPROACH), display_name(scene.objects.names[idx[best]]), 'object',
                      'approach_object'),
            make_turn(pick(rng, Q_APPROACH_DISTANCE), format_number(dist[best], 'm'), 'distance',
                      'approach_distance'),
            make_turn(pick(rng, Q_CLOSING_SPEED), format_number(closing[best], 'm/s'), 'speed',
                      'approach_speed')]


def _fastest_turns(scene: SceneGT, rng: np.random.Generator, cfg: FlowQAConfig, idx: np.ndarray) -> list:
    speeds = np.linalg.norm(scene.objects.velocities[idx], axis=1)
    moving = speeds > cfg.moving_speed
    turns = [make_turn(pick(rng, Q_ANY_MOVING), yes_no(moving.any()), 'exist', 'any_moving')]
    if moving.any():
        best = int(speeds.argmax())
        turns += [make_turn(pick(rng, Q_FASTEST), display_name(scene.objects.names[idx[best]]), 'object',
                            'fastest_object'),
                  make_turn(pick(rng, Q_SPEED), format_number(speeds[best], 'm/s'), 'speed', 'fastest_speed')]
    return turns


def generate_flow(scene: SceneGT, rng: np.random.Generator, cfg: FlowQAConfig) -> List[list]:
    """Text-flow conversations of one scene (lists of :class:`QATurn`)."""
    idx = candidates(scene)
    conversations = []
    if idx.size:
        conversations += [_object_turns(scene, rng, cfg, idx) for _ in range(cfg.num_object)]
    if cfg.ask_approach:
        conversations.append(_approach_turns(scene, rng, cfg, idx))
    if cfg.ask_fastest:
        conversations.append(_fastest_turns(scene, rng, cfg, idx))
    return conversations
