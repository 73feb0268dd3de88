"""Read what a picture shows: one info-file sample, its occupancy GT, camera images, predictions.

Every reader validates and raises an error naming the file and the problem (missing file, missing
key, wrong shape, NaN) instead of drawing something wrong.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from drivepi.datasets.drivepi_dataset import NUSCENES_DATA_PREFIX
from drivepi.datasets.file_checks import array_problem, check_exists, read_image_file
from drivepi.fileio import read_pickle
from drivepi.geometry import CAMERA_NAMES

from .occ_grid import check_grid


@dataclass
class SampleView:
    """Everything drawn for one sample, ego frame of its keyframe.

    Attributes:
        token: sample token.
        gt_occ: (X, Y, Z) uint8 GT classes or None; gt_mask_camera: (X, Y, Z) bool or None;
        gt_flow: (X, Y, Z, 2) m/s or None; gt_traj: (T, 2) m or None.
        pred_occ / pred_flow / pred_traj: the same from a results directory, or None.
        boxes: (N, 5) ``[x, y, l, w, yaw]`` GT agent boxes in the ego frame (BEV).
        cameras: ``{CAM_*: dict(image (H, W, 3) uint8, cam2img (3, 3), cam2ego (4, 4))}``.
        command: driving command index (``drivepi.geometry.COMMANDS``) or None.
        conversations: the questions asked, lists of turns ``{question, answer, type, family}`` (``answer`` and
            ``type`` empty when there is no ground truth).
        pred_answers: the model's answers, parallel to ``conversations``, or None.
    """
    token: str
    gt_occ: Optional[np.ndarray] = None
    gt_mask_camera: Optional[np.ndarray] = None
    gt_flow: Optional[np.ndarray] = None
    gt_traj: Optional[np.ndarray] = None
    pred_occ: Optional[np.ndarray] = None
    pred_flow: Optional[np.ndarray] = None
    pred_traj: Optional[np.ndarray] = None
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))
    cameras: Dict[str, dict] = field(default_factory=dict)
    command: Optional[int] = None
    conversations: List[List[dict]] = field(default_factory=list)
    pred_answers: Optional[List[List[str]]] = None


def load_infos(info_path) -> dict:
    """Load an info ``.pkl`` (``{'metainfo', 'data_list'}``); ValueError naming the file if malformed."""
    info_path = check_exists(info_path, 'info file')
    infos = read_pickle(info_path, 'info file')
    if not isinstance(infos, dict) or not isinstance(infos.get('data_list'), list):
        raise ValueError(f"info file {info_path} has no 'data_list' list (not an mmdet3d v2 info file)")
    return infos


def find_sample(infos: dict, token: Optional[str], info_path) -> dict:
    """The info of sample ``token`` (the first sample when None); KeyError naming the file otherwise."""
    data_list = infos['data_list']
    if not data_list:
        raise ValueError(f'info file {info_path} holds no samples')
    if token is None:
        return data_list[0]
    for info in data_list:
        if info.get('token') == token:
            return info
    raise KeyError(f'sample token {token!r} is not in info file {info_path} '
                   f'({len(data_list)} samples, e.g. {data_list[0].get("token")!r})')


def load_occ_gt(path) -> Dict[str, np.ndarray]:
    """Read a ``labels.npz`` (OpenOcc with flow, or Occ3D without).

    Returns:
        ``semantics`` uint8 (200,200,16), ``mask_camera`` bool (200,200,16), ``flow`` float32
        (200,200,16,2) (zeros when the file has none).
    """
    path = check_exists(path, 'occupancy GT file')
    with np.load(path) as data:
        for key in ('semantics', 'mask_camera'):
            if key not in data:
                raise KeyError(f'occupancy GT file {path} has no {key!r} array (keys: {list(data.keys())})')
        semantics = data['semantics']
        mask = data['mask_camera']
        flow = data['flow'].astype(np.float32) if 'flow' in data else np.zeros(semantics.shape + (2,), np.float32)
    check_grid(semantics, 'semantics', str(path))
    check_grid(mask, 'mask_camera', str(path))
    check_grid(flow, 'flow', str(path), trailing=(2,))
    return dict(semantics=semantics.astype(np.uint8), mask_camera=mask.astype(bool), flow=flow)


def load_prediction(results_dir, token: str) -> Dict[str, np.ndarray]:
    """Read ``results_dir/predictions/<token>.npz`` written by ``tools/test.py --out-dir``.

    Returns:
        the arrays present among ``occ`` uint8 (200,200,16), ``flow`` float32 (200,200,16,2),
        ``traj`` float32 (T, 2), each validated; ``answers`` (lists of str) and ``conversations`` (lists of
        turn dicts) when the file has them.
    """
    path = check_exists(Path(results_dir) / 'predictions' / f'{token}.npz', 'prediction file')
    with np.load(path) as data:
        out = {k: data[k] for k in ('occ', 'flow', 'traj') if k in data}
        texts = {k: json.loads(str(data[k])) for k in ('answers', 'conversations') if k in data}
    if not out:
        raise KeyError(f"prediction file {path} holds none of 'occ', 'flow', 'traj'")
    if 'occ' in out:
        check_grid(out['occ'], 'occ', str(path))
        out['occ'] = out['occ'].astype(np.uint8)
    if 'flow' in out:
        out['flow'] = out['flow'].astype(np.float32)
        check_grid(out['flow'], 'flow', str(path), trailing=(2,))
    if 'traj' in out:
        out['traj'] = _check_traj(out['traj'], f'prediction file {path}')
    return dict(out, **texts)


def _check_traj(traj, source: str) -> np.ndarray:
    traj = np.asarray(traj, np.float32)
    problem = array_problem(traj, (None, 2))
    if problem:
        raise ValueError(f'{source}: trajectory {problem} (finite (T, 2) waypoints are needed)')
    return traj


def image_path(data_root: Path, cam: str, img_path: str) -> Path:
    """Resolve a camera's ``img_path`` under the dataset's camera prefix (``samples/<CAM>``) or,
    for a flat folder such as the nuScenes demo keyframe, directly under the data root."""
    candidates = [data_root / NUSCENES_DATA_PREFIX[cam] / img_path, data_root / img_path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f'camera image of {cam} not found: tried {[str(c) for c in candidates]}')


def load_cameras(info: dict, data_root: Path, source: str) -> Dict[str, dict]:
    """The six camera images and parameters of one sample (``CAM_*`` keys); ``source`` names the info entry's
    origin in errors."""
    images = info.get('images') or {}
    missing = [cam for cam in CAMERA_NAMES if cam not in images]
    if missing:
        raise KeyError(f'{source}: sample {info.get("token")!r} lacks cameras {missing}')
    cameras = {}
    for cam in CAMERA_NAMES:
        entry = images[cam]
        path = image_path(data_root, cam, entry['img_path'])
        cam2img = np.asarray(entry['cam2img'], np.float64)[:3, :3]
        cameras[cam] = dict(image=read_image_file(path, channel_order='rgb'), cam2img=cam2img,
                            cam2ego=np.asarray(entry['cam2ego'], np.float64), path=path)
    return cameras


def boxes_in_ego(info: dict) -> np.ndarray:
    """BEV boxes (N, 5) ``[x, y, l, w, yaw]`` of the sample's instances, LiDAR frame -> ego frame."""
    instances = info.get('instances') or []
    if not instances:
        return np.zeros((0, 5))
    boxes = np.asarray([inst['bbox_3d'] for inst in instances], np.float64).reshape(-1, 7)
    lidar2ego = np.asarray(info['lidar_points']['lidar2ego'], np.float64)
    centre = boxes[:, :3] @ lidar2ego[:3, :3].T + lidar2ego[:3, 3]
    yaw = boxes[:, 6] + np.arctan2(lidar2ego[1, 0], lidar2ego[0, 0])
    return np.concatenate([centre[:, :2], boxes[:, 3:5], yaw[:, None]], axis=1)


def sample_view_from_info(info: dict, data_root: Path, source: str, with_cameras: bool = True) -> SampleView:
    """The ground truth (occupancy, trajectory, boxes), driving command and cameras of one info entry.

    Args:
        info: an info-file entry; its ``occ_path`` and image paths are relative to ``data_root`` or absolute.
        source: where the entry comes from, for error messages (e.g. ``'info file X.pkl'``).
        with_cameras: load the six images (skip for 3D/BEV-only pictures).
    """
    view = SampleView(token=info['token'], boxes=boxes_in_ego(info), command=info.get('ego_fut_cmd'))
    if info.get('occ_path'):
        gt = load_occ_gt(data_root / info['occ_path'])
        view.gt_occ, view.gt_mask_camera, view.gt_flow = gt['semantics'], gt['mask_camera'], gt['flow']
    if info.get('ego_fut_traj') is not None:
        traj = _check_traj(info['ego_fut_traj'], source)
        mask = np.asarray(info.get('ego_fut_mask', np.ones(len(traj))), bool)
        view.gt_traj = traj[mask]
    if with_cameras:
        view.cameras = load_cameras(info, data_root, source)
    return view


def load_sample_view(info_path, token: Optional[str] = None, data_root=None, results_dir=None,
                     with_cameras: bool = True) -> SampleView:
    """Gather a :class:`SampleView` from an info file (+ data root) and an optional results directory.

    Args:
        info_path: ``*_infos_*.pkl``.
        token: sample token; the first sample of the file when None.
        data_root: root that ``occ_path`` and image paths are relative to (default: the info file's folder).
        results_dir: ``tools/test.py --out-dir`` directory (predictions, and the questions with the answers);
            GT only when None.
        with_cameras: load the six images (skip for 3D/BEV-only pictures).
    """
    info = find_sample(load_infos(info_path), token, info_path)
    data_root = Path(data_root) if data_root is not None else Path(info_path).parent
    view = sample_view_from_info(info, data_root, f'info file {info_path}', with_cameras)
    if results_dir is not None:
        pred = load_prediction(results_dir, view.token)
        view.pred_occ, view.pred_flow, view.pred_traj = pred.get('occ'), pred.get('flow'), pred.get('traj')
        view.conversations, view.pred_answers = pred.get('conversations', []), pred.get('answers')
    return view
