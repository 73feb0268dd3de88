"""The DrivePI dataset: mmdet3d v2 infos + DrivePI keys, with the QA conversations of each sample."""
import logging
import os.path as osp
from typing import Optional

import numpy as np
from mmdet3d.datasets import Det3DDataset
from mmdet3d.structures import LiDARInstance3DBoxes
from mmengine.logging import print_log

from drivepi.datasets.converters.nuscenes_converter import INFO_VERSION
from drivepi.datasets.qa_schema import QAConversation, load_qa_file
from drivepi.fileio import naming_the_file
from drivepi.geometry import CAMERA_NAMES, DETECTION_CLASSES
from drivepi.registry import DATASETS

NUSCENES_DATA_PREFIX = dict(pts='samples/LIDAR_TOP', sweeps='sweeps/LIDAR_TOP',
                            **{cam: f'samples/{cam}' for cam in CAMERA_NAMES})


def check_answer_lengths(conversations_by_token: dict[str, list[QAConversation]], qa_file: str,
                         tokenizer_path: str, max_answer_tokens: int) -> int:
    """Raise a ValueError naming ``qa_file`` when an answer is longer than ``max_answer_tokens`` tokens of
    the tokenizer in ``tokenizer_path``; returns the longest answer's token count."""
    from transformers import AutoTokenizer  # the dataset needs it only for this check

    answers = sorted({turn.answer for conversations in conversations_by_token.values()
                      for conversation in conversations for turn in conversation.turns})
    if not answers:
        return 0
    lengths = [len(ids) for ids in AutoTokenizer.from_pretrained(tokenizer_path)(
        answers, add_special_tokens=False)['input_ids']]
    longest = max(range(len(answers)), key=lengths.__getitem__)
    if lengths[longest] > max_answer_tokens:
        raise ValueError(f'{qa_file}: the answer {answers[longest]!r} is {lengths[longest]} tokens long '
                         f'({tokenizer_path}), over the model\'s max_answer_tokens={max_answer_tokens}: '
                         'decoding would cut it; raise max_answer_tokens in the config')
    return lengths[longest]


def check_qa_coverage(data_list: list, qa_file: str, ann_file: str, num_qa_samples: int) -> float:
    """The fraction of the samples of ``data_list`` (infos with their ``conversations``) that have QA.

    Logs a warning when it is partial (below 1, or some QA samples are not in the info file): a subset of
    a split, or recovery samples (train only) without QA, are legitimate.

    Raises:
        ValueError: naming both files when no sample has QA (the QA file of another dataset or split;
            training would see no text and a zero text loss).
    """
    matched = sum(bool(info['conversations']) for info in data_list)
    if not matched:
        raise ValueError(f'none of the {num_qa_samples} samples of the QA file {qa_file} is one of the '
                         f'{len(data_list)} samples of {ann_file}: the QA file belongs to another dataset or '
                         'split (training would see no text, a zero text loss)')
    fraction = matched / len(data_list)
    if fraction < 1 or matched < num_qa_samples:
        print_log(f'{matched} of the {len(data_list)} samples of {ann_file} ({100 * fraction:.1f} %) have QA in '
                  f'{qa_file}; {num_qa_samples - matched} of its {num_qa_samples} samples are not in the info file',
                  logger='current', level=logging.WARNING)
    return fraction


@DATASETS.register_module()
class DrivePIDataset(Det3DDataset):
    """Keyframes of a nuScenes-format dataset (real nuScenes or the generated mini set).

    Each data info is the info-file entry (docs/contracts.md) with file paths joined to
    ``data_root`` / ``data_prefix`` (``occ_path`` to ``data_root``), ``occ_classes`` from the
    metainfo, ``conversations`` (the sample's ``QAConversation`` list from the QA file, ``[]`` when
    none) and,
    in training, ``ann_info`` with ``gt_bboxes_3d`` as ``LiDARInstance3DBoxes`` (LiDAR frame,
    bottom-centre origin) and ``gt_labels_3d``; instances of other classes (label -1) are dropped.

    Args:
        qa_file: QA JSONL (docs/contracts.md), read with ``drivepi.datasets.qa_schema.load_qa_file``;
            a path as given (absolute or relative to the working directory), or None for no QA.
        data_prefix: folders of the LiDAR keyframes, sweeps and each camera, relative to data_root.
        filter_empty_gt: drop samples without boxes (False: every keyframe counts for DrivePI).
        max_answer_tokens, tokenizer_path: when both are given, every answer of the QA file must fit the
            model's generation limit in tokens of that tokenizer (an answer cut by the limit can never be
            scored correct); the longest answer that does not raises a ValueError naming the QA file.
        **kwargs: ``Det3DDataset`` arguments (``data_root``, ``ann_file``, ``pipeline``, ``test_mode``...).
    """

    METAINFO = dict(classes=DETECTION_CLASSES)  # occ_classes: from the info file, checked against the config

    def __init__(self, qa_file: Optional[str] = None, data_prefix: dict = NUSCENES_DATA_PREFIX,
                 modality: dict = dict(use_lidar=True, use_camera=True), filter_empty_gt: bool = False,
                 max_answer_tokens: Optional[int] = None, tokenizer_path: Optional[str] = None, **kwargs):
        self.qa_file = qa_file
        self.conversations_by_token = {} if qa_file is None else load_qa_file(qa_file)
        if qa_file is not None and max_answer_tokens is not None and tokenizer_path is not None:
            check_answer_lengths(self.conversations_by_token, qa_file, tokenizer_path, max_answer_tokens)
        super().__init__(data_prefix=data_prefix, modality=modality, filter_empty_gt=filter_empty_gt, **kwargs)

    def load_data_list(self) -> list:
        """The parsed infos; rejects info files that tools/create_data.py did not write, configured
        ``occ_classes`` that differ from the info file's (e.g. Occ3D infos, OpenOcc config) and a QA file
        none of whose samples is in the info file (:func:`check_qa_coverage`; checked on the whole file,
        before ``indices`` picks a subset)."""
        configured = self._metainfo.pop('occ_classes', None)
        with naming_the_file(self.ann_file, 'info file'):
            data_list = super().load_data_list()  # fills self._metainfo with the file's metainfo
        from_file = list(self._metainfo['occ_classes'])
        if configured is not None and list(configured) != from_file:
            raise ValueError(f'occ_classes of the config ({len(configured)}: {list(configured)[:3]}...) differ '
                             f'from those of {self.ann_file} ({len(from_file)}: {from_file[:3]}...): pick the '
                             'dataset config that matches the infos')
        if self.qa_file is not None:
            check_qa_coverage(data_list, self.qa_file, self.ann_file, len(self.conversations_by_token))
        return data_list

    def parse_data_info(self, info: dict) -> dict:
        """One info with joined paths, ``occ_classes``, ``conversations`` (and ``ann_info`` in training)."""
        if self._metainfo.get('info_version') != INFO_VERSION:
            raise ValueError(f'{self.ann_file} is not a DrivePI info file (info_version '
                             f'{self._metainfo.get("info_version")!r}, expected {INFO_VERSION!r}); mmdet3d '
                             'infos differ (box z at the centre, no planning keys): run tools/create_data.py')
        info = super().parse_data_info(info)
        info['occ_path'] = osp.join(self.data_root, info['occ_path']) if info.get('occ_path') else ''
        info['occ_classes'] = list(self._metainfo['occ_classes'])
        info['conversations'] = self.conversations_by_token.get(info['token'], [])
        return info

    def parse_ann_info(self, info: dict) -> dict:
        """``gt_bboxes_3d`` (LiDARInstance3DBoxes, LiDAR frame) and ``gt_labels_3d`` (int64) of the keyframe."""
        ann_info = super().parse_ann_info(info)
        if ann_info is None:
            ann_info = dict(gt_bboxes_3d=np.zeros((0, 7), dtype=np.float32),
                            gt_labels_3d=np.zeros(0, dtype=np.int64))
        ann_info = self._remove_dontcare(ann_info)
        ann_info['gt_bboxes_3d'] = LiDARInstance3DBoxes(ann_info['gt_bboxes_3d'].reshape(-1, 7), box_dim=7)
        return ann_info
