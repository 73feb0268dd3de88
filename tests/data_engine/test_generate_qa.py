"""Data engine end to end on the generated mini set: generate, reload, verify every answer."""
import pickle

from data_engine.generate_qa import QAEngineConfig, generate_records, load_infos, main
from data_engine.verify import verify_file
from drivepi.datasets.qa_schema import load_qa_file
from drivepi.evaluation.qa_accuracy import ANSWER_KINDS, answer_score


def test_mini_set_generates_verifiable_balanced_qa(mini_dataset, tmp_path):
    info = mini_dataset['train_info']
    out = tmp_path / 'qa_train.jsonl'
    stats = main(['--info', str(info), '--out', str(out), '--seed', '0'])
    qa = load_qa_file(out)
    tokens = {i['token'] for i in load_infos(info)['data_list']}
    assert set(qa) <= tokens and len(qa) >= 0.9 * len(tokens)
    assert set(stats['per_family']) == {'occupancy', 'flow', 'planning', 'caption'}
    cap = QAEngineConfig().max_answer_share
    for qa_type, row in stats['per_type'].items():
        if ANSWER_KINDS[qa_type] in ('categorical', 'count') and row['distinct_answers'] > 1:
            assert row['largest_answer_share'] <= cap + 1e-9, qa_type
    report = verify_file(info, out, progress=False)
    assert report.ok, report.mismatches[:3]
    assert report.checked == stats['num_turns'] and not report.unverifiable
    turns = [t for convs in qa.values() for c in convs for t in c.turns]
    assert all(answer_score(t.answer, t.answer, t.type) == 1.0 for t in turns)  # every answer parses


def test_each_sample_is_independent_of_the_processing_order(mini_dataset, tmp_path):
    info = mini_dataset['train_info']
    infos = load_infos(info)
    infos['data_list'] = infos['data_list'][::-1]
    reversed_info = tmp_path / 'reversed.pkl'
    reversed_info.write_bytes(pickle.dumps(infos))
    forward = {r.sample_token: r for r in generate_records(info, progress=False)}
    backward = {r.sample_token: r for r in generate_records(reversed_info, info.parent, progress=False)}
    assert len(forward) > 3 and forward == backward
