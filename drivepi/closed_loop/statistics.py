"""Confidence intervals of closed-loop scores: the percentile bootstrap over episodes.

An episode is the unit of resampling: a score's interval says how much the mean would move on another
draw of episodes like these (not how noisy one episode is).
"""
from typing import Dict, List, Optional

from drivepi.evaluation.bootstrap import bootstrap_ci


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
