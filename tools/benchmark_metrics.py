"""Speed of the RayIoU ray caster: rays per second on CPU (and CUDA when available).

Casts SparseOcc's full ray set (14,040 directions from 8 origins = 112,320 rays) through a 200x200x16
grid, for an empty grid (every ray runs to the grid boundary, the slowest case), a street-like grid
(ground, buildings and vehicles), and a GT + prediction pair cast in one pass as the metric does per
sample (224,640 rays). Prints a table and writes JSON; on CUDA it also reports whether the results
equal the CPU ones.

    python tools/benchmark_metrics.py --repeats 3 --out work_dirs/benchmark_metrics.json
"""
import argparse
import platform
import time
from typing import Tuple

import numpy as np
import torch

from drivepi.evaluation.ray_casting import cast_scene_rays, lidar_ray_directions
from drivepi.geometry import FREE_INDEX, OCC_GRID


def street_grid(seed: int = 0) -> torch.Tensor:
    """A street-like occupancy class grid (OCC_GRID): road, sidewalks, building rows, 40 vehicles."""
    rng = np.random.default_rng(seed)
    grid = np.full(OCC_GRID, FREE_INDEX, np.int64)
    grid[:, :, 0:2] = 10                      # driveable surface
    grid[:, 70:85, 0:3] = 12                  # sidewalks
    grid[:, 115:130, 0:3] = 12
    grid[:, 40:70, 0:14] = 14                 # buildings
    grid[:, 130:160, 0:14] = 14
    for _ in range(40):
        x, y = rng.integers(0, 190), rng.integers(88, 110)
        grid[x:x + 10, y:y + 5, 2:6] = 0      # cars
    return torch.from_numpy(grid)


def origins() -> torch.Tensor:
    """8 LiDAR origins along the road (ego frame, m)."""
    return torch.tensor([[x, 0.0, 1.84] for x in np.linspace(-30, 30, 8)], dtype=torch.float32)


def time_cast(grid: torch.Tensor, device: str, repeats: int) -> Tuple[float, tuple]:
    """Best wall time (s) of one cast of the full ray set, and its result on the CPU."""
    grid, dirs, orig = grid.to(device), lidar_ray_directions().to(device), origins().to(device)
    result = cast_scene_rays(grid, orig, dirs, FREE_INDEX)   # warm-up
    best = float('inf')
    for _ in range(repeats):
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = cast_scene_rays(grid, orig, dirs, FREE_INDEX)
        if device == 'cuda':
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, tuple(r.cpu() for r in result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--out', default='work_dirs/benchmark_metrics.json')
    args = parser.parse_args()

    from drivepi.fileio import atomic_write_json
    devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    rows, cpu_results = [], {}
    street = street_grid()
    scenes = (('empty', torch.full(OCC_GRID, FREE_INDEX)), ('street', street),
              ('street GT+pred', torch.stack([street, street.roll(3, dims=0)])))
    for scene, grid in scenes:
        num_rays = len(lidar_ray_directions()) * len(origins()) * (len(grid) if grid.dim() == 4 else 1)
        for device in devices:
            seconds, result = time_cast(grid, device, args.repeats)
            row = dict(scene=scene, device=device, rays=num_rays, seconds=seconds, rays_per_s=num_rays / seconds)
            if device == 'cpu':
                cpu_results[scene] = result
            else:
                labels_equal = bool(torch.equal(result[0], cpu_results[scene][0]))
                depth_diff = float((result[1] - cpu_results[scene][1]).abs().max())
                row.update(equal_to_cpu=labels_equal, max_depth_diff_m=depth_diff)
            rows.append(row)
    header = f'{"scene":15} {"device":6} {"rays":>8} {"seconds":>9} {"rays/s":>12}  same as CPU'
    print(header)
    for r in rows:
        same = '' if r['device'] == 'cpu' else f"{r['equal_to_cpu']} (max depth diff {r['max_depth_diff_m']:.2e} m)"
        print(f"{r['scene']:15} {r['device']:6} {r['rays']:8d} {r['seconds']:9.3f} {r['rays_per_s']:12,.0f}  {same}")
    env = dict(torch=torch.__version__, threads=torch.get_num_threads(),
               machine=platform.processor() or platform.machine(),
               gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    atomic_write_json(args.out, dict(environment=env, results=rows))
    print(f'written {args.out}')


if __name__ == '__main__':
    main()
