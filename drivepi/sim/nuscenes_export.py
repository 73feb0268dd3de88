"""nuScenes-format tables of the generated scenes (``v1.0-<name>/*.json``).

:class:`NuScenesTables` collects records scene by scene and writes the 13 tables that
``nuscenes.NuScenes`` loads (category, attribute, visibility, instance, sensor, calibrated_sensor,
ego_pose, log, scene, sample, sample_data, sample_annotation, map). Tokens are deterministic
(MD5 of a descriptive key), so a seed always gives the same dataset. Annotation velocities are not
stored: the devkit derives them from consecutive boxes (``NuScenes.box_velocity``).

An extra table, ``recovery.json``, is written only when a set has recovery samples (one record per
recovery sample, :meth:`NuScenesTables.add_recovery`); the devkit does not load it, tools/create_data.py does.
"""
import hashlib
import json

import numpy as np
from pyquaternion import Quaternion

from drivepi.fileio import atomic_write_text
from drivepi.sim.calibration import CAMERA_NAMES

ATTRIBUTES = ('cycle.with_rider', 'cycle.without_rider', 'pedestrian.moving', 'pedestrian.sitting_lying_down',
              'pedestrian.standing', 'vehicle.moving', 'vehicle.parked', 'vehicle.stopped')
VISIBILITY_LEVELS = (('1', 'v0-40', 0.4), ('2', 'v40-60', 0.6), ('3', 'v60-80', 0.8), ('4', 'v80-100', 1.01))
SENSORS = (('LIDAR_TOP', 'lidar'),) + tuple((name, 'camera') for name in CAMERA_NAMES)
TABLES = ('category', 'attribute', 'visibility', 'instance', 'sensor', 'calibrated_sensor', 'ego_pose', 'log',
          'scene', 'sample', 'sample_data', 'sample_annotation', 'map')
OPTIONAL_TABLES = ('recovery',)   # written only when not empty


def token(*key) -> str:
    """Deterministic 32-hex-digit token of a key."""
    return hashlib.md5('/'.join(map(str, key)).encode()).hexdigest()


def yaw_quaternion(yaw: float) -> list:
    """[w, x, y, z] of a rotation by ``yaw`` rad about z."""
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def matrix_record(mat: np.ndarray) -> dict:
    """``translation`` and ``rotation`` (w, x, y, z) of a (4,4) transform."""
    q = Quaternion(matrix=mat[:3, :3], atol=1e-6)
    return dict(translation=[float(v) for v in mat[:3, 3]], rotation=[float(v) for v in q.elements])


def visibility_token(fraction: float) -> str:
    """nuScenes visibility token ('1' .. '4') of a visible fraction in [0, 1]."""
    return next(tok for tok, _, upper in VISIBILITY_LEVELS if fraction < upper)


class NuScenesTables:
    """Records of all tables; ``add_*`` methods append and link them (prev/next, first/last)."""

    def __init__(self, categories: list):
        self.tables = {name: [] for name in TABLES + OPTIONAL_TABLES}
        self.tables['category'] = [dict(token=token('category', c), name=c, description=c) for c in categories]
        self.tables['attribute'] = [dict(token=token('attribute', a), name=a, description=a) for a in ATTRIBUTES]
        self.tables['visibility'] = [dict(token=t, level=lvl, description=f'visibility of whole object is {lvl}')
                                     for t, lvl, _ in VISIBILITY_LEVELS]
        self.tables['sensor'] = [dict(token=token('sensor', ch), channel=ch, modality=mod) for ch, mod in SENSORS]
        self._last_sd = {}          # (scene, channel) -> last sample_data record
        self._instances = {}        # instance token -> (record, last annotation record)

    # ------------------------------------------------------------------ per scene
    def add_scene(self, world, description: str, map_filename: str, name: str = None, log_token: str = None) -> dict:
        """log, map, calibrated_sensor and scene records of ``world``; returns the scene record.

        ``name`` (default ``world.name``) and ``log_token``: a further scene of an existing log (a
        recovery sample), which adds no log or map record.
        """
        name = name or world.name
        log_tok = log_token or token(name, 'log')
        if log_token is None:
            self.tables['log'].append(dict(token=log_tok, logfile=f'drivepi-{name}', vehicle='drivepi-ego',
                                           date_captured='2020-09-13', location=f'drivepi-world-{name}'))
            self.tables['map'].append(dict(token=token(name, 'map'), log_tokens=[log_tok],
                                           category='semantic_prior', filename=map_filename))
        setup = world.sensors
        self.tables['calibrated_sensor'].append(dict(
            token=token(name, 'calib', 'LIDAR_TOP'), sensor_token=token('sensor', 'LIDAR_TOP'),
            camera_intrinsic=[], **matrix_record(setup.lidar2ego)))
        for ch, calib in setup.cameras.items():
            self.tables['calibrated_sensor'].append(dict(
                token=token(name, 'calib', ch), sensor_token=token('sensor', ch),
                camera_intrinsic=calib.intrinsic.tolist(), **matrix_record(calib.cam2ego)))
        scene = dict(token=token(name, 'scene'), log_token=log_tok, nbr_samples=0, first_sample_token='',
                     last_sample_token='', name=name, description=description)
        self.tables['scene'].append(scene)
        return scene

    def add_sample(self, scene: dict, index: int, timestamp: int) -> dict:
        samples = self.tables['sample']
        rec = dict(token=token(scene['name'], 'sample', index), timestamp=timestamp, prev='', next='',
                   scene_token=scene['token'])
        if scene['nbr_samples']:
            rec['prev'] = samples[-1]['token']
            samples[-1]['next'] = rec['token']
        else:
            scene['first_sample_token'] = rec['token']
        scene['last_sample_token'] = rec['token']
        scene['nbr_samples'] += 1
        samples.append(rec)
        return rec

    def add_sample_data(self, scene: dict, channel: str, index: int, timestamp: int, ego2global: np.ndarray,
                        filename: str, sample_token: str, is_key_frame: bool, size=(0, 0)) -> dict:
        """sample_data + its own ego_pose record; chains prev/next per (scene, channel)."""
        key = (scene['name'], channel)
        ego_tok = token(scene['name'], 'ego_pose', channel, index)
        self.tables['ego_pose'].append(dict(token=ego_tok, timestamp=timestamp, **matrix_record(ego2global)))
        rec = dict(token=token(scene['name'], 'sample_data', channel, index), sample_token=sample_token,
                   ego_pose_token=ego_tok, calibrated_sensor_token=token(scene['name'], 'calib', channel),
                   timestamp=timestamp, fileformat=filename.rsplit('.', 1)[-1].replace('bin', 'pcd'),
                   is_key_frame=bool(is_key_frame), height=int(size[1]), width=int(size[0]),
                   filename=filename, prev='', next='')
        if key in self._last_sd:
            rec['prev'] = self._last_sd[key]['token']
            self._last_sd[key]['next'] = rec['token']
        self._last_sd[key] = rec
        self.tables['sample_data'].append(rec)
        return rec

    def add_annotation(self, sample: dict, instance_token: str, category: str, box: np.ndarray,
                       attribute: str, visibility: float, num_lidar_pts: int, link: bool = True) -> dict:
        """sample_annotation of a global box ``[x, y, z_bottom, l, w, h, yaw]``, linked to its instance.

        ``link=False`` (recovery samples): the instance must exist; the record stays out of its
        prev/next chain and annotation count (a second view of an annotated instant).
        """
        x, y, z, length, width, height, yaw = (float(v) for v in box)
        rec = dict(token=token(sample['token'], 'ann', instance_token), sample_token=sample['token'],
                   instance_token=instance_token, visibility_token=visibility_token(visibility),
                   attribute_tokens=[token('attribute', attribute)] if attribute else [],
                   translation=[x, y, z + height / 2], size=[width, length, height], rotation=yaw_quaternion(yaw),
                   prev='', next='', num_lidar_pts=int(num_lidar_pts), num_radar_pts=0)
        if not link:
            if instance_token not in self._instances:
                raise ValueError(f'unlinked annotation of instance {instance_token} that has no annotation')
        elif instance_token in self._instances:
            inst, last = self._instances[instance_token]
            rec['prev'] = last['token']
            last['next'] = rec['token']
            inst['last_annotation_token'] = rec['token']
            inst['nbr_annotations'] += 1
        else:
            inst = dict(token=instance_token, category_token=token('category', category), nbr_annotations=1,
                        first_annotation_token=rec['token'], last_annotation_token=rec['token'])
            self.tables['instance'].append(inst)
        if link:
            self._instances[instance_token] = (inst, rec)
        self.tables['sample_annotation'].append(rec)
        return rec

    def add_recovery(self, scene: dict, sample: dict, parent: dict, lateral: float, heading: float,
                     converge: float, timestamps: list, ego2globals: list, now_index: int) -> dict:
        """``recovery`` record of a recovery sample: its parent keyframe, offsets (m, rad; left / counter-
        clockwise positive), ``converge_s`` and ``ego_poses``: the ego's keyframe poses (history, now at
        ``now_index``, future up to the parent scene's end) as ``{timestamp, translation, rotation}``."""
        rec = dict(token=token(scene['name'], 'recovery'), scene_token=scene['token'], scene_name=scene['name'],
                   sample_token=sample['token'], parent_sample_token=parent['token'],
                   parent_scene_token=parent['scene_token'], lateral_offset=float(lateral),
                   heading_offset=float(heading), converge_s=float(converge), now_index=int(now_index),
                   ego_poses=[dict(timestamp=int(ts), **matrix_record(pose))
                              for ts, pose in zip(timestamps, ego2globals)])
        self.tables['recovery'].append(rec)
        return rec

    def write(self, table_dir) -> None:
        """Write every table as ``<table_dir>/<table>.json`` (atomically)."""
        for name, records in self.tables.items():
            if name in OPTIONAL_TABLES and not records:
                continue
            atomic_write_text(f'{table_dir}/{name}.json', json.dumps(records, indent=0))
