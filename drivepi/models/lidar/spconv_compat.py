"""spconv with this torch: the CPU backward, and one log line silenced (the one place for both).

spconv 2.3.x (CPU-only build) calls ``torch.cuda.current_stream()`` in ``indice_conv_backward`` even for
CPU tensors, which raises "Torch not compiled with CUDA enabled" (same family as
traveller59/spconv#366); the CPU code path never uses the stream. Importing this module makes the
stream lookup return 0 while CUDA is unavailable; with CUDA it is spconv's own lookup.

spconv's ``SparseConvTensor`` is a torch.fx proxyable class, so building one calls
``torch.fx._symbolic_trace.is_fx_tracing()``, which logs (once per process, at WARNING) that the function
also returns true under ``torch.export``. DrivePI neither traces nor exports spconv modules, so that note
says nothing about a run; a filter on that logger drops exactly this message. (spconv's other per-run
warning, the list index of ``SparseConvTensor.dense()``, is avoided rather than silenced:
``drivepi.models.lidar.sparse_backbone.dense_volume``.)
"""
import logging

import spconv.pytorch.ops as spconv_ops
import torch

FX_TRACING_NOTE = 'is_fx_tracing will return true for both fx.symbolic_trace and torch.export'

_spconv_current_stream = spconv_ops.get_current_stream


def current_stream_or_zero() -> int:
    """spconv's CUDA stream handle, or 0 (the value its CPU paths use) when CUDA is unavailable."""
    return _spconv_current_stream() if torch.cuda.is_available() else 0


spconv_ops.get_current_stream = current_stream_or_zero


class _DropFxTracingNote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(FX_TRACING_NOTE)


logging.getLogger('torch.fx._symbolic_trace').addFilter(_DropFxTracingNote())
