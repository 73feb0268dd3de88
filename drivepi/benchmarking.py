"""Inputs, models and clocks shared by the benchmark scripts in ``tools/``.

The point cloud is the real nuScenes demo sweep; several sweeps are stacked copies shifted by the ego
motion between them, so multi-sweep point counts and densities are realistic without the dataset.
Camera images are random with the real nuScenes calibration; training GT is random.
"""
import statistics
import time
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch
from mmdet3d.structures import Det3DDataSample
from mmengine.config import Config

from drivepi.fileio import read_pickle
from drivepi.registry import MODELS
from drivepi.sim.calibration import camera_calibs

DEFAULT_DEMO_DIR = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'nuscenes_demo'
SWEEP_INTERVAL_S, EGO_SPEED_MPS = 0.05, 5.0

# Redundancy-filter settings of the accuracy-vs-speed table (docs/benchmarks.md), as 'TOKEN/V_NEAR,V_MID,V_FAR':
# the BEV token keep ratio and the Ada3D voxel keep ratios of the three range rings. The token sweep holds the
# mini configs' voxel ratios, the voxel sweep their token ratio (0.25); the last setting filters nothing.
FILTER_SETTINGS = ('0.1/0.4,0.7,1', '0.2/0.4,0.7,1', '0.25/0.4,0.7,1', '0.5/0.4,0.7,1', '1/0.4,0.7,1',
                   '0.25/1,1,1', '0.25/0.3,0.6,0.9', '0.25/0.2,0.4,0.6', '1/1,1,1')


def parse_filter_setting(setting: str) -> tuple:
    """``'0.25/0.4,0.7,1'`` -> ``(0.25, [0.4, 0.7, 1.0])`` (token keep ratio, voxel keep ratio per ring)."""
    try:
        token, voxels = setting.split('/')
        return float(token), [float(r) for r in voxels.split(',')]
    except ValueError as exc:
        raise ValueError(f"filter setting {setting!r} is not 'TOKEN_RATIO/V1,V2,V3' (e.g. '0.25/0.4,0.7,1')") from exc


def load_demo_sweep(demo_dir: Path) -> np.ndarray:
    """The demo LIDAR_TOP sweep in the ego frame, ``(N, 5)`` ``[x, y, z, intensity, 0]``."""
    infos = sorted(Path(demo_dir).glob('*.pkl'))
    if len(infos) != 1:
        raise FileNotFoundError(f'{demo_dir}: expected one demo info .pkl, found {[p.name for p in infos]}')
    info = read_pickle(infos[0], 'demo info file')['data_list'][0]
    path = Path(demo_dir) / info['lidar_points']['lidar_path']
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size == 0 or raw.size % 5:
        raise ValueError(f'{path}: {raw.size} float32 values is not a non-empty (N, 5) point cloud')
    raw = raw.reshape(-1, 5)
    lidar2ego = np.asarray(info['lidar_points']['lidar2ego'], dtype=np.float64)
    xyz = raw[:, :3] @ lidar2ego[:3, :3].T + lidar2ego[:3, 3]
    return np.concatenate([xyz, raw[:, 3:4], np.zeros((len(raw), 1))], axis=1).astype(np.float32)


def stack_sweeps(sweep: np.ndarray, num_sweeps: int) -> torch.Tensor:
    """``num_sweeps`` copies of a sweep, copy k shifted back by the ego motion of k intervals, time lag k*dt."""
    copies = []
    for k in range(num_sweeps):
        copy = sweep.copy()
        copy[:, 0] -= k * SWEEP_INTERVAL_S * EGO_SPEED_MPS
        copy[:, 4] = k * SWEEP_INTERVAL_S
        copies.append(copy)
    return torch.from_numpy(np.concatenate(copies))


def synchronized_clock(device: torch.device) -> float:
    """``time.perf_counter()`` after waiting for the device's queued work."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return time.perf_counter()


def timed_runs(fn, device: torch.device, iters: int, warmup: int) -> list:
    """Wall times (s) of ``iters`` synchronised calls of ``fn()`` after ``warmup`` untimed ones."""
    times = []
    for i in range(warmup + iters):
        start = synchronized_clock(device)
        fn()
        if i >= warmup:
            times.append(synchronized_clock(device) - start)
    return times


def median_ms(fn, device: torch.device, iters: int, warmup: int) -> float:
    """Median wall time (ms) of ``fn()`` over ``iters`` synchronised runs after ``warmup`` runs."""
    return 1e3 * statistics.median(timed_runs(fn, device, iters, warmup))


def kernel_table(fn, runs: int = 5) -> List[Tuple[str, float, float]]:
    """GPU kernels (and copies) per ``fn()`` by name, most device time first: (name, calls, ms), from
    torch.profiler over ``runs`` calls after one untimed call."""
    from torch.profiler import ProfilerActivity, profile
    fn()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(runs):
            fn()
        torch.cuda.synchronize()
    kernels = [e for e in prof.key_averages() if getattr(e, 'self_device_time_total', 0) > 0]
    return sorted(((e.key, e.count / runs, e.self_device_time_total / 1e3 / runs) for e in kernels),
                  key=lambda row: -row[2])


def kernel_totals(table: List[Tuple[str, float, float]]) -> Tuple[float, float]:
    """(kernel count, kernel ms summed over kernels, so kernels of two streams that overlap count twice) of a
    :func:`kernel_table`."""
    return sum(calls for _, calls, _ in table), sum(ms for _, _, ms in table)


def gpu_kernels(fn, runs: int = 5) -> Tuple[float, float]:
    """GPU kernels per ``fn()``: :func:`kernel_totals` of its :func:`kernel_table`."""
    return kernel_totals(kernel_table(fn, runs))


def gpu_kernel_ms(fn, runs: int = 5) -> float:
    """GPU kernel ms per ``fn()`` (:func:`gpu_kernels`)."""
    return gpu_kernels(fn, runs)[1]


def module_timing_hooks(modules: dict, device: torch.device, times: dict) -> list:
    """Synchronising forward hooks that append each call's duration (s) of ``modules[name]`` to
    ``times[name]``; ``None`` modules are skipped. Returns the hook handles (``.remove()`` them)."""
    start, handles = {}, []
    for name, module in modules.items():
        if module is None:
            continue
        handles.append(module.register_forward_pre_hook(
            lambda m, a, name=name: start.__setitem__(name, synchronized_clock(device))))
        handles.append(module.register_forward_hook(
            lambda m, a, o, name=name: times.setdefault(name, []).append(synchronized_clock(device) - start[name])))
    return handles


def ego2img_matrices(height: int, width: int) -> np.ndarray:
    """(6, 4, 4) ego -> image projections of the nuScenes cameras resized to ``width`` and cropped
    from the top to ``height`` (the usual 256x704 recipe)."""
    full_height = round(width * 900 / 1600)
    mats = []
    for calib in camera_calibs(width, full_height).values():
        intrinsic = np.eye(4)
        intrinsic[:3, :3] = calib.intrinsic
        intrinsic[1, 2] -= full_height - height
        mats.append(intrinsic @ np.linalg.inv(calib.cam2ego))
    return np.stack(mats).astype(np.float32)


def make_batch(points: torch.Tensor, batch_size: int, img_size: tuple, grid: tuple, device: torch.device,
               with_gt: bool) -> tuple:
    """(inputs, data_samples) as ``Det3DDataPreprocessor`` would hand them to the model.

    Args:
        points: (N, 5) one frame's points, ego frame; every sample gets the same cloud.
        img_size: (H, W) of the six camera images.
        grid: occupancy grid (X, Y, Z) of the random training GT.
    """
    generator = torch.Generator().manual_seed(0)
    imgs = torch.randn(batch_size, 6, 3, *img_size, generator=generator).to(device)
    samples = []
    for _ in range(batch_size):
        sample = Det3DDataSample(metainfo=dict(
            ego2img=ego2img_matrices(*img_size), cam_valid=np.ones(6, dtype=bool), ego_fut_cmd=2,
            ego_status=np.array([5.0, 0.0, 0.2, 0.0, 0.01], dtype=np.float32)))
        if with_gt:
            sample.gt_occ = torch.randint(0, 17, grid, generator=generator)
            sample.gt_flow = torch.randn(*grid, 2, generator=generator)
            sample.gt_mask_camera = torch.ones(grid, dtype=torch.bool)
            sample.gt_traj = torch.cumsum(torch.full((6, 2), 0.5), 0) * torch.tensor([5.0, 0.1])
            sample.gt_traj_mask = torch.ones(6)
            sample.gt_fut_boxes = [torch.tensor([[10.0, 3.0, 0.0, 4.5, 1.9, 1.6, 0.0]])] * 6
            sample.conversations = [[dict(question='Is there a car 10 m ahead?', answer='yes', type='exist')]]
        samples.append(sample)
    return dict(points=[points.to(device)] * batch_size, imgs=imgs), samples


def build_model(cfg: Config, tokenizer: str, device: torch.device, **overrides) -> torch.nn.Module:
    """The config's DrivePI on ``device`` with the LLM tokenizer at ``tokenizer`` (random init where the
    config's LLM path holds no weights); ``overrides`` update top-level model entries (dicts merge)."""
    model_cfg = cfg.model.to_dict()
    model_cfg['llm'] = dict(model_cfg['llm'], tokenizer_path=tokenizer)
    for key, value in overrides.items():
        model_cfg[key] = dict(model_cfg[key], **value) if isinstance(value, dict) else value
    torch.manual_seed(0)
    return MODELS.build(model_cfg).to(device)
