"""Answer balancing: drop conversations until no categorical answer dominates its question type.

The families already sample the answer first where the scene allows it (yes/no, moving/static,
which class); what the data decides (e.g. the next action) can still be skewed. For each
categorical or count type whose most frequent answer holds more than ``max_share`` of the turns,
randomly chosen conversations holding that answer are dropped, just enough to bring the share to
``max_share``. Types with a single distinct answer are left alone (they cannot be balanced).
"""
import math
from collections import Counter
from typing import Dict, List

import numpy as np

from drivepi.datasets.qa_schema import QARecord
from drivepi.evaluation.qa_accuracy import ANSWER_KINDS, normalize_answer

BALANCED_KINDS = ('categorical', 'count')


def _answer_counts(records: List[QARecord]) -> Dict[str, Counter]:
    counts: Dict[str, Counter] = {}
    for record in records:
        for conv in record.conversations:
            for turn in conv.turns:
                if ANSWER_KINDS.get(turn.type) in BALANCED_KINDS:
                    counts.setdefault(turn.type, Counter())[normalize_answer(turn.answer)] += 1
    return counts


def _drop_some(records: List[QARecord], qa_type: str, answer: str, num: int,
               rng: np.random.Generator) -> List[QARecord]:
    holders = [(r, c) for r, rec in enumerate(records) for c, conv in enumerate(rec.conversations)
               if any(t.type == qa_type and normalize_answer(t.answer) == answer for t in conv.turns)]
    drop = {holders[k] for k in rng.choice(len(holders), size=min(num, len(holders)), replace=False)}
    kept = []
    for r, rec in enumerate(records):
        convs = [conv for c, conv in enumerate(rec.conversations) if (r, c) not in drop]
        if convs:
            kept.append(QARecord(sample_token=rec.sample_token, conversations=convs))
    return kept


def balance_answers(records: List[QARecord], max_share: float, seed: int = 0,
                    max_rounds: int = 10) -> List[QARecord]:
    """Records with no balanced-kind type above ``max_share`` (up to ``max_rounds`` passes, since
    dropping a conversation also changes the other types' counts). ``max_share >= 1`` is a no-op."""
    if not 0 < max_share <= 1:
        raise ValueError(f'max_share must be in (0, 1], got {max_share}')
    rng = np.random.default_rng(seed)
    for _ in range(max_rounds):
        changed = False
        for qa_type, counts in sorted(_answer_counts(records).items()):
            (answer, top), total = counts.most_common(1)[0], sum(counts.values())
            if len(counts) < 2 or top <= max_share * total + 1e-9:
                continue
            records = _drop_some(records, qa_type, answer, math.ceil((top - max_share * total) / (1 - max_share)),
                                 rng)
            changed = True
        if not changed:
            break
    return records
