"""tools/write_calibration.py and tools/infer.py on the raw files of the real nuScenes demo keyframe, with the long
mini recipe's checkpoint: the answers are printed, the prediction file and the picture are written."""
import importlib.util
import pickle
from pathlib import Path

import numpy as np

from drivepi.geometry import CAMERA_NAMES
from drivepi.visualization.sample_io import load_prediction

REPO = Path(__file__).resolve().parents[2]
MODEL_ZOO = REPO / 'model_zoo' / 'drivepi_mini_long'
QUESTIONS = ['Are there any cars?', 'What should the ego vehicle do?']


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_infer_prints_answers_and_writes_predictions_and_a_picture(demo_dir, tmp_path, capsys):
    info_file = demo_dir / 'n015-2018-07-24-11-22-45+0800.pkl'
    load_tool('write_calibration').main([str(info_file), str(tmp_path / 'calib.json')])
    with open(info_file, 'rb') as f:
        info = pickle.load(f)['data_list'][0]
    cams = [f"{cam}={demo_dir / info['images'][cam]['img_path']}" for cam in CAMERA_NAMES]
    out_dir = tmp_path / 'out'
    result = load_tool('infer').main([
        str(REPO / 'configs' / 'drivepi' / 'drivepi_mini_long.py'), str(MODEL_ZOO / 'drivepi_mini_long-edd81574.pth'),
        '--lidar', str(demo_dir / info['lidar_points']['lidar_path']), '--cams', *cams,
        '--calib', str(tmp_path / 'calib.json'), '--question', QUESTIONS[0], '--question', QUESTIONS[1],
        '--out-dir', str(out_dir), '--device', 'cpu',
        '--cfg-options', f"model.llm.llm_path={MODEL_ZOO / 'tiny_qwen2_h128_l4'}"])
    prediction = result['predictions'][0]
    token = info['token']  # the calibration names the scene after the info entry
    answers = [turn_answers[0] for turn_answers in prediction['answers']]
    lines = capsys.readouterr().out.splitlines()
    assert f"wrote {tmp_path / 'calib.json'} (sample {token})" in lines
    for question, answer in zip(QUESTIONS, answers):
        assert lines[lines.index(f'Q: {question}') + 1] == f'A: {answer}'
    assert any(line.startswith('command: go straight; planned trajectory (m): (') for line in lines)
    assert f'wrote {out_dir}/predictions/{token}.npz' in lines
    assert f"wrote {out_dir / 'pictures' / f'{token}.png'}" in lines
    written = load_prediction(out_dir, token)
    assert written['answers'] == prediction['answers'] and np.array_equal(written['traj'], prediction['traj'])
    assert (out_dir / 'pictures' / f'{token}.png').read_bytes()[:4] == b'\x89PNG'
