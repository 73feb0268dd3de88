"""Speed of the closed loop: wall time per episode, per simulation step and per plan.

Runs each planner (expert, constant velocity, and the model when CKPT is given) in each agent mode
(log replay, IDM) over the config's scenes, without writing episode logs, and prints a table; the
JSON goes to ``--out``. Planning time includes sensor rendering for the model planner.

    python tools/benchmark_closed_loop.py CONFIG [CKPT] --out work_dirs/benchmark_closed_loop.json
"""
import argparse
import platform
import tempfile
import time

from mmengine.config import DictAction

from drivepi.closed_loop.runner import build_planners, build_runner, build_source_loader, load_config, select_scenes
from drivepi.fileio import atomic_write_json


class TimedPlanner:
    """Wraps a planner and sums the wall time of its ``plan`` calls."""

    def __init__(self, planner):
        self.planner, self.seconds, self.calls = planner, 0.0, 0

    def plan(self, ctx):
        start = time.perf_counter()
        plan = self.planner.plan(ctx)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return plan


def parse_args():
    parser = argparse.ArgumentParser(description='closed-loop speed benchmark')
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', help='model checkpoint (adds the model planner)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', default='work_dirs/benchmark_closed_loop.json')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    scenes = select_scenes(cfg)
    names = ['expert', 'constant_velocity'] + (['model'] if args.checkpoint else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        planners = build_planners(names, cfg, args.checkpoint, scenes, tmp, args.device)
        cl_cfg = cfg.closed_loop.to_dict()
        load = build_source_loader(cl_cfg, scenes.infos, scenes.data_prefix)
        sources = {scene: load(scene) for scene in scenes.names}
        for mode in ('log_replay', 'idm'):
            runner = build_runner(dict(cl_cfg, agents=dict(cl_cfg['agents'], mode=mode)), tmp)
            for name, planner in planners.items():
                timed, steps, start = TimedPlanner(planner), 0, time.perf_counter()
                for scene, source in sources.items():
                    log = runner.run_episode(source, timed, name, scene)
                    steps += len(log['times']) - 1
                total = time.perf_counter() - start
                rows.append(dict(planner=name, agents=mode, episodes=len(sources), sim_steps=steps,
                                 s_per_episode=total / len(sources), ms_per_step=1000 * total / max(steps, 1),
                                 s_per_plan=timed.seconds / max(timed.calls, 1)))
    header = f"{'planner':18s} {'agents':10s} {'episodes':>8s} {'s/episode':>10s} {'ms/step':>8s} {'s/plan':>7s}"
    print(header)
    for r in rows:
        print(f"{r['planner']:18s} {r['agents']:10s} {r['episodes']:8d} {r['s_per_episode']:10.2f} "
              f"{r['ms_per_step']:8.1f} {r['s_per_plan']:7.3f}")
    atomic_write_json(args.out, dict(machine=platform.platform(), processor=platform.processor(),
                                     config=args.config, checkpoint=args.checkpoint, results=rows))
    print(f'written {args.out}')


if __name__ == '__main__':
    main()
