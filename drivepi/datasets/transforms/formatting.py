"""Pack a pipeline result into the DrivePI data sample of docs/contracts.md."""
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet3d.structures import Det3DDataSample

from drivepi.registry import TRANSFORMS

META_KEYS = ('sample_idx', 'token', 'scene_token', 'scene_name', 'frame_idx', 'ego2global', 'cam2img', 'cam2ego',
             'ego2img', 'img_shape', 'cam_valid', 'ego_fut_cmd', 'ego_status', 'occ_classes')
# result key -> (data-sample field, dtype); packed when the pipeline produced it
# gt_occ stays uint8 (17 classes): a batch crosses from the loader workers and to a GPU at an eighth of long's
# bytes, and stack_field widens it to long on the GPU
TENSOR_FIELDS = dict(gt_occ=('gt_occ', torch.uint8), gt_flow=('gt_flow', torch.float32),
                     gt_mask_camera=('gt_mask_camera', torch.bool), gt_traj=('gt_traj', torch.float32),
                     gt_traj_mask=('gt_traj_mask', torch.float32))


@TRANSFORMS.register_module()
class PackDrivePIInputs(BaseTransform):
    """``{'inputs': {'points': float32 (N,5) ego frame, 'img': uint8 (V,3,H,W)}, 'data_samples':
    Det3DDataSample}`` with the metainfo ``META_KEYS`` and the GT fields the pipeline loaded
    (``gt_occ`` uint8, ``gt_flow`` float, ``gt_mask_camera`` bool, ``gt_traj``, ``gt_traj_mask``,
    ``gt_fut_boxes`` list of (N_t,7) tensors) plus ``conversations``.

    ``Det3DDataPreprocessor`` batches it: ``inputs['points']`` a list of B tensors, ``inputs['imgs']``
    (B,V,3,H,W). The per-sample image key is ``img``, as mmdet3d's ``Pack3DDetInputs`` writes it:
    ``Det3DDataPreprocessor`` (mmdet3d 1.4) only collates ``inputs['img']`` and outputs ``imgs``.
    Missing required keys raise a KeyError naming them and the sample.
    """

    def transform(self, results: dict) -> dict:
        missing = [key for key in ('points', 'img') + META_KEYS if key not in results]
        if missing:
            raise KeyError(f'sample {results.get("token")}: the pipeline produced no {missing} for PackDrivePIInputs')
        imgs = np.ascontiguousarray(np.stack(results['img']).transpose(0, 3, 1, 2))
        inputs = dict(points=results['points'].tensor.float(), img=torch.from_numpy(imgs))
        metainfo = {key: results[key] for key in META_KEYS}
        metainfo['img_shape'] = tuple(metainfo['img_shape'])
        metainfo['ego2global'] = np.asarray(metainfo['ego2global'], dtype=np.float64)
        data_sample = Det3DDataSample(metainfo=metainfo)
        for key, (field, dtype) in TENSOR_FIELDS.items():
            if key in results:
                data_sample.set_field(torch.as_tensor(np.asarray(results[key])).to(dtype), field)
        if 'gt_fut_boxes' in results:
            data_sample.gt_fut_boxes = [torch.from_numpy(np.asarray(boxes, dtype=np.float32))
                                        for boxes in results['gt_fut_boxes']]
        data_sample.conversations = results.get('conversations', [])
        return dict(inputs=inputs, data_samples=data_sample)
