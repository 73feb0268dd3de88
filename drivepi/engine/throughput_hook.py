"""Evaluation throughput once warmed up, for tools/test.py."""
import time
from typing import List, Optional

from mmengine.hooks import Hook

from drivepi.registry import HOOKS


@HOOKS.register_module()
class TestThroughputHook(Hook):
    """Frames per second of a test run after its first ``warmup_iters`` iterations.

    A short run's overall rate is dominated by start-up (checkpoint, data workers) and by the first frames'
    one-time work (CUDA graph captures, cuDNN autotuning, compilation); a full validation set runs at the
    steady rate this measures: the frames of the later iterations over the time from the end of the
    warm-up to the end of the last iteration (the final metric computation excluded). Of that time, the share
    spent waiting for the data loader (from the end of one iteration to the start of the next) tells a
    loader-bound evaluation from a model- or metric-bound one.

    Args:
        warmup_iters: iterations left out (>= 1).
    """

    priority = 'LOWEST'

    def __init__(self, warmup_iters: int = 5) -> None:
        if warmup_iters < 1:
            raise ValueError(f'TestThroughputHook: warmup_iters must be >= 1, got {warmup_iters}')
        self.warmup_iters = warmup_iters
        self.iter_starts: List[float] = []
        self.iter_ends: List[float] = []
        self.iter_frames: List[int] = []

    def before_test_epoch(self, runner) -> None:
        self.iter_starts, self.iter_ends, self.iter_frames = [], [], []

    def before_test_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self.iter_starts.append(time.perf_counter())

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.iter_ends.append(time.perf_counter())
        self.iter_frames.append(len(outputs) if outputs is not None else 0)

    def _steady_seconds(self) -> Optional[float]:
        """Seconds from the end of the warm-up to the end of the last iteration; None when the run had no
        iteration after the warm-up."""
        if len(self.iter_ends) <= self.warmup_iters:
            return None
        return self.iter_ends[-1] - self.iter_ends[self.warmup_iters - 1]

    def steady_frames_per_s(self) -> Optional[float]:
        """Frames/s after the warm-up; None when the run had no iteration after it."""
        seconds = self._steady_seconds()
        return None if seconds is None else sum(self.iter_frames[self.warmup_iters:]) / seconds

    def steady_data_wait_share(self) -> Optional[float]:
        """Share (0-1) of the steady time spent waiting for the next batch; None as ``steady_frames_per_s``."""
        seconds = self._steady_seconds()
        if seconds is None:
            return None
        waits = [start - end for start, end in zip(self.iter_starts[self.warmup_iters:],
                                                   self.iter_ends[self.warmup_iters - 1:])]
        return sum(waits) / seconds
