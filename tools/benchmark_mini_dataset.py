"""Generation speed and disk size of the mini dataset per ray-casting backend and worker count: prints a table
(scenes per minute) and writes JSON.

    python tools/benchmark_mini_dataset.py --num-scenes 10 --preset default --ray-backend embree torch \
        --workers 1 2 --out work_dirs/benchmark_mini_dataset.json
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
from drivepi.sim.ray_backends import RAY_BACKENDS, get_ray_backend, resolve_ray_backend


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


def measure(num_scenes: int, preset: str, ray_backend: str, workers: int, out_dir: Path) -> dict:
    """Generate ``num_scenes`` scenes into ``out_dir`` and return the result row (times, rates, disk sizes)."""
    cfg = PRESETS[preset]
    backend = get_ray_backend(ray_backend)
    cpu0, start = _cpu_seconds(), time.perf_counter()
    generate_mini_dataset(out_dir, num_scenes, seed=0, preset=preset, workers=workers, ray_backend=ray_backend)
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu0
    keyframes = num_scenes * cfg.num_keyframes
    return dict(preset=preset, ray_backend=backend.name, device=str(backend.device), scenes=num_scenes,
                keyframes=keyframes, lidar_sweeps=num_scenes * ((cfg.num_keyframes - 1) * cfg.sweeps_per_keyframe + 1),
                image_size=[cfg.sensors.image_width, cfg.sensors.image_height],
                lidar_azimuth_res_deg=cfg.sensors.lidar_azimuth_res_deg, workers=workers, wall_s=wall, cpu_s=cpu,
                scenes_per_min=60 * num_scenes / wall, keyframes_per_s=keyframes / wall,
                cpu_s_per_keyframe=cpu / keyframes, disk_mb={k: v / 1e6 for k, v in folder_bytes(out_dir).items()})


def print_table(rows: list) -> None:
    print(f'\n{"preset":8} {"backend":7} {"device":6} {"workers":>7} {"scenes":>6} {"keyframes":>9} {"wall s":>8} '
          f'{"CPU s":>8} {"scenes/min":>10} {"kf/s":>6} {"CPU s/kf":>8} {"disk MB":>8}')
    for r in rows:
        print(f'{r["preset"]:8} {r["ray_backend"]:7} {r["device"]:6} {r["workers"]:7d} {r["scenes"]:6d} '
              f'{r["keyframes"]:9d} {r["wall_s"]:8.1f} {r["cpu_s"]:8.1f} {r["scenes_per_min"]:10.2f} '
              f'{r["keyframes_per_s"]:6.2f} {r["cpu_s_per_keyframe"]:8.3f} {r["disk_mb"]["total"]:8.1f}')
    print('disk MB per folder: ' + ', '.join(f'{k} {v:.1f}' for k, v in sorted(rows[0]['disk_mb'].items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--num-scenes', type=int, default=10)
    parser.add_argument('--preset', default='default', choices=sorted(PRESETS))
    parser.add_argument('--ray-backend', nargs='+', default=['auto'], choices=RAY_BACKENDS,
                        help='one row per backend (x workers)')
    parser.add_argument('--workers', nargs='+', type=int, default=None,
                        help="one row per process count (default: the preset's)")
    parser.add_argument('--out-dir', default=None,
                        help='where to generate, a sub-folder per row (default: a temporary folder)')
    parser.add_argument('--out', default='work_dirs/benchmark_mini_dataset.json')
    args = parser.parse_args()
    for name in args.ray_backend:   # an unknown or unavailable backend fails before any row is measured
        resolve_ray_backend(name)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.ray_backend:
            for workers in args.workers or [PRESETS[args.preset].workers]:
                workers = min(workers, args.num_scenes)
                out_dir = Path(args.out_dir or tmp) / f'{backend}-w{workers}'
                rows.append(measure(args.num_scenes, args.preset, backend, workers, out_dir))
    print_table(rows)
    env = dict(cpus=os.cpu_count(), load_avg_1min_after=os.getloadavg()[0], machine=platform.machine(),
               python=platform.python_version())
    atomic_write_json(args.out, dict(environment=env, results=rows))
    print(f'written {args.out}')


if __name__ == '__main__':
    main()
