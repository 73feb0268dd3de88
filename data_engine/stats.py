"""Statistics of a QA set: counts per family and type, answer histograms, largest answer share."""
from collections import Counter
from typing import Dict, List

from drivepi.datasets.qa_schema import QARecord
from drivepi.evaluation.qa_accuracy import normalize_answer

HISTOGRAM_TOP = 20


def qa_stats(records: List[QARecord]) -> dict:
    """Counts and answer distributions of records.

    Returns:
        ``{'num_samples', 'num_conversations', 'num_turns',
        'per_family': {family: {'conversations', 'turns'}},
        'per_type': {type: {'turns', 'distinct_answers', 'top_answer', 'largest_answer_share',
        'histogram': {answer: count} (the HISTOGRAM_TOP most frequent)}}}``
    """
    families: Dict[str, Counter] = {}
    answers: Dict[str, Counter] = {}
    num_convs = num_turns = 0
    for record in records:
        for conv in record.conversations:
            fam = families.setdefault(conv.family, Counter())
            fam['conversations'] += 1
            fam['turns'] += len(conv.turns)
            num_convs += 1
            num_turns += len(conv.turns)
            for turn in conv.turns:
                answers.setdefault(turn.type, Counter())[normalize_answer(turn.answer)] += 1
    per_type = {}
    for qa_type, counts in sorted(answers.items()):
        top, top_count = counts.most_common(1)[0]
        total = sum(counts.values())
        per_type[qa_type] = dict(turns=total, distinct_answers=len(counts), top_answer=top,
                                 largest_answer_share=top_count / total,
                                 histogram=dict(counts.most_common(HISTOGRAM_TOP)))
    return dict(num_samples=len(records), num_conversations=num_convs, num_turns=num_turns,
                per_family={f: dict(c) for f, c in sorted(families.items())}, per_type=per_type)


def format_stats_table(stats: dict) -> str:
    """A plain-text table of :func:`qa_stats` output."""
    lines = [f'samples {stats["num_samples"]}  conversations {stats["num_conversations"]}  '
             f'turns {stats["num_turns"]}', '', f'{"family":<12} {"conversations":>13} {"turns":>8}']
    lines += [f'{f:<12} {c["conversations"]:>13} {c["turns"]:>8}' for f, c in stats['per_family'].items()]
    lines += ['', f'{"type":<12} {"turns":>8} {"answers":>8} {"top share":>9}  top answer']
    lines += [f'{t:<12} {s["turns"]:>8} {s["distinct_answers"]:>8} {s["largest_answer_share"]:>9.3f}  '
              f'{s["top_answer"][:40]}' for t, s in stats['per_type'].items()]
    return '\n'.join(lines)
