"""Trajectory anchors: k-means per driving command, deterministic, from infos by tools/make_plan_anchors.py."""
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from drivepi.geometry import GO_STRAIGHT, TURN_LEFT, TURN_RIGHT
from drivepi.models.heads.plan_anchors import kmeans, load_plan_anchors, plan_anchors

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tools'))
import make_plan_anchors  # noqa: E402


def futures(seed: int = 0):
    """60 futures (T = 6): straight at 4 or 8 m/s, left and right turns of two curvatures, plus samples that end
    before the horizon (masked) and whose values must not matter."""
    rng = np.random.default_rng(seed)
    t = 0.5 * np.arange(1, 7)
    trajs, commands = [], []
    for _ in range(10):
        for speed in (4.0, 8.0):
            trajs.append(np.stack([speed * t, 0.02 * rng.standard_normal(6)], 1))
            commands.append(GO_STRAIGHT)
        for sign, command in ((1, TURN_LEFT), (-1, TURN_RIGHT)):
            for bend in (0.5, 1.5):
                trajs.append(np.stack([5.0 * t, sign * bend * t ** 2], 1) + 0.02 * rng.standard_normal((6, 2)))
                commands.append(command)
    trajs, masks = np.array(trajs), np.ones((len(trajs), 6))
    masks[:5, 3:] = 0  # ends of scenes
    trajs[:5, 3:] = 1e3
    return trajs, masks, np.array(commands)


def test_anchors_cluster_each_command_separately():
    trajs, masks, commands = futures()
    anchors = plan_anchors(trajs, masks, commands, num_modes=2, seed=0)
    assert anchors.shape == (3, 2, 6, 2) and anchors.dtype == np.float32
    np.testing.assert_allclose(np.sort(anchors[GO_STRAIGHT, :, -1, 0]), [12.0, 24.0], atol=0.05)  # 4 and 8 m/s
    np.testing.assert_allclose(anchors[TURN_LEFT, :, -1, 1], [4.5, 13.5], atol=0.05)  # y = bend * 9
    np.testing.assert_allclose(anchors[TURN_RIGHT, :, -1, 1], [-13.5, -4.5], atol=0.05)
    assert np.abs(anchors).max() < 100  # the masked samples were left out


def test_kmeans_is_deterministic_for_a_seed():
    points = np.random.default_rng(1).standard_normal((200, 4))
    np.testing.assert_array_equal(kmeans(points, 5, seed=3), kmeans(points, 5, seed=3))
    centres = kmeans(points, 5, seed=3)
    assert (np.diff(centres[:, -1]) >= 0).all()  # sorted, independent of the initialisation's order


def test_a_command_with_too_few_futures_takes_the_clusters_of_all(capsys):
    trajs, masks, commands = futures()
    few = commands != TURN_RIGHT
    few[np.flatnonzero(commands == TURN_RIGHT)[0]] = True  # one right turn
    anchors = plan_anchors(trajs[few], masks[few], commands[few], num_modes=3)
    assert 'using the clusters of all commands' in capsys.readouterr().out
    assert anchors.shape == (3, 3, 6, 2) and not np.array_equal(anchors[TURN_RIGHT], anchors[TURN_LEFT])
    with pytest.raises(ValueError, match='fewer than num_modes'):
        plan_anchors(trajs[:2], masks[:2], commands[:2], num_modes=3)


def test_tool_writes_the_same_anchors_twice(tmp_path):
    trajs, masks, commands = futures()
    infos = [dict(token=str(i), ego_fut_traj=trajs[i].astype(np.float32), ego_fut_mask=masks[i].astype(np.float32),
                  ego_fut_cmd=int(commands[i])) for i in range(len(trajs))]
    info = tmp_path / 'infos.pkl'
    info.write_bytes(pickle.dumps(dict(metainfo={}, data_list=infos)))
    outs = [tmp_path / 'a.npy', tmp_path / 'b.npy']
    for out in outs:
        make_plan_anchors.main(['--info', str(info), '--out', str(out), '--num-modes', '2', '--seed', '0'])
    assert outs[0].read_bytes() == outs[1].read_bytes()
    np.testing.assert_allclose(load_plan_anchors(str(outs[0]), 2, 6), plan_anchors(trajs, masks, commands, 2),
                               atol=1e-5)
    with pytest.raises(ValueError, match=r'\(3, 4, 6, 2\)'):
        load_plan_anchors(str(outs[0]), 4, 6)
    with pytest.raises(FileNotFoundError, match='make_plan_anchors'):
        load_plan_anchors(str(tmp_path / 'none.npy'))
