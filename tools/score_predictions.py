"""Score a folder of predictions with every metric of ``tools/test.py``: ours or the official DrivePI code's.

Ours (``tools/test.py --out-dir DIR`` or ``tools/infer.py``: ``DIR/predictions/<token>.npz``)::

    python tools/score_predictions.py --info data/drivepi-mini/drivepi_infos_val.pkl --pred-dir DIR

The official release's (``scripts/emova_batch_inference_occ_with_action.py`` writes ``<token>.npy`` into
``occ_prediction/`` (uint8 (200, 200, 16)), ``flow_prediction/`` ((200, 200, 16, 2) m/s) and ``plan_prediction/``
((6, 2): the LiDAR's summed positions in the current nuScenes LiDAR frame); its QA scripts write
``<task>_results.json``, lists of records with ``pred``, ``answer`` and ``history``)::

    python tools/score_predictions.py --info INFO.pkl --occ-dir occ_prediction --flow-dir flow_prediction \\
        --plan-dir plan_prediction [--qa-results nusceneqa_val_llava_results.json ...]

Options: ``--data-root`` (root of the info's paths, default its folder), ``--config CONFIG`` (take the metric
settings of its ``test_evaluator``; default: occupancy, planning and QA metrics with their defaults),
``--out metrics.json``. Ground truth comes from the info file and its occupancy labels; each metric scores the
samples that have its predictions (recovery samples are left out, as in evaluation). The official plans are
moved to our frame (the LiDAR offset taken back along their heading, ``data_engine.official_format``); the
planning metric reports both collision conventions, the official one as ``.../sparsedrive``. Official QA
records are scored with the type in their ``history`` (``template_type`` of nuScenes-QA, ``types`` of our
exported records), else by exact match (the official scripts' rule, case-insensitive).
"""
import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from data_engine.official_format import lidar_track_to_ego
from drivepi.evaluation import format_metrics_table, save_metrics_json
from drivepi.geometry import OPENOCC_CLASSES
from drivepi.visualization.sample_io import load_infos, load_occ_gt, load_prediction

DEFAULT_QA_TYPE = 'object'   # categorical: exact match after normalisation


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--info', required=True, help='DrivePI info .pkl of the evaluated samples')
    parser.add_argument('--data-root', help="root of the info's relative paths (default: its directory)")
    parser.add_argument('--pred-dir', help='our predictions: DIR/predictions/<token>.npz')
    parser.add_argument('--occ-dir', help='official occupancy predictions <token>.npy')
    parser.add_argument('--flow-dir', help='official flow predictions <token>.npy')
    parser.add_argument('--plan-dir', help='official plan predictions <token>.npy')
    parser.add_argument('--qa-results', nargs='+', default=[], help="official QA results JSON files")
    parser.add_argument('--config', help='config whose test_evaluator gives the metric settings')
    parser.add_argument('--out', help='write the metrics here as JSON')
    args = parser.parse_args(argv)
    if not (args.pred_dir or args.occ_dir or args.flow_dir or args.plan_dir or args.qa_results):
        parser.error('give --pred-dir (ours) or some of --occ-dir, --flow-dir, --plan-dir, --qa-results (official)')
    return args


def _official(folder: Optional[str], token: str) -> Optional[np.ndarray]:
    path = Path(folder) / f'{token}.npy' if folder else None
    return np.load(path) if path is not None and path.is_file() else None


def read_predictions(args: argparse.Namespace, infos: List[dict]) -> Dict[str, dict]:
    """``{token: {occ, flow, traj (ego frame), conversations, answers}}`` of the samples that have predictions."""
    preds = {}
    for info in infos:
        token = info['token']
        pred = {}
        if args.pred_dir and (Path(args.pred_dir) / 'predictions' / f'{token}.npz').is_file():
            pred = load_prediction(args.pred_dir, token)
        occ, flow, plan = (_official(d, token) for d in (args.occ_dir, args.flow_dir, args.plan_dir))
        if occ is not None:
            pred['occ'] = occ.astype(np.uint8).reshape(200, 200, 16)
        if flow is not None:
            pred['flow'] = flow.astype(np.float32).reshape(200, 200, 16, 2)
        if plan is not None:
            pred['traj'] = lidar_track_to_ego(np.asarray(plan, np.float64).reshape(-1, 2)[:6],
                                              np.asarray(info['lidar_points']['lidar2ego'], np.float64))
        if pred:
            preds[token] = pred
    for path in args.qa_results:
        for item in json.loads(Path(path).read_text(encoding='utf-8')):
            history = item.get('history', {})
            token = history.get('token') or history.get('sample_token')
            if token is None:
                continue
            qa_type = history.get('template_type') or (history.get('types') or [DEFAULT_QA_TYPE])[0]
            pred = preds.setdefault(token, {})
            pred.setdefault('conversations', []).append(
                [dict(question=item.get('question', ''), answer=str(item['answer']), type=qa_type, family='official')])
            pred.setdefault('answers', []).append([str(item['pred'])])
    return preds


def metric_configs(args: argparse.Namespace, class_names: list, with_flow: bool) -> List[dict]:
    """The metric configs: the config's ``test_evaluator`` (its prediction writer left out) or the defaults;
    the occupancy metric reads the ray origins from ``--info``."""
    if args.config:
        from drivepi.utils import load_config
        evaluator = load_config(args.config).test_evaluator
        cfgs = [dict(c) for c in (evaluator if isinstance(evaluator, list) else [evaluator])
                if c['type'] != 'PredictionWriter']
    else:
        cfgs = [dict(type='OccupancyMetric', class_names=class_names), dict(type='PlanningMetric'),
                dict(type='QAMetric')]
    for cfg in cfgs:
        if cfg['type'] == 'OccupancyMetric':
            cfg.update(ann_file=str(args.info), data_root='')
            if not with_flow:
                cfg['flow_classes'] = ()
    return cfgs


def data_sample(info: dict, pred: dict, kind: str, data_root: Path) -> dict:
    """The data-sample dict a metric reads (``kind``: ``occ``, ``traj`` or ``answers``): GT from the info and its
    labels, and the predictions."""
    sample = dict(token=info['token'], scene_token=info['scene_token'], frame_idx=info['frame_idx'],
                  ego2global=np.asarray(info['ego2global']))
    if kind == 'occ':
        gt = load_occ_gt(data_root / info['occ_path'])
        sample.update(gt_occ=gt['semantics'], gt_mask_camera=gt['mask_camera'], gt_flow=gt['flow'],
                      pred_occ=pred['occ'], pred_flow=pred.get('flow', np.zeros_like(gt['flow'])))
    elif kind == 'traj':
        sample.update(gt_traj=np.asarray(info['ego_fut_traj'], np.float32), pred_traj=pred['traj'],
                      gt_traj_mask=np.asarray(info['ego_fut_mask'], np.float32),
                      gt_fut_boxes=[np.asarray(b, np.float32).reshape(-1, 7) for b in info['fut_boxes']])
    else:
        sample.update(conversations=pred['conversations'], pred_answers=pred['answers'])
    return sample


def has_flow_gt(path: Path) -> bool:
    with np.load(path) as labels:
        return 'flow' in labels.files


def score(args: argparse.Namespace) -> dict:
    """Every metric over the predictions found (module docstring)."""
    from drivepi.registry import METRICS
    from drivepi.utils import register_all_modules
    register_all_modules()
    infos = load_infos(args.info)
    data_root = Path(args.data_root) if args.data_root else Path(args.info).parent
    evaluated = [info for info in infos['data_list'] if not info.get('recovery', False)]
    preds = read_predictions(args, evaluated)
    if not preds:
        raise SystemExit(f'no predictions of the {len(evaluated)} samples of {args.info} were found')
    kinds = dict(OccupancyMetric='occ', PlanningMetric='traj', QAMetric='answers')
    with_kind = {kind: [i for i in evaluated if len(preds.get(i['token'], {}).get(kind, ()))]
                 for kind in kinds.values()}
    occ_samples = with_kind['occ']
    with_flow = bool(occ_samples) and all('flow' in preds[i['token']] for i in occ_samples) and has_flow_gt(
        data_root / occ_samples[0]['occ_path'])
    class_names = list(infos['metainfo'].get('occ_classes', OPENOCC_CLASSES))
    metrics, counts = {}, {}
    for cfg in metric_configs(args, class_names, with_flow):
        kind = kinds.get(cfg['type'])
        if kind is None or not with_kind[kind]:
            continue
        metric = METRICS.build(cfg)
        for info in with_kind[kind]:   # one at a time: only the metric's small per-sample counts are kept
            metric.process({}, [data_sample(info, preds[info['token']], kind, data_root)])
        metrics.update(metric.evaluate(len(with_kind[kind])))
        counts[cfg['type']] = len(with_kind[kind])
    metrics.update({f'num_samples/{name}': n for name, n in counts.items()})
    return metrics


def main(argv=None) -> dict:
    args = parse_args(argv)
    metrics = score(args)
    print(format_metrics_table(metrics))
    if args.out:
        save_metrics_json(metrics, args.out)
        print(f'metrics written to {args.out}')
    return metrics


if __name__ == '__main__':
    main()
