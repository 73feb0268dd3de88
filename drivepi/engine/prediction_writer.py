"""Write each test sample's predictions to ``<out_dir>/predictions/<sample_token>.npz``.

Registered as an MMEngine metric so ``tools/test.py --out-dir`` adds it to the test evaluator; it
computes no metric itself. Each file holds ``occ`` uint8 (200,200,16), ``flow`` float16 (200,200,16,2)
m/s and ``traj`` float32 (6,2) m in the ego frame, ``answers`` (JSON string: list of lists of str) and the
``conversations`` they answer (JSON string: lists of turns ``{question, answer, type, family}``, the answer being
the ground truth).
"""
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from drivepi.fileio import atomic_write_npz
from drivepi.registry import METRICS


def _to_numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


@METRICS.register_module()
class PredictionWriter(BaseMetric):
    """Dump predictions per sample; returns an empty metric dict.

    Args:
        out_dir: results directory; files go to ``out_dir/predictions``.
    """

    default_prefix = 'predictions'  # it reports no metric; a prefix keeps MMEngine from warning of none

    def __init__(self, out_dir: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pred_dir = Path(out_dir) / 'predictions'

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            arrays = {'token': np.array(sample['token'])}
            if 'pred_occ' in sample:
                arrays['occ'] = _to_numpy(sample['pred_occ']).astype(np.uint8)
            if 'pred_flow' in sample:
                arrays['flow'] = _to_numpy(sample['pred_flow']).astype(np.float16)
            if 'pred_traj' in sample:
                arrays['traj'] = _to_numpy(sample['pred_traj']).astype(np.float32)
            arrays['answers'] = np.array(json.dumps(sample.get('pred_answers', [])))
            arrays['conversations'] = np.array(json.dumps(sample.get('conversations', [])))
            atomic_write_npz(self.pred_dir / f"{sample['token']}.npz", arrays)
        self.results.append(len(data_samples))

    def compute_metrics(self, results: list) -> dict:
        return {}
