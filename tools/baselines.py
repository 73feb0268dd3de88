"""Score the simple baselines with the config's test evaluator (the numbers a trained model must beat).

    python tools/baselines.py CONFIG [--out-dir DIR]

Baselines (``drivepi.evaluation.baselines``): the most common occupied training class everywhere,
constant-velocity planning, each QA type's most common training answer. Prints the same table as
``tools/test.py`` and writes ``DIR/baseline_metrics.json``.
"""
import argparse
import os.path as osp
from pathlib import Path

import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.evaluator import Evaluator
from mmengine.utils import ProgressBar

from drivepi.evaluation import format_metrics_table, save_metrics_json
from drivepi.evaluation.baselines import constant_velocity_plan, most_common_answers, most_common_occupied_class
from drivepi.fileio import read_pickle
from drivepi.registry import DATASETS
from drivepi.utils import load_config, register_all_modules


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Score simple baselines with the test evaluator')
    parser.add_argument('config')
    parser.add_argument('--out-dir', default='work_dirs/baselines')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def training_occ_files(train_cfg: dict) -> list:
    """Absolute occupancy GT paths of the training infos."""
    root = train_cfg['data_root']
    infos = read_pickle(osp.join(root, train_cfg['ann_file']), 'info file')['data_list']
    return [osp.join(root, info['occ_path']) for info in infos if info.get('occ_path')]


def main() -> None:
    args = parse_args()
    register_all_modules()
    cfg = load_config(args.config, args.cfg_options)
    train_cfg = cfg.train_dataloader.dataset
    occ_class = most_common_occupied_class(training_occ_files(train_cfg))
    answers = most_common_answers(train_cfg['qa_file']) if train_cfg.get('qa_file') else {}
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    evaluator = Evaluator(cfg.test_evaluator)
    evaluator.dataset_meta = dataset.metainfo
    progress = ProgressBar(len(dataset))
    for index in range(len(dataset)):
        sample = dataset[index]['data_samples']
        sample.pred_occ = torch.full(tuple(sample.gt_occ.shape), occ_class, dtype=torch.uint8)
        sample.pred_flow = torch.zeros(*sample.gt_occ.shape, 2)
        sample.pred_traj = torch.from_numpy(constant_velocity_plan(np.asarray(sample.ego_status)))
        sample.pred_answers = [[answers.get(turn['type'], '') for turn in conv] for conv in sample.conversations]
        evaluator.process([sample])
        progress.update()
    metrics = evaluator.evaluate(len(dataset))
    print(f'\nbaselines: occupancy = class {dataset.metainfo["occ_classes"][occ_class]} everywhere, '
          'planning = constant velocity, QA = most common training answer per type')
    print(format_metrics_table(metrics))
    save_metrics_json(metrics, Path(args.out_dir) / 'baseline_metrics.json')


if __name__ == '__main__':
    main()
