"""nuScenes-QA import into the DrivePI QA schema (files written in the public format)."""
import json

import pytest

from data_engine.generate_qa import main
from data_engine.nuscenes_qa import import_nuscenes_qa
from drivepi.datasets.qa_schema import load_qa_file


def question(token, text, answer, template_type, num_hop=0):
    return dict(sample_token=token, question=text, answer=answer, template_type=template_type, num_hop=num_hop)


QUESTIONS = [question('s1', 'Are there any cars?', 'yes', 'exist'),
             question('s1', 'How many  buses are there?', 2, 'count', 1),
             question('s1', 'Are there any cars?', 'yes', 'exist'),  # repeated: kept once
             question('s2', 'What is the moving thing to the front?', 'Car', 'object', 1),
             question('s2', 'What status is the truck?', 'parked', 'status'),
             question('s3', 'Is the car the same status as the bus?', True, 'comparison', 2)]


@pytest.fixture()
def qa_json(tmp_path):
    path = tmp_path / 'NuScenes_val_questions.json'
    path.write_text(json.dumps(dict(info=dict(version='1.0'), questions=QUESTIONS)))
    return path


def test_import_keeps_types_answers_and_order(qa_json):
    records = import_nuscenes_qa(qa_json)
    assert [r.sample_token for r in records] == ['s1', 's2', 's3']
    turns = [(c.id, c.family, c.turns[0].question, c.turns[0].answer, c.turns[0].type)
             for r in records for c in r.conversations]
    assert turns == [('nuscenes_qa-0', 'nuscenes_qa', 'Are there any cars?', 'yes', 'exist'),
                     ('nuscenes_qa-1', 'nuscenes_qa', 'How many buses are there?', '2', 'count'),
                     ('nuscenes_qa-0', 'nuscenes_qa', 'What is the moving thing to the front?', 'car', 'object'),
                     ('nuscenes_qa-1', 'nuscenes_qa', 'What status is the truck?', 'parked', 'status'),
                     ('nuscenes_qa-0', 'nuscenes_qa', 'Is the car the same status as the bus?', 'yes', 'comparison')]
    assert records[0].conversations[1].turns[0].meta == dict(check='nuscenes_qa', num_hop=1)


def test_import_filters_by_tokens_and_cli_writes_schema(qa_json, tmp_path):
    assert [r.sample_token for r in import_nuscenes_qa(qa_json, {'s2', 'zz'})] == ['s2']
    out = tmp_path / 'nqa.jsonl'
    stats = main(['--nuscenes-qa', str(qa_json), '--out', str(out)])
    qa = load_qa_file(out)
    assert sum(len(v) for v in qa.values()) == 5 == stats['num_turns']  # benchmark import is not balanced
    assert stats['per_type']['exist']['largest_answer_share'] == 1.0


@pytest.mark.parametrize('content, problem', [
    ('{"questions": [', r'NuScenes_val_questions.json is empty, truncated or malformed \(JSONDecodeError'),
    ('[]', r'expected an object with a "questions" list'),
    (json.dumps(dict(questions=[question('s', 'q?', 'yes', 'exist'), dict(sample_token='s', question='q?')])),
     r"questions\[1\]: question lacks \['answer', 'template_type'\]"),
    (json.dumps(dict(questions=[question('s', 'q?', 'yes', 'weather')])), r"questions\[0\]: template_type 'weather'"),
    (json.dumps(dict(questions=[question('s', 'q?', '', 'exist')])), r'questions\[0\]: empty question or answer'),
])
def test_malformed_files_name_file_and_item(tmp_path, content, problem):
    path = tmp_path / 'NuScenes_val_questions.json'
    path.write_text(content)
    with pytest.raises(ValueError, match=problem):
        import_nuscenes_qa(path)
