"""OccupancyMetric / PlanningMetric / QAMetric through MMEngine's Evaluator on two crafted samples."""
import json
import pickle

import numpy as np
import pytest
import torch
from mmdet3d.structures import Det3DDataSample
from mmengine.evaluator import Evaluator

from drivepi.datasets.qa_schema import QAConversation, QARecord, QATurn, write_qa_file
from drivepi.evaluation import format_metrics_table, save_metrics_json
from drivepi.geometry import OCC_GRID
from drivepi.registry import METRICS

OCC_CLASSES = ['car', 'truck', 'trailer', 'bus', 'construction_vehicle', 'bicycle', 'motorcycle', 'pedestrian',
               'traffic_cone', 'barrier', 'driveable_surface', 'other_flat', 'sidewalk', 'terrain', 'manmade',
               'vegetation', 'free']
CAR, ROAD, FREE = 0, 10, 16


def _lidar2ego():
    m = np.eye(4)
    m[:3, 3] = (0.94, 0.0, 1.84)
    return m


@pytest.fixture
def ann_file(tmp_path):
    """Two one-keyframe scenes at the global origin: each sample casts rays from its own LiDAR only."""
    infos = [dict(token=t, scene_token=f'scene-{t}', frame_idx=0, ego2global=np.eye(4).tolist(),
                  lidar_points=dict(lidar2ego=_lidar2ego().tolist())) for t in ('a', 'b')]
    path = tmp_path / 'infos_val.pkl'
    path.write_bytes(pickle.dumps(dict(metainfo=dict(occ_classes=OCC_CLASSES), data_list=infos)))
    return str(path)


def _occ_sample(token: str, predict_all_free: bool, mask_front_half: bool) -> Det3DDataSample:
    gt = torch.full(OCC_GRID, FREE, dtype=torch.long)
    gt[:, :, 0] = ROAD
    gt[110:115, 95:105, 1:5] = CAR                  # a car 4-6 m ahead of the ego
    gt_flow = torch.zeros(OCC_GRID + (2,))
    gt_flow[110:115, 95:105, 1:5] = torch.tensor([1.0, 0.0])
    mask = torch.ones(OCC_GRID, dtype=torch.bool)
    if mask_front_half:
        mask[100:] = False                           # the car and the front road are not seen
    sample = Det3DDataSample(metainfo=dict(token=token, scene_token=f'scene-{token}', frame_idx=0,
                                           ego2global=np.eye(4)))
    sample.gt_occ, sample.gt_flow, sample.gt_mask_camera = gt, gt_flow, mask
    sample.pred_occ = torch.full_like(gt, FREE).to(torch.uint8) if predict_all_free else gt.to(torch.uint8)
    pred_flow = gt_flow.clone()
    pred_flow[110:115, 95:105, 1:5] = torch.tensor([1.0, 0.3])
    sample.pred_flow = torch.zeros_like(gt_flow) if predict_all_free else pred_flow
    return sample


@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='the metric on a GPU (grids, rays and counts there) needs CUDA'))])
def test_occupancy_metric_round_trip(ann_file, device):
    metric = METRICS.build(dict(type='OccupancyMetric', ann_file=ann_file, class_names=OCC_CLASSES, device=device))
    evaluator = Evaluator([metric])
    evaluator.process([_occ_sample('a', False, False)])
    evaluator.process([_occ_sample('b', True, True)])
    metrics = evaluator.evaluate(2)
    # rays: sample a predicts every ray right, sample b none, with the same GT rays -> IoU 1/2 per class
    for key in ('occ/RayIoU', 'occ/RayIoU@1', 'occ/RayIoU@2', 'occ/RayIoU@4', 'occ/RayIoU@1/car',
                'occ/RayIoU@4/driveable_surface'):
        assert metrics[key] == pytest.approx(50.0), key
    assert np.isnan(metrics['occ/RayIoU@1/truck'])
    # voxels (camera mask): car 200 TP only -> 1; road 40000 TP, 20000 FN -> 2/3
    assert metrics['occ/IoU/car'] == pytest.approx(100.0)
    assert metrics['occ/IoU/driveable_surface'] == pytest.approx(200 / 3)
    assert metrics['occ/mIoU'] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert metrics['occ/mAVE'] == pytest.approx(0.3, abs=1e-6)      # |(1, 0.3) - (1, 0)| on every car TP ray
    assert metrics['occ/OccScore'] == pytest.approx(100 * (0.9 * 0.5 + 0.1 * 0.7), abs=1e-4)


@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='the metric on a GPU (grids, rays and counts there) needs CUDA'))])
def test_a_batch_gives_each_sample_the_counts_it_gets_alone(ann_file, device):
    """The batch's grids are cast and counted together: each sample's ray counts and confusion matrix must be
    those of the sample processed alone (a mix-up of samples or origins moves them between samples)."""
    samples = [_occ_sample('a', False, False), _occ_sample('b', True, True)]
    samples[1].gt_occ[120:123, 90:93, 2:4] = CAR      # the samples differ in GT too
    cfg = dict(type='OccupancyMetric', ann_file=ann_file, class_names=OCC_CLASSES, device=device)
    together, alone = METRICS.build(cfg), METRICS.build(cfg)
    together.process({}, [s.to_dict() for s in samples])
    for sample in samples:
        alone.process({}, [sample.to_dict()])
    assert len(together.results) == 2
    for batched, single in zip(together.results, alone.results):
        assert np.array_equal(batched['confusion'], single['confusion'])
        for field in ('gt', 'pred', 'tp', 'flow_tp'):
            assert np.array_equal(getattr(batched['rays'], field), getattr(single['rays'], field)), field
        assert np.allclose(batched['rays'].flow_err, single['rays'].flow_err, rtol=1e-12)
    assert together.results[0]['rays'].tp.sum() > 0 and together.results[1]['rays'].tp.sum() == 0


def test_occupancy_metric_names_the_sample_whose_flow_is_not_finite(ann_file):
    metric = METRICS.build(dict(type='OccupancyMetric', ann_file=ann_file, class_names=OCC_CLASSES, device='cpu'))
    samples = [_occ_sample('a', False, False), _occ_sample('b', False, False)]
    samples[1].pred_flow[3, 4, 5, 0] = float('nan')
    with pytest.raises(ValueError, match=r"pred_flow holds NaN or inf in samples \['b'\]"):
        metric.process({}, [s.to_dict() for s in samples])


def test_occupancy_metric_rejects_mismatched_poses_and_missing_fields(ann_file, tmp_path):
    metric = METRICS.build(dict(type='OccupancyMetric', ann_file=ann_file, class_names=OCC_CLASSES, device='cpu'))
    sample = _occ_sample('a', False, False)
    moved = np.eye(4)
    moved[0, 3] = 5.0
    sample.set_metainfo(dict(ego2global=moved))
    with pytest.raises(ValueError, match='ego2global'):
        metric.process({}, [sample.to_dict()])
    broken = _occ_sample('a', False, False).to_dict()
    del broken['gt_flow']
    with pytest.raises(KeyError, match='gt_flow'):
        metric.process({}, [broken])
    with pytest.raises(FileNotFoundError, match='missing.pkl'):
        METRICS.build(dict(type='OccupancyMetric', ann_file=str(tmp_path / 'missing.pkl'), class_names=OCC_CLASSES))


def _plan_sample(offset_y: float, valid_steps: int, box_at_1s: bool) -> dict:
    gt = np.stack([np.arange(1, 7) * 2.0, np.zeros(6)], axis=1).astype(np.float32)
    boxes = [torch.zeros(0, 7) for _ in range(6)]
    if box_at_1s:   # beside the GT path (y 2..4 m), in the way of a plan 2 m to the left
        boxes[1] = torch.tensor([[4.5, 3.0, 0.0, 4.0, 2.0, 1.5, 0.0]])
    mask = np.zeros(6, np.float32)
    mask[:valid_steps] = 1
    return dict(token='t', gt_traj=torch.from_numpy(gt), gt_traj_mask=torch.from_numpy(mask), gt_fut_boxes=boxes,
                pred_traj=torch.from_numpy(gt + np.float32([0.0, offset_y])))


def test_planning_metric_round_trip():
    evaluator = Evaluator([METRICS.build(dict(type='PlanningMetric'))])
    evaluator.process([_plan_sample(2.0, 6, True), _plan_sample(-1.0, 4, False)])
    metrics = evaluator.evaluate(2)
    # per-step L2: steps 1-4 (2 + 1) / 2, steps 5-6 only sample one: 2
    expected = {'L2@1s/per_step': 1.5, 'L2@2s/per_step': 1.5, 'L2@3s/per_step': 2.0, 'L2@avg/per_step': 5 / 3,
                'L2@1s/cumulative': 1.5, 'L2@2s/cumulative': 1.5, 'L2@3s/cumulative': 10 / 6,
                'L2@avg/cumulative': (3 + 10 / 6) / 3,
                'collision@1s/per_step/uniad_vad': 50.0, 'collision@2s/per_step/uniad_vad': 0.0,
                'collision@3s/per_step/uniad_vad': 0.0, 'collision@avg/per_step/uniad_vad': 50 / 3,
                'collision@1s/cumulative/uniad_vad': 25.0, 'collision@2s/cumulative/uniad_vad': 12.5,
                'collision@3s/cumulative/uniad_vad': 50 / 6,
                'collision@avg/cumulative/uniad_vad': (25 + 12.5 + 50 / 6) / 3,
                # official DrivePI / SparseDrive: only the sample with all 6 GT steps; its plan's box at 1 s (centre
                # (6.37, 1.33), heading -11 degrees) reaches the box beside the GT path (y from 2 m)
                'num_samples/sparsedrive': 1, 'L2@avg/cumulative/sparsedrive': 2.0, 'L2@1s/per_step/sparsedrive': 2.0,
                'collision@1s/cumulative/sparsedrive': 50.0, 'collision@2s/cumulative/sparsedrive': 25.0,
                'collision@3s/cumulative/sparsedrive': 100 / 6,
                'collision@avg/cumulative/sparsedrive': (50 + 25 + 100 / 6) / 3,
                'collision@1s/per_step/sparsedrive': 100.0, 'collision@avg/per_step/sparsedrive': 100 / 3}
    for key, value in expected.items():
        assert metrics[f'plan/{key}'] == pytest.approx(value), key
    assert all(k.endswith(('/uniad_vad', '/sparsedrive')) for k in metrics if 'collision' in k)

    only_official = Evaluator([METRICS.build(dict(type='PlanningMetric', collision_conventions=['sparsedrive']))])
    only_official.process([_plan_sample(2.0, 6, True), _plan_sample(-1.0, 4, False)])
    metrics = only_official.evaluate(2)
    assert metrics['plan/L2@avg/per_step'] == pytest.approx(5 / 3)
    assert not any(k.endswith('/uniad_vad') for k in metrics)
    with pytest.raises(ValueError, match='collision_conventions'):
        METRICS.build(dict(type='PlanningMetric', collision_conventions=['uniad']))


def test_qa_metric_round_trip_per_type():
    def turn(answer, qa_type):
        return dict(question='?', answer=answer, type=qa_type, family='nuscenes_qa')
    samples = [dict(token='a', conversations=[[turn('yes', 'exist'), turn('3', 'count')]],
                    pred_answers=[['Yes.', '3']]),
               dict(token='b', conversations=[[turn('no', 'exist')],
                                              [turn('12.4 m', 'distance'), turn('5.0 m', 'distance')]],
                    pred_answers=[['yes'], ['12.8 m', '5.6 m']])]   # 0.4 m within 10 %; 0.6 m outside 0.5 m
    evaluator = Evaluator([METRICS.build(dict(type='QAMetric'))])
    evaluator.process(samples)
    metrics = evaluator.evaluate(2)
    assert metrics['qa/accuracy'] == pytest.approx(60.0)
    assert metrics['qa/accuracy/exist'] == pytest.approx(50.0)
    assert metrics['qa/accuracy/count'] == pytest.approx(100.0)
    assert metrics['qa/accuracy/distance'] == pytest.approx(50.0)
    assert metrics['qa/num_turns/distance'] == 2


def test_qa_metric_reports_the_most_common_training_answer_on_the_same_turns(tmp_path):
    def conversation(name, exist, count):
        return QAConversation(name, 'occupancy', [QATurn('?', exist, 'exist'), QATurn('?', count, 'count')])
    train = [QARecord('t1', [conversation('c', 'no', '2')]),
             QARecord('t2', [conversation('c', 'no', '1'), conversation('d', 'yes', '2')])]
    write_qa_file(train, tmp_path / 'train.jsonl')  # majority: exist 'no' (2 of 3), count '2' (2 of 3)

    def turn(answer, qa_type):
        return dict(question='?', answer=answer, type=qa_type, family='occupancy')
    sample = dict(token='v', conversations=[[turn('no', 'exist'), turn('2', 'count')],
                                            [turn('yes', 'exist'), turn('3', 'count')]],
                  pred_answers=[['yes', '2'], ['yes', '3']])
    evaluator = Evaluator([METRICS.build(dict(type='QAMetric', majority_qa_file=str(tmp_path / 'train.jsonl')))])
    evaluator.process([sample])
    metrics = evaluator.evaluate(1)
    assert metrics['qa/accuracy'] == pytest.approx(75.0)
    assert metrics['qa/majority_accuracy'] == pytest.approx(50.0)   # 'no' right once, '2' right once
    assert metrics['qa/majority_accuracy/exist'] == pytest.approx(50.0)
    assert metrics['qa/majority_accuracy/count'] == pytest.approx(50.0)
    # one sample: every bootstrap resample is that sample, so the interval is the estimate itself
    assert [metrics[f'qa/gain_over_majority{k}'] for k in ('', '_low', '_high')] == pytest.approx([25.0] * 3)
    assert metrics['qa/gain_over_majority/exist'] == pytest.approx(0.0)
    assert metrics['qa/gain_over_majority/count'] == pytest.approx(50.0)


def test_qa_gain_interval_resamples_whole_samples(tmp_path):
    """Sample A: one turn the model gets and the majority answer misses (+1); sample B: three turns both get
    (0). Gain 1 / 4 turns = 25 points; resamples AA (100), AB (25) and BB (0) bound the interval."""
    write_qa_file([QARecord('t', [QAConversation('c', 'occupancy', [QATurn('?', 'no', 'exist')])])],
                  tmp_path / 'train.jsonl')  # majority answer: 'no'

    metric = METRICS.build(dict(type='QAMetric', majority_qa_file=str(tmp_path / 'train.jsonl')))
    sample_a = [('yes', 'yes', 'exist')]  # (prediction, answer, type) of each turn
    sample_b = [('no', 'no', 'exist')] * 3
    gains = metric.gain_over_majority([sample_a, sample_b])
    assert gains['gain_over_majority'] == pytest.approx(25.0)
    assert (gains['gain_over_majority_low'], gains['gain_over_majority_high']) == pytest.approx((0.0, 100.0))
    assert gains['gain_over_majority/exist'] == pytest.approx(25.0)


def test_qa_metric_rejects_answers_not_parallel_to_conversations():
    metric = METRICS.build(dict(type='QAMetric'))
    sample = dict(token='a', conversations=[[dict(question='?', answer='yes', type='exist')]], pred_answers=[[]])
    with pytest.raises(ValueError, match='parallel'):
        metric.process({}, [sample])


def test_metric_table_and_json(tmp_path):
    metrics = {'occ/RayIoU': 49.3, 'occ/mAVE': 0.509, 'occ/RayIoU@1/truck': float('nan'), 'qa/num_turns/exist': 12}
    table = format_metrics_table(metrics)
    for text in ('occ/RayIoU', '49.300', '0.509', 'nan', '| 12 '):
        assert text in table
    save_metrics_json(metrics, tmp_path / 'metrics.json')
    assert json.loads((tmp_path / 'metrics.json').read_text()) == {
        'occ/RayIoU': 49.3, 'occ/mAVE': 0.509, 'occ/RayIoU@1/truck': None, 'qa/num_turns/exist': 12}
