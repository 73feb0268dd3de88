"""The sample readers and ``visualization/render_occupancy.py`` end to end on the real demo keyframe.

The data root is a temporary folder holding links to the six demo JPEGs (nothing copied), an info
file made from the demo one plus DrivePI keys, a synthetic ``labels.npz`` and a results folder
laid out as ``tools/test.py --out-dir`` writes it.
"""
import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from test_answers import tinted
from test_bev import write_episode_log

from drivepi.geometry import FREE_INDEX, OCC_GRID
from drivepi.visualization.answers import CORRECT_COLOR, WRONG_COLOR
from drivepi.visualization.palette import GT_TRAJ_COLOR, PRED_TRAJ_COLOR, occ_palette
from drivepi.visualization.sample_io import load_occ_gt, load_prediction, load_sample_view

REPO = Path(__file__).resolve().parents[2]
FREE, CAR, DRIVEABLE, VEGETATION = FREE_INDEX, 0, 10, 15
TOKEN = 'ca9a282c9e77460f8360f564131a8af5'
CONVERSATIONS = [[dict(question='Are there any cars?', answer='yes', type='exist', family='nuscenes_qa'),
                  dict(question='How many cars are there?', answer='2', type='count', family='nuscenes_qa')]]
ANSWERS = [['yes', '5']]  # the first right, the second wrong


def _cli():
    spec = importlib.util.spec_from_file_location('render_occupancy', REPO / 'visualization' / 'render_occupancy.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def data_root(demo_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp('vis_root')
    with open(demo_dir / 'n015-2018-07-24-11-22-45+0800.pkl', 'rb') as f:
        infos = pickle.load(f)
    info = infos['data_list'][0]
    for cam in info['images'].values():
        (root / cam['img_path']).symlink_to(demo_dir / cam['img_path'])
    info['occ_path'] = f'occupancy/scene-demo/{TOKEN}/labels.npz'
    info['ego_fut_traj'] = np.stack([np.arange(1, 7) * 2.5, np.zeros(6)], 1).astype(np.float32)
    info['ego_fut_mask'] = np.array([1, 1, 1, 1, 0, 0], np.float32)
    with open(root / 'infos.pkl', 'wb') as f:
        pickle.dump(infos, f)
    sem = np.full(OCC_GRID, FREE, np.uint8)
    sem[:, :, 2] = DRIVEABLE
    sem[125:135, 105:110, 3:7] = CAR                      # x in [10, 14), y in [2, 4)
    flow = np.zeros(OCC_GRID + (2,), np.float32)
    flow[125:135, 105:110, 3:7] = (2.0, 0.0)
    occ_file = root / info['occ_path']
    occ_file.parent.mkdir(parents=True)
    np.savez_compressed(occ_file, semantics=sem, mask_camera=np.ones_like(sem), mask_lidar=np.ones_like(sem),
                        flow=flow)
    pred = sem.copy()
    pred[40:60, 40:60, 3:8] = VEGETATION                  # a predicted tree the GT does not have
    (root / 'results' / 'predictions').mkdir(parents=True)
    np.savez_compressed(root / 'results' / 'predictions' / f'{TOKEN}.npz', token=np.array(TOKEN), occ=pred,
                        flow=flow.astype(np.float16), traj=np.stack([np.arange(1, 7) * 2.0, np.arange(1, 7) * 0.3], 1),
                        answers=np.array(json.dumps(ANSWERS)), conversations=np.array(json.dumps(CONVERSATIONS)))
    return root


def test_load_sample_view_reads_gt_predictions_and_cameras(data_root):
    view = load_sample_view(data_root / 'infos.pkl', TOKEN, results_dir=data_root / 'results')
    assert view.token == TOKEN
    assert view.gt_occ.shape == OCC_GRID and view.gt_occ[130, 107, 4] == CAR
    assert view.gt_mask_camera.dtype == bool and view.gt_flow[130, 107, 4].tolist() == [2.0, 0.0]
    assert view.gt_traj.shape == (4, 2)                    # only the valid future waypoints
    assert view.pred_occ[50, 50, 5] == VEGETATION and view.pred_flow.dtype == np.float32
    assert view.pred_traj.shape == (6, 2)
    assert set(view.cameras) == {'CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK',
                                 'CAM_BACK_LEFT', 'CAM_BACK_RIGHT'}
    assert view.cameras['CAM_FRONT']['image'].shape == (900, 1600, 3)
    assert view.boxes.shape == (69, 5)
    assert view.conversations == CONVERSATIONS and view.pred_answers == ANSWERS  # from the prediction file


def test_bad_inputs_raise_errors_naming_the_file(data_root, tmp_path):
    with pytest.raises(KeyError, match=r"'nope' is not in info file .*infos\.pkl"):
        load_sample_view(data_root / 'infos.pkl', 'nope')
    with pytest.raises(FileNotFoundError, match='prediction file not found: .*other_results'):
        load_prediction(tmp_path / 'other_results', TOKEN)
    bad = tmp_path / 'labels.npz'
    np.savez(bad, semantics=np.zeros((200, 200, 8), np.uint8), mask_camera=np.zeros((200, 200, 8), np.uint8))
    with pytest.raises(ValueError, match=r'labels\.npz: semantics has shape \(200, 200, 8\)'):
        load_occ_gt(bad)
    flow = np.full(OCC_GRID + (2,), np.nan, np.float32)
    np.savez(bad, semantics=np.zeros(OCC_GRID, np.uint8), mask_camera=np.zeros(OCC_GRID, np.uint8),
             flow=flow)
    with pytest.raises(ValueError, match=r'labels\.npz: flow contains NaN'):
        load_occ_gt(bad)
    np.savez(bad, semantics=np.zeros(OCC_GRID, np.uint8))
    with pytest.raises(KeyError, match="no 'mask_camera'"):
        load_occ_gt(bad)
    truncated = tmp_path / 'infos.pkl'
    truncated.write_bytes((data_root / 'infos.pkl').read_bytes()[:100])
    with pytest.raises(ValueError, match='truncated'):
        load_sample_view(truncated)


def test_cli_writes_the_picture_where_it_says(data_root, tmp_path, capsys):
    out_dir = tmp_path / 'pictures'
    written = _cli().main(['--info', str(data_root / 'infos.pkl'), '--results', str(data_root / 'results'),
                           '--out-dir', str(out_dir)])
    printed = [line.split(' ', 1)[1] for line in capsys.readouterr().out.splitlines() if line.startswith('wrote ')]
    assert printed == [str(out_dir / f'{TOKEN}.png')] and written == [out_dir / f'{TOKEN}.png']
    assert sorted(p.name for p in out_dir.iterdir()) == [f'{TOKEN}.png']      # no temp file left
    from PIL import Image
    with Image.open(out_dir / f'{TOKEN}.png') as img:
        assert img.format == 'PNG'
        pixels = np.asarray(img.convert('RGB')).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    found = {tuple(c): n for c, n in zip(colours.tolist(), counts)}
    palette = occ_palette()
    # GT and predicted classes, both trajectories are drawn in their exact colours
    for name, colour in [('car', palette[CAR]), ('driveable', palette[DRIVEABLE]),
                         ('predicted vegetation', palette[VEGETATION]),
                         ('GT trajectory', GT_TRAJ_COLOR), ('planned trajectory', PRED_TRAJ_COLOR)]:
        assert found.get(tuple(int(v) for v in colour), 0) > 20, f'{name} colour missing from the picture'
    # the answers panel at the bottom: the right answer in green, the wrong one in red
    panel = pixels.reshape(img.height, img.width, 3)[-img.height // 10:]
    assert tinted(panel, CORRECT_COLOR) > 50 and tinted(panel, WRONG_COLOR) > 50


def test_cli_renders_closed_loop_episodes_from_an_output_folder(tmp_path, capsys):
    """A folder laid out like tools/closed_loop.py's output: every episode log becomes a GIF."""
    episodes = tmp_path / 'closed_loop' / 'episodes' / 'expert'
    episodes.mkdir(parents=True)
    write_episode_log(episodes / 'ep_test.json')
    (tmp_path / 'closed_loop' / 'closed_loop_metrics.json').write_text('{}')
    out_dir = tmp_path / 'anim'
    _cli().main(['--episodes', str(tmp_path / 'closed_loop'), '--out-dir', str(out_dir)])
    assert capsys.readouterr().out.splitlines() == [f'wrote {out_dir / "ep_test_expert.gif"}']
    assert (out_dir / 'ep_test_expert.gif').read_bytes()[:6] == b'GIF89a'
    with pytest.raises(FileNotFoundError, match='no episode logs'):
        _cli().main(['--episodes', str(tmp_path / 'anim'), '--out-dir', str(out_dir)])
