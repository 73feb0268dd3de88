"""Host-to-GPU copies that do not make the host wait for the GPU.

A copy from ordinary (pageable) host memory to a GPU returns only when the GPU's stream has run
everything queued before it, so each one stalls the host that should be queueing the next kernels. A copy
from pinned (page-locked) memory with ``non_blocking=True`` is queued like a kernel instead; torch's
pinned-memory cache keeps the host buffer alive until the copy has run.
"""
from typing import Optional, Sequence, Union

import torch

Device = Union[str, torch.device, None]


def to_device(tensor: torch.Tensor, device: Device) -> torch.Tensor:
    """``tensor`` on ``device`` (unchanged for None); a CPU tensor goes to a GPU through pinned memory,
    without a host synchronisation."""
    if device is None:
        return tensor
    device = torch.device(device)
    if device.type != 'cuda' or tensor.device.type != 'cpu':
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def device_tensor(values: Sequence, dtype: Optional[torch.dtype], device: Device) -> torch.Tensor:
    """``torch.tensor(values, dtype=dtype)`` on ``device``, copied as :func:`to_device` does."""
    return to_device(torch.tensor(values, dtype=dtype), device)
