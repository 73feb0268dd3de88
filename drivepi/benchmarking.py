"""Inputs and clocks shared by the benchmark scripts in ``tools/``.

The point cloud is the real nuScenes demo sweep; several sweeps are stacked copies shifted by the ego
motion between them, so multi-sweep point counts and densities are realistic without the dataset.
"""
import pickle
import time
from pathlib import Path

import numpy as np
import torch

DEFAULT_DEMO_DIR = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'nuscenes_demo'
SWEEP_INTERVAL_S, EGO_SPEED_MPS = 0.05, 5.0


def load_demo_sweep(demo_dir: Path) -> np.ndarray:
    """The demo LIDAR_TOP sweep in the ego frame, ``(N, 5)`` ``[x, y, z, intensity, 0]``."""
    infos = sorted(Path(demo_dir).glob('*.pkl'))
    if len(infos) != 1:
        raise FileNotFoundError(f'{demo_dir}: expected one demo info .pkl, found {[p.name for p in infos]}')
    info = pickle.loads(infos[0].read_bytes())['data_list'][0]
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
