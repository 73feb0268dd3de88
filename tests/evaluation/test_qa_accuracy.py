"""Per-type QA answer matching against hand-computed outcomes."""
import math

import numpy as np
import pytest

from drivepi.evaluation.qa_accuracy import (
    answer_score,
    format_number,
    format_waypoints,
    normalize_answer,
    parse_numbers,
    qa_accuracy,
)


def test_canonical_formats():
    assert format_number(12.43, 'm') == '12.4 m' and format_number(-0.04, 'm/s') == '0.0 m/s'
    assert format_number(30, 'm', 0) == '30 m' and format_number(2.25) == '2.2'  # round half to even
    assert format_waypoints(np.array([[1.25, -0.04], [2.0, 0.3]])) == '(1.2, 0.0), (2.0, 0.3)'
    assert parse_numbers('(1.2, -0.5), (3, .5)') == [1.2, -0.5, 3.0, 0.5]
    assert normalize_answer('  Yes.  ') == 'yes' and normalize_answer('Driveable   Surface') == 'driveable surface'


@pytest.mark.parametrize('pred, gt, qa_type, score', [
    ('Yes', 'yes', 'exist', 1), ('no', 'yes', 'exist', 0), ('car.', 'car', 'object', 1),
    ('truck', 'car', 'object', 0), ('moving', 'static', 'status', 0), ('slow down', 'slow down', 'action', 1),
    ('3', '3', 'count', 1), ('3 cars', '3', 'count', 1), ('4', '3', 'count', 0), ('three', '3', 'count', 0),
    ('12.9 m', '12.4 m', 'distance', 1),   # |0.5| <= max(0.5, 1.24)
    ('13.7 m', '12.4 m', 'distance', 0),   # 1.3 > 1.24
    ('2.4 m', '2.0 m', 'distance', 1), ('2.6 m', '2.0 m', 'distance', 0),  # absolute 0.5 m floor
    ('1.5 m', '1.8 m', 'height', 1), ('1.3 m', '1.8 m', 'height', 0),
    ('5.4 m/s', '5.0 m/s', 'speed', 1), ('5.6 m/s', '5.0 m/s', 'speed', 0),
    ('far', '12.4 m', 'distance', 0), ('none', 'none', 'distance', 1),
    ('(1.0, 0.0), (2.0, 0.0)', '(1.0, 0.0), (2.0, 1.5)', 'trajectory', 1),  # mean L2 0.75 m
    ('(1.0, 0.0), (2.0, 0.0)', '(1.0, 0.0), (2.0, 2.5)', 'trajectory', 0),  # mean L2 1.25 m
    ('(1.0, 0.0)', '(1.0, 0.0), (2.0, 0.0)', 'trajectory', 0),
    ('pedestrian crossing 12.0 m ahead', 'pedestrian crossing 12.4 m ahead', 'reason', 1),
    ('pedestrian crossing 14.0 m ahead', 'pedestrian crossing 12.4 m ahead', 'reason', 0),
    ('car 12.4 m ahead', 'pedestrian crossing 12.4 m ahead', 'reason', 0),
    ('road ahead is clear', 'road ahead is clear.', 'reason', 1),
])
def test_answer_score(pred, gt, qa_type, score):
    assert answer_score(pred, gt, qa_type) == score


def test_caption_score_is_unigram_f1():
    assert answer_score('a busy street', 'a quiet street', 'caption') == pytest.approx(2 / 3)
    assert answer_score('cars cars', 'cars', 'caption') == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert answer_score('x', 'y', 'caption') == 0.0


def test_qa_accuracy_per_type_and_overall():
    acc = qa_accuracy(['yes', 'no', '3', '12.0 m'], ['yes', 'yes', '3', '20.0 m'],
                      ['exist', 'exist', 'count', 'distance'])
    assert acc == dict(overall=0.5, per_type={'count': 1.0, 'distance': 0.0, 'exist': 0.5},
                       num_turns={'count': 1, 'distance': 1, 'exist': 2})
    assert math.isnan(qa_accuracy([], [], [])['overall'])


def test_errors_are_clear():
    with pytest.raises(ValueError, match="unknown QA type 'gossip'"):
        answer_score('a', 'b', 'gossip')
    with pytest.raises(ValueError, match='parallel'):
        qa_accuracy(['a'], [], ['exist'])
    with pytest.raises(ValueError, match='holds no number'):
        answer_score('3', 'many', 'count')
