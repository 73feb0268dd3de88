"""Bootstrap confidence intervals: known cases and coverage."""
import numpy as np
import pytest

from drivepi.evaluation.bootstrap import bootstrap_ci


def test_all_equal_scores_give_a_zero_width_interval():
    assert bootstrap_ci([0.7] * 12) == pytest.approx((0.7, 0.7, 0.7))
    assert bootstrap_ci([1.0]) == (1.0, 1.0, 1.0)


def test_interval_is_deterministic_ordered_and_narrows_with_more_episodes():
    rng = np.random.default_rng(1)
    few, many = rng.random(10), rng.random(400)
    assert bootstrap_ci(few) == bootstrap_ci(few)  # fixed seed
    est, low, high = bootstrap_ci(few)
    assert low <= est <= high and est == pytest.approx(few.mean())
    assert np.subtract(*bootstrap_ci(many)[2:0:-1]) < 0.5 * (high - low)


def test_coverage_of_a_known_mean_is_close_to_95_percent():
    rng = np.random.default_rng(7)
    covered = [low <= 0.6 <= high for low, high in
               (bootstrap_ci(rng.binomial(1, 0.6, 40).astype(float), num_resamples=500, seed=s)[1:]
                for s in range(200))]
    assert 0.88 <= np.mean(covered) <= 0.99


def test_ratio_statistic():
    assert bootstrap_ci([1.0, 0.0], weights=[2.0, 2.0])[0] == 0.25   # 1 collision over 4 km
    assert bootstrap_ci([0.0, 0.0], weights=[0.0, 0.0]) == (0.0, 0.0, 0.0)


def test_bad_input_raises():
    with pytest.raises(ValueError, match='N >= 1'):
        bootstrap_ci([])
    with pytest.raises(ValueError, match='confidence'):
        bootstrap_ci([1.0, 2.0], confidence=95)
