"""Trajectory anchors of the multi-mode planning head: k-means clusters of the training futures per command.

An anchor set is a float32 array ``(C, M, T, 2)``: for each driving command of :data:`drivepi.geometry.COMMANDS`
(0 turn right, 1 turn left, 2 go straight) ``M`` trajectories of ``T`` ego-frame waypoints (m, x forward, y left,
0.5 s apart), as VAD and SparseDrive cluster the ground-truth futures. :func:`plan_anchors_from_infos` makes one
from an info file's ``ego_fut_traj`` / ``ego_fut_mask`` / ``ego_fut_cmd`` (``tools/make_plan_anchors.py`` writes
it as ``.npy``); :func:`load_plan_anchors` reads a file or takes the array inline (tests).
"""
import os
from typing import Optional, Sequence, Union

import numpy as np

from drivepi.geometry import COMMANDS

AnchorSource = Union[str, os.PathLike, np.ndarray, Sequence]


def kmeans(points: np.ndarray, k: int, seed: int = 0, iters: int = 100) -> np.ndarray:
    """k-means++ initialisation, then Lloyd iterations (float64, deterministic for a seed): (k, D) centres of the
    (N, D) ``points``, N >= k, sorted by their last coordinate (ties: the one before, ...) so the order does not
    depend on the initialisation (for flattened trajectories: from the rightmost end point to the leftmost). An
    emptied cluster is moved to the point farthest from its centre."""
    points = np.asarray(points, np.float64)
    if len(points) < k:
        raise ValueError(f'k-means needs at least k = {k} points, got {len(points)}')
    rng = np.random.default_rng(seed)
    centres = [points[rng.integers(len(points))]]
    for _ in range(1, k):
        d2 = ((points[:, None] - np.asarray(centres)[None]) ** 2).sum(-1).min(1)
        total = d2.sum()
        pick = rng.choice(len(points), p=d2 / total) if total > 0 else rng.integers(len(points))
        centres.append(points[pick])
    centres = np.asarray(centres)
    for _ in range(iters):
        d2 = ((points[:, None] - centres[None]) ** 2).sum(-1)
        label = d2.argmin(1)
        new = centres.copy()
        for j in range(k):
            members = points[label == j]
            if len(members):
                new[j] = members.mean(0)
            else:
                new[j] = points[d2[np.arange(len(points)), label].argmax()]
        if np.allclose(new, centres):
            break
        centres = new
    return centres[np.lexsort(centres.T)]


def plan_anchors(trajs: np.ndarray, masks: np.ndarray, commands: np.ndarray, num_modes: int,
                 seed: int = 0) -> np.ndarray:
    """(C, M, T, 2) float32 anchors: k-means (M clusters) of the complete futures (every step valid) of each
    command. A command with fewer than M complete futures takes the clusters of all commands' futures instead.

    Args:
        trajs: (N, T, 2) future waypoints, m, ego frame. masks: (N, T), 1 where a step is valid.
        commands: (N,) ints in ``[0, len(COMMANDS))``. num_modes: M. seed: k-means seed.
    """
    trajs, masks, commands = np.asarray(trajs, np.float64), np.asarray(masks), np.asarray(commands)
    if trajs.ndim != 3 or trajs.shape[2] != 2 or masks.shape != trajs.shape[:2] or commands.shape != trajs.shape[:1]:
        raise ValueError(f'plan_anchors expects trajs (N, T, 2), masks (N, T), commands (N,), got '
                         f'{trajs.shape}, {masks.shape}, {commands.shape}')
    if num_modes < 1:
        raise ValueError(f'num_modes must be positive, got {num_modes}')
    complete = (masks > 0).all(1) & np.isfinite(trajs).all((1, 2))
    flat = trajs.reshape(len(trajs), -1)
    if complete.sum() < num_modes:
        raise ValueError(f'{int(complete.sum())} complete future trajectories, fewer than num_modes = {num_modes}')
    pooled = None
    anchors = []
    for command in range(len(COMMANDS)):
        chosen = complete & (commands == command)
        if chosen.sum() >= num_modes:
            anchors.append(kmeans(flat[chosen], num_modes, seed))
        else:
            print(f'plan_anchors: {int(chosen.sum())} complete futures for {COMMANDS[command]!r} (< {num_modes}): '
                  'using the clusters of all commands')
            pooled = kmeans(flat[complete], num_modes, seed) if pooled is None else pooled
            anchors.append(pooled)
    return np.stack(anchors).reshape(len(COMMANDS), num_modes, trajs.shape[1], 2).astype(np.float32)


def plan_anchors_from_infos(infos: Sequence[dict], num_modes: int, seed: int = 0) -> np.ndarray:
    """Anchors (:func:`plan_anchors`) of the info dicts' ``ego_fut_traj``, ``ego_fut_mask``, ``ego_fut_cmd``."""
    missing = [key for key in ('ego_fut_traj', 'ego_fut_mask', 'ego_fut_cmd') if infos and key not in infos[0]]
    if not infos or missing:
        raise ValueError(f'infos without planning fields {missing} (re-create them with tools/create_data.py)'
                         if infos else 'no infos')
    return plan_anchors(np.stack([np.asarray(i['ego_fut_traj'], np.float64) for i in infos]),
                        np.stack([np.asarray(i['ego_fut_mask'], np.float64) for i in infos]),
                        np.array([int(i['ego_fut_cmd']) for i in infos]), num_modes, seed)


def load_plan_anchors(source: AnchorSource, num_modes: Optional[int] = None,
                      num_waypoints: Optional[int] = None) -> np.ndarray:
    """(C, M, T, 2) float32 anchors from a ``.npy`` path or an array-like, checked against the number of
    commands, ``num_modes`` (M) and ``num_waypoints`` (T) where given."""
    if isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise FileNotFoundError(f'{source}: plan anchors not found (make them with tools/make_plan_anchors.py)')
        anchors = np.load(source, allow_pickle=False)
    else:
        anchors = np.asarray(source)
    anchors = anchors.astype(np.float32)
    found = anchors.shape if anchors.ndim == 4 else (None,) * 4
    expected = (len(COMMANDS), num_modes or found[1], num_waypoints or found[2], 2)
    if anchors.shape != expected or not np.isfinite(anchors).all():
        raise ValueError(f'plan anchors must be finite with shape (commands, modes, waypoints, 2) = {expected}, '
                         f'got {anchors.shape}')
    return anchors


__all__ = ['kmeans', 'plan_anchors', 'plan_anchors_from_infos', 'load_plan_anchors']
