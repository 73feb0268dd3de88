"""The contract every DrivePI head follows, after mmdet3d's dense-head contract.

DrivePI runs the LLM once and hands every head the same :class:`HeadInputs`; a head declares which of
them it reads (``feature``: ``'bev'`` for the LLM-refined BEV map, ``'plan_states'`` for the hidden
states of the planning queries) and DrivePI fills in its input width from that. Then, as in mmdet3d:

- ``forward(feats, batch_data_samples)`` -> dict of raw outputs, channels last (``(B, X, Y, Z, C)``
  for voxel outputs, ``(B, T, 2)`` for waypoints);
- ``loss(feats, batch_data_samples)`` -> dict of losses: forward, then ``loss_by_feat``, which reads
  and checks the head's own ground truth from the data samples (:func:`stack_field`);
- ``predict(feats, batch_data_samples)`` -> forward, then ``predict_by_feat``, which writes the head's
  ``pred_*`` fields into the data samples.

A new head is one file (a registered subclass) plus one entry in the model config's ``heads`` dict:
see docs/adding_a_head.md.
"""
import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule

from drivepi.device_copies import stack_to_device

HEAD_FEATURES = ('bev', 'plan_states')


@dataclass
class HeadInputs:
    """What DrivePI's one LLM pass gives the heads.

    Attributes:
        bev: (B, C, Hb, Wb) fused BEV with the LLM's spatial hidden states scattered back in.
        plan_states: (B, Q, D) hidden states of the Q planning queries.
    """
    bev: torch.Tensor
    plan_states: torch.Tensor


def _all_finite(value: torch.Tensor) -> bool:
    """No NaN or inf in ``value``: a NaN or inf makes the sum non-finite, so a finite sum (one pass, no
    temporaries) settles it; only a non-finite sum (or an overflow of finite values) pays for the exact check."""
    return math.isfinite(float(value.sum())) or bool(torch.isfinite(value).all())


def stack_field(batch_data_samples: Sequence, key: str, shape: Optional[Sequence[int]] = None,
                dtype: Optional[torch.dtype] = None, device=None, metainfo: bool = False,
                value_range: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """Stack one field of every data sample into a batch tensor, checking it.

    The checks read values, so they are made where the values are: on the host for the host tensors that
    ``DrivePIDataPreprocessor`` leaves in the data samples (free for the GPU), and the checked batch reaches
    a GPU in one pinned, non-blocking copy (:func:`stack_to_device`).

    Args:
        key: the data field (or, with ``metainfo``, the metainfo key), e.g. ``'gt_occ'``.
        shape: the per-sample shape it must have (None: any, equal across samples).
        dtype, device: of the result.
        value_range: ``(low, high)``: every value must lie in ``[low, high)`` (e.g. class labels).

    Raises:
        KeyError / ValueError naming the sample and the field: missing, wrong shape, NaN or inf, out of range.
    """
    values = []
    for i, sample in enumerate(batch_data_samples):
        value = sample.metainfo.get(key) if metainfo else sample.get(key)
        if value is None:
            raise KeyError(f'data sample {i} has no {"metainfo " if metainfo else ""}`{key}`')
        value = torch.as_tensor(value)
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise ValueError(f'data sample {i}: `{key}` has shape {tuple(value.shape)}, expected {tuple(shape)}')
        if value.is_floating_point() and not _all_finite(value):
            raise ValueError(f'data sample {i}: `{key}` contains NaN/inf values')
        if value_range is not None and value.numel():
            low, high = (int(v) for v in value.aminmax())
            if low < value_range[0] or high >= value_range[1]:
                raise ValueError(f'data sample {i}: `{key}` values must lie in [{value_range[0]}, '
                                 f'{value_range[1] - 1}], got [{low}, {high}]')
        values.append(value)
    if len({tuple(v.shape) for v in values}) > 1:
        raise ValueError(f'`{key}` differs in shape across the batch: {[tuple(v.shape) for v in values]}')
    return stack_to_device(values, device, dtype)


class BaseDrivePIHead(BaseModule):
    """Base of DrivePI's heads (see the module docstring for the contract).

    Subclasses set ``feature`` and implement ``forward``, ``loss_by_feat`` and ``predict_by_feat``.
    """
    feature: str = 'bev'

    def forward(self, feats: HeadInputs, batch_data_samples: Sequence) -> dict:
        raise NotImplementedError

    def loss_by_feat(self, outputs: dict, batch_data_samples: Sequence) -> dict:
        raise NotImplementedError

    def predict_by_feat(self, outputs: dict, batch_data_samples: Sequence) -> None:
        raise NotImplementedError

    def loss(self, feats: HeadInputs, batch_data_samples: Sequence) -> dict:
        """Training losses of this head from the shared inputs and its own ground truth."""
        return self.loss_by_feat(self(feats, batch_data_samples), batch_data_samples)

    def predict(self, feats: HeadInputs, batch_data_samples: Sequence) -> dict:
        """Write this head's ``pred_*`` fields into the data samples; returns the raw outputs."""
        outputs = self(feats, batch_data_samples)
        self.predict_by_feat(outputs, batch_data_samples)
        return outputs
