import types

import pytest

from drivepi.engine import throughput_hook
from drivepi.engine.throughput_hook import TestThroughputHook


def test_steady_throughput_leaves_out_the_warm_up_iterations(monkeypatch):
    hook = TestThroughputHook(warmup_iters=2)
    hook.before_test_epoch(runner=None)
    # (start, end) of each iteration: the loader is waited for between one end and the next start
    times = iter([0.5, 1.0, 1.5, 2.0, 2.5, 4.0, 4.5, 5.0, 6.0, 7.0])
    monkeypatch.setattr(throughput_hook.time, 'perf_counter', lambda: next(times))
    for i, frames in enumerate([1, 1, 2, 1, 1]):
        hook.before_test_iter(None, i)
        hook.after_test_iter(None, i, outputs=[None] * frames)
    # frames of iterations 2..4 = 2 + 1 + 1 over the time from the end of iteration 1 (2.0) to 7.0
    assert hook.steady_frames_per_s() == pytest.approx(4 / 5.0)
    # waits before iterations 2..4: 2.5 - 2.0, 4.5 - 4.0, 6.0 - 5.0 = 2.0 of the 5.0 s
    assert hook.steady_data_wait_share() == pytest.approx(2.0 / 5.0)


def test_steady_throughput_of_a_run_shorter_than_the_warm_up_is_none():
    hook = TestThroughputHook(warmup_iters=3)
    hook.before_test_epoch(runner=None)
    for i in range(3):
        hook.before_test_iter(None, i)
        hook.after_test_iter(None, i, outputs=[None])
    assert hook.steady_frames_per_s() is None and hook.steady_data_wait_share() is None
    with pytest.raises(ValueError, match='warmup_iters must be >= 1'):
        TestThroughputHook(warmup_iters=0)


class _Evaluator:
    def __init__(self, seconds_per_call: float, clock: list) -> None:
        self.seconds_per_call, self.clock, self.calls = seconds_per_call, clock, []

    def process(self, data_samples, data_batch=None) -> None:
        self.calls.append(data_samples)
        self.clock[0] += self.seconds_per_call


def test_the_metrics_share_is_the_time_in_the_evaluators_process(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(throughput_hook.time, 'perf_counter', lambda: clock[0])
    evaluator = _Evaluator(0.25, clock)
    runner = types.SimpleNamespace(test_loop=types.SimpleNamespace(evaluator=evaluator))
    hook = TestThroughputHook(warmup_iters=1)
    for _ in range(2):  # a second epoch (e.g. a second test run) must not wrap the evaluator twice
        hook.before_test_epoch(runner)
        for i in range(3):  # 0.5 s of data wait, 1 s of model, 0.25 s of metrics per iteration
            clock[0] += 0.5
            hook.before_test_iter(runner, i)
            clock[0] += 1.0
            runner.test_loop.evaluator.process([i], data_batch=None)
            hook.after_test_iter(runner, i, outputs=[None])
    assert evaluator.calls == [[0], [1], [2]] * 2
    assert hook.metric_seconds == [0.25] * 3
    # the steady time: iterations 1 and 2, 2 x 1.75 s
    assert hook.steady_frames_per_s() == pytest.approx(2 / 3.5)
    assert hook.steady_metric_share() == pytest.approx(0.5 / 3.5)
    assert hook.steady_data_wait_share() == pytest.approx(1.0 / 3.5)
    untimed = TestThroughputHook(warmup_iters=1)
    untimed.before_test_epoch(runner=None)
    for i in range(3):
        untimed.before_test_iter(None, i)
        untimed.after_test_iter(None, i, outputs=[None])
    assert untimed.steady_metric_share() is None
