"""Speed of the occupancy pictures: scene building, headless open3d renders, the full sample figure.

Uses a real sample when ``--info`` is given (GT of its ``labels.npz``; the figure adds its six
cameras), else a street-like synthetic grid. Prints a table and writes JSON.

    python tools/benchmark_visualization.py --info data/drivepi-mini/drivepi_infos_val.pkl \
        --repeats 3 --out work_dirs/benchmark_visualization.json
"""
import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from drivepi.fileio import atomic_write_json
from drivepi.geometry import FREE_INDEX, OCC_GRID
from drivepi.visualization.figure import render_sample
from drivepi.visualization.render import CHASE_VIEW, TOP_VIEW, render_offscreen
from drivepi.visualization.sample_io import SampleView, load_sample_view
from drivepi.visualization.scene import build_scene


def street_view(seed: int = 0) -> SampleView:
    """A synthetic sample: road, sidewalks, two building rows, 40 moving cars, no cameras."""
    rng = np.random.default_rng(seed)
    sem = np.full(OCC_GRID, FREE_INDEX, np.uint8)
    sem[:, :, 0:2] = 10
    sem[:, 70:85, 0:3] = 12
    sem[:, 115:130, 0:3] = 12
    sem[:, 40:70, 0:14] = 14
    sem[:, 130:160, 0:14] = 14
    flow = np.zeros(OCC_GRID + (2,), np.float32)
    for _ in range(40):
        x, y = rng.integers(0, 190), rng.integers(88, 110)
        sem[x:x + 10, y:y + 5, 2:6] = 0
        flow[x:x + 10, y:y + 5, 2:6] = (rng.uniform(-8, 8), 0.0)
    traj = np.stack([np.arange(1, 7) * 2.5, np.zeros(6)], 1)
    return SampleView(token='synthetic', gt_occ=sem, gt_flow=flow, gt_mask_camera=np.ones_like(sem, bool),
                      gt_traj=traj)


def best_of(fn, repeats: int) -> float:
    """Fastest wall time (s) of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--info', help='info file; its first sample is drawn (default: synthetic grid)')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--out', default='work_dirs/benchmark_visualization.json')
    args = parser.parse_args()
    view = load_sample_view(args.info) if args.info else street_view()
    items = build_scene(view.gt_occ, view.gt_flow, {}, view.gt_mask_camera)
    results = dict(sample=view.token, triangles=len(items[0].geometry.triangles),
                   occupied_voxels=int((view.gt_occ != FREE_INDEX).sum()), repeats=args.repeats,
                   cpu=platform.processor() or platform.machine(), cpu_count=os.cpu_count())
    results['build_scene_s'] = best_of(lambda: build_scene(view.gt_occ, view.gt_flow, {}, view.gt_mask_camera),
                                       args.repeats)
    results['render_chase_640x480_s'] = best_of(lambda: render_offscreen(items, 640, 480, CHASE_VIEW), args.repeats)
    results['render_top_800x800_s'] = best_of(lambda: render_offscreen(items, 800, 800, TOP_VIEW), args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        results['sample_figure_png_s'] = best_of(lambda: render_sample(view, Path(tmp) / 'sample.png'), args.repeats)
    print(f"{'measure':<26} | value")
    print('-' * 27 + '+' + '-' * 12)
    for key, value in results.items():
        print(f'{key:<26} | {value:.3f}' if isinstance(value, float) else f'{key:<26} | {value}')
    atomic_write_json(args.out, results)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
