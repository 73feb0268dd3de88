"""Canonical QA answers and their per-type matching (accuracy of text answers).

Every QA turn carries a ``type``; the type decides how a predicted answer is scored against the
ground-truth answer:

- categorical (``exist``, ``object``, ``status``, ``comparison``, ``heading``, ``action``):
  exact match after normalisation (lower case, collapsed spaces, no trailing full stop);
- ``count``: the integers must be equal (nuScenes-QA convention);
- numeric (``distance``, ``height`` in m, ``speed`` in m/s): ``|pred - gt| <= max(abs, rel * |gt|)``
  with the tolerances of :data:`NUMERIC_TOLERANCE`; a non-number prediction scores 0, and the
  non-numeric answer ``none`` must be matched exactly;
- ``trajectory``: waypoints ``(x, y), ...`` in m; correct when the counts agree and the mean
  waypoint L2 distance is at most :data:`TRAJECTORY_TOLERANCE_M`;
- ``reason``: templated text with numbers (``pedestrian crossing 12.4 m ahead``): the words must
  match exactly and each number within the ``distance`` tolerance;
- ``caption``: unigram F1 between the word bags (a soft score in [0, 1]).

The scores are 0/1 except ``caption``; accuracy is their mean.
"""
import re
from collections import Counter, defaultdict
from typing import List, Sequence, Tuple

import numpy as np

ANSWER_KINDS = {
    'exist': 'categorical', 'object': 'categorical', 'status': 'categorical',
    'comparison': 'categorical', 'heading': 'categorical', 'action': 'categorical',
    'count': 'count',
    'distance': 'numeric', 'height': 'numeric', 'speed': 'numeric',
    'trajectory': 'trajectory',
    'reason': 'templated',
    'caption': 'caption',
}
NUMERIC_TOLERANCE = {  # type: (absolute tolerance in the answer's unit, relative tolerance)
    'distance': (0.5, 0.1),
    'height': (0.4, 0.1),
    'speed': (0.5, 0.1),
}
TRAJECTORY_TOLERANCE_M = 1.0
_NUMBER = re.compile(r'[-+]?(?:\d+\.\d*|\.\d+|\d+)')


def normalize_answer(text: str) -> str:
    """Lower case, single spaces, no surrounding spaces and no trailing full stop."""
    return ' '.join(str(text).lower().split()).rstrip('.').strip()


def format_number(value: float, unit: str = '', decimals: int = 1) -> str:
    """The canonical numeric answer, e.g. ``format_number(12.43, 'm') == '12.4 m'``."""
    text = f'{value:.{decimals}f}'
    if float(text) == 0:
        text = text.lstrip('-')
    return f'{text} {unit}' if unit else text


PLACE_PATTERN = re.compile(r'x = (-?\d+(?:\.\d+)?) m, y = (-?\d+(?:\.\d+)?) m')


def format_place(x: float, y: float) -> str:
    """An ego-frame BEV position (m) as questions name it: ``x = 12.2 m, y = -3.4 m`` (the model finds these
    places again with :func:`find_places` and gives their tokens the scene token of the place)."""
    return f'x = {format_number(x, "m")}, y = {format_number(y, "m")}'


def find_places(text: str) -> List[Tuple[int, int, float, float]]:
    """Every place of ``text`` written as :func:`format_place` writes it: ``(start, end, x, y)``, the character
    span and the position in metres."""
    return [(m.start(), m.end(), float(m.group(1)), float(m.group(2))) for m in PLACE_PATTERN.finditer(text)]


def format_waypoints(xy: np.ndarray) -> str:
    """The canonical trajectory answer: ``(x1, y1), (x2, y2), ...`` in m, one decimal."""
    return ', '.join(f'({format_number(x)}, {format_number(y)})' for x, y in np.asarray(xy))


def parse_numbers(text: str) -> List[float]:
    """All numbers of a text, in order."""
    return [float(m) for m in _NUMBER.findall(text)]


def _categorical(pred: str, gt: str) -> float:
    return float(normalize_answer(pred) == normalize_answer(gt))


def _count(pred: str, gt: str) -> float:
    p, g = parse_numbers(pred), parse_numbers(gt)
    if not g:
        raise ValueError(f'count answer {gt!r} holds no number')
    return float(len(p) == 1 and p[0] == g[0])


def _within(pred: float, gt: float, qa_type: str) -> bool:
    abs_tol, rel_tol = NUMERIC_TOLERANCE[qa_type]
    return abs(pred - gt) <= max(abs_tol, rel_tol * abs(gt)) + 1e-9


def _numeric(pred: str, gt: str, qa_type: str) -> float:
    g = parse_numbers(gt)
    if not g:
        return _categorical(pred, gt)
    p = parse_numbers(pred)
    return float(len(p) >= 1 and _within(p[0], g[0], qa_type))


def _trajectory(pred: str, gt: str) -> float:
    g = np.asarray(parse_numbers(gt)).reshape(-1, 2)
    p = parse_numbers(pred)
    if len(p) != g.size:
        return 0.0
    err = np.linalg.norm(np.asarray(p).reshape(-1, 2) - g, axis=1).mean()
    return float(err <= TRAJECTORY_TOLERANCE_M)


def _templated(pred: str, gt: str) -> float:
    pred_n, gt_n = normalize_answer(pred), normalize_answer(gt)
    if _NUMBER.sub('#', pred_n) != _NUMBER.sub('#', gt_n):
        return 0.0
    return float(all(_within(p, g, 'distance')
                     for p, g in zip(parse_numbers(pred_n), parse_numbers(gt_n))))


def _caption(pred: str, gt: str) -> float:
    p, g = Counter(normalize_answer(pred).split()), Counter(normalize_answer(gt).split())
    common = sum((p & g).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(p.values()), common / sum(g.values())
    return 2 * precision * recall / (precision + recall)


def answer_score(pred: str, gt: str, qa_type: str) -> float:
    """Score one predicted answer against the ground truth for a question type.

    Returns:
        1.0 / 0.0 (soft score in [0, 1] for ``caption``).
    Raises:
        ValueError: an unknown question type.
    """
    kind = ANSWER_KINDS.get(qa_type)
    if kind is None:
        raise ValueError(f'unknown QA type {qa_type!r}; known types: {sorted(ANSWER_KINDS)}')
    if kind == 'categorical':
        return _categorical(pred, gt)
    if kind == 'count':
        return _count(pred, gt)
    if kind == 'numeric':
        return _numeric(pred, gt, qa_type)
    if kind == 'trajectory':
        return _trajectory(pred, gt)
    if kind == 'templated':
        return _templated(pred, gt)
    return _caption(pred, gt)


def qa_accuracy(preds: Sequence[str], gts: Sequence[str], types: Sequence[str]) -> dict:
    """Accuracy per question type and overall.

    Args:
        preds, gts, types: parallel sequences, one entry per QA turn.
    Returns:
        ``{'overall': mean score over all turns, 'per_type': {type: mean score},
        'num_turns': {type: count}}``; ``overall`` is NaN when there are no turns.
    """
    if not len(preds) == len(gts) == len(types):
        raise ValueError(f'qa_accuracy needs parallel sequences, got {len(preds)} predictions, '
                         f'{len(gts)} answers and {len(types)} types')
    scores = defaultdict(list)
    for pred, gt, qa_type in zip(preds, gts, types):
        scores[qa_type].append(answer_score(pred, gt, qa_type))
    all_scores = [s for per_type in scores.values() for s in per_type]
    return dict(overall=float(np.mean(all_scores)) if all_scores else float('nan'),
                per_type={t: float(np.mean(s)) for t, s in sorted(scores.items())},
                num_turns={t: len(s) for t, s in sorted(scores.items())})
