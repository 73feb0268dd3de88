"""Planning targets of a keyframe: ego future trajectory, command, ego status, future agent boxes."""
import numpy as np
from mmcv.transforms import BaseTransform

from drivepi.datasets.file_checks import array_problem
from drivepi.geometry import COMMANDS
from drivepi.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadPlanningGT(BaseTransform):
    """Validate the info's planning keys and expose them under the names the packer uses.

    Required keys (docs/contracts.md): ``ego_fut_traj`` (T,2), ``ego_fut_mask`` (T,), ``ego_fut_cmd``,
    ``ego_status`` (5,), ``fut_boxes`` (T arrays (N_t,7)), ``token``.
    Added keys: ``gt_traj`` float32 (T,2) m, ``gt_traj_mask`` float32 (T,), ``gt_fut_boxes`` list of T
    float32 (N_t,7); ``ego_fut_cmd`` int and ``ego_status`` float32 (5,) are checked in place.

    Args:
        num_steps: expected T (6 waypoints at 0.5 s).
    """

    def __init__(self, num_steps: int = 6):
        self.num_steps = num_steps

    def _array(self, results: dict, key: str, shape: tuple) -> np.ndarray:
        if key not in results:
            raise KeyError(f'sample {results.get("token")}: info has no {key!r}; re-create the infos '
                           'with tools/create_data.py')
        value = np.asarray(results[key], dtype=np.float32)
        problem = array_problem(value, shape)
        if problem:
            raise ValueError(f'sample {results.get("token")}: {key} {problem} (finite values of shape {shape} are '
                             'needed)')
        return value

    def transform(self, results: dict) -> dict:
        token = results.get('token')
        results['gt_traj'] = self._array(results, 'ego_fut_traj', (self.num_steps, 2))
        results['gt_traj_mask'] = self._array(results, 'ego_fut_mask', (self.num_steps,))
        results['ego_status'] = self._array(results, 'ego_status', (5,))
        command = int(results.get('ego_fut_cmd', -1))
        if not 0 <= command < len(COMMANDS):
            raise ValueError(f'sample {token}: ego_fut_cmd must be 0, 1 or 2, got {results.get("ego_fut_cmd")}')
        results['ego_fut_cmd'] = command
        fut_boxes = results.get('fut_boxes')
        if fut_boxes is None or len(fut_boxes) != self.num_steps:
            raise ValueError(f'sample {token}: fut_boxes must be a list of {self.num_steps} (N, 7) arrays')
        results['gt_fut_boxes'] = [self._boxes(token, step, boxes) for step, boxes in enumerate(fut_boxes)]
        return results

    @staticmethod
    def _boxes(token: str, step: int, boxes) -> np.ndarray:
        boxes = np.asarray(boxes, dtype=np.float32)
        if boxes.size == 0:
            return boxes.reshape(0, 7)
        problem = array_problem(boxes, (None, 7))
        if problem:
            raise ValueError(f'sample {token}: fut_boxes[{step}] {problem} (finite (N, 7) boxes are needed)')
        return boxes
