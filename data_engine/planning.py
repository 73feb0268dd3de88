"""Planning-reasoning questions: the next action, the reason for it, the future trajectory.

Definitions (recomputed independently by :mod:`data_engine.verify`):

- ``action`` from the current speed ``v0 = |ego_status[:2]|`` and the planned speed
  ``v1 = |w1 - w0| / 0.5 s`` between the first two waypoints (needs both valid):
  ``stop`` if ``v1 < stop_speed``; else ``turn left`` / ``turn right`` for those commands; else
  ``accelerate`` / ``slow down`` if ``v1 - v0`` exceeds ``+speed_change`` / ``-speed_change``;
  else ``keep speed``;
- ``reason``: the nearest annotated object in the path (box centre with ``0 < x <= path_length``
  and ``|y| <= path_half_width``): ``<class> crossing <x> m ahead`` if its lateral speed exceeds
  ``crossing_speed``, else ``<class> <x> m ahead``; without one ``route turns left/right`` for the
  turn actions and ``road ahead is clear`` otherwise;
- ``trajectory``: the 6 future waypoints ``(x, y)`` (m, ego frame), asked only when all are valid.
"""
from dataclasses import dataclass
from typing import List

import numpy as np

from drivepi.evaluation.qa_accuracy import format_number, format_waypoints
from drivepi.geometry import COMMANDS

from .phrasing import make_turn, pick
from .scene import STEP_SECONDS, SceneGT, display_name

ACTIONS = ('accelerate', 'keep speed', 'slow down', 'stop', 'turn left', 'turn right')

Q_ACTION = ('What should the ego vehicle do next?', 'What is the next driving action?',
            'Given the scene, which action should the ego vehicle take now?')
Q_REASON = ('Why?', 'What is the reason for this action?', 'Which part of the scene explains that?')
Q_TRAJECTORY = ('Give the planned trajectory for the next 3 seconds as waypoints.',
                'Where will the ego vehicle be every 0.5 s over the next 3 s?',
                'List the future ego waypoints (x, y) in metres.')


@dataclass
class PlanningQAConfig:
    """Action thresholds (m/s) and the path region of the reason (m)."""
    stop_speed: float = 0.5
    speed_change: float = 0.5
    path_length: float = 30.0
    path_half_width: float = 2.0
    crossing_speed: float = 0.5


def next_action(scene: SceneGT, cfg: PlanningQAConfig) -> str:
    """The next action (see module docstring); needs the first two waypoints valid."""
    v1 = float(np.linalg.norm(scene.fut_traj[1] - scene.fut_traj[0])) / STEP_SECONDS
    if v1 < cfg.stop_speed:
        return 'stop'
    if COMMANDS[scene.command].startswith('turn'):
        return COMMANDS[scene.command]
    change = v1 - scene.ego_speed
    if change > cfg.speed_change:
        return 'accelerate'
    if change < -cfg.speed_change:
        return 'slow down'
    return 'keep speed'


def action_reason(scene: SceneGT, action: str, cfg: PlanningQAConfig) -> str:
    """The scene element that explains the action (see module docstring)."""
    c, v = scene.objects.centers, scene.objects.velocities
    in_path = (c[:, 0] > 0) & (c[:, 0] <= cfg.path_length) & (np.abs(c[:, 1]) <= cfg.path_half_width)
    if in_path.any():
        i = np.flatnonzero(in_path)[c[in_path, 0].argmin()]
        crossing = bool(np.isfinite(v[i, 1]) and abs(v[i, 1]) > cfg.crossing_speed)
        name = display_name(scene.objects.names[i])
        return f'{name}{" crossing" if crossing else ""} {format_number(c[i, 0], "m")} ahead'
    if action.startswith('turn'):
        return f'route turns {action.split()[1]}'
    return 'road ahead is clear'


def generate_planning(scene: SceneGT, rng: np.random.Generator, cfg: PlanningQAConfig) -> List[list]:
    """Planning conversations of one scene: action, reason, trajectory (when the future exists)."""
    turns = []
    if scene.fut_mask[:2].all():
        action = next_action(scene, cfg)
        turns += [make_turn(pick(rng, Q_ACTION), action, 'action', 'action'),
                  make_turn(pick(rng, Q_REASON), action_reason(scene, action, cfg), 'reason', 'reason')]
    if scene.fut_mask.all():
        turns.append(make_turn(pick(rng, Q_TRAJECTORY), format_waypoints(scene.fut_traj), 'trajectory',
                               'trajectory'))
    return [turns] if turns else []
