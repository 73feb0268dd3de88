"""A closed-loop episode as an animated BEV (GIF with Pillow, MP4 when ffmpeg is present).

Episode log read here (JSON; a bare list is taken as ``steps``)::

    {"episode_id": str, "dt": float (s between steps, default 0.5),
     "steps": [{"t": float (s, optional),
                "ego_pose": [x, y, yaw]            # global frame, m and rad
                "plan": [[x, y], ...] | null       # (T, 2) planned waypoints, ego frame of this step
                "agents": [[x, y, l, w, yaw], ...] # global-frame BEV boxes, or the closed-loop
                                                   # AgentBoxes JSON {"boxes": [[x, y, z, l, w, h, yaw]], ...}
                "events": [str, ...]               # optional, e.g. "collision"
               }, ...]}

Each frame is drawn in the ego frame of its step (ego at the origin pointing up), with the driven
path so far, the current plan and the other agents.
"""
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from drivepi.datasets.file_checks import check_exists

from .bev import ego_box, plot_boxes, to_plot_xy
from .palette import AGENT_COLOR, EGO_COLOR, GT_TRAJ_COLOR, PRED_TRAJ_COLOR


def _agent_boxes(agents, source: str) -> np.ndarray:
    """(N, 5) ``[x, y, l, w, yaw]`` from either agent encoding of the log."""
    if isinstance(agents, dict):
        boxes = np.asarray(agents.get('boxes', []), np.float64).reshape(-1, 7)
        return boxes[:, [0, 1, 3, 4, 6]]
    boxes = np.asarray(agents if agents is not None else [], np.float64)
    if boxes.size == 0:
        return np.zeros((0, 5))
    if boxes.ndim != 2 or boxes.shape[1] != 5:
        raise ValueError(f'{source}: agents must be (N, 5) [x, y, l, w, yaw], got shape {boxes.shape}')
    return boxes


def load_episode(path) -> dict:
    """Read and validate an episode log.

    Returns:
        dict with ``episode_id``, ``dt``, and ``steps``: list of dicts with ``ego_pose`` (3,),
        ``plan`` (T, 2) or None, ``agents`` (N, 5), ``events`` list of str, ``t``.
    """
    path = check_exists(path, 'episode log')
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f'episode log {path} is not valid JSON: {err}') from err
    if isinstance(data, list):
        data = dict(steps=data)
    steps = data.get('steps')
    if not isinstance(steps, list) or not steps:
        raise ValueError(f"episode log {path} has no non-empty 'steps' list")
    dt = float(data.get('dt', 0.5))
    parsed = []
    for i, step in enumerate(steps):
        where = f'episode log {path}, step {i}'
        if 'ego_pose' not in step:
            raise KeyError(f"{where}: no 'ego_pose' [x, y, yaw]")
        pose = np.asarray(step['ego_pose'], np.float64)
        if pose.shape != (3,) or not np.isfinite(pose).all():
            raise ValueError(f'{where}: ego_pose must be 3 finite numbers [x, y, yaw], got {step["ego_pose"]}')
        plan = step.get('plan')
        if plan is not None:
            plan = np.asarray(plan, np.float64)
            if plan.ndim != 2 or plan.shape[1] != 2:
                raise ValueError(f'{where}: plan must be (T, 2), got shape {plan.shape}')
        parsed.append(dict(ego_pose=pose, plan=plan, agents=_agent_boxes(step.get('agents'), where),
                           events=list(step.get('events', [])), t=float(step.get('t', i * dt))))
    return dict(episode_id=str(data.get('episode_id', Path(path).stem)), dt=dt, steps=parsed)


def global_to_ego(xy: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Global (N, 2) points into the ego frame of ``pose`` = [x, y, yaw]."""
    c, s = np.cos(pose[2]), np.sin(pose[2])
    d = np.asarray(xy, np.float64).reshape(-1, 2) - pose[:2]
    return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)


def _draw_frame(ax, episode: dict, index: int, radius: float) -> None:
    """Draw step ``index`` of the episode on ``ax`` (cleared first)."""
    ax.clear()
    step = episode['steps'][index]
    pose = step['ego_pose']
    boxes = step['agents'].copy()
    if len(boxes):
        boxes[:, :2] = global_to_ego(boxes[:, :2], pose)
        boxes[:, 4] -= pose[2]
        plot_boxes(ax, boxes, color=AGENT_COLOR)
    plot_boxes(ax, ego_box(), color=EGO_COLOR)
    driven = to_plot_xy(global_to_ego(np.array([s['ego_pose'][:2] for s in episode['steps'][:index + 1]]), pose))
    ax.plot(driven[:, 0], driven[:, 1], color=np.asarray(GT_TRAJ_COLOR) / 255, linewidth=1.5, label='driven')
    if step['plan'] is not None:
        plan = to_plot_xy(np.concatenate([np.zeros((1, 2)), step['plan']]))
        ax.plot(plan[:, 0], plan[:, 1], '-o', color=np.asarray(PRED_TRAJ_COLOR) / 255, markersize=3,
                linewidth=2, label='plan')
    ax.set_xlim(-radius, radius)
    ax.set_ylim(-radius, radius)
    ax.set_aspect('equal')
    ax.legend(loc='lower left', fontsize=7)
    events = ', '.join(step['events'])
    ax.set_title(f"{episode['episode_id']}  t = {step['t']:.1f} s" + (f'  [{events}]' if events else ''),
                 fontsize=9, color='red' if events else 'black')


@contextlib.contextmanager
def _atomic_path(out_path: Path) -> Iterator[Path]:
    """A temporary path beside ``out_path`` (same suffix) that replaces it if the block succeeds."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f'.{out_path.stem}.', suffix=out_path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, out_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def render_episode(episode: dict, out_path, fps: float = 4.0, radius: float = 40.0, dpi: int = 80) -> Path:
    """Write the episode as an animation: ``.gif`` (Pillow) or ``.mp4`` (needs ffmpeg).

    Args:
        episode: from :func:`load_episode`.
        out_path: target file; its suffix chooses the format.
        fps: frames (steps) per second of the animation.
        radius: half-width in metres of the BEV window around the ego.
    """
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    from matplotlib import animation
    from tqdm import tqdm
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix == '.gif':
        writer = animation.PillowWriter(fps=fps)
    elif suffix == '.mp4':
        if not animation.writers.is_available('ffmpeg'):
            raise RuntimeError(f'cannot write {out_path}: MP4 needs ffmpeg on PATH; write a .gif instead')
        writer = animation.FFMpegWriter(fps=fps)
    else:
        raise ValueError(f'episode animation {out_path}: suffix must be .gif or .mp4')
    fig, ax = plt.subplots(figsize=(6, 6))
    steps = range(len(episode['steps']))
    try:
        with _atomic_path(out_path) as tmp, writer.saving(fig, str(tmp), dpi):
            for index in tqdm(steps, desc=f'episode {episode["episode_id"]}', unit='frame'):
                _draw_frame(ax, episode, index, radius)
                writer.grab_frame()
    finally:
        plt.close(fig)
    return out_path

