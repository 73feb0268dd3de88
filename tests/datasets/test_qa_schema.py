"""QA JSONL schema: round trip, merging, and clear errors for malformed files."""
import json

import pytest

from drivepi.datasets.qa_schema import (
    SCHEMA_VERSION,
    QAConversation,
    QAFormatError,
    QARecord,
    QATurn,
    load_qa_file,
    write_qa_file,
)


def make_record(token='s1', conv_id='occupancy-0', answer='yes'):
    turns = [QATurn('Is there an obstacle ahead?', answer, 'exist', {'check': 'direction_exist', 'direction': 'ahead'}),
             QATurn('How far away is it?', '12.4 m', 'distance', {})]
    return QARecord(token, [QAConversation(conv_id, 'occupancy', turns)])


def line(**overrides):
    obj = dict(schema_version=SCHEMA_VERSION, sample_token='s1',
               conversations=[dict(id='c0', family='flow', turns=[dict(question='q?', answer='a', type='status')])])
    obj.update(overrides)
    return json.dumps(obj)


def test_round_trip_and_turn_dicts(tmp_path):
    path = tmp_path / 'qa.jsonl'
    assert write_qa_file([make_record('s1'), make_record('s2', answer='no')], path) == 2
    qa = load_qa_file(path)
    assert list(qa) == ['s1', 's2']
    assert qa['s1'][0] == make_record('s1').conversations[0]
    assert qa['s2'][0].as_turn_dicts()[0] == dict(question='Is there an obstacle ahead?', answer='no',
                                                  type='exist', family='occupancy')
    first = json.loads(path.read_text().splitlines()[0])
    assert list(first) == ['schema_version', 'sample_token', 'conversations'] and first['schema_version'] == 1


def test_lines_of_one_sample_merge_and_repeated_ids_fail(tmp_path):
    path = tmp_path / 'qa.jsonl'
    write_qa_file([make_record('s1', 'a'), make_record('s1', 'b')], path)
    assert [c.id for c in load_qa_file(path)['s1']] == ['a', 'b']
    write_qa_file([make_record('s1', 'a'), make_record('s1', 'a')], path)
    with pytest.raises(QAFormatError, match="qa.jsonl: sample 's1' has conversation id 'a' more than once"):
        load_qa_file(path)


@pytest.mark.parametrize('text, problem', [
    (line()[:-20], r'qa.jsonl:2: invalid JSON .*truncated'),
    (line(schema_version=2), r'qa.jsonl:2: schema_version 2 is not supported'),
    (line(sample_token=''), r'qa.jsonl:2: "sample_token" must be a non-empty string'),
    (line(conversations={}), r'qa.jsonl:2: "conversations" must be a list'),
    (line(conversations=[dict(id='c0', family='gossip', turns=[])]),
     r"qa.jsonl:2: conversation 'c0': unknown family 'gossip'"),
    (line(conversations=[dict(id='c0', family='flow', turns=[])]),
     r"qa.jsonl:2: conversation 'c0': \"turns\" must be a non-empty list"),
    (line(conversations=[dict(id='c0', family='flow', turns=[dict(question='q?', answer='a')])]),
     r"qa.jsonl:2, conversation 'c0', turn 0: turn is missing \['type'\]"),
    (line(conversations=[dict(id='c0', family='flow', turns=[dict(question='q?', answer=' ', type='t')])]),
     r'turn 0: "answer" must be a non-empty string'),
    (line(conversations=[dict(id='c0', family='flow', turns=[dict(question='q?', answer=3, type='count')])]),
     r'turn 0: "answer" must be a non-empty string, got 3'),
    (line(conversations=[dict(id='c0', family='flow', turns=[dict(question='q?', answer='a', type='t', meta=[])])]),
     r'turn 0: "meta" must be an object'),
    ('[1, 2]', r'qa.jsonl:2: a line must be a JSON object'),
])
def test_malformed_lines_name_file_line_and_problem(tmp_path, text, problem):
    path = tmp_path / 'qa.jsonl'
    path.write_text(line(sample_token='ok') + '\n' + text + '\n')
    with pytest.raises(QAFormatError, match=problem):
        load_qa_file(path)


def test_blank_lines_are_skipped_and_missing_file_is_named(tmp_path):
    path = tmp_path / 'qa.jsonl'
    path.write_text('\n' + line() + '\n\n')
    assert list(load_qa_file(path)) == ['s1']
    with pytest.raises(FileNotFoundError, match='nope.jsonl'):
        load_qa_file(tmp_path / 'nope.jsonl')


def test_writer_is_atomic(tmp_path):
    path = tmp_path / 'qa.jsonl'
    write_qa_file([make_record('old')], path)

    def failing_records():
        yield make_record('new')
        raise RuntimeError('interrupted')
    with pytest.raises(RuntimeError):
        write_qa_file(failing_records(), path)
    assert list(load_qa_file(path)) == ['old']  # the old file survives, no temp file is left
    assert [p.name for p in tmp_path.iterdir()] == ['qa.jsonl']
