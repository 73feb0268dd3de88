"""tools/score_predictions.py on our prediction files and on the official DrivePI code's, and
tools/export_bev_features.py writing our fused BEV in the official trainer's layout."""
import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from data_engine.export_official import main as export_official
from data_engine.official_format import lidar_positions
from drivepi.fileio import atomic_write_npz

REPO = Path(__file__).resolve().parents[2]


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def val(mini_dataset, tmp_path_factory):
    """4 val samples, each made a scene of its own in a copy of the info file: RayIoU then casts rays from each
    sample's own LiDAR only (the metric's cost; the scorer's code path is the same)."""
    with open(mini_dataset['val_info'], 'rb') as f:
        infos = pickle.load(f)
    infos['data_list'] = [dict(info, scene_token=info['token'], frame_idx=0) for info in infos['data_list'][:4]]
    info_path = tmp_path_factory.mktemp('score') / 'drivepi_infos_val.pkl'
    info_path.write_bytes(pickle.dumps(infos))
    root = Path(mini_dataset['root'])
    return dict(info=info_path, root=root, infos=infos['data_list'], args=['--info', str(info_path), '--data-root',
                                                                          str(root)])


def test_score_our_prediction_files(val, tmp_path):
    """Our files with the GT trajectories and one answer each (their occupancy goes the same way as the official
    files' below, which the ray casting makes the slow part)."""
    for info in val['infos']:
        conversations = [[dict(question='Is there a car?', answer='yes', type='exist', family='occupancy')]]
        atomic_write_npz(tmp_path / 'predictions' / f"{info['token']}.npz", dict(
            token=np.array(info['token']), traj=np.asarray(info['ego_fut_traj'], np.float32),
            answers=np.array(json.dumps([['Yes.']])), conversations=np.array(json.dumps(conversations))))
    metrics = load_tool('score_predictions').main([*val['args'], '--pred-dir', str(tmp_path),
                                                   '--out', str(tmp_path / 'metrics.json')])
    # (the test preset's scenes are 6 keyframes long: no sample has the 3 s step, whose values are NaN)
    assert metrics['plan/L2@1s/per_step'] == 0.0 and metrics['plan/collision@2s/cumulative/uniad_vad'] == 0.0
    assert metrics['plan/num_samples/sparsedrive'] == 0     # no sample of the test preset has 6 future keyframes
    assert metrics['qa/accuracy'] == 100.0 and not any(key.startswith('occ/') for key in metrics)
    assert metrics['num_samples/PlanningMetric'] == metrics['num_samples/QAMetric'] == len(val['infos'])
    assert json.loads((tmp_path / 'metrics.json').read_text())['plan/L2@avg/per_step'] is None


def test_score_official_prediction_files(val, tmp_path):
    """Official-format files made from the GT: the occupancy and flow score perfectly, the plans (the LiDAR's
    positions in the LiDAR frame) come back to our waypoints."""
    export_official([*val['args'], '--out', str(tmp_path / 'files'), '--no-progress', '--cells-per-sample', '2'])
    results = []
    for folder in ('occ_prediction', 'flow_prediction', 'plan_prediction'):
        (tmp_path / folder).mkdir()
    for n, info in enumerate(val['infos']):
        token = info['token']
        if n == 0:
            with np.load(val['root'] / info['occ_path']) as labels:
                np.save(tmp_path / 'occ_prediction' / f'{token}.npy', labels['semantics'])
                np.save(tmp_path / 'flow_prediction' / f'{token}.npy', labels['flow'])
        # a plan of 6 points: the GT waypoints continued at constant velocity past the scene's end (the exported
        # targets repeat the last one there), as LiDAR positions the way the exporter places the LiDAR
        valid = int(np.sum(info['ego_fut_mask']))
        traj = np.asarray(info['ego_fut_traj'], np.float64)[:valid]
        step = traj[-1] - traj[-2]
        plan = np.vstack([traj, traj[-1] + step * np.arange(1, 7 - valid)[:, None]])
        lidar, _ = lidar_positions(dict(info, ego_fut_traj=plan, ego_fut_mask=np.ones(6)), [])
        np.save(tmp_path / 'plan_prediction' / f'{token}.npy', lidar[:, :2])
        results.append(dict(question='Are there any cars?', answer='yes', pred='Yes' if n % 2 else 'no',
                            history=dict(token=token, template_type='exist', num_hop=0)))
    (tmp_path / 'qa_results.json').write_text(json.dumps(results))
    metrics = load_tool('score_predictions').main([
        *val['args'], '--occ-dir', str(tmp_path / 'occ_prediction'), '--flow-dir', str(tmp_path / 'flow_prediction'),
        '--plan-dir', str(tmp_path / 'plan_prediction'), '--qa-results', str(tmp_path / 'qa_results.json')])
    assert metrics['occ/RayIoU'] == pytest.approx(100.0) and metrics['occ/mAVE'] == pytest.approx(0.0, abs=1e-6)
    # (within millimetres: the official points are 2-d, the LiDAR frame's z is taken as 0)
    assert metrics['plan/L2@1s/per_step'] < 0.01 and metrics['plan/L2@2s/cumulative'] < 0.01
    assert metrics['qa/accuracy/exist'] == pytest.approx(50.0)
    assert metrics['num_samples/PlanningMetric'] == len(val['infos'])


def test_resampling_to_the_official_grid_by_hand():
    tool = load_tool('export_bev_features')
    # our 50 x 50 grid of 1.6 m cells over [-40, 40] m, channel 0 = x of the cell centre, channel 1 = y
    centres = torch.arange(50, dtype=torch.float32) * 1.6 - 40 + 0.8
    bev = torch.stack([centres[:, None].expand(50, 50), centres[None, :].expand(50, 50)])[None]   # [b, c, ix, iy]
    out = tool.resample_to_official(bev)
    assert out.shape == (1, 2, 180, 180)
    # official cell (row 90, column 100): x = -54 + 100.5 * 0.6 = 6.3 m, y = -54 + 90.5 * 0.6 = 0.3 m
    assert out[0, 0, 90, 100].item() == pytest.approx(6.3, abs=1e-4)
    assert out[0, 1, 90, 100].item() == pytest.approx(0.3, abs=1e-4)
    # column 20: x = -41.7 m, outside our range: zero; row 157: y = 40.5 m: zero; column 23: x = -39.9 m: the edge
    assert out[0, :, 90, 20].abs().max() == 0 and out[0, :, 157, 100].abs().max() == 0
    assert out[0, 0, 90, 23].item() == pytest.approx(-39.2, abs=1e-4)
    assert tool.pad_channels(out, 5).shape == (1, 5, 180, 180) and tool.pad_channels(out, 5)[:, 2:].abs().max() == 0
    with pytest.raises(ValueError, match='fewer'):
        tool.pad_channels(out, 1)


def test_export_bev_features_writes_the_official_layout(mini_dataset, tiny_llm_dir, tmp_path):
    from mmengine.config import Config

    from drivepi.registry import MODELS
    from drivepi.utils import register_all_modules
    root = Path(mini_dataset['root'])
    config = tmp_path / 'drivepi_mini_bev.py'
    config.write_text(f"_base_ = ['{REPO / 'configs' / 'drivepi' / 'drivepi_mini.py'}']\n"
                      f"test_dataloader = dict(dataset=dict(data_root='{root}/', qa_file=None))\n"
                      f"model = dict(llm=dict(llm_path='{tiny_llm_dir}'))\n")
    register_all_modules()
    torch.manual_seed(0)
    torch.save({'state_dict': MODELS.build(Config.fromfile(str(config)).model).state_dict()}, tmp_path / 'm.pth')
    written = load_tool('export_bev_features').main([
        str(config), str(tmp_path / 'm.pth'), '--info', str(mini_dataset['val_info']), '--out',
        str(tmp_path / 'bev'), '--limit', '1', '--channels', '40', '--device', 'cpu'])
    with open(mini_dataset['val_info'], 'rb') as f:
        token = pickle.load(f)['data_list'][0]['token']
    assert written == [tmp_path / 'bev' / f'{token}.npz']
    with np.load(written[0]) as npz:                        # as the official loader reads it: data[0]
        assert npz.files == ['data']
        features = npz['data'][0]
    assert features.shape == (40, 180, 180) and features.dtype == np.float32
    assert not features[32:].any()                          # the mini BEV has 32 channels, padded to 40
    outside = np.ones((180, 180), bool)
    outside[23:157, 23:157] = False                        # cells whose centre lies within [-40, 40] m
    assert not features[:, outside].any() and features[:32, 23:157, 23:157].any()
