"""A closed-loop episode as an animated BEV (GIF with Pillow, MP4 when ffmpeg is present).

Reads the episode logs of ``tools/closed_loop.py`` (format ``drivepi-closed-loop-episode/1``,
documented in :mod:`drivepi.closed_loop.episode`): per simulation step the ego state and the agent
boxes (global frame), the plans with the pose they were made at, the logged expert path and the
scored events. Each animation frame is drawn in the ego frame of its step (ego at the origin,
heading up): other agents, the driven path so far, the expert path and the latest plan; the events
that have happened so far are written in red in the title, and the episode's scores (PDMS and its sub-scores,
:data:`drivepi.closed_loop.scoring.SCORE_KEYS`) in the top-left corner.
"""
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator, List

import numpy as np

from drivepi.closed_loop.episode import LOG_FORMAT
from drivepi.closed_loop.scoring import SCORE_KEYS
from drivepi.datasets.file_checks import check_exists

from .bev import plot_boxes, to_plot_xy
from .palette import AGENT_COLOR, EGO_COLOR, GT_TRAJ_COLOR, PRED_TRAJ_COLOR
from .scene import EGO_BOX

EXPERT_COLOR = (150, 150, 150)


def load_episode(path) -> dict:
    """Read and check a closed-loop episode log.

    Returns:
        the log dict with ``ego`` (T, 6), ``expert`` (T, 3) and ``times`` (T,) as arrays, and
        ``plans[*]['waypoints']`` (6, 2) / ``pose`` (3,) as arrays.

    Raises:
        FileNotFoundError / ValueError naming the file: missing, not JSON, not an episode log,
        inconsistent lengths or non-finite poses.
    """
    path = check_exists(path, 'episode log')
    try:
        log = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f'episode log {path} is not valid JSON: {err}') from err
    if not isinstance(log, dict) or log.get('format') != LOG_FORMAT:
        raise ValueError(f'{path} is not a {LOG_FORMAT} episode log (format: '
                         f'{log.get("format") if isinstance(log, dict) else type(log).__name__!r})')
    log['times'] = np.asarray(log['times'], np.float64)
    log['ego'] = np.asarray(log['ego'], np.float64).reshape(-1, 6)
    log['expert'] = np.asarray(log['expert'], np.float64).reshape(-1, 3)
    num = len(log['times'])
    if num == 0 or not (len(log['ego']) == len(log['agents']) == num):
        raise ValueError(f'episode log {path}: times ({num}), ego ({len(log["ego"])}) and agents '
                         f'({len(log["agents"])}) must have the same non-zero length')
    if not np.isfinite(log['ego'][:, :3]).all():
        raise ValueError(f'episode log {path}: non-finite ego poses')
    for plan in log['plans']:
        plan['pose'] = np.asarray(plan['pose'], np.float64)
        plan['waypoints'] = np.asarray(plan['waypoints'], np.float64).reshape(-1, 2)
    return log


def ego_to_global(xy: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Ego-frame (N, 2) points of ``pose`` = [x, y, yaw] to the global frame."""
    c, s = np.cos(pose[2]), np.sin(pose[2])
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    return np.stack([c * xy[:, 0] - s * xy[:, 1], s * xy[:, 0] + c * xy[:, 1]], axis=1) + pose[:2]


def global_to_ego(xy: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Global (N, 2) points into the ego frame of ``pose`` = [x, y, yaw]."""
    c, s = np.cos(pose[2]), np.sin(pose[2])
    d = np.asarray(xy, np.float64).reshape(-1, 2) - pose[:2]
    return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)


def frame_steps(log: dict, every: int = 0) -> List[int]:
    """Simulation steps that become frames: every ``every``-th step (default: each replanning step)."""
    every = every or max(1, int(round(log.get('sim_hz', 10.0) / log.get('replan_hz', 2.0))))
    steps = list(range(0, len(log['times']), every))
    return steps if steps[-1] == len(log['times']) - 1 else steps + [len(log['times']) - 1]


def _ego_box(log: dict) -> np.ndarray:
    """(1, 5) BEV box of the ego in its own (rear-axle) frame, from the log's vehicle size."""
    vehicle = {**EGO_BOX, **log.get('vehicle', {})}
    return np.array([[vehicle['rear_axle_to_center'], 0.0, vehicle['length'], vehicle['width'], 0.0]])


def score_text(log: dict) -> str:
    """The episode's scores as one line (``pdms 0.82  nc 1.00 ...``); a failed episode has none."""
    metrics = log.get('metrics')
    if not metrics:
        return 'not scored (failed episode)' if log.get('status') == 'failed' else 'not scored'
    keys = ['pdms'] + [key for key in SCORE_KEYS if key != 'pdms']
    return '  '.join(f'{key} {metrics[key]:.2f}' for key in keys if key in metrics)


def draw_frame(ax, log: dict, step: int, radius: float = 40.0) -> None:
    """Draw simulation ``step`` of the episode on ``ax`` (cleared first), ego frame of that step."""
    ax.clear()
    pose = log['ego'][step, :3]
    boxes = np.asarray(log['agents'][step]['boxes'], np.float64).reshape(-1, 7)[:, [0, 1, 3, 4, 6]]
    if len(boxes):
        boxes[:, :2] = global_to_ego(boxes[:, :2], pose)
        boxes[:, 4] -= pose[2]
        plot_boxes(ax, boxes, color=AGENT_COLOR)
    plot_boxes(ax, _ego_box(log), color=EGO_COLOR)
    paths = [('expert', log['expert'][:, :2], EXPERT_COLOR, '--'),
             ('driven', log['ego'][:step + 1, :2], GT_TRAJ_COLOR, '-')]
    for label, path, color, style in paths:
        xy = to_plot_xy(global_to_ego(path, pose))
        ax.plot(xy[:, 0], xy[:, 1], style, color=np.asarray(color) / 255, linewidth=1.5, label=label)
    plans = [p for p in log['plans'] if p['step'] <= step]
    if plans:
        plan = np.concatenate([plans[-1]['pose'][None, :2], ego_to_global(plans[-1]['waypoints'], plans[-1]['pose'])])
        xy = to_plot_xy(global_to_ego(plan, pose))
        ax.plot(xy[:, 0], xy[:, 1], '-o', color=np.asarray(PRED_TRAJ_COLOR) / 255, markersize=3,
                linewidth=2, label='plan')
    ax.set_xlim(-radius, radius)
    ax.set_ylim(-radius, radius)
    ax.set_aspect('equal')
    ax.set_xlabel('-y (m)')
    ax.set_ylabel('x (m)')
    ax.legend(loc='lower left', fontsize=7)
    ax.text(0.01, 0.99, score_text(log), transform=ax.transAxes, ha='left', va='top', fontsize=7,
            bbox=dict(facecolor='white', alpha=0.8, edgecolor='none'))
    happened = sorted({e['type'] for e in log.get('events', []) if e['step'] <= step})
    failure = log.get('failure')
    if failure and step == len(log['times']) - 1:
        happened.append(f"failed: {failure['reason'][:40]}")
    title = f"{log['episode_id']} ({log.get('planner', '?')})  t = {log['times'][step] - log['times'][0]:.1f} s"
    ax.set_title(title + (f"  [{', '.join(happened)}]" if happened else ''), fontsize=9,
                 color='red' if happened else 'black')


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


def render_episode(log: dict, out_path, fps: float = 4.0, every: int = 0, radius: float = 40.0,
                   dpi: int = 80) -> Path:
    """Write the episode as an animation: ``.gif`` (Pillow) or ``.mp4`` (needs ffmpeg).

    Args:
        log: from :func:`load_episode`.
        out_path: target file; its suffix chooses the format. Written atomically.
        fps: frames per second of the animation.
        every: one frame per ``every`` simulation steps (0: one per replanning step).
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
    try:
        with _atomic_path(out_path) as tmp, writer.saving(fig, str(tmp), dpi):
            for step in tqdm(frame_steps(log, every), desc=f"episode {log['episode_id']}", unit='frame'):
                draw_frame(ax, log, step, radius)
                writer.grab_frame()
    finally:
        plt.close(fig)
    return out_path
