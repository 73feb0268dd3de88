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
