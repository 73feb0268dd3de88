"""A scene of one's own as raw files: the calibration JSON, its writer from an info entry, and the data info
(the test pipeline's input) built from the files and the calibration.

Calibration format ``drivepi-calibration/1`` (4x4 homogeneous transforms as row-major nested lists, metres and
seconds; frames as in docs/contracts.md)::

    {
      "format": "drivepi-calibration/1",
      "lidar2ego": [[4x4]],                     # keyframe LiDAR -> ego (rear-axle centre, x forward, z up)
      "cameras": {                              # the six CAM_* of drivepi.geometry.CAMERA_NAMES
        "CAM_FRONT": {"cam2ego": [[4x4]],       # camera (x right, y down, z forward) -> ego; "sensor2ego" also read
                      "intrinsics": [[3x3]]},   # pixels of the image file as stored
        ...},
      "token": "my-scene-0001",                 # optional: names the predictions (default: LiDAR file name stem)
      "timestamp": 1532402927.65,               # optional: keyframe time (s), what sweep times count from; 0
      "sweeps": [                               # optional: one entry per sweep file, in the order given
        {"lidar2sensor": [[4x4]],               #   keyframe LiDAR -> that sweep's LiDAR (ego motion included),
         "timestamp": 1532402927.60}],          #   as mmdet3d v2 infos store it; the sweep's time (s)
      "ego2global": [[4x4]],                    # optional: identity
      "command": "go straight",                 # optional: one of drivepi.geometry.COMMANDS or its index
      "ego_status": [vx, vy, ax, ay, yaw_rate]  # optional: m/s, m/s^2, rad/s in the ego frame; zeros
    }

``write_calibration(info, path)`` writes the calibration of an info-file entry (e.g. a real nuScenes keyframe),
so its raw files and that JSON reproduce the dataset's inputs exactly.
"""
import json
from pathlib import Path
from typing import Dict, Sequence, Union

import numpy as np

from drivepi.datasets.file_checks import array_problem, check_exists
from drivepi.fileio import atomic_write_json
from drivepi.geometry import CAMERA_NAMES, COMMANDS, GO_STRAIGHT

CALIBRATION_FORMAT = 'drivepi-calibration/1'
EGO_STATUS_DIM = 5  # vx, vy, ax, ay, yaw_rate


def calibration_from_info(info: dict) -> dict:
    """The ``drivepi-calibration/1`` dict of an info-file entry (mmdet3d v2 keys; DrivePI's ``ego_fut_cmd``
    and ``ego_status`` when present)."""
    calib = dict(format=CALIBRATION_FORMAT, token=info['token'], timestamp=float(info.get('timestamp', 0.0)),
                 lidar2ego=np.asarray(info['lidar_points']['lidar2ego'], np.float64).tolist(),
                 ego2global=np.asarray(info.get('ego2global', np.eye(4)), np.float64).tolist(),
                 cameras={cam: dict(cam2ego=np.asarray(entry['cam2ego'], np.float64).tolist(),
                                    intrinsics=np.asarray(entry['cam2img'], np.float64)[:3, :3].tolist())
                          for cam, entry in info['images'].items()},
                 sweeps=[dict(lidar2sensor=np.asarray(sweep['lidar_points']['lidar2sensor'], np.float64).tolist(),
                              timestamp=float(sweep['timestamp'])) for sweep in info.get('lidar_sweeps', [])])
    if 'ego_fut_cmd' in info:
        calib['command'] = COMMANDS[int(info['ego_fut_cmd'])]
    if 'ego_status' in info:
        calib['ego_status'] = np.asarray(info['ego_status'], np.float64).tolist()
    return calib


def write_calibration(info: dict, path) -> Path:
    """Write :func:`calibration_from_info` as JSON to ``path`` (atomically); returns the path."""
    atomic_write_json(path, calibration_from_info(info))
    return Path(path)


def _matrix(value, shape: tuple, where: str) -> np.ndarray:
    """``value`` as a float64 matrix of ``shape``; ValueError naming ``where`` and what is wrong (a missing value,
    the shape, NaN or inf and where)."""
    if value is None:
        raise ValueError(f'{where} is missing (a {shape[0]}x{shape[1]} matrix is needed)')
    try:
        matrix = np.asarray(value, np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f'{where} is not a {shape[0]}x{shape[1]} matrix of numbers ({err})') from err
    problem = array_problem(matrix, shape)
    if problem:
        raise ValueError(f'{where} {problem} (a finite {shape[0]}x{shape[1]} matrix is needed)')
    return matrix


def _command(value, where: str) -> int:
    """A driving command index from its name or index."""
    index = COMMANDS.index(value) if value in COMMANDS else value
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(COMMANDS):
        raise ValueError(f'{where}: command must be one of {COMMANDS} or 0..{len(COMMANDS) - 1}, got {value!r}')
    return index


def load_calibration(calibration: Union[str, Path, dict]) -> dict:
    """Read and check a ``drivepi-calibration/1`` file (or dict).

    Returns:
        ``lidar2ego``, ``ego2global`` (4, 4) float64; ``cameras`` ``{CAM_*: dict(cam2ego (4, 4), intrinsics
        (3, 3))}``; ``sweeps`` list of ``dict(lidar2sensor (4, 4), timestamp)``; ``token`` (str or None);
        ``timestamp`` (s); ``command`` (int); ``ego_status`` float32 (5,).

    Raises:
        FileNotFoundError / ValueError naming the file and the problem.
    """
    source = 'calibration dict'
    if not isinstance(calibration, dict):
        source = str(check_exists(calibration, 'calibration file'))
        try:
            calibration = json.loads(Path(source).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f'calibration file {source} is not valid JSON: {err}') from err
    if not isinstance(calibration, dict) or calibration.get('format') != CALIBRATION_FORMAT:
        raise ValueError(f'{source} is not a {CALIBRATION_FORMAT} calibration (see drivepi/apis/calibration.py)')
    cameras = calibration.get('cameras') or {}
    missing = [cam for cam in CAMERA_NAMES if cam not in cameras]
    if missing:
        raise ValueError(f'{source}: cameras {missing} are missing (all of {CAMERA_NAMES} are needed)')
    status = np.asarray(calibration.get('ego_status', np.zeros(EGO_STATUS_DIM)), np.float32)
    problem = array_problem(status, (EGO_STATUS_DIM,))
    if problem:
        raise ValueError(f'{source}: ego_status {problem} (5 finite numbers [vx, vy, ax, ay, yaw_rate] are needed, '
                         f'got {status.tolist()})')
    return dict(
        token=calibration.get('token'), timestamp=float(calibration.get('timestamp', 0.0)),
        lidar2ego=_matrix(calibration.get('lidar2ego'), (4, 4), f'{source}: lidar2ego'),
        ego2global=_matrix(calibration.get('ego2global', np.eye(4)), (4, 4), f'{source}: ego2global'),
        cameras={cam: dict(cam2ego=_matrix(cameras[cam].get('cam2ego', cameras[cam].get('sensor2ego')), (4, 4),
                                           f'{source}: {cam} cam2ego'),
                           intrinsics=_matrix(cameras[cam].get('intrinsics'), (3, 3), f'{source}: {cam} intrinsics'))
                 for cam in CAMERA_NAMES},
        sweeps=[dict(lidar2sensor=_matrix(sweep.get('lidar2sensor'), (4, 4), f'{source}: sweep {i} lidar2sensor'),
                     timestamp=float(sweep['timestamp'])) for i, sweep in enumerate(calibration.get('sweeps', []))],
        command=_command(calibration.get('command', GO_STRAIGHT), source), ego_status=status)


def camera_files(cams: Union[Dict[str, str], Sequence[str]]) -> Dict[str, str]:
    """``{CAM_*: image path}`` from a dict, from ``NAME=PATH`` strings, or from six paths in the order of
    :data:`drivepi.geometry.CAMERA_NAMES`."""
    if isinstance(cams, dict):
        files = dict(cams)
    elif all('=' in str(cam) for cam in cams):
        files = dict(str(cam).split('=', 1) for cam in cams)
    elif len(cams) == len(CAMERA_NAMES):
        files = dict(zip(CAMERA_NAMES, map(str, cams)))
    else:
        raise ValueError(f'give the six camera images as NAME=PATH or in the order {CAMERA_NAMES}, got {len(cams)}')
    unknown = sorted(set(files) - set(CAMERA_NAMES))
    if unknown:
        raise ValueError(f'unknown cameras {unknown}: the names are {CAMERA_NAMES}')
    return files


def raw_data_info(lidar, cams, calibration, sweeps: Sequence = ()) -> dict:
    """The data info of a scene given as raw files: what ``DrivePIDataset.get_data_info`` returns for an
    info entry, with absolute paths, for the test pipeline to load.

    Args:
        lidar: keyframe LiDAR file (``.bin`` / ``.pcd.bin``: float32 points, the config's ``load_dim`` per
            point, LiDAR frame).
        cams: the six camera images (:func:`camera_files`).
        calibration: ``drivepi-calibration/1`` file or dict (:func:`load_calibration`).
        sweeps: earlier LiDAR files, one per ``calibration['sweeps']`` entry (newest first, as in infos).
    """
    calib = load_calibration(calibration)
    if len(sweeps) != len(calib['sweeps']):
        raise ValueError(f'{len(sweeps)} sweep files but {len(calib["sweeps"])} sweeps in the calibration')
    lidar = str(check_exists(lidar, 'LiDAR file'))
    images = {cam: dict(img_path=str(check_exists(path, f'{cam} image')), cam2img=calib['cameras'][cam]['intrinsics'],
                        cam2ego=calib['cameras'][cam]['cam2ego']) for cam, path in camera_files(cams).items()}
    lidar_sweeps = [dict(timestamp=sweep['timestamp'],
                         lidar_points=dict(lidar_path=str(check_exists(path, 'LiDAR sweep file')),
                                           lidar2sensor=sweep['lidar2sensor']))
                    for path, sweep in zip(sweeps, calib['sweeps'])]
    return dict(sample_idx=0, token=calib['token'] or Path(lidar).name.split('.')[0], timestamp=calib['timestamp'],
                scene_token='', scene_name='', frame_idx=0, ego2global=calib['ego2global'],
                lidar_points=dict(lidar_path=lidar, lidar2ego=calib['lidar2ego']), lidar_path=lidar,
                lidar_sweeps=lidar_sweeps, images=images, ego_fut_cmd=calib['command'],
                ego_status=calib['ego_status'], occ_path='')
