"""``DrivePIInferencer``: a config and a checkpoint -> occupancy, flow, trajectory and answers for a scene of one's
own, in the OpenMMLab inferencer style (mmengine ``BaseInferencer``, like mmdet3d's
``MultiModalityDet3DInferencer``)::

    inferencer = DrivePIInferencer('configs/drivepi/drivepi_mini.py', 'work_dirs/drivepi_mini/iter_1200.pth')
    result = inferencer(dict(lidar='scene/LIDAR_TOP.pcd.bin', cams=six_images, calib='scene/calib.json',
                             questions=['Are there any cars?']), out_dir='outputs/scene')
    result['predictions'][0]['answers']          # [['yes']]

Each input is a dict, one of
- raw files: ``lidar``, ``cams``, ``calib`` and optional ``sweeps`` (:func:`drivepi.apis.calibration.raw_data_info`);
- an info entry: ``info`` (an entry of a DrivePI info ``.pkl``, paths as stored) and optional ``data_root``
  (default: the config's test data root), whose paths ``DrivePIDataset`` joins as it does for its own entries;
with optional ``questions``: strings (each a conversation of one turn, no ground truth) or the
``QAConversation`` objects of a QA file (their ground-truth answers are scored in the picture).

Preprocessing is the config's test pipeline (``cfg.test_dataloader.dataset.pipeline``) without its ground-truth
loaders (:data:`GT_TRANSFORMS`); the model is deployed (LoRA merged, eval mode) as ``tools/test.py`` deploys it.
``out_dir`` writes ``<out_dir>/predictions/<token>.npz`` (the files of ``tools/test.py --out-dir``, by its
``PredictionWriter``) and ``<out_dir>/pictures/<token>.png``.
"""
import copy
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.infer import BaseInferencer

from drivepi.datasets.converters.nuscenes_converter import INFO_VERSION
from drivepi.datasets.qa_schema import QAConversation, QATurn
from drivepi.engine import PredictionWriter
from drivepi.engine.checkpoint_loading import check_checkpoint
from drivepi.registry import DATASETS
from drivepi.utils import register_all_modules

from .calibration import raw_data_info

GT_TRANSFORMS = ('LoadOccFlowGT', 'LoadPlanningGT')  # test-pipeline steps that read ground truth
QUESTION_FAMILY = 'user'  # conversation family of questions given as text


def text_conversations(questions: Sequence[Union[str, QAConversation]]) -> List[QAConversation]:
    """Questions as conversations: a string becomes a one-turn conversation without ground truth
    (``answer`` and ``type`` empty); a ``QAConversation`` stays as it is."""
    return [question if isinstance(question, QAConversation) else
            QAConversation(id=f'question_{i}', family=QUESTION_FAMILY,
                           turns=[QATurn(question=question, answer='', type='')])
            for i, question in enumerate(questions)]


class DrivePIInferencer(BaseInferencer):
    """Run a DrivePI checkpoint on info entries or raw sensor files (see the module docstring).

    Args:
        model: config file path or ``Config``.
        weights: checkpoint file (MMEngine ``.pth``); None runs the config's initial weights, with a warning.
        device: ``'cpu'``, ``'cuda'``, ...; None picks the available accelerator.
        allow_partial: load a checkpoint that does not match the model, listing what was not loaded, instead
            of failing (:func:`drivepi.engine.checkpoint_loading.check_checkpoint`).
    """

    visualize_kwargs: set = {'img_out_dir', 'no_save_vis'}
    postprocess_kwargs: set = {'pred_out_dir', 'no_save_pred'}

    def __init__(self, model: Union[str, Config], weights: Optional[str] = None, device: Optional[str] = None,
                 allow_partial: bool = False):
        register_all_modules()
        self.allow_partial = allow_partial
        super().__init__(model=model, weights=weights, device=device, scope='drivepi', show_progress=False)

    def _load_weights_to_model(self, model, checkpoint: Optional[dict], cfg) -> None:
        """Check the checkpoint against the model and load it, then deploy the model as tools/test.py does (LoRA
        merged, eval mode)."""
        if checkpoint is not None:
            check_checkpoint(model, checkpoint, self.allow_partial)
        super()._load_weights_to_model(model, checkpoint, cfg)
        model.deploy()

    def _init_visualizer(self, cfg) -> None:
        """None: the pictures are DrivePI's own (``visualize``), not an MMEngine visualizer's."""
        return None

    def _init_pipeline(self, cfg) -> Compose:
        """The config's test pipeline without the steps that load ground truth."""
        return Compose([step for step in cfg.test_dataloader.dataset.pipeline if step['type'] not in GT_TRANSFORMS])

    def _dispatch_kwargs(self, out_dir: str = '', **kwargs) -> tuple:
        """``out_dir`` is where both the prediction files and the pictures go."""
        return super()._dispatch_kwargs(img_out_dir=out_dir, pred_out_dir=out_dir, **kwargs)

    def _inputs_to_list(self, inputs: Union[dict, Sequence[dict]]) -> List[dict]:
        """The data info (test-pipeline input) of every input dict."""
        return [self.data_info(single) for single in ([inputs] if isinstance(inputs, dict) else inputs)]

    def data_info(self, single: dict) -> dict:
        """The data info of one input dict: an info entry parsed by ``DrivePIDataset`` or raw files, with the
        config's ``occ_classes`` and the questions as ``conversations``."""
        if 'info' in single:
            info = self.info_dataset(single.get('data_root')).parse_data_info(copy.deepcopy(single['info']))
        elif 'lidar' in single:
            info = raw_data_info(single['lidar'], single['cams'], single['calib'], single.get('sweeps', ()))
            info['occ_classes'] = list(self.cfg.test_dataloader.dataset.metainfo['occ_classes'])
        else:
            raise ValueError(f"an input is a dict with 'info' (an info entry) or 'lidar', 'cams' and 'calib' "
                             f'(raw files); got the keys {sorted(single)}')
        info['conversations'] = text_conversations(single.get('questions', ()))
        return info

    def info_dataset(self, data_root: Optional[str]):
        """The config's test dataset (not loaded: ``lazy_init``) with ``data_root``, to parse info entries."""
        dataset_cfg = copy.deepcopy(self.cfg.test_dataloader.dataset)
        metainfo = dict(dataset_cfg.get('metainfo', {}), info_version=INFO_VERSION)
        dataset_cfg.update(qa_file=None, pipeline=[], lazy_init=True, metainfo=metainfo)
        if data_root is not None:
            dataset_cfg.data_root = str(data_root)
        return DATASETS.build(dataset_cfg)

    def preprocess(self, inputs: List[dict], batch_size: int = 1, **kwargs):
        """Batches of the test pipeline's outputs (each input copied first, as the dataset copies its infos)."""
        chunks = self._get_chunk_data((self.pipeline(copy.deepcopy(info)) for info in inputs), batch_size)
        yield from map(self.collate_fn, chunks)

    def visualize(self, inputs: List[dict], preds: list, img_out_dir: str = '',
                  no_save_vis: bool = False) -> Optional[List[Path]]:
        """``<img_out_dir>/pictures/<token>.png`` of every sample (ground truth too when the info has it)."""
        if not img_out_dir or no_save_vis:
            return None
        from drivepi.visualization.figure import render_sample
        from drivepi.visualization.sample_io import sample_view_from_info
        written = []
        for info, pred in zip(inputs, preds):
            view = sample_view_from_info(info, Path(), f'input {info["token"]}')
            result = self.pred2dict(pred)
            view.pred_occ, view.pred_flow, view.pred_traj = result['occ'], result['flow'], result['traj']
            view.conversations, view.pred_answers = result['conversations'], result['answers']
            written.append(render_sample(view, Path(img_out_dir) / 'pictures' / f'{view.token}.png'))
        return written

    def postprocess(self, preds: list, visualization: Optional[List[Path]] = None, return_datasample: bool = False,
                    pred_out_dir: str = '', no_save_pred: bool = False) -> dict:
        """``{'predictions': [...], 'visualization': picture paths or None}``; with ``pred_out_dir`` the
        prediction files of tools/test.py are written too."""
        if pred_out_dir and not no_save_pred:
            PredictionWriter(pred_out_dir).process({}, [pred.to_dict() for pred in preds])
        return dict(predictions=preds if return_datasample else [self.pred2dict(pred) for pred in preds],
                    visualization=visualization)

    @staticmethod
    def pred2dict(pred) -> dict:
        """One prediction as plain values: ``token``, ``command`` (index), every head's ``pred_*`` tensor as a numpy
        array without the prefix (``occ`` uint8 (200,200,16), ``flow`` float32 (200,200,16,2) m/s, ``traj``
        float32 (6,2) m, ego frame), ``conversations`` (turn dicts) and ``answers`` (lists of str, parallel)."""
        arrays = {name[len('pred_'):]: value.cpu().numpy() for name, value in pred.items()
                  if name.startswith('pred_') and isinstance(value, torch.Tensor)}
        return dict(token=pred.token, command=int(np.asarray(pred.ego_fut_cmd)), **arrays,
                    conversations=pred.get('conversations', []), answers=pred.get('pred_answers', []))
