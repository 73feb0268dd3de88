"""Closed-loop driving evaluation: ``python tools/closed_loop.py CONFIG [CKPT] [--planner ...]``.

Drives every scene of ``closed_loop.info_file`` with each planner (default: the logged expert,
constant velocity and the trained model), in the setting of ``closed_loop.setting`` (mini worlds with
sensors ray-cast again, or nuScenes log replay), and prints one table. Outputs go to ``--out-dir``
(per-episode JSON logs and ``closed_loop_metrics.json``, see ``drivepi.closed_loop.runner``); a
rerun resumes, skipping the episodes already written. Settings live in the config's ``closed_loop``
dict (``configs/_base_/closed_loop.py``); change them with ``--cfg-options``, e.g.
``--cfg-options closed_loop.agents.mode=idm``.
"""
import argparse
import os.path as osp

from mmengine.config import Config, DictAction

PLANNERS = ('expert', 'constant_velocity', 'model')


def parse_args():
    parser = argparse.ArgumentParser(description='DrivePI closed-loop driving evaluation')
    parser.add_argument('config', help='config file with a closed_loop dict (and the model for --planner model)')
    parser.add_argument('checkpoint', nargs='?', help='model checkpoint (needed for the model planner)')
    parser.add_argument('--planner', action='append', choices=PLANNERS,
                        help='planner to run (repeatable); default: all three')
    parser.add_argument('--out-dir', help='output folder (default: work_dirs/closed_loop/<config name>)')
    parser.add_argument('--device', default='cpu', help='device of the model planner (cpu, cuda, cuda:1)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args()


def build_planners(names, cfg, checkpoint, scene_infos, out_dir, device):
    from drivepi.closed_loop.planners import ConstantVelocityPlanner, ExpertPlanner
    planners = {}
    for name in names:
        if name == 'expert':
            planners[name] = ExpertPlanner()
        elif name == 'constant_velocity':
            planners[name] = ConstantVelocityPlanner()
        else:
            if checkpoint is None:
                raise SystemExit('the model planner needs CKPT: tools/closed_loop.py CONFIG CKPT '
                                 '(or run only the baselines with --planner expert --planner constant_velocity)')
            from drivepi.closed_loop.model_planner import ModelPlanner
            planners[name] = ModelPlanner.from_config(cfg, checkpoint, scene_infos,
                                                      osp.join(out_dir, 'model_inputs'), device)
    return planners


def source_loader(cl_cfg, scene_infos, data_prefix):
    from drivepi.closed_loop.sources import MiniWorldSource, NuScenesLogSource
    if cl_cfg.setting == 'mini_world':
        return lambda scene: MiniWorldSource(cl_cfg.data_root, scene)
    if cl_cfg.setting == 'nuscenes_log':
        map_root = cl_cfg.get('map_root') or cl_cfg.data_root
        return lambda scene: NuScenesLogSource(scene_infos[scene], cl_cfg.data_root, data_prefix, map_root)
    raise ValueError(f"closed_loop.setting must be 'mini_world' or 'nuscenes_log', got {cl_cfg.setting!r}")


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if 'closed_loop' not in cfg:
        raise SystemExit(f'{args.config}: no closed_loop dict; inherit configs/_base_/closed_loop.py')
    cl_cfg = cfg.closed_loop
    out_dir = args.out_dir or osp.join('work_dirs', 'closed_loop', osp.splitext(osp.basename(args.config))[0])

    from drivepi.closed_loop.runner import build_runner, format_table
    from drivepi.closed_loop.sources import load_scene_infos
    scene_infos = load_scene_infos(cl_cfg.info_file)
    scenes = list(cl_cfg.scenes) if cl_cfg.get('scenes') else list(scene_infos)
    unknown = sorted(set(scenes) - set(scene_infos))
    if unknown:
        raise SystemExit(f'closed_loop.scenes {unknown} are not in {cl_cfg.info_file}')
    data_prefix = cfg.get('test_dataloader', {}).get('dataset', {}).get('data_prefix') or \
        dict(pts='samples/LIDAR_TOP', **{cam: f'samples/{cam}' for cam in scene_infos[scenes[0]][0]['images']})
    planners = build_planners(args.planner or PLANNERS, cfg, args.checkpoint, scene_infos, out_dir, args.device)
    runner = build_runner(cl_cfg.to_dict(), out_dir)
    summary = runner.run(scenes, source_loader(cl_cfg, scene_infos, data_prefix), planners)
    print(format_table(summary))
    print(f'episode logs and closed_loop_metrics.json in {out_dir}')


if __name__ == '__main__':
    main()
