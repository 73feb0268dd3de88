"""Benchmark the LiDAR branch with Ada3D voxel filtering on and off.

Reads ``model.lidar_branch`` from a DrivePI config, feeds the real nuScenes demo sweep (moved to the ego
frame; ``--num-sweeps`` > 1 stacks copies of it shifted as if the ego drove 5 m/s, 0.05 s apart, to
reach multi-sweep point counts), and measures per variant: non-empty voxels, kept voxels and
``voxel_keep_ratio``, active voxels after each sparse encoder layer, BEV cells with LiDAR features,
latency of the whole branch and of each stage (median / mean over ``--iters`` after ``--warmup``;
inference, ``torch.no_grad``), of a training pass (forward and backward of the branch in training mode, as at
training batch 4 with ``--batch-size 4``), on a GPU the kernel time of both passes (what the branch costs the GPU
whatever the host does), and peak CUDA memory.
Prints a table and writes JSON atomically.

    python tools/benchmark_lidar.py configs/_base_/models/drivepi_qwen2.5-0.5b.py --device cuda \
        --num-sweeps 1 10 --out work_dirs/benchmark_lidar.json
"""
import argparse
import platform
import statistics
from pathlib import Path

import torch
from mmengine.config import DictAction

from drivepi.benchmarking import (
    DEFAULT_DEMO_DIR,
    gpu_kernel_ms,
    load_demo_sweep,
    module_timing_hooks,
    stack_sweeps,
    timed_runs,
)
from drivepi.fileio import atomic_write_json
from drivepi.registry import MODELS
from drivepi.utils import load_config, register_all_modules

STAGES = ('voxelizer', 'importance_predictor', 'voxel_filter', 'backbone')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='DrivePI config with model.lidar_branch')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--num-sweeps', type=int, nargs='+', default=[1, 10], help='point-cloud sizes to run')
    parser.add_argument('--batch-size', type=int, default=1, help='copies of the point cloud per forward pass')
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--demo-dir', type=Path, default=DEFAULT_DEMO_DIR, help='nuScenes demo keyframe folder')
    parser.add_argument('--out', type=Path, default=Path('work_dirs/benchmark_lidar.json'))
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.lidar_branch.voxel_filter.keep_ratios=[0.3,0.5,0.8]')
    return parser.parse_args()


def run_variant(cfg: dict, points: torch.Tensor, batch_size: int, device: torch.device, iters: int,
                warmup: int) -> dict:
    """Latency and voxel statistics of one LiDAR branch config on ``batch_size`` copies of a point cloud.

    The whole-branch latency is measured without stage hooks (no extra synchronisation); the stage
    latencies come from a second series of runs with synchronising hooks.
    """
    torch.manual_seed(0)
    branch = MODELS.build(cfg).to(device).eval()
    batch = [points.to(device)] * batch_size
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad():
        totals = timed_runs(lambda: branch(batch), device, iters, warmup)
        stage_times, encoder_voxels = {}, []
        handles = module_timing_hooks({name: getattr(branch, name) for name in STAGES}, device, stage_times)
        timed_runs(lambda: branch(batch), device, iters, 0)
        handles += [layer.register_forward_hook(lambda m, a, out: encoder_voxels.append(out.features.shape[0]))
                    for layer in branch.backbone.encoder]
        _, aux = branch(batch)
    for handle in handles:
        handle.remove()
    inference_peak_mb = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == 'cuda' else None
    training = timed_runs(lambda: training_pass(branch, batch), device, iters, warmup)
    result = dict(num_points=len(points), num_voxels=int(aux['num_voxels']),
                  num_kept_voxels=int(aux['num_kept_voxels']),
                  voxel_keep_ratio=float(aux['voxel_keep_ratio']), bev_active_ratio=float(aux['bev_active_ratio']),
                  latency_ms_median=1e3 * statistics.median(totals), latency_ms_mean=1e3 * statistics.mean(totals),
                  stage_ms_median={name: 1e3 * statistics.median(t) for name, t in stage_times.items()},
                  encoder_layer_voxels=encoder_voxels, train_ms_median=1e3 * statistics.median(training))
    if device.type == 'cuda':
        result['peak_memory_mb'] = inference_peak_mb  # of the inference passes (read before the training pass)
        with torch.no_grad():
            result['kernel_ms'] = gpu_kernel_ms(lambda: branch.eval()(batch))
        result['train_kernel_ms'] = gpu_kernel_ms(lambda: training_pass(branch, batch))
    return result


def training_pass(branch: torch.nn.Module, batch: list) -> None:
    """Forward and backward of ``branch`` in training mode (the BEV features' mean as the loss; no
    occupancy targets, so no importance loss)."""
    branch.train()
    bev, _ = branch(batch)
    bev.float().mean().backward()


def print_table(rows: list) -> None:
    header = ['sweeps', 'ada3d', 'points', 'voxels', 'kept', 'keep_ratio', 'bev_active', 'ms_median', 'ms_mean',
              'voxelize_ms', 'predict_ms', 'filter_ms', 'backbone_ms', 'kernel_ms', 'train_ms', 'train_kern_ms',
              'peak_MB']
    print(' | '.join(f'{h:>11}' for h in header))
    for r in rows:
        stages = [f"{r['stage_ms_median'].get(stage, 0.0):.2f}" for stage in STAGES]
        values = [r['num_sweeps'], 'on' if r['filter'] else 'off', r['num_points'], r['num_voxels'],
                  r['num_kept_voxels'], f"{r['voxel_keep_ratio']:.3f}", f"{r['bev_active_ratio']:.3f}",
                  f"{r['latency_ms_median']:.1f}", f"{r['latency_ms_mean']:.1f}", *stages,
                  f"{r.get('kernel_ms', float('nan')):.2f}", f"{r['train_ms_median']:.1f}",
                  f"{r.get('train_kernel_ms', float('nan')):.2f}", f"{r.get('peak_memory_mb', float('nan')):.0f}"]
        print(' | '.join(f'{v:>11}' for v in values))
    for r in rows:
        print(f"active voxels per encoder layer, {r['num_sweeps']} sweeps, Ada3D {'on' if r['filter'] else 'off'}: "
              f"{r['encoder_layer_voxels']}")


def main() -> None:
    args = parse_args()
    register_all_modules()
    cfg = load_config(args.config, args.cfg_options)
    branch_cfg = cfg.model['lidar_branch'].to_dict()
    if branch_cfg.get('voxel_filter') is None:
        raise ValueError(f'{args.config}: model.lidar_branch has no voxel_filter, nothing to compare')
    variants = {True: branch_cfg, False: dict(branch_cfg, importance_predictor=None, voxel_filter=None)}
    device = torch.device(args.device)
    sweep = load_demo_sweep(args.demo_dir)
    rows = []
    for num_sweeps in args.num_sweeps:
        points = stack_sweeps(sweep, num_sweeps)
        for filter_on, variant in variants.items():
            rows.append(dict(num_sweeps=num_sweeps, filter=filter_on,
                             **run_variant(variant, points, args.batch_size, device, args.iters, args.warmup)))
    print_table(rows)
    report = dict(config=str(args.config), device=str(device),
                  device_name=torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor(),
                  torch=torch.__version__, batch_size=args.batch_size, iters=args.iters, warmup=args.warmup,
                  lidar_branch=branch_cfg, results=rows)
    atomic_write_json(args.out, report)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
