"""Confidence intervals of closed-loop scores: the percentile bootstrap over episodes.

An episode is the unit of resampling: a score's interval says how much the mean would move on another
draw of episodes like these (not how noisy one episode is).
"""
from typing import Dict, List, Optional

import numpy as np

BOOTSTRAP_SEED = 0
BOOTSTRAP_RESAMPLES = 2000


def bootstrap_ci(values, weights=None, confidence: float = 0.95, num_resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> tuple:
    """Estimate and percentile-bootstrap interval of ``sum(values) / sum(weights)`` over episodes.

    Args:
        values: (N,) per-episode values. weights: (N,) per-episode weights (None: all 1, i.e. the mean;
            e.g. km driven, for collisions per km). confidence: interval mass in (0, 1).
        num_resamples: bootstrap resamples; seed: their random seed (fixed: the same data give the same interval).

    Returns:
        ``(estimate, low, high)``; a zero total weight (in the data or a resample) counts as 0.

    Raises:
        ValueError: no episodes, mismatched lengths, or ``confidence`` outside (0, 1).
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


def scores_with_ci(episodes: List[dict], keys, confidence: float = 0.95) -> Dict[str, dict]:
    """Per-score ``{'mean', 'low', 'high'}`` over episode logs (failed episodes count 0 on every score) and
    ``collisions_per_km`` as at-fault collisions over km driven, each with its bootstrap interval.

    Args:
        episodes: records ``{'status': 'ok'|'failed', 'metrics': {...} | None}``. keys: score names.
    """
    metrics: List[Optional[dict]] = [e['metrics'] if e['status'] == 'ok' else None for e in episodes]
    out = {}
    for key in keys:
        out[key] = _triple(bootstrap_ci([m[key] if m else 0.0 for m in metrics], confidence=confidence))
    collisions = [m['num_at_fault_collisions'] if m else 0.0 for m in metrics]
    km = [m['distance_m'] / 1000.0 if m else 0.0 for m in metrics]
    out['collisions_per_km'] = _triple(bootstrap_ci(collisions, km, confidence=confidence))
    return out


def _triple(ci: tuple) -> dict:
    return dict(zip(('mean', 'low', 'high'), ci))
