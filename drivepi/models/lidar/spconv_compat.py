"""spconv with this torch: correct CPU results, the CPU backward, and one log line silenced (the one place
for all three).

spconv 2.3.8's CPU kernels give wrong results when torch runs more than one CPU thread: a 3x3x3
``SubMConv3d`` (16 -> 32 channels, 30,000 random voxels) differs from the dense ``conv3d`` it stands for by
up to 0.5-0.58 with 2 threads and by 3e-7 with one, and two calls on the same input disagree (the open
traveller59/spconv#679 reports the varying outputs, also on the CPU). Importing this module runs every
spconv convolution and pooling on CPU tensors (the module's forward, which builds the index pairs, and each
autograd function's forward and backward) in one torch thread (:func:`drivepi.threads.one_cpu_thread`);
CUDA tensors are untouched.

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
import functools
import logging

import spconv.pytorch.conv as spconv_conv
import spconv.pytorch.functional as spconv_functional
import spconv.pytorch.ops as spconv_ops
import spconv.pytorch.pool as spconv_pool
import torch

from drivepi.threads import one_cpu_thread

FX_TRACING_NOTE = 'is_fx_tracing will return true for both fx.symbolic_trace and torch.export'

_spconv_current_stream = spconv_ops.get_current_stream


def current_stream_or_zero() -> int:
    """spconv's CUDA stream handle, or 0 (the value its CPU paths use) when CUDA is unavailable."""
    return _spconv_current_stream() if torch.cuda.is_available() else 0


spconv_ops.get_current_stream = current_stream_or_zero


def _on_cpu_in_one_thread(fn):
    """``fn`` run in one torch thread when its first tensor argument (features or gradient) is on the CPU."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        first = next((a for a in args if isinstance(a, (torch.Tensor, spconv_conv.SparseConvTensor))), None)
        features = first.features if isinstance(first, spconv_conv.SparseConvTensor) else first
        if features is None or features.is_cuda:
            return fn(*args, **kwargs)
        with one_cpu_thread():
            return fn(*args, **kwargs)
    return wrapper


for _module in (spconv_conv.SparseConvolution, spconv_pool.SparseMaxPool, spconv_pool.SparseAvgPool):
    _module.forward = _on_cpu_in_one_thread(_module.forward)
for _function in (spconv_functional.SparseConvFunction, spconv_functional.SparseInverseConvFunction,
                  spconv_functional.SparseImplicitGemmFunction, spconv_functional.SubMConvFunction,
                  spconv_functional.SparseMaxPoolFunction, spconv_functional.SparseMaxPoolImplicitGemmFunction,
                  spconv_functional.SparseAvgPoolImplicitGemmFunction):
    _function.forward = staticmethod(_on_cpu_in_one_thread(_function.forward))
    _function.backward = staticmethod(_on_cpu_in_one_thread(_function.backward))


class _DropFxTracingNote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(FX_TRACING_NOTE)


logging.getLogger('torch.fx._symbolic_trace').addFilter(_DropFxTracingNote())
