"""MMEngine metrics of DrivePI: occupancy (RayIoU, mIoU, mAVE, OccScore), planning and QA.

Each metric receives data samples as dicts (MMEngine's ``Evaluator`` calls ``to_dict()``) with the
prediction fields of ``DrivePI.predict`` and the GT fields / metainfo of ``docs/contracts.md``. Per
sample only small counts are kept; the sums are turned into metrics in ``compute_metrics``.
IoU-type values and collision rates are reported in percent, L2 in metres, mAVE in m/s.
"""
import os.path as osp
from collections import defaultdict
from functools import reduce
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from drivepi.device_copies import stack_to_device
from drivepi.evaluation.baselines import most_common_answers
from drivepi.evaluation.bootstrap import bootstrap_ci
from drivepi.evaluation.metric_table import format_metrics_table
from drivepi.evaluation.occ_miou import confusion_matrix, miou_from_confusion
from drivepi.evaluation.planning_metrics import (
    COLLISION_CONVENTIONS,
    HORIZONS_S,
    STEP_S,
    collision_per_step,
    l2_per_step,
    summarize_planning,
)
from drivepi.evaluation.qa_accuracy import answer_score, qa_accuracy
from drivepi.evaluation.ray_casting import lidar_ray_directions, scene_ray_origins
from drivepi.evaluation.ray_iou import (
    AVE_THRESHOLD_M,
    RAY_THRESHOLDS_M,
    sample_ray_counts,
    summarize_ray_counts,
)
from drivepi.fileio import read_pickle
from drivepi.geometry import OCC_RANGE, OCC_VOXEL_SIZE
from drivepi.registry import METRICS

OPENOCC_FLOW_CLASSES = tuple(range(8))
# the dtype each grid of OccupancyMetric is cast to on its device (None: its own; a uint8 grid crosses as uint8)
GRID_DTYPES = dict(gt_occ=torch.long, pred_occ=torch.long, gt_mask_camera=torch.bool, gt_flow=None, pred_flow=None)
NONSTANDARD_RAY_SUFFIX = '_reltol'  # ends the ray metrics' keys when the non-standard relative tolerance is on


def _field(sample: dict, key: str):
    """A field of a data-sample dict, or a KeyError that names what is there."""
    if key not in sample:
        raise KeyError(f'data sample {sample.get("token", "?")} has no {key!r}; it has {sorted(sample)}')
    return sample[key]


def _tensor(value, name: str, shape: Optional[tuple] = None, check_finite: bool = True) -> torch.Tensor:
    """``value`` as a tensor (in its own dtype and place), checked for shape and (unless ``check_finite`` is
    False) NaN."""
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    tensor = tensor.detach()
    if shape is not None and tuple(tensor.shape) != shape:
        raise ValueError(f'{name} must have shape {shape}, got {tuple(tensor.shape)}')
    if check_finite and tensor.is_floating_point() and not torch.isfinite(tensor).all():
        raise ValueError(f'{name} holds NaN or inf')
    return tensor


def _require(results: list, metric: BaseMetric) -> None:
    if not results:
        raise ValueError(f'{type(metric).__name__}: nothing to evaluate (no samples, or no QA turns)')


def _log_table(metrics: dict, title: str) -> None:
    MMLogger.get_current_instance().info(f'{title}\n{format_metrics_table(metrics)}')


class SceneOrigins:
    """RayIoU ray origins of every keyframe, from the info file's poses (by scene token and frame index).

    Args:
        ann_file: DrivePI info ``.pkl`` (``data_list`` entries with ``scene_token``, ``frame_idx``,
            ``ego2global`` and ``lidar_points.lidar2ego``).
    """

    def __init__(self, ann_file: str) -> None:
        if not osp.isfile(ann_file):
            raise FileNotFoundError(f'RayIoU needs the info file for the ego poses: {ann_file} does not exist')
        data_list = read_pickle(ann_file, 'info file').get('data_list')
        if not data_list:
            raise ValueError(f'{ann_file}: no data_list entries')
        scenes = defaultdict(dict)
        for info in data_list:
            try:
                scenes[info['scene_token']][int(info['frame_idx'])] = (
                    np.asarray(info['ego2global'], np.float64), np.asarray(info['lidar_points']['lidar2ego']))
            except KeyError as err:
                raise KeyError(f'{ann_file}: info {info.get("token", "?")} lacks {err}') from err
        self.ann_file = ann_file
        self.scenes = {token: [frames[i] for i in sorted(frames)] for token, frames in scenes.items()}
        self.frame_pos = {token: {i: pos for pos, i in enumerate(sorted(frames))} for token, frames in scenes.items()}

    def __call__(self, scene_token: str, frame_idx: int, ego2global=None) -> np.ndarray:
        """float32 ``(T, 3)`` origins (m) in the ego frame of that keyframe; checks ``ego2global`` if given."""
        frame_pos = self.frame_pos.get(scene_token, {}).get(int(frame_idx))
        if frame_pos is None:
            raise KeyError(f'{self.ann_file}: no keyframe {frame_idx} of scene {scene_token}')
        frames = self.scenes[scene_token]
        if ego2global is not None and not np.allclose(np.asarray(ego2global), frames[frame_pos][0], atol=1e-3):
            raise ValueError(f'{self.ann_file}: ego2global of scene {scene_token} frame {frame_idx} differs from the '
                             'data sample; the metric was given another info file than the dataset')
        return scene_ray_origins([f[0] for f in frames], [f[1] for f in frames], frame_pos)


@METRICS.register_module()
class OccupancyMetric(BaseMetric):
    """RayIoU (1/2/4 m), flow mAVE, OccScore and camera-masked voxel mIoU.

    Args:
        ann_file: the info ``.pkl`` of the evaluated split (for the neighbouring frames' poses);
            joined to ``data_root`` when relative.
        data_root: optional prefix of ``ann_file``.
        class_names: occupancy classes, free last (the config's ``occ_classes``).
        flow_classes: indices of the moving classes whose flow enters mAVE; ``()`` disables flow.
        ray_thresholds: RayIoU depth thresholds (m).
        nonstandard_relative_depth_tol: None (default) for the reference RayIoU protocol; e.g. 0.1 also
            accepts rays whose depth error is under 10 % of their depth (the early OccNet devkit's rule,
            not the standard number): the ray metrics' keys then end in ``_reltol``
            (``occ/RayIoU_reltol``, ``occ/mAVE_reltol``, ...).
        ave_threshold: threshold whose TP rays are used for mAVE (m).
        use_camera_mask: mIoU over ``gt_mask_camera`` voxels only (Occ3D); else over all voxels.
        point_cloud_range, voxel_size: grid geometry (m).
        device: where rays are cast: 'cpu', 'cuda' or 'auto' (CUDA when available).
    """
    default_prefix = 'occ'

    def __init__(self, ann_file: str, class_names: Sequence[str], data_root: str = '',
                 flow_classes: Sequence[int] = OPENOCC_FLOW_CLASSES,
                 ray_thresholds: Sequence[float] = RAY_THRESHOLDS_M,
                 nonstandard_relative_depth_tol: Optional[float] = None,
                 ave_threshold: float = AVE_THRESHOLD_M, use_camera_mask: bool = True,
                 point_cloud_range: Sequence[float] = OCC_RANGE, voxel_size: float = OCC_VOXEL_SIZE,
                 device: str = 'auto', **kwargs) -> None:
        super().__init__(**kwargs)
        if class_names[-1] != 'free':
            raise ValueError(f'OccupancyMetric: the last class must be free, got {list(class_names)}')
        self.class_names = list(class_names)
        self.origins = SceneOrigins(osp.join(data_root, ann_file))
        self.flow_classes = tuple(flow_classes)
        self.ray_cfg = dict(thresholds=tuple(ray_thresholds),
                            nonstandard_relative_depth_tol=nonstandard_relative_depth_tol,
                            point_cloud_range=tuple(point_cloud_range), voxel_size=voxel_size)
        self.ave_threshold = ave_threshold
        self.use_camera_mask = use_camera_mask
        self.device = torch.device('cuda' if device == 'auto' and torch.cuda.is_available()
                                   else 'cpu' if device == 'auto' else device)
        self.directions = lidar_ray_directions()   # on the host, where the rays are formed (scene_rays)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Each sample's ray counts and confusion matrix; the batch's grids are cast and counted together."""
        num_classes = len(self.class_names)
        grids = [self._sample_grids(sample) for sample in data_samples]
        batch = {key: stack_to_device([g[key] for g in grids], self.device, GRID_DTYPES[key]) for key in grids[0]}
        for key in ('gt_flow', 'pred_flow'):   # one host read per field and batch
            if key in batch and not torch.isfinite(batch[key]).all():
                bad = [sample.get('token', f'#{i}') for i, (sample, g) in enumerate(zip(data_samples, grids))
                       if not torch.isfinite(g[key]).all()]
                raise ValueError(f'{key} holds NaN or inf in samples {bad}')
        confusion = confusion_matrix(batch['gt_occ'], batch['pred_occ'], num_classes,   # also checks the classes
                                     batch.get('gt_mask_camera'))
        origins = [torch.from_numpy(self.origins(_field(s, 'scene_token'), _field(s, 'frame_idx'), s.get('ego2global')))
                   for s in data_samples]
        rays = sample_ray_counts(batch['gt_occ'], batch['pred_occ'], origins, self.directions, num_classes,
                                 gt_flow=batch.get('gt_flow'), pred_flow=batch.get('pred_flow'),
                                 flow_classes=self.flow_classes, ave_threshold=self.ave_threshold, **self.ray_cfg)
        self.results.extend(dict(rays=r, confusion=c) for r, c in zip(rays, confusion))

    def _sample_grids(self, sample: dict) -> dict:
        """One sample's grids in their own dtypes and places, shapes checked (finiteness: by the caller, per
        batch): ``gt_occ``, ``pred_occ`` ``(X, Y, Z)``, ``gt_mask_camera`` (with the camera mask), ``gt_flow``,
        ``pred_flow`` ``(X, Y, Z, 2)`` (with flow classes); :meth:`process` stacks each field onto the metric's
        device in one copy, in its ``GRID_DTYPES``."""
        gt_occ = _tensor(_field(sample, 'gt_occ'), 'gt_occ')
        if gt_occ.dim() != 3:
            raise ValueError(f'gt_occ must be an (X, Y, Z) grid, got shape {tuple(gt_occ.shape)}')
        grid = tuple(gt_occ.shape)
        grids = dict(gt_occ=gt_occ, pred_occ=_tensor(_field(sample, 'pred_occ'), 'pred_occ', grid))
        if self.use_camera_mask:
            grids['gt_mask_camera'] = _tensor(_field(sample, 'gt_mask_camera'), 'gt_mask_camera', grid)
        if self.flow_classes:
            for key in ('gt_flow', 'pred_flow'):
                grids[key] = _tensor(_field(sample, key), key, grid + (2,), check_finite=False)
        return grids

    def compute_metrics(self, results: list) -> dict:
        _require(results, self)
        thresholds = self.ray_cfg['thresholds']
        rays = summarize_ray_counts(reduce(lambda a, b: a + b, (r['rays'] for r in results)), thresholds,
                                    self.flow_classes)
        voxels = miou_from_confusion(sum(r['confusion'] for r in results))
        tag = '' if self.ray_cfg['nonstandard_relative_depth_tol'] is None else NONSTANDARD_RAY_SUFFIX
        metrics = {f'RayIoU{tag}': 100 * rays['ray_iou']}
        metrics.update({f'RayIoU@{t:g}{tag}': 100 * v for t, v in rays['ray_iou_at'].items()})
        metrics['mIoU'] = 100 * voxels['miou']
        if self.flow_classes:
            metrics.update({f'mAVE{tag}': rays['mave'], f'OccScore{tag}': 100 * rays['occ_score']})
            metrics.update({f'AVE{tag}/{self.class_names[c]}': v for c, v in rays['ave'].items()})
        for c, name in enumerate(self.class_names[:-1]):
            metrics.update({f'RayIoU@{t:g}{tag}/{name}': 100 * float(rays['iou'][k, c])
                            for k, t in enumerate(thresholds)})
            metrics[f'IoU/{name}'] = 100 * float(voxels['iou'][c])
        _log_table(metrics, 'Occupancy metrics')
        return metrics


@METRICS.register_module()
class PlanningMetric(BaseMetric):
    """Waypoint L2 (m) and collision rate (%) at 1/2/3 s; every key names its conventions.

    Keys (``h`` = ``1s``, ``2s``, ``3s``, ``avg``; :mod:`drivepi.evaluation.planning_metrics` defines them):

    - ``L2@h/per_step`` (UniAD: the value at the step) and ``L2@h/cumulative`` (ST-P3/VAD: the mean over the
      steps up to h), over every valid GT step;
    - ``collision@h/per_step/uniad_vad``, ``collision@h/cumulative/uniad_vad``: axis-aligned ego box 0.5 m
      ahead of the waypoint, over every valid GT step;
    - ``L2@h/cumulative/sparsedrive``, ``collision@h/cumulative/sparsedrive`` (and ``.../per_step/sparsedrive``):
      the official DrivePI ``evaluate_plan.py`` (SparseDrive) convention, whose table is the cumulative one:
      only samples with all GT steps valid (``num_samples/sparsedrive`` of them), ego box along the heading.

    Args:
        step_s: waypoint spacing (s).
        horizons_s: reported horizons (s).
        collision_conventions: which collision-box conventions to report (``uniad_vad``, ``sparsedrive``).
        ego_box: overrides of the ``uniad_vad`` ego box (``length``, ``width``, ``center_ahead``, metres).
        sparsedrive_box: overrides of the ``sparsedrive`` box (:func:`~drivepi.evaluation.planning_metrics.
            sparsedrive_ego_boxes` arguments).
    """
    default_prefix = 'plan'

    def __init__(self, step_s: float = STEP_S, horizons_s: Sequence[float] = HORIZONS_S,
                 collision_conventions: Sequence[str] = COLLISION_CONVENTIONS,
                 ego_box: Optional[dict] = None, sparsedrive_box: Optional[dict] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        unknown = sorted(set(collision_conventions) - set(COLLISION_CONVENTIONS))
        if unknown or not collision_conventions:
            raise ValueError(f'PlanningMetric: collision_conventions must be some of {COLLISION_CONVENTIONS}, '
                             f'got {list(collision_conventions)}')
        self.step_s = step_s
        self.horizons_s = tuple(horizons_s)
        self.conventions = tuple(c for c in COLLISION_CONVENTIONS if c in collision_conventions)
        self.box_cfg = dict(uniad_vad=dict(ego_box or {}), sparsedrive=dict(sparsedrive_box or {}))

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            gt_traj = _tensor(_field(sample, 'gt_traj'), 'gt_traj').numpy()
            pred_traj = _tensor(_field(sample, 'pred_traj'), 'pred_traj', tuple(gt_traj.shape)).numpy()
            valid = _tensor(_field(sample, 'gt_traj_mask'), 'gt_traj_mask', gt_traj.shape[:1]).numpy() > 0
            fut_boxes = [_tensor(b, 'gt_fut_boxes').numpy().reshape(-1, 7) for b in _field(sample, 'gt_fut_boxes')]
            result = dict(l2=l2_per_step(pred_traj, gt_traj), valid=valid)
            for convention in self.conventions:
                box_cfg = self.box_cfg[convention]
                result[f'collision/{convention}'] = collision_per_step(pred_traj, fut_boxes, convention, **box_cfg)
                result[f'gt_collision/{convention}'] = collision_per_step(gt_traj, fut_boxes, convention, **box_cfg)
            self.results.append(result)

    def compute_metrics(self, results: list) -> dict:
        _require(results, self)
        stacked = {k: np.stack([r[k] for r in results]) for k in results[0]}
        metrics = {}

        def add(summary: dict, metric: str, conventions: Sequence[str], suffix: str) -> None:
            for convention in conventions:
                metrics.update({f'{metric}@{_horizon(h)}/{convention}{suffix}': v
                                for h, v in summary[convention][metric].items()})

        for convention in self.conventions:
            rows = np.ones(len(results), bool) if convention == 'uniad_vad' else stacked['valid'].all(axis=1)
            summary = summarize_planning(stacked['l2'][rows], stacked[f'collision/{convention}'][rows],
                                         stacked[f'gt_collision/{convention}'][rows], stacked['valid'][rows],
                                         self.step_s, self.horizons_s)
            if convention == 'uniad_vad':
                add(summary, 'L2', ('per_step', 'cumulative'), '')
                add(summary, 'collision', ('per_step', 'cumulative'), '/uniad_vad')
            else:
                metrics['num_samples/sparsedrive'] = int(rows.sum())
                add(summary, 'L2', ('cumulative', 'per_step'), '/sparsedrive')
                add(summary, 'collision', ('cumulative', 'per_step'), '/sparsedrive')
        if 'uniad_vad' not in self.conventions:   # the all-steps L2 does not depend on the box
            summary = summarize_planning(stacked['l2'], np.zeros_like(stacked['valid']),
                                         np.zeros_like(stacked['valid']), stacked['valid'], self.step_s,
                                         self.horizons_s)
            add(summary, 'L2', ('per_step', 'cumulative'), '')
        _log_table(metrics, PLANNING_TABLE_TITLE)
        return metrics


PLANNING_TABLE_TITLE = ('Planning metrics. L2 .../per_step: UniAD (value at the step), .../cumulative: ST-P3/VAD '
                        '(mean up to the horizon), over every valid GT step. collision .../uniad_vad: axis-aligned '
                        'ego box 0.5 m ahead of the waypoint. .../sparsedrive: the official DrivePI evaluate_plan.py '
                        '(SparseDrive) convention: ego box along the heading, 0.985793 + 0.5 m ahead of the LiDAR '
                        'point, samples with all GT steps only (its L2 too); the paper reports .../cumulative/'
                        'sparsedrive')


def _horizon(h) -> str:
    return h if isinstance(h, str) else f'{h:g}s'


def accuracy_metrics(accuracy: dict, name: str) -> dict:
    """``{name: overall %, name/<type>: %}`` from a :func:`qa_accuracy` result."""
    metrics = {name: 100 * accuracy['overall']}
    metrics.update({f'{name}/{t}': 100 * v for t, v in accuracy['per_type'].items()})
    return metrics


@METRICS.register_module()
class QAMetric(BaseMetric):
    """Answer accuracy (%) per question type and overall, scored by :mod:`drivepi.evaluation.qa_accuracy`.

    Args:
        majority_qa_file: a training QA file; when given, the accuracy of always answering each question
            type's most common training answer is reported on the same turns (``majority_accuracy...``),
            the baseline a model must beat to show it reads the scene, and the model's gain over it in points
            with a 95 % bootstrap interval over samples (``gain_over_majority``, ``..._low``, ``..._high``,
            overall and ``/<type>``): a gain whose interval holds 0 is not told apart from the baseline.
    """
    default_prefix = 'qa'

    def __init__(self, majority_qa_file: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        self.majority_answers = most_common_answers(majority_qa_file) if majority_qa_file else None

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            conversations = _field(sample, 'conversations')
            answers = _field(sample, 'pred_answers')
            if len(answers) != len(conversations) or any(len(a) != len(c) for a, c in zip(answers, conversations)):
                raise ValueError(f'sample {sample.get("token", "?")}: pred_answers must parallel conversations '
                                 f'({[len(c) for c in conversations]} turns), got {[len(a) for a in answers]}')
            # one entry per sample: BaseMetric.evaluate keeps the first dataset-size entries
            self.results.append([(pred, turn['answer'], turn['type'])
                                 for conv, preds in zip(conversations, answers) for turn, pred in zip(conv, preds)])

    def compute_metrics(self, results: list) -> dict:
        turns = [turn for sample_turns in results for turn in sample_turns]
        _require(turns, self)
        preds, gts, types = zip(*turns)
        accuracy = qa_accuracy(preds, gts, types)
        metrics = accuracy_metrics(accuracy, 'accuracy')
        metrics.update({f'num_turns/{t}': n for t, n in accuracy['num_turns'].items()})
        if self.majority_answers is not None:
            majority = [self.majority_answers.get(t, '') for t in types]
            metrics.update(accuracy_metrics(qa_accuracy(majority, gts, types), 'majority_accuracy'))
            metrics.update(self.gain_over_majority(results))
        _log_table(metrics, 'QA metrics')
        return metrics

    def gain_over_majority(self, results: list) -> dict:
        """Model minus most-common-answer accuracy (points), overall and per type, each with its 95 % interval
        from the bootstrap over samples (a sample's turns are resampled together).

        Args:
            results: per sample, the ``(prediction, answer, type)`` of its turns.
        """
        per_turn = [[(answer_score(pred, gt, qa_type) - answer_score(self.majority_answers.get(qa_type, ''), gt,
                                                                      qa_type), qa_type)
                     for pred, gt, qa_type in sample_turns] for sample_turns in results]
        types = sorted({qa_type for sample in per_turn for _, qa_type in sample})
        metrics = {}
        for qa_type in [None] + types:
            kept = [[gain for gain, t in sample if qa_type in (None, t)] for sample in per_turn]
            estimate, low, high = bootstrap_ci([sum(g) for g in kept], [len(g) for g in kept])
            suffix = '' if qa_type is None else f'/{qa_type}'
            metrics.update({f'gain_over_majority{suffix}': 100 * estimate,
                            f'gain_over_majority_low{suffix}': 100 * low,
                            f'gain_over_majority_high{suffix}': 100 * high})
        return metrics
