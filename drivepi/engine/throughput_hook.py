"""Evaluation throughput once warmed up, for tools/test.py."""
import time
from typing import List, Optional

import torch
from mmengine.hooks import Hook

from drivepi.benchmarking import synchronized_clock
from drivepi.registry import HOOKS


@HOOKS.register_module()
class TestThroughputHook(Hook):
    """Frames per second of a test run after its first ``warmup_iters`` iterations.

    A short run's overall rate is dominated by start-up (checkpoint, data workers) and by the first frames'
    one-time work (CUDA graph captures, cuDNN autotuning, compilation); a full validation set runs at the
    steady rate this measures: the frames of the later iterations over the time from the end of the
    warm-up to the end of the last iteration (the final metric computation excluded). Of that time, the share
    spent waiting for the data loader (from the end of one iteration to the start of the next) tells a
    loader-bound evaluation from a model- or metric-bound one, and the share spent in the metrics (the test
    loop's ``evaluator.process``, wrapped at the start of each test epoch and timed from one CUDA synchronisation
    to the next, so that the model's queued GPU work counts as the model's) tells those two apart.

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
        self.metric_seconds: List[float] = []

    def before_test_epoch(self, runner) -> None:
        self.iter_starts, self.iter_ends, self.iter_frames, self.metric_seconds = [], [], [], []
        if runner is not None:
            self._time_metrics(runner.test_loop.evaluator)

    def _time_metrics(self, evaluator) -> None:
        """Wrap ``evaluator.process`` (once) so that each call's seconds go to ``metric_seconds``."""
        if getattr(evaluator.process, 'timed_by', None) is self:
            return
        process = evaluator.process
        # the test loop's model is on its device by now: CUDA is initialised only when it runs there
        device = torch.device('cuda' if torch.cuda.is_available() and torch.cuda.is_initialized() else 'cpu')

        def timed_process(*args, **kwargs):
            start = synchronized_clock(device)
            process(*args, **kwargs)
            self.metric_seconds.append(synchronized_clock(device) - start)

        timed_process.timed_by = self
        evaluator.process = timed_process

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

    def steady_metric_share(self) -> Optional[float]:
        """Share (0-1) of the steady time spent in the metrics; None as ``steady_frames_per_s`` or when the
        metrics were not timed (the hook saw no runner)."""
        seconds = self._steady_seconds()
        if seconds is None or len(self.metric_seconds) != len(self.iter_ends):
            return None
        return sum(self.metric_seconds[self.warmup_iters:]) / seconds
