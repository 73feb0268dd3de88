"""DrivePI transforms on the real nuScenes demo keyframe and on hand-made files."""
import copy
import pickle

import mmcv
import numpy as np
import pytest
import torch
from nuscenes_tables import write_occ

from drivepi.geometry import CAMERA_NAMES, OCC_GRID
from drivepi.registry import MODELS, TRANSFORMS
from drivepi.utils import register_all_modules

DEMO_PKL = 'n015-2018-07-24-11-22-45+0800.pkl'
register_all_modules()


@pytest.fixture(scope='module')
def demo_results(demo_dir):
    """The demo info as the dataset would hand it to the pipeline (absolute paths)."""
    with open(demo_dir / DEMO_PKL, 'rb') as f:
        info = pickle.load(f)['data_list'][0]
    info['lidar_points']['lidar_path'] = str(demo_dir / info['lidar_points']['lidar_path'])
    for cam in info['images'].values():
        cam['img_path'] = str(demo_dir / cam['img_path'])
    return info


def build(cfg: dict):
    return TRANSFORMS.build(cfg)


def load_points(results):
    return build(dict(type='DrivePILoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=5))(results)


def test_points_to_ego_matches_lidar2ego(demo_results):
    results = load_points(copy.deepcopy(demo_results))
    raw = np.fromfile(demo_results['lidar_points']['lidar_path'], dtype=np.float32).reshape(-1, 5)
    assert results['points'].tensor.shape == (34688, 5)
    results = build(dict(type='PointsToEgo'))(results)
    lidar2ego = np.asarray(demo_results['lidar_points']['lidar2ego'])
    expected = raw[:, :3].astype(np.float64) @ lidar2ego[:3, :3].T + lidar2ego[:3, 3]
    np.testing.assert_allclose(results['points'].tensor[:, :3].numpy(), expected, atol=1e-4)
    np.testing.assert_array_equal(results['points'].tensor[:, 3].numpy(), raw[:, 3])
    # the LiDAR sits 1.84 m above the ground: most ego-frame returns are near or above z = 0
    assert np.median(expected[:, 2]) > -0.5


@pytest.mark.parametrize('problem, error, message', [
    ('truncated', ValueError, 'truncated'), ('nan', ValueError, 'NaN'), ('missing', FileNotFoundError, 'not found')])
def test_bad_point_file_is_named(demo_results, tmp_path, problem, error, message):
    path = tmp_path / 'bad.pcd.bin'
    points = np.fromfile(demo_results['lidar_points']['lidar_path'], dtype=np.float32).reshape(-1, 5)[:100].copy()
    if problem == 'truncated':
        path.write_bytes(points.tobytes()[:-4])
    elif problem == 'nan':
        points[17, 1] = np.nan
        points.tofile(path)
    results = copy.deepcopy(demo_results)
    results['lidar_points']['lidar_path'] = str(path)
    with pytest.raises(error) as info:
        load_points(results)
    assert 'bad.pcd.bin' in str(info.value) and message in str(info.value)


def load_images(results, **kwargs):
    return build(dict(type='DrivePILoadMultiViewImageFromFiles', **kwargs))(results)


def test_ego2img_projects_box_centres_after_resize_crop(demo_results):
    """Project the gravity centre of every camera annotation (mmdet3d's own 2D centre) with ego2img."""
    results = load_images(copy.deepcopy(demo_results))
    assert len(results['img']) == 6 and results['img'][0].shape == (900, 1600, 3)
    assert results['cam_valid'].all()
    results = build(dict(type='MultiViewImageResizeCrop', final_size=(256, 704)))(results)
    assert results['img_shape'] == (256, 704) and all(img.shape == (256, 704, 3) for img in results['img'])
    scale = 704 / 1600  # base scale covers the width; height 396 -> crop the top 140 rows
    top, left = round(900 * scale) - 256, 0
    num_checked = 0
    for cam, instances in demo_results['cam_instances'].items():
        view = CAMERA_NAMES.index(cam)
        cam2ego = np.asarray(demo_results['images'][cam]['cam2ego'])
        for inst in instances:
            centre_ego = cam2ego @ np.append(inst['bbox_3d'][:3], 1.0)
            uvw = results['ego2img'][view] @ centre_ego
            expected = np.array(inst['center_2d']) * scale - [left, top]
            np.testing.assert_allclose(uvw[:2] / uvw[2], expected, atol=0.05)
            np.testing.assert_allclose(uvw[2], inst['depth'], rtol=1e-4)
            num_checked += 1
    assert num_checked > 50
    np.testing.assert_allclose(results['ego2img'], results['cam2img'] @ np.linalg.inv(results['cam2ego']), atol=1e-6)


def test_random_resize_crop_pixels_agree_with_matrix(demo_results):
    results = load_images(copy.deepcopy(demo_results))
    originals = [img.copy() for img in results['img']]
    ego2img_before = results['ego2img'].copy()
    np.random.seed(3)
    results = build(dict(type='MultiViewImageResizeCrop', final_size=(128, 352), scale_range=(0.8, 1.2),
                         random_crop=True))(results)
    aug = results['img_aug_matrix']
    new_w, new_h = round(aug[0, 0] * 1600), round(aug[1, 1] * 900)
    left, top = int(-aug[0, 2]), int(-aug[1, 2])
    np.testing.assert_allclose(results['ego2img'], aug @ ego2img_before, atol=1e-9)
    for original, out in zip(originals, results['img']):
        resized = mmcv.imresize(original, (new_w, new_h))
        padded = np.zeros((new_h + 400, new_w + 800, 3), np.uint8)
        padded[200:200 + new_h, 400:400 + new_w] = resized
        np.testing.assert_array_equal(out, padded[200 + top:200 + top + 128, 400 + left:400 + left + 352])


def test_missing_camera_is_zero_and_marked(demo_results):
    results = copy.deepcopy(demo_results)
    del results['images']['CAM_BACK']
    results = load_images(results)
    back = CAMERA_NAMES.index('CAM_BACK')
    assert results['cam_valid'].tolist() == [i != back for i in range(6)]
    assert results['img'][back].shape == (900, 1600, 3) and not results['img'][back].any()
    assert results['img'][0].any()


def test_missing_camera_file_is_named(demo_results, tmp_path):
    results = copy.deepcopy(demo_results)
    results['images']['CAM_FRONT_LEFT']['img_path'] = str(tmp_path / 'gone.jpg')
    with pytest.raises(FileNotFoundError, match='gone.jpg'):
        load_images(results)


def occ_results(path, **extra):
    return dict(occ_path=str(path), token='tok', **extra)


def test_load_openocc_and_occ3d(tmp_path):
    written = write_occ(tmp_path / 'openocc.npz')
    results = build(dict(type='LoadOccFlowGT'))(occ_results(tmp_path / 'openocc.npz'))
    np.testing.assert_array_equal(results['gt_occ'], written['semantics'])
    assert results['gt_flow'].dtype == np.float32 and results['gt_flow'].shape == OCC_GRID + (2,)
    np.testing.assert_array_equal(results['gt_flow'][100, 100, 2], [1.5, -0.5])
    assert results['gt_flow'].sum() == pytest.approx(1.0)
    assert results['gt_mask_camera'].dtype == bool and results['gt_mask_camera'].all()
    write_occ(tmp_path / 'occ3d.npz', flow=False, semantics_value=17)
    results = build(dict(type='LoadOccFlowGT', num_classes=18, with_flow=False))(occ_results(tmp_path / 'occ3d.npz'))
    assert results['gt_occ'].max() == 17 and not results['gt_flow'].any()


def test_bad_occupancy_files_are_named(tmp_path):
    loader = build(dict(type='LoadOccFlowGT'))
    arrays = write_occ(tmp_path / 'good.npz')
    bad_cases = {
        'nan.npz': dict(arrays, flow=np.where(arrays['flow'] == 0, np.nan, arrays['flow']).astype(np.float32)),
        'shape.npz': dict(arrays, semantics=arrays['semantics'][:, :, :8]),
        'range.npz': dict(arrays, semantics=np.full_like(arrays['semantics'], 17)),
        'noflow.npz': {k: v for k, v in arrays.items() if k != 'flow'},
    }
    messages = {'nan.npz': 'NaN', 'shape.npz': 'shape', 'range.npz': 'semantics must lie', 'noflow.npz': 'lacks'}
    for name, content in bad_cases.items():
        np.savez(tmp_path / name, **content)
        with pytest.raises(ValueError, match=messages[name]) as info:
            loader(occ_results(tmp_path / name))
        assert name in str(info.value)
    (tmp_path / 'cut.npz').write_bytes((tmp_path / 'good.npz').read_bytes()[:5000])
    with pytest.raises(ValueError, match='cut.npz.*truncated'):
        loader(occ_results(tmp_path / 'cut.npz'))
    with pytest.raises(FileNotFoundError, match='none.npz'):
        loader(occ_results(tmp_path / 'none.npz'))
    with pytest.raises(ValueError, match='no occupancy GT'):
        loader(dict(occ_path='', token='tok'))


def planning_results(**overrides):
    results = dict(token='tok', ego_fut_traj=np.ones((6, 2), np.float32), ego_fut_mask=np.ones(6, np.float32),
                   ego_fut_cmd=1, ego_status=np.zeros(5, np.float32),
                   fut_boxes=[np.ones((2, 7), np.float32)] * 5 + [np.zeros((0, 7), np.float32)])
    results.update(overrides)
    return results


def test_load_planning_gt_validates():
    loader = build(dict(type='LoadPlanningGT'))
    results = loader(planning_results())
    assert results['gt_traj'].shape == (6, 2) and results['gt_traj_mask'].shape == (6,)
    assert [b.shape for b in results['gt_fut_boxes']] == [(2, 7)] * 5 + [(0, 7)]
    for bad, message in [(dict(ego_fut_traj=np.ones((5, 2))), 'ego_fut_traj'), (dict(ego_fut_cmd=3), 'ego_fut_cmd'),
                         (dict(ego_status=np.full(5, np.nan)), 'ego_status'),
                         (dict(fut_boxes=[np.ones((2, 9))] * 6), r'fut_boxes\[0\]')]:
        with pytest.raises(ValueError, match=message):
            loader(planning_results(**bad))


def full_demo_results(demo_results, tmp_path):
    """The demo keyframe with DrivePI keys added by hand (planning targets, an occupancy file)."""
    results = copy.deepcopy(demo_results)
    write_occ(tmp_path / 'labels.npz')
    results.update(planning_results(token=demo_results['token']), occ_path=str(tmp_path / 'labels.npz'),
                   scene_token='scene-tok', scene_name='scene-demo', frame_idx=0, occ_classes=['x'] * 17,
                   conversations=[])
    return results


PIPELINE = [
    dict(type='DrivePILoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=5),
    dict(type='DrivePILoadPointsFromMultiSweeps', sweeps_num=3, load_dim=5, use_dim=[0, 1, 2, 3, 4]),
    dict(type='PointsToEgo'),
    dict(type='DrivePILoadMultiViewImageFromFiles'),
    dict(type='MultiViewImageResizeCrop', final_size=(64, 176)),
    dict(type='LoadOccFlowGT'),
    dict(type='LoadPlanningGT'),
    dict(type='LoadConversations'),
    dict(type='PackDrivePIInputs'),
]


def test_packed_sample_fields_and_batching(demo_results, tmp_path):
    from mmengine.dataset import Compose, pseudo_collate
    packed = Compose(PIPELINE)(full_demo_results(demo_results, tmp_path))
    points, imgs = packed['inputs']['points'], packed['inputs']['img']
    assert points.dtype == torch.float32 and points.shape == (34688, 5)
    assert (points[:, 4] == 0).all()  # no sweeps in the demo: every point has time lag 0
    assert imgs.dtype == torch.uint8 and imgs.shape == (6, 3, 64, 176)
    sample = packed['data_samples']
    assert sample.gt_occ.dtype == torch.uint8 and sample.gt_occ.shape == OCC_GRID
    assert sample.gt_flow.dtype == torch.float32 and sample.gt_flow.shape == OCC_GRID + (2,)
    assert sample.gt_mask_camera.dtype == torch.bool and sample.gt_mask_camera.shape == OCC_GRID
    assert sample.gt_traj.shape == (6, 2) and sample.gt_traj_mask.shape == (6,)
    assert len(sample.gt_fut_boxes) == 6 and sample.gt_fut_boxes[0].shape == (2, 7)
    assert 'gt_instances_3d' not in sample  # no box is packed: nothing downstream reads boxes of the keyframe
    meta = sample.metainfo
    for key, shape in dict(cam2img=(6, 4, 4), cam2ego=(6, 4, 4), ego2img=(6, 4, 4), ego2global=(4, 4),
                           cam_valid=(6,), ego_status=(5,)).items():
        assert np.asarray(meta[key]).shape == shape, key
    assert meta['img_shape'] == (64, 176) and meta['ego_fut_cmd'] == 1 and meta['token'] == demo_results['token']
    assert sample.conversations == []
    preprocessor = MODELS.build(dict(type='Det3DDataPreprocessor', mean=[123.675, 116.28, 103.53],
                                     std=[58.395, 57.12, 57.375], bgr_to_rgb=True))
    batch = preprocessor(pseudo_collate([packed, copy.deepcopy(packed)]), training=False)
    assert batch['inputs']['imgs'].shape == (2, 6, 3, 64, 176) and batch['inputs']['imgs'].dtype == torch.float32
    assert len(batch['inputs']['points']) == 2 and batch['inputs']['points'][1].shape == (34688, 5)
    # normalised with the RGB mean/std after the BGR -> RGB swap
    expected = (imgs[0, 2].float() - 123.675) / 58.395
    torch.testing.assert_close(batch['inputs']['imgs'][0, 0, 0], expected)


def test_pack_names_missing_keys(demo_results):
    with pytest.raises(KeyError, match='ego_status'):
        build(dict(type='PackDrivePIInputs'))(load_images(load_points(copy.deepcopy(demo_results))))


def test_conversations_to_turn_lists_and_family_filter():
    from drivepi.datasets.qa_schema import QAConversation, QATurn
    turn = QATurn(question='How many cars?', answer='2', type='count', meta={'radius': 20})
    conversations = [QAConversation(id='a', family='occupancy', turns=[turn]),
                     QAConversation(id='b', family='planning', turns=[turn, turn])]
    results = build(dict(type='LoadConversations'))(dict(conversations=conversations))
    assert results['conversations'] == [
        [dict(question='How many cars?', answer='2', type='count', family='occupancy')],
        [dict(question='How many cars?', answer='2', type='count', family='planning')] * 2]
    planning = build(dict(type='LoadConversations', families=['planning']))(dict(conversations=conversations))
    assert [turns[0]['family'] for turns in planning['conversations']] == ['planning']
    assert build(dict(type='LoadConversations'))(dict())['conversations'] == []


def test_training_conversations_are_a_random_subset_in_random_order():
    from drivepi.datasets.qa_schema import QAConversation, QATurn
    conversations = [QAConversation(id=str(i), family='occupancy',
                                    turns=[QATurn(question=f'q{i}', answer='yes', type='exist', meta={})])
                     for i in range(6)]
    sample = build(dict(type='LoadConversations', max_conversations=3))
    firsts = set()
    np.random.seed(0)
    for _ in range(60):
        kept = [turns[0]['question'] for turns in sample(dict(conversations=conversations))['conversations']]
        assert len(kept) == len(set(kept)) == 3 and set(kept) <= {f'q{i}' for i in range(6)}
        firsts.add(kept[0])
    assert firsts == {f'q{i}' for i in range(6)}, 'every conversation must also come first'
    with pytest.raises(ValueError, match='max_conversations'):
        build(dict(type='LoadConversations', max_conversations=0))
