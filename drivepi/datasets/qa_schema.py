"""The versioned QA JSONL schema: dataclasses, a validating reader and an atomic writer.

One JSON object per line (``docs/contracts.md``, "QA file")::

    {"schema_version": 1, "sample_token": str,
     "conversations": [{"id": str, "family": str,
                        "turns": [{"question": str, "answer": str, "type": str, "meta": {...}}]}]}

Lines of the same sample token are merged (so files can be concatenated); a conversation id
must be unique within a sample. Keys other than these are an error at every level (``meta`` holds what
the question's verifier needs and is free-form). Every problem is reported as :class:`QAFormatError`
naming the file, the line and what is wrong (for an unknown key: the nearest valid one).
"""
import difflib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List

from drivepi.fileio import atomic_open

SCHEMA_VERSION = 1
QA_FAMILIES = ('occupancy', 'flow', 'planning', 'caption', 'nuscenes_qa')


class QAFormatError(ValueError):
    """A QA file or record that does not follow the schema."""


@dataclass
class QATurn:
    """One question and its short canonical answer.

    ``type`` selects the answer matcher in :mod:`drivepi.evaluation.qa_accuracy`; ``meta`` holds
    the question parameters the verifier needs to recompute the answer from ground truth.
    """
    question: str
    answer: str
    type: str
    meta: dict = field(default_factory=dict)


@dataclass
class QAConversation:
    """A multi-turn conversation about one sample; ``family`` is one of :data:`QA_FAMILIES`."""
    id: str
    family: str
    turns: List[QATurn]

    def as_turn_dicts(self) -> List[dict]:
        """The data-sample form: ``[{'question', 'answer', 'type', 'family'}, ...]``."""
        return [dict(question=t.question, answer=t.answer, type=t.type, family=self.family)
                for t in self.turns]


@dataclass
class QARecord:
    """All conversations of one sample (one JSONL line)."""
    sample_token: str
    conversations: List[QAConversation]
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        """One JSONL line (without the newline), keys in schema order."""
        obj = dict(schema_version=self.schema_version, sample_token=self.sample_token,
                   conversations=[asdict(c) for c in self.conversations])
        return json.dumps(obj, ensure_ascii=False)


RECORD_KEYS = ('schema_version', 'sample_token', 'conversations')
CONVERSATION_KEYS = ('id', 'family', 'turns')
TURN_KEYS = ('question', 'answer', 'type', 'meta')  # "meta" is free-form
SCHEMA_LEVELS = {'a line': RECORD_KEYS, 'a conversation': CONVERSATION_KEYS, 'a turn': TURN_KEYS}


def _check_keys(obj: dict, level: str, where: str) -> None:
    """Unknown keys of ``obj`` (one of :data:`SCHEMA_LEVELS`) are an error naming the nearest valid key at this
    level, or the level the key belongs to."""
    valid = SCHEMA_LEVELS[level]
    unknown = [key for key in obj if key not in valid]
    if not unknown:
        return
    key = unknown[0]
    close = difflib.get_close_matches(str(key), valid, n=1)
    if close:
        hint = f'did you mean {close[0]!r}?'
    else:
        elsewhere = [other for other, keys in SCHEMA_LEVELS.items() if other != level and key in keys]
        hint = (f'{key!r} belongs in {elsewhere[0]}, not in {level}' if elsewhere else
                f'the keys of {level} are {", ".join(valid)}')
    raise QAFormatError(f'{where}: unknown key {key!r} in {level} ({hint})')


def _require(cond: bool, where: str, problem: str) -> None:
    if not cond:
        raise QAFormatError(f'{where}: {problem}')


def _nonempty_str(value, where: str, name: str) -> str:
    _require(isinstance(value, str) and value.strip() != '', where,
             f'"{name}" must be a non-empty string, got {value!r}')
    return value


def parse_turn(obj, where: str) -> QATurn:
    """Validate one turn dict and build a :class:`QATurn`."""
    _require(isinstance(obj, dict), where, f'a turn must be an object, got {type(obj).__name__}')
    _check_keys(obj, 'a turn', where)
    missing = {'question', 'answer', 'type'} - obj.keys()
    _require(not missing, where, f'turn is missing {sorted(missing)}')
    meta = obj.get('meta', {})
    _require(isinstance(meta, dict), where, f'"meta" must be an object, got {type(meta).__name__}')
    return QATurn(question=_nonempty_str(obj['question'], where, 'question'),
                  answer=_nonempty_str(obj['answer'], where, 'answer'),
                  type=_nonempty_str(obj['type'], where, 'type'), meta=meta)


def parse_conversation(obj, where: str) -> QAConversation:
    """Validate one conversation dict and build a :class:`QAConversation`."""
    _require(isinstance(obj, dict), where,
             f'a conversation must be an object, got {type(obj).__name__}')
    _check_keys(obj, 'a conversation', where + (f', conversation {obj["id"]!r}' if isinstance(obj.get('id'), str)
                                                 else ''))
    missing = {'id', 'family', 'turns'} - obj.keys()
    _require(not missing, where, f'conversation is missing {sorted(missing)}')
    conv_id = _nonempty_str(obj['id'], where, 'id')
    _require(obj['family'] in QA_FAMILIES, where,
             f'conversation {conv_id!r}: unknown family {obj["family"]!r} (one of {QA_FAMILIES})')
    turns = obj['turns']
    _require(isinstance(turns, list) and len(turns) > 0, where,
             f'conversation {conv_id!r}: "turns" must be a non-empty list')
    return QAConversation(id=conv_id, family=obj['family'],
                          turns=[parse_turn(t, f'{where}, conversation {conv_id!r}, turn {i}')
                                 for i, t in enumerate(turns)])


def parse_record(obj, where: str) -> QARecord:
    """Validate one decoded JSONL object and build a :class:`QARecord`."""
    _require(isinstance(obj, dict), where, f'a line must be a JSON object, got {type(obj).__name__}')
    version = obj.get('schema_version')
    _require(version == SCHEMA_VERSION, where,
             f'schema_version {version!r} is not supported (this reader reads {SCHEMA_VERSION})')
    _check_keys(obj, 'a line', where)
    token = _nonempty_str(obj.get('sample_token'), where, 'sample_token')
    convs = obj.get('conversations')
    _require(isinstance(convs, list), where, '"conversations" must be a list')
    return QARecord(sample_token=token,
                    conversations=[parse_conversation(c, where) for c in convs])


def iter_qa_records(path) -> Iterable[QARecord]:
    """Yield the validated records of a QA JSONL file line by line (blank lines are skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'QA file not found: {path}')
    with path.open('r', encoding='utf-8') as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f'{path}:{lineno}'
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise QAFormatError(f'{where}: invalid JSON ({err.msg} at column {err.colno})'
                                    ' - is the file truncated?') from err
            yield parse_record(obj, where)


def load_qa_file(path) -> Dict[str, List[QAConversation]]:
    """Read a QA JSONL file into ``{sample_token: [QAConversation, ...]}``.

    Raises:
        FileNotFoundError: the file does not exist.
        QAFormatError: a malformed line (message names file, line and problem) or a
            conversation id repeated within a sample.
    """
    by_token: Dict[str, List[QAConversation]] = {}
    seen_ids: Dict[str, set] = {}
    for record in iter_qa_records(path):
        ids = seen_ids.setdefault(record.sample_token, set())
        for conv in record.conversations:
            if conv.id in ids:
                raise QAFormatError(f'{path}: sample {record.sample_token!r} has conversation id '
                                    f'{conv.id!r} more than once')
            ids.add(conv.id)
        by_token.setdefault(record.sample_token, []).extend(record.conversations)
    return by_token


def write_qa_file(records: Iterable[QARecord], path) -> int:
    """Write records as JSONL atomically (:func:`drivepi.fileio.atomic_open`: a temporary file in the same
    directory, then ``os.replace``; the file gets the umask's permissions, as ``open`` gives).

    Returns:
        The number of lines written.
    """
    count = 0
    with atomic_open(path, 'w', encoding='utf-8') as f:
        for record in records:
            f.write(record.to_json() + '\n')
            count += 1
    return count
