"""DrivePIInferencer on the real nuScenes demo keyframe: raw files + the calibration written from its info entry
give exactly what the dataset path (DrivePIDataset with the config's full test pipeline, then the model's
``test_step``) gives on the same sample, with the long mini recipe's trained checkpoint (model_zoo/).

The dataset side is a temporary data root of links to the demo files (nothing copied) with an info file made
from the demo entry plus DrivePI's keys, a synthetic ``labels.npz``, one LiDAR sweep (the keyframe file again,
moved by a known transform) and a QA file; the inferencer reads the demo files where they are.
"""
import copy
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from drivepi.apis import DrivePIInferencer, write_calibration
from drivepi.datasets.converters.nuscenes_converter import INFO_VERSION
from drivepi.datasets.qa_schema import QAConversation, QARecord, QATurn, load_qa_file, write_qa_file
from drivepi.geometry import FREE_INDEX, OCC_GRID, OPENOCC_CLASSES, TURN_LEFT
from drivepi.registry import DATASETS
from drivepi.visualization.sample_io import load_prediction

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'drivepi' / 'drivepi_mini_long.py'
CHECKPOINT = REPO / 'model_zoo' / 'drivepi_mini_long' / 'drivepi_mini_long-edd81574.pth'
LLM_PATH = REPO / 'model_zoo' / 'drivepi_mini_long' / 'tiny_qwen2_h128_l4'
SWEEP_LAG_S = 0.05
EGO_STATUS = [4.0, 0.1, 0.3, 0.0, 0.02]
CONVERSATIONS = [
    QAConversation(id='objects', family='nuscenes_qa', turns=[
        QATurn(question='Are there any cars?', answer='yes', type='exist'),
        QATurn(question='How many cars are there?', answer='3', type='count')]),
    QAConversation(id='plan', family='planning', turns=[
        QATurn(question='What should the ego vehicle do?', answer='turn left', type='action')])]


def link(target: Path, link_path: Path) -> None:
    link_path.parent.mkdir(parents=True, exist_ok=True)
    link_path.symlink_to(target)


def sweep_transform() -> np.ndarray:
    """(4, 4) keyframe LiDAR -> sweep LiDAR: 3 degrees of yaw and 1.2 m of motion."""
    yaw = np.deg2rad(3.0)
    matrix = np.eye(4)
    matrix[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
    matrix[:3, 3] = [1.2, -0.3, 0.05]
    return matrix


@pytest.fixture(scope='module')
def demo_scene(demo_dir, tmp_path_factory) -> dict:
    """The demo keyframe as a DrivePI dataset (data root, info entry, QA file) and as raw files + calibration."""
    root = tmp_path_factory.mktemp('demo_scene')
    with open(demo_dir / 'n015-2018-07-24-11-22-45+0800.pkl', 'rb') as f:
        infos = pickle.load(f)
    info = infos['data_list'][0]
    lidar = demo_dir / info['lidar_points']['lidar_path']
    link(lidar, root / 'samples' / 'LIDAR_TOP' / lidar.name)
    link(lidar, root / 'sweeps' / 'LIDAR_TOP' / lidar.name)
    for cam, entry in info['images'].items():
        link(demo_dir / entry['img_path'], root / 'samples' / cam / entry['img_path'])
    info.update(scene_token='demo', scene_name='scene-demo', frame_idx=0,
                occ_path=f"occupancy/scene-demo/{info['token']}/labels.npz",
                ego_fut_traj=np.stack([np.arange(1, 7) * 2.0, np.zeros(6)], 1).astype(np.float32),
                ego_fut_mask=np.ones(6, np.float32), ego_fut_cmd=TURN_LEFT,
                ego_status=np.array(EGO_STATUS, np.float32), fut_boxes=[np.zeros((0, 7), np.float32)] * 6,
                lidar_sweeps=[dict(timestamp=info['timestamp'] - SWEEP_LAG_S,
                                   lidar_points=dict(lidar_path=lidar.name, lidar2sensor=sweep_transform().tolist()))])
    infos['metainfo'].update(info_version=INFO_VERSION, occ_classes=list(OPENOCC_CLASSES))
    with open(root / 'infos.pkl', 'wb') as f:
        pickle.dump(infos, f)
    semantics = np.full(OCC_GRID, FREE_INDEX, np.uint8)
    semantics[:, :, 2] = OPENOCC_CLASSES.index('driveable_surface')
    (root / info['occ_path']).parent.mkdir(parents=True)
    np.savez_compressed(root / info['occ_path'], semantics=semantics, mask_camera=np.ones(OCC_GRID, np.uint8),
                        flow=np.zeros(OCC_GRID + (2,), np.float32))
    write_qa_file([QARecord(sample_token=info['token'], conversations=CONVERSATIONS)], root / 'qa.jsonl')
    raw = dict(lidar=lidar, sweeps=[lidar], calib=write_calibration(info, root / 'calib.json'),
               cams={cam: demo_dir / entry['img_path'] for cam, entry in info['images'].items()},
               questions=load_qa_file(root / 'qa.jsonl')[info['token']])
    return dict(root=root, info=info, raw=raw)


@pytest.fixture(scope='module')
def config(demo_scene) -> Config:
    """The long mini recipe's config, its test dataset on the demo data root and QA file."""
    cfg = Config.fromfile(str(CONFIG))
    cfg.model.llm.llm_path = str(LLM_PATH)
    cfg.test_dataloader.dataset.update(data_root=str(demo_scene['root']), ann_file='infos.pkl',
                                       qa_file=str(demo_scene['root'] / 'qa.jsonl'))
    return cfg


@pytest.fixture(scope='module')
def inferencer(config) -> DrivePIInferencer:
    return DrivePIInferencer(config, str(CHECKPOINT), device='cpu')


@pytest.fixture(scope='module')
def dataset_path(config, inferencer) -> tuple:
    """The dataset's packed sample (full test pipeline, ground truth included) and the model's test_step on it."""
    dataset = DATASETS.build(config.test_dataloader.dataset)
    assert len(dataset) == 1
    packed = dataset[0]
    return packed, inferencer.model.test_step(pseudo_collate([copy.deepcopy(packed)]))[0]


def test_raw_files_give_the_inputs_of_the_dataset_path(demo_scene, inferencer, dataset_path):
    packed, _ = dataset_path
    raw = inferencer.pipeline(inferencer.data_info(demo_scene['raw']))
    points = raw['inputs']['points']
    assert torch.equal(points, packed['inputs']['points'])
    assert torch.allclose(points[:, 4].unique(), torch.tensor([0.0, SWEEP_LAG_S]))  # keyframe and the sweep
    assert torch.equal(raw['inputs']['img'], packed['inputs']['img'])
    for key in ('ego2img', 'cam2img', 'cam2ego', 'cam_valid', 'ego_status', 'img_shape', 'token', 'occ_classes'):
        np.testing.assert_array_equal(raw['data_samples'].metainfo[key], packed['data_samples'].metainfo[key], key)
    assert raw['data_samples'].ego_fut_cmd == packed['data_samples'].ego_fut_cmd == TURN_LEFT
    assert raw['data_samples'].conversations == packed['data_samples'].conversations
    assert 'gt_occ' in packed['data_samples'] and 'gt_occ' not in raw['data_samples']  # no GT needed to infer


@pytest.fixture(scope='module')
def raw_result(demo_scene, inferencer, tmp_path_factory) -> tuple:
    out_dir = tmp_path_factory.mktemp('infer_out')
    return inferencer(demo_scene['raw'], out_dir=str(out_dir)), out_dir


def test_raw_files_give_the_outputs_of_the_dataset_path(raw_result, dataset_path):
    (result, _), (_, expected) = raw_result, dataset_path
    prediction = result['predictions'][0]
    np.testing.assert_array_equal(prediction['occ'], expected.pred_occ.numpy())
    np.testing.assert_array_equal(prediction['flow'], expected.pred_flow.numpy())
    np.testing.assert_array_equal(prediction['traj'], expected.pred_traj.numpy())
    assert prediction['answers'] == expected.pred_answers
    assert [len(answers) for answers in prediction['answers']] == [2, 1]
    assert prediction['token'] == expected.token and prediction['command'] == TURN_LEFT
    assert prediction['occ'].shape == OCC_GRID and prediction['flow'].shape == OCC_GRID + (2,)


def test_info_entry_input_gives_the_same_outputs(demo_scene, inferencer, dataset_path):
    _, expected = dataset_path
    single = dict(info=demo_scene['info'], data_root=str(demo_scene['root']), questions=demo_scene['raw']['questions'])
    prediction = inferencer(single, return_datasamples=True)['predictions'][0]
    assert torch.equal(prediction.pred_occ, expected.pred_occ) and torch.equal(prediction.pred_traj, expected.pred_traj)
    assert prediction.pred_answers == expected.pred_answers


def test_outputs_are_the_prediction_files_of_tools_test_and_a_picture(raw_result):
    result, out_dir = raw_result
    prediction = result['predictions'][0]
    written = load_prediction(out_dir, prediction['token'])
    np.testing.assert_array_equal(written['occ'], prediction['occ'])
    np.testing.assert_allclose(written['flow'], prediction['flow'], atol=1e-2)  # stored as float16
    np.testing.assert_array_equal(written['traj'], prediction['traj'])
    assert written['answers'] == prediction['answers'] and written['conversations'] == prediction['conversations']
    assert written['conversations'][0][1] == dict(question='How many cars are there?', answer='3', type='count',
                                                  family='nuscenes_qa')
    assert result['visualization'] == [out_dir / 'pictures' / f"{prediction['token']}.png"]
    assert result['visualization'][0].read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_questions_as_text_are_one_turn_conversations(demo_scene, inferencer, raw_result):
    single = dict(demo_scene['raw'], questions=['Are there any cars?', 'What should the ego vehicle do?'])
    prediction = inferencer(single)['predictions'][0]
    assert [[turn['question'] for turn in turns] for turns in prediction['conversations']] == \
        [['Are there any cars?'], ['What should the ego vehicle do?']]
    # each is answered right after the scene, as the first turn of each QA-file conversation was
    qa_file_answers = raw_result[0]['predictions'][0]['answers']
    assert prediction['answers'] == [[qa_file_answers[0][0]], [qa_file_answers[1][0]]]
    with pytest.raises(ValueError, match="'info'.*or 'lidar'"):
        inferencer(dict(points='x.bin'))
