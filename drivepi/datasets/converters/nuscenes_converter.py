"""DrivePI info files from a nuScenes-format dataset (real nuScenes or the generated mini set).

Writes ``<out_dir>/drivepi_infos_{train,val}.pkl`` in the mmdet3d v2 info format (the layout that
mmdet3d 1.4's ``nuscenes_converter.py`` + ``update_infos_to_v2.py`` produce: file names relative to
``data_prefix``, timestamps in seconds, ``lidar_sweeps[*].lidar_points.lidar2sensor`` = key LiDAR ->
sweep LiDAR) plus the DrivePI keys of docs/contracts.md (scene, frame index, occupancy path, ego
future trajectory, command, ego status, future boxes). All I/O goes through nuscenes-devkit.

Recovery samples of the generated set (``<version>/recovery.json``, docs/mini_dataset.md) are
one-sample scenes: their planning label and ego status come from the ego poses of their recovery
record (through the same functions as the keyframes'), their future boxes and annotation
velocities from their parent keyframe; infos mark them ``recovery=True`` (``False`` everywhere else).
"""
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
from mmdet3d.datasets.convert_utils import NuScenesNameMapping
from nuscenes import NuScenes
from nuscenes.utils.geometry_utils import transform_matrix
from nuscenes.utils.splits import create_splits_scenes
from pyquaternion import Quaternion
from tqdm import tqdm

from drivepi.datasets.converters.ego_motion import boxes_global_to_frame, driving_command, ego_status, future_trajectory
from drivepi.datasets.file_checks import check_image_file, check_points_file
from drivepi.fileio import atomic_write_pickles, read_json
from drivepi.geometry import DETECTION_CLASSES, OCC_CLASSES

MINI_VERSION = 'v1.0-drivepi-mini'
MINI_SPLIT_FILE = 'splits.json'  # {"train": [scene names], "val": [scene names]}, written by the generator
REAL_SPLITS = {'v1.0-trainval': ('train', 'val'), 'v1.0-mini': ('mini_train', 'mini_val')}
DEFAULT_OCC_ROOTS = dict(openocc='openocc_v2', occ3d='gts', mini='occupancy')
OCC_FILE_NAME = 'labels.npz'
INFO_VERSION = 'drivepi-1.0'
RECOVERY_TABLE = 'recovery.json'  # optional extra table of the generated set (drivepi.sim.nuscenes_export)
NUM_FUTURE_STEPS = 6  # keyframes at 2 Hz -> 3 s horizon
NUM_STATUS_KEYFRAMES = 3  # keyframes used for the finite differences of the ego status
LIDAR_CHANNEL = 'LIDAR_TOP'
LIDAR_NUM_FEATS = 5


def record_pose(record: dict) -> np.ndarray:
    """(4,4) float64 transform of a nuScenes ``calibrated_sensor`` or ``ego_pose`` record."""
    return transform_matrix(record['translation'], Quaternion(record['rotation']))


def load_scene_splits(root_path: Path, version: str) -> dict:
    """Scene names per split: ``{'train': [...], 'val': [...]}``.

    Real nuScenes versions use the official splits of nuscenes-devkit; the generated mini set the
    ``splits.json`` its generator writes in the data root.
    """
    if version in REAL_SPLITS:
        official = create_splits_scenes()
        train, val = REAL_SPLITS[version]
        return dict(train=official[train], val=official[val])
    split_file = Path(root_path) / MINI_SPLIT_FILE
    if not split_file.is_file():
        raise FileNotFoundError(f'split file {split_file} not found: version {version!r} is not an official '
                                f'nuScenes version ({sorted(REAL_SPLITS)}), so its scene split must be there')
    splits = read_json(split_file, 'split file')
    if not isinstance(splits, dict) or not {'train', 'val'} <= set(splits):
        raise ValueError(f'split file {split_file} must map "train" and "val" to lists of scene names')
    return dict(train=list(splits['train']), val=list(splits['val']))


def load_recovery_table(root_path: Path, version: str) -> dict:
    """Recovery records by sample token (``{}`` when the dataset has no ``<version>/recovery.json``)."""
    path = Path(root_path) / version / RECOVERY_TABLE
    if not path.is_file():
        return {}
    return {rec['sample_token']: rec for rec in read_json(path, 'recovery table')}


def load_nuscenes(root_path, version: str) -> NuScenes:
    """``NuScenes(version, dataroot=root_path)``; a truncated or malformed table raises a ValueError naming its
    file (the devkit's JSON error names none)."""
    try:
        return NuScenes(version=version, dataroot=str(root_path), verbose=False)
    except ValueError:  # json.JSONDecodeError or UnicodeDecodeError of one of the tables
        for table in sorted((Path(root_path) / version).glob('*.json')):
            read_json(table, 'nuScenes table')
        raise


class NuScenesInfoBuilder:
    """Builds one DrivePI info dict per keyframe of a loaded ``NuScenes`` database.

    Args:
        nusc: the loaded database.
        max_sweeps: previous LiDAR sweeps listed per keyframe.
        occ_root: occupancy GT folder relative to the data root (``''`` for none).
        recovery: recovery records by sample token (:func:`load_recovery_table`).
    """

    def __init__(self, nusc: NuScenes, max_sweeps: int, occ_root: str, recovery: Optional[dict] = None):
        self.nusc = nusc
        self.root = Path(nusc.dataroot)
        self.max_sweeps = max_sweeps
        self.occ_root = occ_root
        self.recovery = recovery or {}

    # -- poses -------------------------------------------------------------------------------------
    def sensor2ego(self, sample_data: dict) -> np.ndarray:
        return record_pose(self.nusc.get('calibrated_sensor', sample_data['calibrated_sensor_token']))

    def ego2global(self, sample_data: dict) -> np.ndarray:
        return record_pose(self.nusc.get('ego_pose', sample_data['ego_pose_token']))

    def keyframe_ego2global(self, sample: dict) -> np.ndarray:
        return self.ego2global(self.nusc.get('sample_data', sample['data'][LIDAR_CHANNEL]))

    def sensor2key_lidar(self, sample_data: dict, key_lidar2global: np.ndarray) -> np.ndarray:
        """(4,4) transform from a sensor at its own time to the keyframe LiDAR (ego motion included)."""
        sensor2global = self.ego2global(sample_data) @ self.sensor2ego(sample_data)
        return np.linalg.inv(key_lidar2global) @ sensor2global

    # -- sensors -----------------------------------------------------------------------------------
    def lidar_sweeps(self, lidar_sd: dict, key_lidar2global: np.ndarray) -> list:
        """Up to ``max_sweeps`` previous LiDAR sweeps, newest first, in the mmdet3d v2 layout."""
        sweeps = []
        sweep_sd = lidar_sd
        while len(sweeps) < self.max_sweeps and sweep_sd['prev']:
            sweep_sd = self.nusc.get('sample_data', sweep_sd['prev'])
            check_points_file(self.root / sweep_sd['filename'], LIDAR_NUM_FEATS)
            lidar2sensor = np.linalg.inv(self.sensor2key_lidar(sweep_sd, key_lidar2global))
            sweeps.append(dict(
                timestamp=sweep_sd['timestamp'] / 1e6,
                ego2global=self.ego2global(sweep_sd).tolist(),
                sample_data_token=sweep_sd['token'],
                lidar_points=dict(lidar_path=sweep_sd['filename'],
                                  lidar2ego=self.sensor2ego(sweep_sd).tolist(),
                                  lidar2sensor=lidar2sensor.astype(np.float32).tolist())))
        return sweeps

    def images(self, sample: dict, key_lidar2global: np.ndarray) -> dict:
        """Camera entries ``{CAM_*: {img_path, cam2img, cam2ego, lidar2cam, sample_data_token, timestamp}}``."""
        images = {}
        for channel, sd_token in sample['data'].items():
            if not channel.startswith('CAM'):
                continue
            cam_sd = self.nusc.get('sample_data', sd_token)
            check_image_file(self.root / cam_sd['filename'])
            calib = self.nusc.get('calibrated_sensor', cam_sd['calibrated_sensor_token'])
            images[channel] = dict(
                img_path=Path(cam_sd['filename']).name,
                cam2img=np.asarray(calib['camera_intrinsic'], dtype=np.float64).tolist(),
                cam2ego=record_pose(calib).tolist(),
                lidar2cam=np.linalg.inv(self.sensor2key_lidar(cam_sd, key_lidar2global)).astype(np.float32).tolist(),
                sample_data_token=sd_token,
                timestamp=cam_sd['timestamp'] / 1e6)
        return images

    # -- annotations -------------------------------------------------------------------------------
    @staticmethod
    def detection_label(category_name: str) -> int:
        """Index in DETECTION_CLASSES of a nuScenes category, -1 when it is none of them."""
        name = NuScenesNameMapping.get(category_name, category_name)
        return DETECTION_CLASSES.index(name) if name in DETECTION_CLASSES else -1

    def annotation_boxes(self, ann_tokens: list, frame2global: np.ndarray) -> tuple:
        """(N, 7) boxes ``[x, y, z_bottom, l, w, h, yaw]`` in a frame, and the annotation records."""
        anns = [self.nusc.get('sample_annotation', token) for token in ann_tokens]
        centers = np.array([a['translation'] for a in anns], dtype=np.float64).reshape(-1, 3)
        sizes_lwh = np.array([[a['size'][1], a['size'][0], a['size'][2]] for a in anns]).reshape(-1, 3)
        yaws = np.array([Quaternion(a['rotation']).yaw_pitch_roll[0] for a in anns])
        return boxes_global_to_frame(frame2global, centers, sizes_lwh, yaws), anns

    def instances(self, sample: dict, key_lidar2global: np.ndarray) -> list:
        """GT boxes of the keyframe in the LiDAR frame, mmdet3d v2 ``instances`` plus ``instance_token``."""
        boxes, anns = self.annotation_boxes(sample['anns'], key_lidar2global)
        velocity_ann = {}  # recovery sample: the parent keyframe's annotation of the instance (same instant)
        if sample['token'] in self.recovery:
            parent = self.nusc.get('sample', self.recovery[sample['token']]['parent_sample_token'])
            velocity_ann = {self.nusc.get('sample_annotation', tok)['instance_token']: tok for tok in parent['anns']}
        instances = []
        for box, ann in zip(boxes, anns):
            # global m/s, NaN when unknown (as mmdet3d)
            velocity = self.nusc.box_velocity(velocity_ann.get(ann['instance_token'], ann['token']))
            label = self.detection_label(ann['category_name'])
            instances.append(dict(
                bbox_3d=box.astype(np.float64).tolist(),
                bbox_label=label,
                bbox_label_3d=label,
                velocity=(velocity @ key_lidar2global[:3, :3])[:2].tolist(),
                num_lidar_pts=int(ann['num_lidar_pts']),
                num_radar_pts=int(ann['num_radar_pts']),
                bbox_3d_isvalid=bool(ann['num_lidar_pts'] + ann['num_radar_pts'] > 0),
                instance_token=ann['instance_token']))
        return instances

    # -- planning ----------------------------------------------------------------------------------
    def neighbour_samples(self, sample: dict, direction: str, count: int) -> list:
        """Up to ``count`` samples following ``direction`` ('next' or 'prev') from ``sample``."""
        found = []
        while len(found) < count and sample[direction]:
            sample = self.nusc.get('sample', sample[direction])
            found.append(sample)
        return found

    def planning(self, sample: dict, ego2global: np.ndarray) -> dict:
        """Ego future trajectory, command, ego status and future GT boxes (contracts.md keys).

        A recovery sample takes its ego poses from its recovery record and its future boxes from the
        keyframes after its parent."""
        recovery = self.recovery.get(sample['token'])
        if recovery is not None:
            return self.recovery_planning(recovery, ego2global)
        future = self.neighbour_samples(sample, 'next', NUM_FUTURE_STEPS)
        past = self.neighbour_samples(sample, 'prev', NUM_STATUS_KEYFRAMES - 1)[::-1]
        if past:
            track, now_index = past + [sample], len(past)
        else:
            track, now_index = [sample] + future[:NUM_STATUS_KEYFRAMES - 1], 0
        return self.planning_from_poses(ego2global, future, [self.keyframe_ego2global(s) for s in future],
                                        [s['timestamp'] / 1e6 for s in track],
                                        [self.keyframe_ego2global(s) for s in track], now_index)

    def recovery_planning(self, recovery: dict, ego2global: np.ndarray) -> dict:
        """Planning keys of a recovery sample from its record's ``ego_poses`` (docs/mini_dataset.md)."""
        now = recovery['now_index']
        times = [p['timestamp'] / 1e6 for p in recovery['ego_poses']]
        poses = [record_pose(p) for p in recovery['ego_poses']]
        future = self.neighbour_samples(self.nusc.get('sample', recovery['parent_sample_token']), 'next',
                                        NUM_FUTURE_STEPS)
        future_poses = poses[now + 1:now + 1 + NUM_FUTURE_STEPS]
        if len(future_poses) != len(future):
            raise ValueError(f'recovery record {recovery["token"]}: {len(future_poses)} future poses, but its '
                             f'parent keyframe has {len(future)} future keyframes')
        first = max(0, now - (NUM_STATUS_KEYFRAMES - 1))
        return self.planning_from_poses(ego2global, future, future_poses, times[first:now + 1],
                                        poses[first:now + 1], now - first)

    def planning_from_poses(self, ego2global: np.ndarray, future: list, future_poses: list,
                            status_times: list, status_poses: list, now_index: int) -> dict:
        """Planning keys from the future keyframe poses (their boxes from the ``future`` samples) and
        the ego-status track (``now_index`` in it)."""
        future_poses = list(future_poses) + [None] * (NUM_FUTURE_STEPS - len(future_poses))
        traj, mask = future_trajectory(ego2global, future_poses)
        fut_boxes = []
        for step in range(NUM_FUTURE_STEPS):
            if step < len(future):
                boxes, anns = self.annotation_boxes(future[step]['anns'], ego2global)
                keep = [self.detection_label(a['category_name']) >= 0 for a in anns]
                fut_boxes.append(boxes[np.asarray(keep, dtype=bool)].reshape(-1, 7))
            else:
                fut_boxes.append(np.zeros((0, 7), dtype=np.float32))
        status = ego_status(status_times, status_poses, now_index)
        return dict(ego_fut_traj=traj, ego_fut_mask=mask, ego_fut_cmd=driving_command(traj, mask),
                    ego_status=status, fut_boxes=fut_boxes)

    # -- one keyframe ------------------------------------------------------------------------------
    def occ_path(self, scene_name: str, token: str) -> str:
        """Occupancy GT path relative to the data root, ``''`` without an occupancy root."""
        if not self.occ_root:
            return ''
        rel_path = f'{self.occ_root}/{scene_name}/{token}/{OCC_FILE_NAME}'
        if not (self.root / rel_path).is_file():
            raise FileNotFoundError(f'occupancy GT file not found: {self.root / rel_path} (occupancy root '
                                    f'{self.root / self.occ_root} exists, so every keyframe needs one)')
        return rel_path

    def sample_info(self, sample: dict, scene: dict, frame_idx: int, sample_idx: int) -> dict:
        """The info dict of one keyframe."""
        lidar_sd = self.nusc.get('sample_data', sample['data'][LIDAR_CHANNEL])
        check_points_file(self.root / lidar_sd['filename'], LIDAR_NUM_FEATS)
        lidar2ego, ego2global = self.sensor2ego(lidar_sd), self.ego2global(lidar_sd)
        key_lidar2global = ego2global @ lidar2ego
        log = self.nusc.get('log', scene['log_token'])
        info = dict(
            sample_idx=sample_idx,
            token=sample['token'],
            timestamp=sample['timestamp'] / 1e6,
            ego2global=ego2global.tolist(),
            lidar_points=dict(num_pts_feats=LIDAR_NUM_FEATS, lidar_path=Path(lidar_sd['filename']).name,
                              lidar2ego=lidar2ego.tolist(), sample_data_token=lidar_sd['token']),
            lidar_sweeps=self.lidar_sweeps(lidar_sd, key_lidar2global),
            images=self.images(sample, key_lidar2global),
            instances=self.instances(sample, key_lidar2global),
            scene_token=scene['token'],
            scene_name=scene['name'],
            frame_idx=frame_idx,
            prev=sample['prev'],
            next=sample['next'],
            occ_path=self.occ_path(scene['name'], sample['token']),
            map_location=log['location'],
            recovery=sample['token'] in self.recovery)
        if info['recovery']:
            rec = self.recovery[sample['token']]
            info.update(recovery_parent=rec['parent_sample_token'],
                        recovery_offset=[rec['lateral_offset'], rec['heading_offset']])
        info.update(self.planning(sample, ego2global))
        return info

    def scene_samples(self, scene: dict) -> list:
        """The keyframes of a scene in time order."""
        first = self.nusc.get('sample', scene['first_sample_token'])
        return [first] + self.neighbour_samples(first, 'next', scene['nbr_samples'] - 1)


def resolve_occ_root(root_path: Path, version: str, occ_format: str, occ_root: Optional[str]) -> str:
    """The occupancy folder (relative to the data root) to reference, ``''`` when it does not exist."""
    if occ_root is None:
        occ_root = DEFAULT_OCC_ROOTS['mini' if version == MINI_VERSION else occ_format]
    if not (root_path / occ_root).is_dir():
        warnings.warn(f'occupancy root {root_path / occ_root} does not exist: infos get occ_path = ""')
        return ''
    return occ_root


def create_drivepi_infos(root_path, out_dir, version: str, max_sweeps: int = 10, occ_format: str = 'openocc',
                         occ_root: Optional[str] = None, info_prefix: str = 'drivepi') -> dict:
    """Write ``<out_dir>/<info_prefix>_infos_{train,val}.pkl`` for a nuScenes-format dataset: all splits or
    none (every split is checked and built before any file is written, and the files replace their paths
    only when all are complete), so a failed run leaves no info file for a rerun to mistake for done.

    Args:
        root_path: data root that ``NuScenes(version, dataroot=root_path)`` loads.
        out_dir: folder for the info files (created if needed).
        version: 'v1.0-trainval' / 'v1.0-mini' (official splits) or 'v1.0-drivepi-mini' (splits.json).
        max_sweeps: previous LiDAR sweeps listed per keyframe.
        occ_format: 'openocc' or 'occ3d'; picks ``metainfo['occ_classes']`` and the default occ root.
        occ_root: occupancy GT folder relative to ``root_path`` (default: 'openocc_v2' / 'gts', and
            'occupancy' for the mini set); files are ``<occ_root>/<scene_name>/<sample_token>/labels.npz``.
        info_prefix: file name prefix.

    Returns:
        ``dict(train=Path, val=Path)`` of the written files.
    """
    if occ_format not in OCC_CLASSES:
        raise ValueError(f'occ_format must be one of {sorted(OCC_CLASSES)}, got {occ_format!r}')
    root_path, out_dir = Path(root_path), Path(out_dir)
    splits = load_scene_splits(root_path, version)
    nusc = load_nuscenes(root_path, version)
    recovery = load_recovery_table(root_path, version)
    builder = NuScenesInfoBuilder(nusc, max_sweeps, resolve_occ_root(root_path, version, occ_format, occ_root),
                                  recovery)
    scenes_by_name = {scene['name']: scene for scene in nusc.scene}
    metainfo = dict(categories={name: i for i, name in enumerate(DETECTION_CLASSES)},
                    occ_classes=list(OCC_CLASSES[occ_format]),
                    dataset='drivepi-mini' if version == MINI_VERSION else 'nuscenes',
                    version=version, info_version=INFO_VERSION)
    split_scenes = {split: split_scene_records(split, names, scenes_by_name, recovery, root_path / version)
                    for split, names in splits.items()}
    out_paths = {split: out_dir / f'{info_prefix}_infos_{split}.pkl' for split in splits}
    atomic_write_pickles({out_paths[split]: dict(metainfo=metainfo, data_list=split_infos(builder, split, scenes))
                          for split, scenes in split_scenes.items()})
    return out_paths


def split_scene_records(split: str, names: list, scenes_by_name: dict, recovery: dict, tables) -> list:
    """The scene records of one split (those of ``names`` that the tables hold).

    Raises:
        ValueError: the split has no scene in ``tables`` (e.g. the val split of a one-scene generated set,
            which is all train), or a split other than train lists recovery samples.
    """
    scenes = [scenes_by_name[name] for name in names if name in scenes_by_name]
    if split != 'train' and any(rec['scene_token'] in {s['token'] for s in scenes} for rec in recovery.values()):
        raise ValueError(f'recovery samples belong to the train split only, but {split} lists some')
    if not scenes:
        raise ValueError(f'no scene of the {split} split ({len(names)} listed) is in {tables}: every split needs '
                         'one (a generated set of one scene is all train: generate at least 2 scenes)')
    return scenes


def split_infos(builder: NuScenesInfoBuilder, split: str, scenes: list) -> list:
    """The info dicts of every keyframe of ``scenes``, in scene and time order."""
    data_list = []
    with tqdm(total=sum(scene['nbr_samples'] for scene in scenes), desc=f'{split} infos', unit='keyframe') as progress:
        for scene in scenes:
            for frame_idx, sample in enumerate(builder.scene_samples(scene)):
                data_list.append(builder.sample_info(sample, scene, frame_idx, len(data_list)))
                progress.update()
    return data_list
