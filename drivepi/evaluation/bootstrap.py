"""Percentile-bootstrap confidence intervals over independent units: closed-loop episodes, or the samples
of a QA evaluation (the turns of one sample are not independent, so a sample is resampled as a whole).

An interval says how much the estimate would move on another draw of units like these.
"""
import numpy as np

BOOTSTRAP_SEED = 0
BOOTSTRAP_RESAMPLES = 2000


def bootstrap_ci(values, weights=None, confidence: float = 0.95, num_resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> tuple:
    """Estimate and percentile-bootstrap interval of ``sum(values) / sum(weights)`` over N units (episodes,
    samples).

    Args:
        values: (N,) per-unit values. weights: (N,) per-unit weights (None: all 1, i.e. the mean; e.g. km
            driven, for collisions per km, or QA turns per sample). confidence: interval mass in (0, 1).
        num_resamples: bootstrap resamples; seed: their random seed (fixed: the same data give the same interval).

    Returns:
        ``(estimate, low, high)``; a zero total weight (in the data or a resample) counts as 0.

    Raises:
        ValueError: no units, mismatched lengths, or ``confidence`` outside (0, 1).
    """
    values = np.asarray(values, dtype=np.float64)
    weights = np.ones_like(values) if weights is None else np.asarray(weights, dtype=np.float64)
    if values.ndim != 1 or not len(values) or weights.shape != values.shape:
        raise ValueError(f'bootstrap_ci: need (N,) values and weights with N >= 1, '
                         f'got {values.shape} / {weights.shape}')
    if not 0.0 < confidence < 1.0:
        raise ValueError(f'bootstrap_ci: confidence must be in (0, 1), got {confidence}')
    idx = np.random.default_rng(seed).integers(0, len(values), size=(num_resamples, len(values)))
    resampled = _ratio(values[idx].sum(axis=1), weights[idx].sum(axis=1))
    low, high = np.quantile(resampled, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    estimate = float(_ratio(values.sum(), weights.sum()))
    return estimate, float(min(low, estimate)), float(max(high, estimate))


def _ratio(num, den):
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


__all__ = ['bootstrap_ci', 'BOOTSTRAP_RESAMPLES', 'BOOTSTRAP_SEED']
