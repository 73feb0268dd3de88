"""Generation speed and disk size of the mini dataset: prints a table and writes JSON.

    python tools/benchmark_mini_dataset.py --num-scenes 10 --preset default --out work_dirs/benchmark_mini_dataset.json
"""
import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from drivepi.fileio import atomic_write_json
from drivepi.sim.mini_dataset import PRESETS, generate_mini_dataset


def folder_bytes(root: Path) -> dict:
    """Bytes on disk per top-level folder of ``root`` (and 'total')."""
    sizes = {}
    for path in root.rglob('*'):
        if path.is_file():
            top = path.relative_to(root).parts[0]
            sizes[top] = sizes.get(top, 0) + path.stat().st_size
    sizes['total'] = sum(sizes.values())
    return sizes


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (the worker pool)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--num-scenes', type=int, default=10)
    parser.add_argument('--preset', default='default', choices=sorted(PRESETS))
    parser.add_argument('--workers', type=int, default=None)
    parser.add_argument('--out-dir', default=None, help='where to generate (default: a temporary folder)')
    parser.add_argument('--out', default='work_dirs/benchmark_mini_dataset.json')
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    workers = min(preset.workers if args.workers is None else args.workers, args.num_scenes)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out_dir or tmp)
        cpu0, start = _cpu_seconds(), time.perf_counter()
        generate_mini_dataset(root, args.num_scenes, seed=0, preset=args.preset, workers=workers)
        wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu0
        sizes = folder_bytes(root)
    keyframes = args.num_scenes * preset.num_keyframes
    sweeps = args.num_scenes * ((preset.num_keyframes - 1) * preset.sweeps_per_keyframe + 1)
    row = dict(preset=args.preset, scenes=args.num_scenes, keyframes=keyframes, lidar_sweeps=sweeps,
               image_size=[preset.sensors.image_width, preset.sensors.image_height],
               lidar_azimuth_res_deg=preset.sensors.lidar_azimuth_res_deg, workers=workers, wall_s=wall,
               cpu_s=cpu, keyframes_per_s=keyframes / wall, cpu_s_per_keyframe=cpu / keyframes,
               disk_mb={k: v / 1e6 for k, v in sizes.items()})
    print(f'{"preset":8} {"scenes":>6} {"keyframes":>9} {"sweeps":>6} {"workers":>7} {"wall s":>8} '
          f'{"CPU s":>8} {"kf/s":>6} {"CPU s/kf":>8} {"disk MB":>8}')
    print(f'{args.preset:8} {args.num_scenes:6d} {keyframes:9d} {sweeps:6d} {workers:7d} {wall:8.1f} '
          f'{cpu:8.1f} {row["keyframes_per_s"]:6.2f} {row["cpu_s_per_keyframe"]:8.3f} {row["disk_mb"]["total"]:8.1f}')
    print('disk MB per folder: ' + ', '.join(f'{k} {v:.1f}' for k, v in sorted(row['disk_mb'].items())))
    env = dict(cpus=os.cpu_count(), load_avg_1min_after=os.getloadavg()[0], machine=platform.machine(),
               python=platform.python_version())
    atomic_write_json(args.out, dict(environment=env, results=[row]))
    print(f'written {args.out}')


if __name__ == '__main__':
    main()
