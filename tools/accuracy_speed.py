"""Accuracy vs speed of the redundancy filters: evaluate a checkpoint at every filter setting, then join the
metrics with a GPU benchmark's latencies into a table and a Pareto plot (docs/benchmarks.md).

    # on a CPU: tools/test.py once per setting of drivepi.benchmarking.FILTER_SETTINGS (resumes: a setting
    # whose metrics.json exists is skipped)
    python tools/accuracy_speed.py evaluate CONFIG CKPT --out-dir work_dirs/accuracy_speed
    # the latencies: tools/benchmark.py's filter_sweep section (on a GPU, e.g. by tools/gpu/benchmark_all.sh)
    python tools/accuracy_speed.py report --eval-dir work_dirs/accuracy_speed --benchmark benchmark.json \
        --out docs/accuracy_speed.png

The settings change only inference (the checkpoint is the one trained at the config's settings).
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

from drivepi.benchmarking import FILTER_SETTINGS, parse_filter_setting
from drivepi.fileio import atomic_write_json
from drivepi.visualization.accuracy_speed import join_rows, markdown_table, plot_accuracy_speed, setting_dir_name

REPO = Path(__file__).resolve().parents[1]


def evaluate(args: argparse.Namespace) -> None:
    """``tools/test.py`` of the checkpoint at each setting, into ``OUT_DIR/<setting>/``."""
    for i, setting in enumerate(args.settings, 1):
        out = args.out_dir / setting_dir_name(setting)
        if (out / 'metrics.json').exists():
            print(f'[{i}/{len(args.settings)}] {setting}: done before, {out}/metrics.json', flush=True)
            continue
        token, voxels = parse_filter_setting(setting)
        print(f'[{i}/{len(args.settings)}] {setting}: evaluating into {out}', flush=True)
        command = [sys.executable, str(REPO / 'tools/test.py'), args.config, args.checkpoint, '--out-dir', str(out),
                   '--work-dir', str(args.out_dir / 'logs'), '--cfg-options', f'model.token_filter.keep_ratio={token}',
                   f'model.lidar_branch.voxel_filter.keep_ratios=[{",".join(map(str, voxels))}]',
                   *(args.cfg_options or [])]
        subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)


def report(args: argparse.Namespace) -> None:
    """Table (printed, markdown), joined rows (``<out>.json``) and the Pareto plot (``<out>``)."""
    metrics = {}
    for setting in args.settings:
        path = args.eval_dir / setting_dir_name(setting) / 'metrics.json'
        if path.exists():
            metrics[setting] = json.loads(path.read_text())
    if not metrics:
        raise SystemExit(f'{args.eval_dir}: no metrics.json of any filter setting; run `evaluate` first')
    latency = None
    if args.benchmark:
        sweep = json.loads(args.benchmark.read_text()).get('filter_sweep')
        if not sweep or 'error' in sweep:
            raise SystemExit(f'{args.benchmark}: no filter_sweep section (tools/benchmark.py --sections filter_sweep)')
        latency = sweep
    rows = join_rows(args.settings, metrics, latency)
    table = markdown_table(rows)
    print(table)
    atomic_write_json(args.out.with_suffix('.json'), rows)
    if latency is not None:
        plot_accuracy_speed(rows, args.out)
        print(f'wrote {args.out}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest='command', required=True)
    run = commands.add_parser('evaluate', help='tools/test.py at every filter setting')
    run.add_argument('config')
    run.add_argument('checkpoint')
    run.add_argument('--out-dir', type=Path, default=Path('work_dirs/accuracy_speed'))
    run.add_argument('--cfg-options', nargs='+', help='passed on to tools/test.py')
    rep = commands.add_parser('report', help='table and Pareto plot')
    rep.add_argument('--eval-dir', type=Path, default=Path('work_dirs/accuracy_speed'))
    rep.add_argument('--benchmark', type=Path, help="tools/benchmark.py's JSON with the filter_sweep section")
    rep.add_argument('--out', type=Path, default=Path('docs/accuracy_speed.png'))
    for sub in (run, rep):
        sub.add_argument('--settings', nargs='+', default=list(FILTER_SETTINGS), help="e.g. 0.25/0.4,0.7,1")
    args = parser.parse_args()
    (evaluate if args.command == 'evaluate' else report)(args)


if __name__ == '__main__':
    main()
