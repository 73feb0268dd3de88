"""Simple baselines a trained DrivePI must beat, producing predictions in the model's output format.

- occupancy: the most common semantic class of the training GT everywhere (free excluded: free
  everywhere scores zero on every occupied class by definition), zero flow;
- planning: constant-velocity extrapolation of the ego status velocity (vx, vy) over the 6 waypoints;
- QA: each question type's most common training answer.
"""
from collections import Counter, defaultdict
from typing import Iterable

import numpy as np

from drivepi.datasets.qa_schema import load_qa_file
from drivepi.geometry import FREE_INDEX

WAYPOINT_STEP_S = 0.5


def most_common_occupied_class(occ_files: Iterable[str]) -> int:
    """Index of the most frequent non-free class over the ``semantics`` of OpenOcc ``labels.npz`` files."""
    counts = np.zeros(FREE_INDEX + 1, dtype=np.int64)
    for path in occ_files:
        with np.load(path) as labels:
            counts += np.bincount(labels['semantics'].ravel(), minlength=FREE_INDEX + 1)[:FREE_INDEX + 1]
    counts[FREE_INDEX] = 0
    if counts.sum() == 0:
        raise ValueError('no occupied voxel in the given occupancy files')
    return int(np.argmax(counts))


def constant_velocity_plan(ego_status: np.ndarray, num_waypoints: int = 6,
                           step_s: float = WAYPOINT_STEP_S) -> np.ndarray:
    """(T, 2) ego-frame waypoints (m) of driving on at the current velocity ``ego_status[:2]`` (m/s)."""
    times = step_s * np.arange(1, num_waypoints + 1, dtype=np.float32)
    return times[:, None] * np.asarray(ego_status[:2], dtype=np.float32)[None]


def most_common_answers(qa_file: str) -> dict:
    """``{question type: most common answer}`` over every turn of a QA file."""
    answers = defaultdict(Counter)
    for conversations in load_qa_file(qa_file).values():
        for conversation in conversations:
            for turn in conversation.turns:
                answers[turn.type][turn.answer] += 1
    return {qa_type: counter.most_common(1)[0][0] for qa_type, counter in answers.items()}
