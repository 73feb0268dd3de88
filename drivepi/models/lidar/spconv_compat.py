"""Let spconv's CPU backward run with a CPU-only torch build.

spconv 2.3.x (CPU-only build) calls ``torch.cuda.current_stream()`` in ``indice_conv_backward`` even for
CPU tensors, which raises "Torch not compiled with CUDA enabled" (same family as
traveller59/spconv#366); the CPU code path never uses the stream. Importing this module makes the
stream lookup return 0 while CUDA is unavailable; with CUDA it is spconv's own lookup.
"""
import spconv.pytorch.ops as spconv_ops
import torch

_spconv_current_stream = spconv_ops.get_current_stream


def current_stream_or_zero() -> int:
    """spconv's CUDA stream handle, or 0 (the value its CPU paths use) when CUDA is unavailable."""
    return _spconv_current_stream() if torch.cuda.is_available() else 0


spconv_ops.get_current_stream = current_stream_or_zero
