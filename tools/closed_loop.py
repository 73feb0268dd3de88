"""Closed-loop driving evaluation: ``python tools/closed_loop.py CONFIG [CKPT] [--planner ...]``.

Drives the episodes of ``closed_loop.episodes`` with each planner (default: the logged expert, constant
velocity and the trained model): ``'benchmark'``, the fixed held-out benchmark of generated worlds by
scenario type (``configs/_base_/closed_loop_benchmark.py``; ``closed_loop.subset`` picks a named subset),
or ``'info_file'``, the scenes of ``closed_loop.info_file`` in the setting of ``closed_loop.setting``
(mini worlds with sensors ray-cast again, or nuScenes log replay). Prints one table (per planner, per
scenario type and overall, with 95 % bootstrap intervals). Outputs go to ``--out-dir`` (per-episode JSON
logs and ``closed_loop_metrics.json``, see ``drivepi.closed_loop.runner``); a rerun resumes, skipping the
episodes already written; ``closed_loop.workers`` processes share the episodes. Settings live in the
config's ``closed_loop`` dict (``configs/_base_/closed_loop.py``); change them with ``--cfg-options``, e.g.
``--cfg-options closed_loop.subset=demo closed_loop.workers=2``. See docs/closed_loop.md.
"""
import argparse
import os.path as osp

from mmengine.config import DictAction

from drivepi.closed_loop.runner import (
    PLANNER_NAMES,
    build_planners,
    build_runner,
    format_table,
    load_config,
    select_episodes,
    select_scenes,
)
from drivepi.engine.checkpoint_loading import ALLOW_PARTIAL_HELP


def parse_args():
    parser = argparse.ArgumentParser(description='DrivePI closed-loop driving evaluation')
    parser.add_argument('config', help='config file with a closed_loop dict (and the model for --planner model)')
    parser.add_argument('checkpoint', nargs='?', help='model checkpoint (needed for the model planner)')
    parser.add_argument('--planner', action='append', choices=PLANNER_NAMES,
                        help='planner to run (repeatable); default: all three')
    parser.add_argument('--out-dir', help='output folder (default: work_dirs/closed_loop/<config name>)')
    parser.add_argument('--device', default='cpu', help='device of the model planner (cpu, cuda, cuda:1)')
    parser.add_argument('--allow-partial', action='store_true', help=ALLOW_PARTIAL_HELP)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args()


def main():
    args = parse_args()
    out_dir = args.out_dir or osp.join('work_dirs', 'closed_loop', osp.splitext(osp.basename(args.config))[0])
    names = args.planner or PLANNER_NAMES
    if 'model' in names and args.checkpoint is None:
        raise SystemExit('the model planner needs CKPT: tools/closed_loop.py CONFIG CKPT (or run only the '
                         'baselines with --planner expert --planner constant_velocity)')
    try:
        cfg = load_config(args.config, args.cfg_options)
        # the info file: the scenes to drive, or (benchmark) the model's calibration templates
        needs_infos = 'model' in names or cfg.closed_loop.get('episodes', 'info_file') == 'info_file'
        scenes = select_scenes(cfg) if needs_infos else None
        episodes, load_source = select_episodes(cfg, scenes)
    except (ValueError, FileNotFoundError) as err:  # bad settings or a missing info file: one clear line
        raise SystemExit(str(err)) from err
    planners = build_planners(names, cfg, args.checkpoint, scenes, osp.join(out_dir, 'model_inputs'), args.device,
                              args.allow_partial)
    cl_cfg = cfg.closed_loop.to_dict()
    runner = build_runner(cl_cfg, out_dir)
    summary = runner.run(episodes, load_source, planners, workers=int(cl_cfg.get('workers', 1)))
    print(format_table(summary))
    print(f'episode logs and closed_loop_metrics.json in {out_dir}')


if __name__ == '__main__':
    main()
