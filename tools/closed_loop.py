"""Closed-loop driving evaluation: ``python tools/closed_loop.py CONFIG [CKPT] [--planner ...]``.

Drives every scene of ``closed_loop.info_file`` with each planner (default: the logged expert,
constant velocity and the trained model), in the setting of ``closed_loop.setting`` (mini worlds with
sensors ray-cast again, or nuScenes log replay), and prints one table. Outputs go to ``--out-dir``
(per-episode JSON logs and ``closed_loop_metrics.json``, see ``drivepi.closed_loop.runner``); a
rerun resumes, skipping the episodes already written. Settings live in the config's ``closed_loop``
dict (``configs/_base_/closed_loop.py``); change them with ``--cfg-options``, e.g.
``--cfg-options closed_loop.agents.mode=idm``. See docs/closed_loop.md.
"""
import argparse
import os.path as osp

from mmengine.config import DictAction

from drivepi.closed_loop.runner import (
    PLANNER_NAMES,
    build_planners,
    build_runner,
    build_source_loader,
    format_table,
    load_config,
    select_scenes,
)


def parse_args():
    parser = argparse.ArgumentParser(description='DrivePI closed-loop driving evaluation')
    parser.add_argument('config', help='config file with a closed_loop dict (and the model for --planner model)')
    parser.add_argument('checkpoint', nargs='?', help='model checkpoint (needed for the model planner)')
    parser.add_argument('--planner', action='append', choices=PLANNER_NAMES,
                        help='planner to run (repeatable); default: all three')
    parser.add_argument('--out-dir', help='output folder (default: work_dirs/closed_loop/<config name>)')
    parser.add_argument('--device', default='cpu', help='device of the model planner (cpu, cuda, cuda:1)')
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
        scenes = select_scenes(cfg)
    except ValueError as err:  # bad settings: one clear line
        raise SystemExit(str(err)) from err
    planners = build_planners(names, cfg, args.checkpoint, scenes, osp.join(out_dir, 'model_inputs'), args.device)
    cl_cfg = cfg.closed_loop.to_dict()
    runner = build_runner(cl_cfg, out_dir)
    summary = runner.run(scenes.names, build_source_loader(cl_cfg, scenes.infos, scenes.data_prefix), planners)
    print(format_table(summary))
    print(f'episode logs and closed_loop_metrics.json in {out_dir}')


if __name__ == '__main__':
    main()
