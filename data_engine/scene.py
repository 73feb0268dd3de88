"""The ground truth of one keyframe that questions are asked about, in the ego frame.

:func:`load_scene` reads an info dict (``docs/contracts.md``) and its occupancy ``labels.npz``
into a :class:`SceneGT`: the semantic grid and camera mask, the annotated objects (boxes and
velocities moved from the LiDAR to the ego frame) and the ego's future trajectory, command and
status. Every question family and the verifier read only this structure.
"""
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np

from drivepi.datasets.file_checks import array_problem
from drivepi.geometry import OCC_RANGE, OCC_VOXEL_SIZE, OPENOCC_CLASSES
from drivepi.visualization.occ_grid import check_grid

NUM_FUTURE_STEPS = 6
STEP_SECONDS = 0.5


def display_name(class_name: str) -> str:
    """The class name as answers spell it: ``driveable_surface`` -> ``driveable surface``."""
    return class_name.replace('_', ' ')


@dataclass
class ObjectSet:
    """Annotated objects in the ego frame (N objects).

    Attributes:
        centers: float64 (N, 3) box centres (x, y, z of the box middle), m.
        sizes: float64 (N, 3) box length, width, height, m.
        yaws: float64 (N,) heading around z, rad.
        velocities: float64 (N, 2) (vx, vy) m/s, NaN where the annotation has none.
        names: list of N class names (nuScenes detection classes).
        tokens: list of N instance tokens (``'obj<i>'`` when the info has none).
    """
    centers: np.ndarray
    sizes: np.ndarray
    yaws: np.ndarray
    velocities: np.ndarray
    names: list
    tokens: list

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class SceneGT:
    """Ground truth of one keyframe (see module docstring).

    Attributes:
        token: sample token.
        occ_classes: class names, index = semantic label (the last one is ``free``).
        semantics: uint8 (X, Y, Z) labels, or None when the dataset has no occupancy GT.
        mask_camera: bool (X, Y, Z) camera visibility, or None.
        objects: the annotated objects.
        fut_traj: float32 (6, 2) future ego (x, y), m; fut_mask: float32 (6,) 1 = valid.
        command: 0 turn right, 1 turn left, 2 go straight.
        ego_status: float32 (5,) vx, vy (m/s), ax, ay (m/s^2), yaw rate (rad/s).
        images: the info's ``images`` dict (camera name -> ``img_path``, ...), for VLM captioners.
        data_root: the directory the info's relative paths start from.
    """
    token: str
    occ_classes: tuple
    semantics: Optional[np.ndarray]
    mask_camera: Optional[np.ndarray]
    objects: ObjectSet
    fut_traj: np.ndarray
    fut_mask: np.ndarray
    command: int
    ego_status: np.ndarray
    images: dict = field(default_factory=dict)
    data_root: Path = Path('.')
    pc_range: tuple = OCC_RANGE
    voxel_size: float = OCC_VOXEL_SIZE

    @property
    def free_label(self) -> int:
        return len(self.occ_classes) - 1

    @property
    def ego_speed(self) -> float:
        """Current ego speed, m/s."""
        return float(np.hypot(self.ego_status[0], self.ego_status[1]))


def _array(info: dict, key: str, shape: tuple, source: str, dtype=np.float32) -> np.ndarray:
    if key not in info:
        raise KeyError(f'{source}: info has no "{key}" (create the infos with tools/create_data.py)')
    value = np.asarray(info[key], dtype=dtype)
    problem = array_problem(value, shape)
    if problem:
        raise ValueError(f'{source}: "{key}" {problem} (finite values of shape {shape} are needed)')
    return value


def objects_in_ego(instances: list, lidar2ego: np.ndarray, label_names: dict, source: str) -> ObjectSet:
    """Move info ``instances`` (LiDAR-frame ``bbox_3d`` with the z at the box bottom) to the ego frame.

    Left out: instances flagged ``bbox_3d_isvalid=False`` (no LiDAR/radar point) and those of
    classes outside the detection set (``bbox_label_3d == -1``, as mmdet3d writes them).
    """
    kept = [inst for inst in instances if inst.get('bbox_3d_isvalid', True) and inst['bbox_label_3d'] != -1]
    boxes = np.asarray([inst['bbox_3d'] for inst in kept], dtype=np.float64).reshape(-1, 7)
    if not np.isfinite(boxes).all():
        raise ValueError(f'{source}: an instance bbox_3d holds NaN or inf')
    rot, trans = lidar2ego[:3, :3], lidar2ego[:3, 3]
    middles = boxes[:, :3] + np.c_[np.zeros((len(boxes), 2)), boxes[:, 5] / 2]
    velocities = np.asarray([inst.get('velocity', [np.nan, np.nan])[:2] for inst in kept],
                            dtype=np.float64).reshape(-1, 2)
    unknown = set(inst['bbox_label_3d'] for inst in kept) - set(label_names)
    if unknown:
        raise ValueError(f'{source}: instance labels {sorted(unknown)} are not in metainfo categories')
    return ObjectSet(centers=middles @ rot.T + trans, sizes=boxes[:, 3:6],
                     yaws=boxes[:, 6] + np.arctan2(rot[1, 0], rot[0, 0]),
                     velocities=velocities @ rot[:2, :2].T,
                     names=[label_names[inst['bbox_label_3d']] for inst in kept],
                     tokens=[inst.get('instance_token', f'obj{i}') for i, inst in enumerate(kept)])


def load_occupancy(path: Path, num_classes: int) -> Tuple[np.ndarray, np.ndarray]:
    """Read ``semantics`` (uint8) and ``mask_camera`` (bool) of a ``labels.npz``; validate them."""
    if not path.is_file():
        raise FileNotFoundError(f'occupancy GT file not found: {path}')
    try:
        with np.load(path) as npz:
            arrays = {key: npz[key] for key in ('semantics', 'mask_camera') if key in npz.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f'occupancy GT file {path} is unreadable or truncated: {err}') from err
    if len(arrays) < 2:
        raise ValueError(f'occupancy GT file {path} lacks "semantics" or "mask_camera"')
    semantics, mask_camera = arrays['semantics'], arrays['mask_camera']
    check_grid(semantics, 'semantics', str(path))
    check_grid(mask_camera, 'mask_camera', str(path))
    if semantics.max() >= num_classes:
        raise ValueError(f'occupancy GT file {path}: label {semantics.max()} >= {num_classes} classes')
    return semantics.astype(np.uint8, copy=False), mask_camera.astype(bool)


def load_scene(info: dict, data_root: Union[str, os.PathLike], metainfo: dict) -> SceneGT:
    """Build the :class:`SceneGT` of one info dict.

    Args:
        info: one ``data_list`` entry of a DrivePI info file.
        data_root: the directory ``occ_path`` and image paths are relative to.
        metainfo: the info file's ``metainfo`` (``categories``, optional ``occ_classes``).
    Raises:
        KeyError / ValueError / FileNotFoundError naming the sample and the problem.
    """
    token = info.get('token')
    source = f'sample {token!r}'
    occ_classes = tuple(metainfo.get('occ_classes', OPENOCC_CLASSES))
    occ_path = info.get('occ_path', '')
    semantics = mask_camera = None
    if occ_path:
        semantics, mask_camera = load_occupancy(Path(data_root) / occ_path, len(occ_classes))
    label_names = {label: name for name, label in metainfo['categories'].items()}
    lidar2ego = _array(info.get('lidar_points', {}), 'lidar2ego', (4, 4), source, np.float64)
    return SceneGT(
        token=token, occ_classes=occ_classes, semantics=semantics, mask_camera=mask_camera,
        objects=objects_in_ego(info.get('instances', []), lidar2ego, label_names, source),
        fut_traj=_array(info, 'ego_fut_traj', (NUM_FUTURE_STEPS, 2), source),
        fut_mask=_array(info, 'ego_fut_mask', (NUM_FUTURE_STEPS,), source),
        command=int(_array(info, 'ego_fut_cmd', (), source, np.int64)),
        ego_status=_array(info, 'ego_status', (5,), source),
        images=info.get('images', {}), data_root=Path(data_root))
