"""Occupancy and flow ground truth (OpenOcc ``labels.npz`` with flow, Occ3D without)."""
import zipfile

import numpy as np
from mmcv.transforms import BaseTransform

from drivepi.datasets.file_checks import nonfinite_problem
from drivepi.geometry import NUM_OCC_CLASSES, OCC_GRID
from drivepi.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadOccFlowGT(BaseTransform):
    """Load and validate ``results['occ_path']`` (absolute; the dataset joins it with the data root).

    Added keys: ``gt_occ`` uint8 (X,Y,Z) class indices, ``gt_mask_camera`` bool (X,Y,Z),
    ``gt_flow`` float32 (X,Y,Z,2) (vx, vy) m/s in the ego frame (zeros when ``with_flow=False``).

    Args:
        num_classes: classes including free (17 OpenOcc, 18 Occ3D); semantics must be below it.
        with_flow: read ``flow`` (OpenOcc); ``False`` for Occ3D files, which have none.
        grid_shape: expected (X, Y, Z).

    Raises ValueError / FileNotFoundError naming the file for a missing, truncated or malformed file:
    missing keys, wrong shapes or dtypes, classes out of range, non-binary masks, NaN/inf flow.
    """

    def __init__(self, num_classes: int = NUM_OCC_CLASSES, with_flow: bool = True, grid_shape: tuple = OCC_GRID):
        self.num_classes = num_classes
        self.with_flow = with_flow
        self.grid_shape = tuple(grid_shape)

    def _read(self, path: str) -> dict:
        keys = ('semantics', 'mask_camera') + (('flow',) if self.with_flow else ())
        try:
            with np.load(path) as npz:
                missing = [key for key in keys if key not in npz.files]
                if missing:
                    raise ValueError(f'occupancy GT file {path} lacks {missing} (has {npz.files})')
                return {key: npz[key] for key in keys}
        except FileNotFoundError:
            raise FileNotFoundError(f'occupancy GT file not found: {path}') from None
        except (zipfile.BadZipFile, EOFError, OSError) as err:
            raise ValueError(f'occupancy GT file {path} is truncated or not an npz: {err}') from err

    def _check(self, path: str, arrays: dict) -> None:
        semantics, mask = arrays['semantics'], arrays['mask_camera']
        for key, value in (('semantics', semantics), ('mask_camera', mask)):
            if value.shape != self.grid_shape or (not np.issubdtype(value.dtype, np.integer) and value.dtype != bool):
                raise ValueError(f'occupancy GT file {path}: {key} must be an integer array of shape '
                                 f'{self.grid_shape}, got {value.dtype} {value.shape}')
        if semantics.min() < 0 or semantics.max() >= self.num_classes:
            raise ValueError(f'occupancy GT file {path}: semantics must lie in [0, {self.num_classes}), got '
                             f'[{semantics.min()}, {semantics.max()}]')
        if not np.isin(mask, (0, 1)).all():
            raise ValueError(f'occupancy GT file {path}: mask_camera must be 0/1')
        if self.with_flow:
            flow = arrays['flow']
            if flow.shape != self.grid_shape + (2,) or not np.issubdtype(flow.dtype, np.floating):
                raise ValueError(f'occupancy GT file {path}: flow must be float of shape '
                                 f'{self.grid_shape + (2,)}, got {flow.dtype} {flow.shape}')
            problem = nonfinite_problem(flow)
            if problem:
                raise ValueError(f'occupancy GT file {path}: flow {problem}')

    def transform(self, results: dict) -> dict:
        path = results.get('occ_path', '')
        if not path:
            raise ValueError(f'sample {results.get("token")} has no occupancy GT (occ_path is empty): create the '
                             'infos with the occupancy root, or drop LoadOccFlowGT from the pipeline')
        arrays = self._read(path)
        self._check(path, arrays)
        results['gt_occ'] = arrays['semantics'].astype(np.uint8)
        results['gt_mask_camera'] = arrays['mask_camera'].astype(bool)
        results['gt_flow'] = (arrays['flow'].astype(np.float32) if self.with_flow
                              else np.zeros(self.grid_shape + (2,), dtype=np.float32))
        return results
