"""Data engine on a hand-built scene whose answers are worked out by hand in the comments."""
import json
import os
import pickle
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from data_engine.balance import balance_answers
from data_engine.captions import TemplateCaptioner, VLMCaptioner, camera_image_paths, generate_captions, load_captioner
from data_engine.flow import FlowQAConfig, generate_flow, heading_name
from data_engine.generate_qa import QAEngineConfig, generate_conversations, generate_records, main
from data_engine.occupancy import OccupancyQAConfig, OccupancyView, count_objects, generate_occupancy
from data_engine.planning import PlanningQAConfig, action_reason, generate_planning, next_action
from data_engine.scene import OPENOCC_CLASSES, load_scene, objects_in_ego
from data_engine.stats import qa_stats
from data_engine.verify import SceneOracle, VerifyReport, verify_file, verify_record
from drivepi.datasets.qa_schema import QAConversation, QARecord, QATurn, load_qa_file
from drivepi.geometry import OCC_GRID

CATEGORIES = {'car': 0, 'truck': 1, 'trailer': 2, 'bus': 3, 'construction_vehicle': 4, 'bicycle': 5,
              'motorcycle': 6, 'pedestrian': 7, 'traffic_cone': 8, 'barrier': 9}
L = {name: i for i, name in enumerate(OPENOCC_CLASSES)}
FREE = L['free']
REPO_ROOT = Path(__file__).resolve().parents[2]


def ix_of(x):
    """Grid index of the voxel whose lower face is at ``x`` m (x or y axis)."""
    index = round((x + 40) / 0.4)
    assert abs(index * 0.4 - 40 - x) < 1e-6, f'{x} is not a voxel face'
    return index


def build_semantics() -> np.ndarray:
    """Road at z in [-0.2, 0.2] (iz 2) everywhere, plus:

    - car block x in [10.0, 14.0], |y| <= 0.8, iz 3..6 (top face z = -1 + 7 * 0.4 = 1.8 m)
    - vegetation canopy above the clearance, x in [4.8, 6.0], |y| <= 0.8, iz 11 (centre z 3.6 m)
    - barrier x in [0.0, 2.0], y in [2.8, 3.2], iz 3..5 (nearest obstacle on the left, 2.8 m)
    - manmade wall x in [-20.0, -19.6], |y| <= 2.0, iz 3..9 (behind, near face 19.6 m)
    - sidewalk patch x in [30.0, 31.2], |y| <= 2.0 at the road level
    """
    sem = np.full(OCC_GRID, FREE, np.uint8)
    sem[:, :, 2] = L['driveable_surface']
    sem[ix_of(10.0):ix_of(14.0), ix_of(-0.8):ix_of(0.8), 3:7] = L['car']
    sem[ix_of(4.8):ix_of(6.0), ix_of(-0.8):ix_of(0.8), 11] = L['vegetation']
    sem[ix_of(0.0):ix_of(2.0), ix_of(2.8):ix_of(3.2), 3:6] = L['barrier']
    sem[ix_of(-20.0):ix_of(-19.6), ix_of(-2.0):ix_of(2.0), 3:10] = L['manmade']
    sem[ix_of(30.0):ix_of(31.2), ix_of(-2.0):ix_of(2.0), 2] = L['sidewalk']
    return sem


def instance(label, x, y, vx, vy, token, z=0.0, size=(4.0, 2.0, 1.5)):
    return dict(bbox_3d=[x, y, z, *size, 0.0], bbox_label_3d=CATEGORIES[label], velocity=[vx, vy],
                num_lidar_pts=10, bbox_3d_isvalid=True, instance_token=token)


def build_info(token='tok0', occ_path='occupancy/scene-0/tok0/labels.npz') -> dict:
    """Objects (ego frame = LiDAR frame here), ego at 3 m/s, plan at 4 m/s straight ahead."""
    return dict(
        token=token, sample_idx=0, occ_path=occ_path,
        lidar_points=dict(lidar2ego=np.eye(4).tolist(), lidar_path='x.bin', num_pts_feats=5),
        instances=[instance('car', 12.0, 0.0, 0.0, 0.0, 'car_static'),
                   instance('pedestrian', 8.0, 1.0, 0.0, 1.2, 'ped'),
                   instance('car', -15.0, 3.0, 5.0, 0.0, 'car_fast'),
                   instance('truck', 25.0, -10.0, -2.0, 0.0, 'truck'),
                   instance('bus', 35.0, 30.0, 0.0, 0.0, 'bus_far'),
                   instance('barrier', 1.0, 3.2, np.nan, np.nan, 'barrier_nan'),
                   dict(instance('car', 5.0, 5.0, 0.0, 0.0, 'invalid'), bbox_3d_isvalid=False)],
        ego_fut_traj=np.array([[2, 0], [4, 0], [6, 0], [8, 0], [10, 0], [12, 0]], np.float32),
        ego_fut_mask=np.ones(6, np.float32), ego_fut_cmd=2,
        ego_status=np.array([3.0, 0, 0, 0, 0], np.float32),
        images={'CAM_FRONT': dict(img_path='front.jpg')})


@pytest.fixture()
def hand_dataset(tmp_path):
    """A one-sample info file and its occupancy GT in ``tmp_path``."""
    info = build_info()
    occ = tmp_path / info['occ_path']
    occ.parent.mkdir(parents=True)
    sem = build_semantics()
    np.savez_compressed(occ, semantics=sem, mask_camera=np.ones_like(sem), mask_lidar=np.ones_like(sem),
                        flow=np.zeros(sem.shape + (2,), np.float32))
    info_path = tmp_path / 'infos.pkl'
    with open(info_path, 'wb') as f:
        pickle.dump(dict(metainfo=dict(categories=CATEGORIES, occ_classes=list(OPENOCC_CLASSES)),
                         data_list=[info]), f)
    return info_path


@pytest.fixture()
def scene(hand_dataset):
    infos = pickle.loads(hand_dataset.read_bytes())
    return load_scene(infos['data_list'][0], hand_dataset.parent, infos['metainfo'])


def test_objects_move_from_lidar_to_ego_frame():
    # LiDAR frame turned +90 deg about z and lifted 1.8 m: LiDAR (10, 0) is ego (0, 10).
    lidar2ego = np.array([[0, -1, 0, 0.9], [1, 0, 0, 0], [0, 0, 1, 1.8], [0, 0, 0, 1]], float)
    objs = objects_in_ego([instance('car', 10.0, 0.0, 2.0, 0.0, 'a', z=-1.8, size=(4, 2, 1.6))],
                          lidar2ego, {0: 'car'}, 'test')
    np.testing.assert_allclose(objs.centers[0], [0.9, 10.0, 0.8])  # box middle: bottom + h / 2
    np.testing.assert_allclose(objs.velocities[0], [0.0, 2.0], atol=1e-12)
    assert objs.yaws[0] == pytest.approx(np.pi / 2)


def test_scene_keeps_valid_objects_and_nan_velocities(scene):
    assert scene.objects.tokens == ['car_static', 'ped', 'car_fast', 'truck', 'bus_far', 'barrier_nan']
    assert np.isnan(scene.objects.velocities[5]).all()
    assert scene.semantics.shape == OCC_GRID and scene.mask_camera.dtype == bool


def test_occupancy_views_match_hand_answers(scene):
    view = OccupancyView(scene, OccupancyQAConfig())
    assert view.nearest_obstacle('ahead') == (pytest.approx(10.0), L['car'])  # canopy at 3.6 m ignored
    assert view.nearest_obstacle('left') == (pytest.approx(2.8), L['barrier'])
    assert view.nearest_obstacle('behind') == (pytest.approx(19.6), L['manmade'])
    assert view.nearest_obstacle('right') is None
    assert view.free_road_ahead() == pytest.approx(10.0)
    ix, iy = ix_of(10.0), ix_of(0.0)
    assert view.top_label[ix, iy] == L['car'] and view.top_z[ix, iy] == pytest.approx(1.8)
    assert view.obstacle_column[ix, iy] and not view.obstacle_column[ix_of(-30.0), iy]


def test_free_road_stops_at_sidewalk(scene):
    scene.semantics[scene.semantics == L['car']] = FREE  # without the car the sidewalk at 30 m ends the road
    assert OccupancyView(scene, OccupancyQAConfig()).free_road_ahead() == pytest.approx(30.0)
    scene.semantics[scene.semantics == L['sidewalk']] = L['driveable_surface']
    assert OccupancyView(scene, OccupancyQAConfig()).free_road_ahead() == pytest.approx(40.0)


def test_counts_and_flow_definitions(scene):
    assert count_objects(scene, 'car', 20, 'around') == 2  # (12, 0) and (-15, 3): 15.3 m
    assert count_objects(scene, 'car', 20, 'ahead') == 1
    assert count_objects(scene, 'pedestrian', 10, 'around') == 1  # 8.06 m
    assert count_objects(scene, 'bus', 30, 'around') == 0  # 46 m away
    assert [heading_name(*v) for v in ([5, 0], [-2, 0], [0, 1.2], [1, -1], [-1, 1.1])] == [
        'forward', 'backward', 'left', 'forward-right', 'backward-left']


def test_planning_action_and_reason(scene):
    cfg = PlanningQAConfig()
    assert next_action(scene, cfg) == 'accelerate'  # plan 4 m/s vs ego 3 m/s
    assert action_reason(scene, 'accelerate', cfg) == 'pedestrian crossing 8.0 m ahead'
    scene.ego_status[0] = 4.2
    assert next_action(scene, cfg) == 'keep speed'
    scene.ego_status[0] = 6.0
    assert next_action(scene, cfg) == 'slow down'
    scene.fut_traj[1] = scene.fut_traj[0] + [0.1, 0]
    assert next_action(scene, cfg) == 'stop'
    scene.fut_traj[1] = [4, 0]
    scene.command = 1
    assert next_action(scene, cfg) == 'turn left'
    scene.objects.centers[:, 0] = -1.0  # nothing ahead any more
    assert action_reason(scene, 'turn left', cfg) == 'route turns left'
    assert action_reason(scene, 'keep speed', cfg) == 'road ahead is clear'


def answers(conversations, check):
    return [t.answer for turns in conversations for t in turns if t.meta['check'] == check]


def test_family_generators_give_hand_answers(scene):
    rng = np.random.default_rng(0)
    occ = generate_occupancy(scene, rng, OccupancyQAConfig(num_direction=4), list(CATEGORIES))
    by_dir = {t.meta['direction']: t.answer for turns in occ for t in turns if t.meta['check'] == 'direction_distance'}
    assert by_dir == {'ahead': '10.0 m', 'left': '2.8 m', 'behind': '19.6 m'}
    assert answers(occ, 'free_space') == ['10.0 m']
    flow = generate_flow(scene, rng, FlowQAConfig())
    assert answers(flow, 'approach_object') == ['car'] and answers(flow, 'approach_distance') == ['15.3 m']
    assert answers(flow, 'approach_speed') == ['4.9 m/s']  # -((-15)(5) + 0) / 15.30
    assert answers(flow, 'fastest_object') == ['car'] and answers(flow, 'fastest_speed') == ['5.0 m/s']
    plan = generate_planning(scene, rng, PlanningQAConfig())
    assert [t.answer for t in plan[0]] == ['accelerate', 'pedestrian crossing 8.0 m ahead',
                                           '(2.0, 0.0), (4.0, 0.0), (6.0, 0.0), (8.0, 0.0), (10.0, 0.0), (12.0, 0.0)']
    caption = generate_captions(scene, rng, TemplateCaptioner())[0][0]
    assert caption.answer == ('the ego vehicle drives at 3.0 m/s and will go straight. '
                              'within 30 m: 2 cars, 1 barrier, 1 pedestrian and 1 truck.')


def test_place_questions_are_consistent(scene):
    rng = np.random.default_rng(3)
    places_only = OccupancyQAConfig(num_direction=0, num_count=0, num_compare=0, ask_free_space=False)
    for _ in range(20):
        turns = generate_occupancy(scene, rng, places_only, list(CATEGORIES))[0]
        assert tuple(t.answer for t in turns) in {
            ('yes', 'car', '1.8 m'), ('yes', 'barrier', '1.4 m'), ('yes', 'manmade', '3.0 m'),
            ('yes', 'vegetation', '3.8 m'), ('no', 'driveable surface'), ('no', 'sidewalk')}


def test_verifier_accepts_generated_and_catches_wrong_answers(scene):
    cfg = QAEngineConfig()
    convs = generate_conversations(scene, 0, cfg, TemplateCaptioner(), list(CATEGORIES))
    record = QARecord(sample_token=scene.token, conversations=convs)
    report = VerifyReport()
    verify_record(record, scene, cfg, report)
    assert report.ok and report.checked == sum(len(c.turns) for c in convs) > 20
    for conv in convs:  # corrupt every answer: each corruption must be caught
        for turn in conv.turns:
            turn.answer = turn.answer + ' x'
    report = VerifyReport()
    verify_record(record, scene, cfg, report)
    assert len(report.mismatches) == report.checked


def test_oracle_recomputes_by_definition(scene):
    oracle = SceneOracle(scene, QAEngineConfig())
    assert oracle.answer(dict(check='place_object', x=12.2, y=0.2)) == 'car'
    assert oracle.answer(dict(check='place_height', x=-30.2, y=0.2)) == '0.2 m'
    assert oracle.answer(dict(check='direction_object', direction='behind')) == 'manmade'
    assert oracle.answer(dict(check='object_relative_speed', token='car_static')) == '3.0 m/s'
    assert oracle.answer(dict(check='object_heading', token='truck')) == 'backward'
    assert oracle.answer(dict(check='compare', a='car', b='truck', radius=30)) == 'yes'


def test_generation_is_deterministic_deduplicated_and_verifiable(hand_dataset, tmp_path):
    out_a, out_b, out_c = (tmp_path / n for n in ('a.jsonl', 'b.jsonl', 'c.jsonl'))
    config = tmp_path / 'engine_cfg.py'
    config.write_text('max_answer_share = 1.0\noccupancy = dict(num_direction=4)\n')
    for out, seed in ((out_a, '1'), (out_b, '1'), (out_c, '2')):
        main(['--info', str(hand_dataset), '--out', str(out), '--seed', seed, '--config', str(config)])
    assert out_a.read_bytes() == out_b.read_bytes() != out_c.read_bytes()
    qa = load_qa_file(out_a)
    convs = qa['tok0']
    keys = [(c.family, tuple(t.question for t in c.turns)) for c in convs]
    assert len(keys) == len(set(keys)) and {c.family for c in convs} == {'occupancy', 'flow', 'planning', 'caption'}
    stats = json.loads((tmp_path / 'a.jsonl.stats.json').read_text())
    assert stats['num_turns'] == sum(len(c.turns) for c in convs)
    assert sum(c.family == 'occupancy' and c.turns[0].meta['check'] == 'direction_exist' for c in convs) == 4
    report = verify_file(hand_dataset, out_a, progress=False)
    assert report.ok and report.checked == stats['num_turns']


def test_missing_occupancy_file_names_it(hand_dataset):
    (hand_dataset.parent / build_info()['occ_path']).unlink()
    with pytest.raises(FileNotFoundError, match='labels.npz'):
        generate_records(hand_dataset, progress=False)


def test_truncated_occupancy_file_names_it(hand_dataset):
    occ = hand_dataset.parent / build_info()['occ_path']
    occ.write_bytes(occ.read_bytes()[:2000])
    with pytest.raises(ValueError, match='labels.npz.*(unreadable|truncated)'):
        generate_records(hand_dataset, progress=False)


def test_wrong_grid_shape_and_missing_info_key(hand_dataset):
    occ = hand_dataset.parent / build_info()['occ_path']
    np.savez_compressed(occ, semantics=np.zeros((10, 10, 16), np.uint8), mask_camera=np.zeros((10, 10, 16), np.uint8))
    with pytest.raises(ValueError, match='semantics has shape'):
        generate_records(hand_dataset, progress=False)
    infos = pickle.loads(hand_dataset.read_bytes())
    infos['data_list'][0]['occ_path'] = ''
    del infos['data_list'][0]['ego_fut_traj']
    hand_dataset.write_bytes(pickle.dumps(infos))
    with pytest.raises(KeyError, match="tok0.*ego_fut_traj"):
        generate_records(hand_dataset, progress=False)


def test_samples_without_occupancy_still_get_object_questions(hand_dataset):
    infos = pickle.loads(hand_dataset.read_bytes())
    infos['data_list'][0]['occ_path'] = ''
    hand_dataset.write_bytes(pickle.dumps(infos))
    records = generate_records(hand_dataset, progress=False)
    checks = {t.meta['check'] for c in records[0].conversations for t in c.turns}
    assert 'count' in checks and 'action' in checks and not checks & {'place_exist', 'free_space'}


def test_vlm_captioner_gets_camera_images(scene, tmp_path):
    calls = []

    def fake_vlm(paths, prompt):  # a stand-in for any VLM callable
        calls.append((paths, prompt))
        return '  A  busy street. '
    (tmp_path / 'samples' / 'CAM_FRONT').mkdir(parents=True)
    (tmp_path / 'samples' / 'CAM_FRONT' / 'front.jpg').write_bytes(b'jpg')
    assert camera_image_paths(scene) == [str(tmp_path / 'samples' / 'CAM_FRONT' / 'front.jpg')]
    turn = generate_captions(scene, np.random.default_rng(0), VLMCaptioner(fake_vlm))[0][0]
    assert turn.answer == 'A busy street.' and turn.meta['source'] == 'vlm' and len(calls) == 1
    with pytest.raises(ValueError, match='returned'):
        VLMCaptioner(lambda paths, prompt: '')(scene)
    assert load_captioner('os.path:join').vlm is os.path.join and load_captioner(None).source == 'template'
    with pytest.raises(ValueError, match='package.module:function'):
        load_captioner('os.path.join')


def record_of(token, answers_and_types):
    return QARecord(token, [QAConversation(f'planning-{i}', 'planning', [QATurn('q?', a, t, {})])
                            for i, (a, t) in enumerate(answers_and_types)])


def test_balance_caps_the_largest_answer_share():
    records = [record_of(f's{i}', [('keep speed', 'action')] * 9 + [('stop', 'action'), ('3', 'count')])
               for i in range(10)]
    balanced = balance_answers(records, max_share=0.6, seed=0)
    share = qa_stats(balanced)['per_type']['action']['largest_answer_share']
    assert 0.55 <= share <= 0.6  # just enough dropped: 10 'stop' kept, 15 of 90 'keep speed'
    assert qa_stats(balanced)['per_type']['action']['histogram'] == {'keep speed': 15, 'stop': 10}
    only_one = [record_of('s', [('yes', 'exist')] * 3)]
    assert balance_answers(only_one, 0.6)[0].conversations == only_one[0].conversations


def test_config_file_holds_the_defaults():
    assert QAEngineConfig.from_file(REPO_ROOT / 'configs/data_engine/default.py') == QAEngineConfig()


def test_generate_script_entry_point(hand_dataset, tmp_path, monkeypatch, capsys):
    out = tmp_path / 'qa.jsonl'
    monkeypatch.setattr(sys, 'argv', ['generate_qa.py', '--info', str(hand_dataset), '--out', str(out)])
    runpy.run_path(str(REPO_ROOT / 'data_engine' / 'generate_qa.py'), run_name='__main__')
    assert 'top share' in capsys.readouterr().out and list(load_qa_file(out)) == ['tok0']


def test_real_keyframe_objects_agree_with_mmdet3d_boxes(demo_dir):
    from mmdet3d.structures import LiDARInstance3DBoxes
    infos = pickle.loads((demo_dir / 'n015-2018-07-24-11-22-45+0800.pkl').read_bytes())
    info, categories = infos['data_list'][0], infos['metainfo']['categories']
    lidar2ego = np.asarray(info['lidar_points']['lidar2ego'])
    objs = objects_in_ego(info['instances'], lidar2ego, {v: k for k, v in categories.items()}, 'demo')
    valid = [i for i in info['instances'] if i['bbox_3d_isvalid'] and i['bbox_label_3d'] != -1]
    assert len(objs) == len(valid) > 10
    boxes = LiDARInstance3DBoxes(np.array([i['bbox_3d'] for i in valid], np.float32))
    centres = boxes.gravity_center.numpy() @ lidar2ego[:3, :3].T + lidar2ego[:3, 3]
    np.testing.assert_allclose(objs.centers, centres, atol=1e-3)
    speeds = [np.hypot(*i['velocity']) for i in valid]  # a yaw keeps every speed (NaN stays NaN); the
    np.testing.assert_allclose(np.linalg.norm(objs.velocities, axis=1), speeds, rtol=1e-3)  # 1.4 deg tilt ~3e-4
