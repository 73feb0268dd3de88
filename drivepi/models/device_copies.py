"""Host-to-GPU copies and counts that do not make the host wait for the GPU.

A copy from ordinary (pageable) host memory to a GPU returns only when the GPU's stream has run
everything queued before it, so each one stalls the host that should be queueing the next kernels. A copy
from pinned (page-locked) memory with ``non_blocking=True`` is queued like a kernel instead; torch's
pinned-memory cache keeps the host buffer alive until the copy has run. ``torch.bincount`` on a GPU
reads the largest index back to size its output, even with ``minlength``; :func:`count_indices` takes the
size from the caller instead.
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


def count_indices(index: torch.Tensor, size: int) -> torch.Tensor:
    """Occurrences of each value ``0 .. size - 1`` in the long tensor ``index`` (all values < ``size``):
    long ``(size,)``, ``torch.bincount(index, minlength=size)`` without its host synchronisation."""
    return torch.zeros(size, dtype=torch.long, device=index.device).index_add_(0, index, torch.ones_like(index))
