"""LiDAR point loading with file checks, exact multi-sweep stacking, and the LiDAR -> ego move.

Points leave this module as mmdet3d ``LiDARPoints`` (N, 5) ``[x, y, z, intensity, time_lag_s]``.
"""
import copy

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet3d.datasets.transforms import LoadPointsFromFile, LoadPointsFromMultiSweeps

from drivepi.datasets.file_checks import check_finite_points, check_points_file
from drivepi.registry import TRANSFORMS


class CheckedPointsMixin:
    """Overrides mmdet3d's ``_load_points`` to check the file first and reject NaN/inf points.

    Errors name the file: missing (FileNotFoundError), size not a positive multiple of
    ``load_dim * 4`` bytes or non-finite values (ValueError).
    """

    def _load_points(self, pts_filename: str) -> np.ndarray:
        check_points_file(pts_filename, self.load_dim)
        points = super()._load_points(pts_filename)
        check_finite_points(points.reshape(-1, self.load_dim), pts_filename)
        return points


@TRANSFORMS.register_module()
class DrivePILoadPointsFromFile(CheckedPointsMixin, LoadPointsFromFile):
    """mmdet3d ``LoadPointsFromFile`` with the file and value checks of :class:`CheckedPointsMixin`."""


@TRANSFORMS.register_module()
class DrivePILoadPointsFromMultiSweeps(CheckedPointsMixin, LoadPointsFromMultiSweeps):
    """mmdet3d ``LoadPointsFromMultiSweeps`` with file checks and the exact sweep -> key LiDAR transform.

    The info files store ``lidar2sensor`` = key LiDAR -> sweep LiDAR ``[R | t]`` (as mmdet3d's
    ``update_infos_to_v2`` writes it). mmdet3d 1.4 maps sweep points with ``p @ R - t``, which is
    ``R^T p - t`` instead of the inverse ``R^T (p - t)`` (mmdetection3d issue #3054 / PR #3007); the
    error grows with ego motion and yaw change. This transform hands the parent a matrix whose
    translation is ``R^T t``, so the parent's formula yields the exact inverse, and restores the
    info's sweeps afterwards. Sweep time lags (s) go to column 4.
    """

    @staticmethod
    def loader_convention(sweep: dict) -> dict:
        """A copy of ``sweep`` whose ``lidar2sensor`` makes the parent's formula exact."""
        lidar2sensor = np.asarray(sweep['lidar_points']['lidar2sensor'], dtype=np.float64)
        adapted = np.eye(4)
        adapted[:3, :3] = lidar2sensor[:3, :3]
        adapted[:3, 3] = lidar2sensor[:3, :3].T @ lidar2sensor[:3, 3]
        sweep = copy.copy(sweep)
        sweep['lidar_points'] = dict(sweep['lidar_points'], lidar2sensor=adapted)
        return sweep

    def transform(self, results: dict) -> dict:
        sweeps = results.get('lidar_sweeps')
        if sweeps is None:
            return super().transform(results)
        results['lidar_sweeps'] = [self.loader_convention(sweep) for sweep in sweeps]
        try:
            results = super().transform(results)
        finally:
            results['lidar_sweeps'] = sweeps
        return results


@TRANSFORMS.register_module()
class PointsToEgo(BaseTransform):
    """Move ``results['points']`` from the keyframe LiDAR frame to the ego frame.

    Required keys: ``points`` (LiDARPoints, LiDAR frame), ``lidar_points['lidar2ego']`` (4,4).
    Modified keys: ``points`` (ego frame: ``p_ego = R p + t``).
    """

    def transform(self, results: dict) -> dict:
        lidar2ego = torch.as_tensor(np.asarray(results['lidar_points']['lidar2ego']),
                                    dtype=results['points'].tensor.dtype)
        points = results['points']
        points.rotate(lidar2ego[:3, :3].T)  # mmdet3d multiplies row vectors by the given matrix
        points.translate(lidar2ego[:3, 3])
        results['points'] = points
        return results
