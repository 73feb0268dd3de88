"""DrivePI's data preprocessor: mmdet3d's ``Det3DDataPreprocessor`` with host-to-GPU data movement that never
makes the host wait for the GPU.

``Det3DDataPreprocessor`` copies every tensor of a batch on its own from pageable memory (the host waits for
the GPU to finish everything queued before each copy), moves every data sample's ground truth the same way,
and flips the colour channels of each camera view by indexing with a Python list (one more blocking copy of
the index per view): 13 host synchronisations per sample of a DrivePI batch. This one

- copies the points of each sample through pinned memory, non-blocking (:func:`to_device`);
- stacks the multi-view images of the batch on the host straight into pinned memory, copies them once and
  normalises them as one tensor (channel flip by ``flip``; the same values as mmdet3d's per-view path);
- leaves the data samples on the host: the heads read, check and move their ground truth there, one batch
  copy per field (``stack_field``), so the checks cost the GPU nothing.
"""
import math
from typing import Any

import torch
import torch.nn.functional as F
from mmdet3d.models.data_preprocessors import Det3DDataPreprocessor
from mmengine.structures import BaseDataElement
from mmengine.utils import is_seq_of

from drivepi.device_copies import stack_to_device, to_device
from drivepi.registry import MODELS


@MODELS.register_module()
class DrivePIDataPreprocessor(Det3DDataPreprocessor):
    """``Det3DDataPreprocessor`` (same arguments, same outputs) whose copies to a GPU are pinned and non-blocking
    and which leaves the data samples, with their ground truth, on the host (see the module docstring)."""

    def cast_data(self, data: Any) -> Any:
        """Tensors to the device through pinned memory without a host synchronisation; data samples stay."""
        if isinstance(data, BaseDataElement):
            return data
        if isinstance(data, torch.Tensor):
            return to_device(data, self.device)
        if isinstance(data, dict):
            return {key: self.cast_data(value) for key, value in data.items()}
        if isinstance(data, (list, tuple)) and not isinstance(data, str) and not hasattr(data, '_fields'):
            return type(data)(self.cast_data(value) for value in data)
        return super().cast_data(data)

    def collate_data(self, data: dict) -> dict:
        """mmdet3d's ``collate_data`` with the batch's multi-view images, when they share one shape, stacked on
        the host, copied once and normalised and padded as one tensor (B, V, 3, H, W)."""
        imgs = data['inputs'].get('img')
        if not (is_seq_of(imgs, torch.Tensor) and imgs[0].dim() == 4
                and len({(img.dtype, tuple(img.shape)) for img in imgs}) == 1):
            return super().collate_data(data)
        inputs = {key: value for key, value in data['inputs'].items() if key != 'img'}
        data = self.cast_data(dict(data, inputs=inputs))
        batch = stack_to_device(imgs, self.device)
        if self._channel_conversion:
            batch = batch.flip(2)  # RGB <-> BGR of (B, V, 3, H, W)
        batch = batch.float()
        if self._enable_normalize:
            batch = (batch - self.mean) / self.std
        height, width = batch.shape[-2:]
        pad_h = math.ceil(height / self.pad_size_divisor) * self.pad_size_divisor - height
        pad_w = math.ceil(width / self.pad_size_divisor) * self.pad_size_divisor - width
        if pad_h or pad_w:
            batch = F.pad(batch, (0, pad_w, 0, pad_h), 'constant', self.pad_value)
        data['inputs']['imgs'] = batch
        data.setdefault('data_samples', None)
        return data
