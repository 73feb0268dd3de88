"""Host-to-GPU copies and counts that do not make the host wait for the GPU.

A copy from ordinary (pageable) host memory to a GPU returns only when the GPU's stream has run
everything queued before it, so each one stalls the host that should be queueing the next kernels. A copy
from pinned (page-locked) memory with ``non_blocking=True`` is queued like a kernel instead; torch's
pinned-memory cache keeps the host buffer alive until the copy has run. ``torch.bincount`` on a GPU
reads the largest index back to size its output, even with ``minlength``; :func:`count_indices` and
:func:`count_bins` take the size from the caller instead. :func:`stack_to_device` stacks host tensors straight
into pinned memory and copies the batch once; :func:`scalars_to_host` brings many GPU scalars back in one copy
whose wait is deferred.
"""
from typing import Callable, Dict, Optional, Sequence, Union

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
    long ``(size,)``, ``torch.bincount(index, minlength=size)`` without its host synchronisation on a GPU (on the
    CPU it is ``bincount``, 4x faster there than the scatter-add: 5 M indices, one thread)."""
    if host_reads_are_free(index):
        return torch.bincount(index, minlength=size)
    return torch.zeros(size, dtype=torch.long, device=index.device).index_add_(0, index, torch.ones_like(index))


def count_bins(bins: torch.Tensor, size: int) -> torch.Tensor:
    """:func:`count_indices` of the long tensor ``bins`` (values < ``size``) whose negative entries are not
    counted (no boolean indexing: none of its host synchronisation)."""
    return count_indices(torch.where(bins < 0, size, bins), size + 1)[:size]


def host_reads_are_free(tensor: torch.Tensor) -> bool:
    """Whether reading ``tensor``'s values on the host costs no synchronisation (it lives on the CPU). Where it
    does, code that needs a data-dependent size (boolean indexing, ``nonzero``) can take it, and skip work on
    what a mask excludes; on a GPU the same code weighs the excluded elements out instead."""
    return tensor.device.type == 'cpu'


def stack_to_device(values: Sequence[torch.Tensor], device: Device,
                    dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``torch.stack(values).to(device, dtype)`` with one host-to-GPU copy that does not make the host wait: host
    tensors are stacked straight into pinned memory. The dtype changes on the side where the data are smaller
    (before the copy when ``dtype`` is narrower, e.g. float64 -> float32; after it when wider, e.g. uint8 -> long),
    which gives the same values either way."""
    source = values[0].dtype
    for value in values[1:]:
        source = torch.promote_types(source, value.dtype)
    target = source if dtype is None else dtype
    transfer = target if target.itemsize <= source.itemsize else source
    values = [value.to(transfer) for value in values]
    on_host = all(value.device.type == 'cpu' for value in values)
    if device is None or torch.device(device).type != 'cuda' or not on_host:
        return torch.stack(values).to(device=device, dtype=target)
    pinned = torch.empty((len(values),) + tuple(values[0].shape), dtype=transfer, pin_memory=True)
    torch.stack(values, out=pinned)
    return pinned.to(device, non_blocking=True).to(target)


def scalars_to_host(values: Dict[str, torch.Tensor]) -> Callable[[], Dict[str, float]]:
    """Start bringing scalar tensors (e.g. a training step's losses) to the host as floats; returns the function
    that gives them. On a GPU the values are stacked and queued as one copy into pinned memory, and only that
    function waits, for this copy alone (a CUDA event), not for work queued after it: called after the
    backward pass and the optimizer step have been queued, it lets the GPU keep working while the host reads."""
    names = list(values)
    if not names:
        return dict
    scalars = [torch.as_tensor(v).detach().float().reshape(()) for v in values.values()]
    packed = torch.stack([to_device(v, scalars[0].device) for v in scalars])
    if packed.device.type != 'cuda':
        return lambda: dict(zip(names, packed.tolist()))
    host = torch.empty(packed.shape, dtype=packed.dtype, pin_memory=True)
    host.copy_(packed, non_blocking=True)
    copied = torch.cuda.Event()
    copied.record()

    def read() -> Dict[str, float]:
        copied.synchronize()
        return dict(zip(names, host.tolist()))
    return read
