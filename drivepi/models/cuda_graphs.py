"""CUDA graphs and a second stream for inference steps whose cost is kernel launches, not arithmetic.

A captured graph replays all of a step's kernels with one launch, so Python and launch overhead
(hundreds of small kernels per LLM layer stack) disappear. Inputs and outputs live in static buffers:
a replay reads the input buffers and overwrites the output buffers in place. :func:`run_overlapped`
lets such a replay run on the GPU while the host works through a branch that cannot be captured.
"""
import contextlib
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import torch


@contextlib.contextmanager
def autocast_cache_disabled() -> Iterator[None]:
    """Autocast without its weight-cast cache (autocast state otherwise unchanged).

    Under autocast, the low-precision copy of a weight is cached until the outermost autocast region
    exits, and then freed. A graph captured while the cache is on replays reads of those copies: after the
    region ends their memory is reused or released (``torch.cuda.graph`` empties the allocator's cache before
    each capture), and a replay reads garbage or faults with an illegal memory access. With the cache off,
    the casts are captured inside the graph, whose private memory pool keeps them.
    """
    previous = torch.is_autocast_cache_enabled()
    torch.set_autocast_cache_enabled(False)
    try:
        yield
    finally:
        torch.set_autocast_cache_enabled(previous)


def capture(fn: Callable[..., torch.Tensor], static_inputs: Tuple[torch.Tensor, ...],
            undo_warmup: Optional[Callable[[], None]] = None) -> Tuple[torch.cuda.CUDAGraph, torch.Tensor]:
    """Capture ``fn(*static_inputs)`` into a CUDA graph.

    ``fn`` runs once eagerly on a side stream first (cuBLAS/cuDNN set-up must not happen during
    capture); ``undo_warmup`` then reverts that run's side effects (e.g. a KV cache write). Capture
    records without executing: the first replay is the first graph execution. Both run with autocast's
    weight-cast cache off (:func:`autocast_cache_disabled`), so the graph reads no memory outside its pool.

    Returns:
        (graph, output tensor that every ``graph.replay()`` overwrites).
    """
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with autocast_cache_disabled():
        with torch.cuda.stream(stream):
            fn(*static_inputs)
        torch.cuda.current_stream().wait_stream(stream)
        if undo_warmup is not None:
            undo_warmup()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = fn(*static_inputs)
    return graph, output


class GraphedFunction:
    """A pure function of tensors replayed from one CUDA graph per input signature (shapes, dtypes,
    autocast state: a graph replays the casts of the context it was captured in).

    Args:
        fn: function of tensors returning a tensor, without host synchronisation or side effects.
        max_graphs: signatures kept at most (each graph holds its own activation memory); a new one
            beyond that runs eagerly.
    """

    def __init__(self, fn: Callable[..., torch.Tensor], max_graphs: int = 4) -> None:
        self.fn, self.max_graphs = fn, max_graphs
        self.graphs: Dict[tuple, tuple] = {}

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        """``fn(*inputs)``, from a graph on CUDA (the result is a fresh tensor, not the static buffer)."""
        if not inputs[0].is_cuda:
            return self.fn(*inputs)
        key = tuple((tuple(x.shape), x.dtype, x.device) for x in inputs) + (
            torch.is_autocast_enabled('cuda') and torch.get_autocast_dtype('cuda'),)
        if key not in self.graphs:
            if len(self.graphs) >= self.max_graphs:
                return self.fn(*inputs)
            static_inputs = tuple(x.clone() for x in inputs)
            self.graphs[key] = (static_inputs,) + capture(self.fn, static_inputs)
        static_inputs, graph, output = self.graphs[key]
        for buffer, x in zip(static_inputs, inputs):
            buffer.copy_(x)
        graph.replay()
        return output.clone()

    def reset(self) -> None:
        """Drop every graph (after the function's weights were replaced, e.g. by a LoRA merge)."""
        self.graphs.clear()


_SIDE_STREAMS: Dict[torch.device, torch.cuda.Stream] = {}


def run_overlapped(side_fn: Callable[[], torch.Tensor], main_fn: Callable[[], Any],
                   device: torch.device, overlap: bool = True) -> Tuple[torch.Tensor, Any]:
    """``(side_fn(), main_fn())``, on a GPU at inference with ``side_fn`` on a second CUDA stream.

    ``side_fn`` is queued first, so its kernels (e.g. the camera branch's graph replay) run while the host
    works through ``main_fn`` (e.g. the LiDAR branch, whose synchronisations then wait for the current
    stream only); the current stream waits for the side stream before it uses the result. On the CPU, with
    autograd recording or without ``overlap``, the two simply run one after the other.
    """
    if not overlap or device.type != 'cuda' or torch.is_grad_enabled():
        return side_fn(), main_fn()
    main = torch.cuda.current_stream(device)
    side = _SIDE_STREAMS.setdefault(device, torch.cuda.Stream(device))
    side.wait_stream(main)  # the side work reads tensors the current stream made
    with torch.cuda.stream(side):
        side_out = side_fn()
    main_out = main_fn()
    main.wait_stream(side)
    side_out.record_stream(main)  # its memory is not reused before the current stream is done with it
    return side_out, main_out
