"""Import of the public nuScenes-QA files into the DrivePI QA schema.

nuScenes-QA (Qian et al., AAAI 2024) ships ``NuScenes_{train,val}_questions.json`` as
``{"questions": [{"sample_token", "question", "answer", "template_type", "num_hop", ...}]}`` with
``template_type`` one of exist / count / object / status / comparison. Each question becomes a
single-turn conversation of family ``nuscenes_qa`` whose turn ``type`` is the template type, so
training and evaluation read both sources through one path.
"""
from pathlib import Path
from typing import Dict, List, Optional

from drivepi.datasets.qa_schema import QAConversation, QARecord, QATurn
from drivepi.fileio import read_json

NUSCENES_QA_TYPES = ('exist', 'count', 'object', 'status', 'comparison')


def _answer_text(answer) -> str:
    if isinstance(answer, bool):
        return 'yes' if answer else 'no'
    return ' '.join(str(answer).lower().split())


def _check_item(item, where: str) -> None:
    if not isinstance(item, dict):
        raise ValueError(f'{where}: a question must be an object, got {type(item).__name__}')
    missing = {'sample_token', 'question', 'answer', 'template_type'} - item.keys()
    if missing:
        raise ValueError(f'{where}: question lacks {sorted(missing)}')
    if item['template_type'] not in NUSCENES_QA_TYPES:
        raise ValueError(f'{where}: template_type {item["template_type"]!r} is not one of {NUSCENES_QA_TYPES}')
    if not str(item['question']).strip() or _answer_text(item['answer']) == '':
        raise ValueError(f'{where}: empty question or answer')


def read_nuscenes_qa(path) -> List[dict]:
    """The validated question list of a nuScenes-QA JSON file (errors name the file and item)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'nuScenes-QA file not found: {path}')
    data = read_json(path, 'nuScenes-QA file')
    questions = data.get('questions') if isinstance(data, dict) else None
    if not isinstance(questions, list):
        raise ValueError(f'{path}: expected an object with a "questions" list (nuScenes-QA format)')
    for i, item in enumerate(questions):
        _check_item(item, f'{path}: questions[{i}]')
    return questions


def import_nuscenes_qa(path, sample_tokens: Optional[set] = None) -> List[QARecord]:
    """nuScenes-QA questions as QA records, one per sample token (in file order).

    Args:
        path: a nuScenes-QA questions JSON file.
        sample_tokens: keep only these samples (e.g. the tokens of an info file); None keeps all.
    Returns:
        Records whose conversations are single turns; a question repeated within a sample is
        kept once.
    """
    by_token: Dict[str, List[QAConversation]] = {}
    seen: Dict[str, set] = {}
    for item in read_nuscenes_qa(path):
        token = item['sample_token']
        if sample_tokens is not None and token not in sample_tokens:
            continue
        question = ' '.join(str(item['question']).split())
        if question in seen.setdefault(token, set()):
            continue
        seen[token].add(question)
        convs = by_token.setdefault(token, [])
        turn = QATurn(question=question, answer=_answer_text(item['answer']), type=item['template_type'],
                      meta=dict(check='nuscenes_qa', num_hop=item.get('num_hop')))
        convs.append(QAConversation(id=f'nuscenes_qa-{len(convs)}', family='nuscenes_qa', turns=[turn]))
    return [QARecord(sample_token=t, conversations=c) for t, c in by_token.items()]
