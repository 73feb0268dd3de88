"""DrivePIDataset built from the dataset configs, run end to end through its pipelines."""
import copy
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from nuscenes_tables import KEYFRAME_DT, LANDMARKS_GLOBAL, SCENES, ego_state, make_toy_nuscenes, pose_matrix

from drivepi.datasets.converters.nuscenes_converter import create_drivepi_infos
from drivepi.datasets.qa_schema import QAConversation, QARecord, QATurn, write_qa_file
from drivepi.geometry import OCC_GRID
from drivepi.registry import DATASETS, MODELS, TRANSFORMS
from drivepi.utils import register_all_modules

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / 'configs' / '_base_' / 'datasets'
register_all_modules()


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory, demo_dir):
    with open(demo_dir / 'n015-2018-07-24-11-22-45+0800.pkl', 'rb') as f:
        demo_info = pickle.load(f)['data_list'][0]
    root = tmp_path_factory.mktemp('toy_dataset')
    make_toy_nuscenes(root, demo_info)
    create_drivepi_infos(root, root, 'v1.0-drivepi-mini')
    val = pickle.loads((root / 'drivepi_infos_val.pkl').read_bytes())['data_list']
    turn = QATurn(question='Is the ego turning?', answer='yes', type='yes_no', meta={})
    write_qa_file([QARecord(sample_token=val[2]['token'],
                            conversations=[QAConversation(id='c0', family='planning', turns=[turn, turn])])],
                  root / 'qa_val.jsonl')
    return root


def dataset_cfg(config_name: str, split: str, root: Path, **overrides):
    cfg = Config.fromfile(CONFIG_DIR / config_name)
    dataset = cfg[f'{split}_dataloader']['dataset']
    dataset.update(data_root=str(root) + '/', qa_file=None)
    dataset.update(overrides)
    return dataset


def test_mini_config_values():
    cfg = Config.fromfile(CONFIG_DIR / 'drivepi_mini.py')
    assert cfg.data_root == 'data/drivepi-mini/'
    assert cfg.train_dataloader.dataset.qa_file == 'data/drivepi-mini/qa_train.jsonl'
    assert cfg.val_dataloader.dataset.qa_file == 'data/drivepi-mini/qa_val.jsonl'
    assert cfg.val_dataloader.dataset.ann_file == cfg.test_dataloader.dataset.ann_file == 'drivepi_infos_val.pkl'
    assert len(cfg.occ_classes) == 17 and cfg.img_size == (128, 352)
    full = Config.fromfile(CONFIG_DIR / 'nuscenes_openocc.py')
    assert full.num_sweeps == 10 and full.img_size == (256, 704)
    occ3d = Config.fromfile(CONFIG_DIR / 'nuscenes_occ3d.py')
    assert len(occ3d.occ_classes) == 18
    loader = next(t for t in occ3d.test_pipeline if t['type'] == 'LoadOccFlowGT')
    assert loader == dict(type='LoadOccFlowGT', num_classes=18, with_flow=False)


def test_train_sample_end_to_end(toy_root):
    dataset = DATASETS.build(dataset_cfg('drivepi_mini.py', 'train', toy_root))
    assert len(dataset) == 16
    np.random.seed(0)
    packed = dataset[9]  # scene-0103 (left arc), frame 1
    sample = packed['data_samples']
    assert sample.scene_name == 'scene-0103' and sample.frame_idx == 1
    assert packed['inputs']['img'].shape == (6, 3, 128, 352)
    points = packed['inputs']['points']
    assert points.shape[1] == 5 and points.dtype == torch.float32
    # every keyframe / sweep file starts with the 3 landmarks; after the exact sweep stacking and
    # PointsToEgo they all sit on the landmarks' position in the current ego frame
    ego2global = pose_matrix(*ego_state(SCENES['scene-0103'], 1 * KEYFRAME_DT))
    expected = (LANDMARKS_GLOBAL - ego2global[:3, 3]) @ ego2global[:3, :3]
    for landmark in expected:
        near = torch.linalg.norm(points[:, :3] - torch.tensor(landmark, dtype=torch.float32), dim=1) < 0.01
        lags = sorted({round(float(lag), 3) for lag in points[near, 4]})
        # the keyframe + 3 of the 7 earlier sweeps (num_sweeps of the mini config, drawn at random)
        assert len(lags) == 4 and lags[0] == 0.0 and set(lags[1:]) <= {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7}
    assert sample.gt_occ.shape == OCC_GRID and sample.gt_occ[100, 100, 2] == 0
    assert sample.ego_fut_cmd == 1 and sample.gt_traj.shape == (6, 2)
    assert sample.conversations == []


def test_sweeps_need_the_exact_inverse(toy_root):
    """mmdet3d 1.4's LoadPointsFromMultiSweeps misplaces sweeps of a turning ego; the DrivePI loader does not."""
    dataset = DATASETS.build(dataset_cfg('drivepi_mini.py', 'val', toy_root, pipeline=[]))  # scene-0553: right arc
    results = dataset.get_data_info(6)
    ego2global = pose_matrix(*ego_state(SCENES['scene-0553'], 6 * KEYFRAME_DT))
    landmarks_lidar = (LANDMARKS_GLOBAL - (ego2global @ np.asarray(results['lidar_points']['lidar2ego']))[:3, 3])
    landmarks_lidar = landmarks_lidar @ (ego2global @ np.asarray(results['lidar_points']['lidar2ego']))[:3, :3]
    errors = {}
    for loader in ('LoadPointsFromMultiSweeps', 'DrivePILoadPointsFromMultiSweeps'):
        out = TRANSFORMS.build(dict(type=loader, sweeps_num=10, load_dim=5, use_dim=5, test_mode=True))(
            TRANSFORMS.build(dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=5))(
                copy.deepcopy(results)))
        per_file = out['points'].tensor.numpy().reshape(11, -1, 5)[:, :len(LANDMARKS_GLOBAL), :3]
        errors[loader] = np.abs(per_file - landmarks_lidar).max()
    assert errors['DrivePILoadPointsFromMultiSweeps'] < 2e-3
    assert errors['LoadPointsFromMultiSweeps'] > 0.1


def test_val_sample_conversations_and_batch(toy_root):
    dataset = DATASETS.build(dataset_cfg('drivepi_mini.py', 'val', toy_root, qa_file=str(toy_root / 'qa_val.jsonl')))
    assert len(dataset) == 8
    with_qa = dataset[2]['data_samples']
    assert with_qa.conversations == [[dict(question='Is the ego turning?', answer='yes', type='yes_no',
                                           family='planning')] * 2]
    assert dataset[3]['data_samples'].conversations == []
    preprocessor = MODELS.build(dict(type='Det3DDataPreprocessor', mean=[0.0] * 3, std=[1.0] * 3))
    batch = preprocessor(pseudo_collate([dataset[0], dataset[1]]), training=False)
    assert batch['inputs']['imgs'].shape == (2, 6, 3, 128, 352)
    assert len(batch['inputs']['points']) == 2 and len(batch['data_samples']) == 2


def test_rejects_mmdet3d_infos(demo_dir):
    cfg = dataset_cfg('drivepi_mini.py', 'val', demo_dir, ann_file='n015-2018-07-24-11-22-45+0800.pkl')
    with pytest.raises(ValueError, match='not a DrivePI info file'):
        DATASETS.build(cfg)


def test_rejects_occ_classes_that_differ_from_the_infos(toy_root):
    occ3d = Config.fromfile(CONFIG_DIR / 'nuscenes_occ3d.py')
    metainfo = dict(classes=occ3d.class_names, occ_classes=occ3d.occ_classes)
    cfg = dataset_cfg('drivepi_mini.py', 'val', toy_root, metainfo=metainfo)
    with pytest.raises(ValueError, match='occ_classes of the config'):
        DATASETS.build(cfg)
    dataset = DATASETS.build(dataset_cfg('drivepi_mini.py', 'val', toy_root, metainfo=dict(classes=['car'])))
    assert len(dataset.metainfo['occ_classes']) == 17  # taken from the info file
    assert dataset.get_data_info(0)['occ_classes'][16] == 'free'


def test_generated_mini_set_end_to_end(mini_dataset):
    cfg = dataset_cfg('drivepi_mini.py', 'train', Path(mini_dataset['root']),
                      ann_file=str(mini_dataset['train_info']))
    dataset = DATASETS.build(cfg)
    packed = dataset[len(dataset) // 2]
    assert packed['inputs']['img'].shape == (6, 3, 128, 352)
    assert packed['inputs']['points'].shape[0] > 100
    sample = packed['data_samples']
    assert sample.gt_occ.shape == OCC_GRID and sample.cam_valid.all()
    assert len(sample.gt_fut_boxes) == 6


def test_answers_longer_than_the_generation_limit_are_refused_at_load(tmp_path, tiny_llm_dir):
    from transformers import AutoTokenizer

    from drivepi.datasets.drivepi_dataset import check_answer_lengths
    long_answer = ', '.join(f'({x}.5, -{x}.5)' for x in range(10, 16))
    turns = [QATurn('?', 'yes', 'exist'), QATurn('?', long_answer, 'trajectory')]
    qa = {'tok': [QAConversation('c', 'planning', turns)]}
    n_long = len(AutoTokenizer.from_pretrained(tiny_llm_dir).encode(long_answer, add_special_tokens=False))
    assert check_answer_lengths(qa, 'qa_val.jsonl', str(tiny_llm_dir), n_long) == n_long  # exactly fits
    with pytest.raises(ValueError, match=rf'qa_val.jsonl: the answer .* is {n_long} tokens long .*_tokens=24'):
        check_answer_lengths(qa, 'qa_val.jsonl', str(tiny_llm_dir), 24)


def test_run_configs_check_test_answers_against_the_model_limit():
    from drivepi.utils import load_run_config
    cfg = load_run_config('configs/drivepi/drivepi_mini.py')
    assert cfg.test_dataloader.dataset.max_answer_tokens == cfg.model.max_answer_tokens >= 48
    assert cfg.test_dataloader.dataset.tokenizer_path == cfg.model.llm.llm_path
    moved = load_run_config('configs/drivepi/drivepi_mini_long.py', cfg_options={'model.llm.llm_path': '/tmp/llm'})
    assert moved.test_dataloader.dataset.tokenizer_path == moved.val_dataloader.dataset.tokenizer_path == '/tmp/llm'
