"""Closed-loop scores with bootstrap intervals over episodes: failed episodes and collisions per km."""
from drivepi.closed_loop.statistics import scores_with_ci


def test_failed_episodes_count_zero_and_collisions_are_per_km():
    ok = dict(status='ok', metrics=dict(pdms=1.0, num_at_fault_collisions=1, distance_m=500.0))
    failed = dict(status='failed', metrics=None)
    out = scores_with_ci([ok, failed], ['pdms'])
    assert out['pdms']['mean'] == 0.5 and out['collisions_per_km']['mean'] == 2.0
    assert out['pdms']['low'] == 0.0 and out['pdms']['high'] == 1.0
