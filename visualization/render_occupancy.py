"""Render DrivePI occupancy / flow / trajectory pictures and closed-loop episode animations.

Samples (ground truth, plus predictions when ``--results`` is given)::

    python visualization/render_occupancy.py --info data/drivepi-mini/drivepi_infos_val.pkl \
        [--token TOKEN ... | --all] [--data-root DIR] [--results work_dirs/test] [--out-dir DIR]

writes ``<out-dir>/<sample_token>.png`` (3D + BEV for GT and prediction, legend, six cameras, and a panel with
the command, the planned trajectory and the questions with their ground-truth and predicted answers, correct ones
marked).
``--results`` is the ``tools/test.py --out-dir`` directory (reads ``predictions/<token>.npz``).
``--show`` opens an interactive open3d window instead when a display exists.

Closed-loop episodes (logs written by ``tools/closed_loop.py``)::

    python visualization/render_occupancy.py --episodes work_dirs/closed_loop [--format gif|mp4]

writes ``<out-dir>/<episode_id>_<planner>.gif`` for every episode log given (files, or folders
searched recursively for ``*.json``, e.g. the ``tools/closed_loop.py`` output directory).
Each written path is printed on its own line as ``wrote PATH``.
"""
import argparse
from pathlib import Path
from typing import List

from tqdm import tqdm

from drivepi.visualization.render import CHASE_VIEW, TOP_VIEW

VIEWS = dict(chase=CHASE_VIEW, top=TOP_VIEW)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--info', help='info file (*_infos_*.pkl)')
    parser.add_argument('--token', action='append', help='sample token (repeatable); default: first sample')
    parser.add_argument('--all', action='store_true', help='every sample of the info file')
    parser.add_argument('--data-root', help='root of occ_path / image paths (default: folder of --info)')
    parser.add_argument('--results', help='tools/test.py --out-dir directory with predictions/')
    parser.add_argument('--episodes', nargs='+', help='closed-loop episode logs or folders of them')
    parser.add_argument('--format', choices=('gif', 'mp4'), default='gif', help='episode animation format')
    parser.add_argument('--out-dir', default='work_dirs/visualization', help='where pictures go')
    parser.add_argument('--view', choices=sorted(VIEWS), default='chase', help='camera of the 3D panels')
    parser.add_argument('--invisible', choices=('dim', 'show', 'hide'), default='dim',
                        help='camera-invisible GT voxels')
    parser.add_argument('--no-cameras', action='store_true', help='leave out the six camera panels')
    parser.add_argument('--show', action='store_true', help='interactive open3d window (needs a display)')
    args = parser.parse_args(argv)
    if not args.info and not args.episodes:
        parser.error('give --info (samples) and/or --episodes (closed-loop logs)')
    return args


def render_samples(args) -> List[Path]:
    """Pictures (or windows) of the requested samples of ``args.info``."""
    from drivepi.visualization.figure import render_sample
    from drivepi.visualization.sample_io import load_infos, load_sample_view
    tokens = args.token or [None]
    if args.all:
        tokens = [info['token'] for info in load_infos(args.info)['data_list']]
    written = []
    for token in tqdm(tokens, desc='samples', unit='sample', disable=len(tokens) < 2):
        view = load_sample_view(args.info, token, args.data_root, args.results,
                                with_cameras=not (args.no_cameras or args.show))
        if args.show:
            show_sample(view, args.invisible)
            continue
        written.append(render_sample(view, Path(args.out_dir) / f'{view.token}.png', VIEWS[args.view],
                                     invisible=args.invisible))
    return written


def show_sample(view, invisible: str) -> None:
    """Interactive window of the prediction (when loaded) or the ground truth."""
    from drivepi.visualization.palette import GT_TRAJ_COLOR, PRED_TRAJ_COLOR
    from drivepi.visualization.render import show_interactive
    from drivepi.visualization.scene import build_scene
    trajs = {'gt': (view.gt_traj, GT_TRAJ_COLOR)} if view.gt_traj is not None else {}
    if view.pred_occ is not None:
        if view.pred_traj is not None:
            trajs['pred'] = (view.pred_traj, PRED_TRAJ_COLOR)
        items = build_scene(view.pred_occ, view.pred_flow, trajs)
    else:
        items = build_scene(view.gt_occ, view.gt_flow, trajs, view.gt_mask_camera, invisible=invisible)
    show_interactive(items, title=f'DrivePI sample {view.token}')


def episode_logs(paths) -> List[Path]:
    """Episode log files from files and folders (a folder gives all ``*.json`` below it)."""
    from drivepi.closed_loop.runner import METRICS_FILE
    logs = []
    for path in map(Path, paths):
        if path.is_dir():
            logs += sorted(p for p in path.rglob('*.json') if p.name != METRICS_FILE)
        else:
            logs.append(path)
    if not logs:
        raise FileNotFoundError(f'no episode logs (*.json) in {list(paths)}')
    return logs


def render_episodes(args) -> List[Path]:
    """One animation per episode log."""
    from drivepi.visualization.episode import load_episode, render_episode
    written = []
    for path in episode_logs(args.episodes):
        log = load_episode(path)
        name = f"{log['episode_id']}_{log.get('planner', 'planner')}.{args.format}"
        written.append(render_episode(log, Path(args.out_dir) / name))
    return written


def main(argv=None) -> List[Path]:
    args = parse_args(argv)
    written = (render_samples(args) if args.info else []) + (render_episodes(args) if args.episodes else [])
    for path in written:
        print(f'wrote {path}')
    return written


if __name__ == '__main__':
    main()
