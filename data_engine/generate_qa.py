"""Generate QA conversations from 4D ground truth, or import nuScenes-QA, into one QA JSONL file.

Usage (from the repository root)::

    python data_engine/generate_qa.py --info data/drivepi-mini/drivepi_infos_train.pkl \\
        --out data/drivepi-mini/qa_train.jsonl [--seed 0] [--data-root DIR] [--config CFG.py] \\
        [--captioner package.module:function]
    python data_engine/generate_qa.py --nuscenes-qa NuScenes_train_questions.json \\
        --out data/nuscenes/nuscenes_qa_train.jsonl [--info INFO_PKL (keep only its samples)]

Output: one line per sample (``drivepi.datasets.qa_schema``), deterministic for a seed (each
sample draws from its own generator seeded by ``(seed, crc32(token))``), deduplicated within a
sample, answer-balanced (``max_answer_share``), plus ``<out>.stats.json`` and a printed stats
table. ``--config`` is an MMEngine config file whose ``occupancy`` / ``flow`` / ``planning`` dicts
override the family configs and whose ``families`` / ``max_answer_share`` / ``caption_radius``
override the defaults of :class:`QAEngineConfig` (all defaults written out: ``configs/data_engine/default.py``).
"""
import argparse
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np
from tqdm import tqdm

from data_engine.balance import balance_answers
from data_engine.captions import Captioner, TemplateCaptioner, generate_captions, load_captioner
from data_engine.flow import FlowQAConfig, generate_flow
from data_engine.nuscenes_qa import import_nuscenes_qa
from data_engine.occupancy import OccupancyQAConfig, generate_occupancy
from data_engine.planning import PlanningQAConfig, generate_planning
from data_engine.scene import SceneGT, load_scene
from data_engine.stats import format_stats_table, qa_stats
from drivepi.datasets.qa_schema import QAConversation, QARecord, write_qa_file
from drivepi.fileio import atomic_write_json, read_config, read_pickle

GENERATED_FAMILIES = ('occupancy', 'flow', 'planning', 'caption')


@dataclass
class QAEngineConfig:
    """What to generate: families, their configs, the answer-balance cap."""
    families: tuple = GENERATED_FAMILIES
    occupancy: OccupancyQAConfig = field(default_factory=OccupancyQAConfig)
    flow: FlowQAConfig = field(default_factory=FlowQAConfig)
    planning: PlanningQAConfig = field(default_factory=PlanningQAConfig)
    max_answer_share: float = 0.6
    caption_radius: float = 30.0

    @classmethod
    def from_file(cls, path) -> 'QAEngineConfig':
        """Build from an MMEngine config file (see the module docstring)."""
        cfg = read_config(path)
        unknown = set(cfg.keys()) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f'{path}: unknown data-engine settings {sorted(unknown)}')
        return cls(families=tuple(cfg.get('families', GENERATED_FAMILIES)),
                   occupancy=OccupancyQAConfig(**cfg.get('occupancy', {})),
                   flow=FlowQAConfig(**cfg.get('flow', {})),
                   planning=PlanningQAConfig(**cfg.get('planning', {})),
                   max_answer_share=cfg.get('max_answer_share', 0.6),
                   caption_radius=cfg.get('caption_radius', 30.0))


def sample_rng(seed: int, token: str) -> np.random.Generator:
    """The random generator of one sample: independent of the processing order."""
    return np.random.default_rng([seed, zlib.crc32(token.encode('utf-8'))])


def generate_conversations(scene: SceneGT, seed: int, cfg: QAEngineConfig, captioner: Captioner,
                           object_classes: list) -> List[QAConversation]:
    """All conversations of one scene, deduplicated (same family and questions), with ids."""
    rng = sample_rng(seed, scene.token)
    builders = dict(occupancy=lambda: generate_occupancy(scene, rng, cfg.occupancy, object_classes),
                    flow=lambda: generate_flow(scene, rng, cfg.flow),
                    planning=lambda: generate_planning(scene, rng, cfg.planning),
                    caption=lambda: generate_captions(scene, rng, captioner))
    conversations, seen = [], set()
    for family in cfg.families:
        if family not in builders:
            raise ValueError(f'unknown question family {family!r}; known: {sorted(builders)}')
        for turns in builders[family]():
            key = (family, tuple(t.question for t in turns))
            if key in seen:
                continue
            seen.add(key)
            conversations.append(QAConversation(id=f'{family}-{len(conversations)}', family=family, turns=turns))
    return conversations


def load_infos(info_path) -> dict:
    """Read a DrivePI info file and check its top-level layout."""
    info_path = Path(info_path)
    if not info_path.is_file():
        raise FileNotFoundError(f'info file not found: {info_path}')
    infos = read_pickle(info_path, 'info file')
    if not isinstance(infos, dict) or 'data_list' not in infos or 'categories' not in infos.get('metainfo', {}):
        raise ValueError(f'{info_path}: not a DrivePI info file (needs "metainfo.categories" and "data_list")')
    return infos


def generate_records(info_path, data_root=None, seed: int = 0, cfg: Optional[QAEngineConfig] = None,
                     captioner: Optional[Captioner] = None, progress: bool = True) -> List[QARecord]:
    """QA records of every sample of an info file (unbalanced; see :func:`generate_qa_file`).

    Args:
        info_path: DrivePI info ``.pkl``.
        data_root: directory that ``occ_path`` is relative to (default: the info file's directory).
    """
    cfg = cfg or QAEngineConfig()
    captioner = captioner or TemplateCaptioner(radius=cfg.caption_radius)
    infos = load_infos(info_path)
    data_root = Path(data_root) if data_root is not None else Path(info_path).parent
    metainfo = infos['metainfo']
    object_classes = sorted(metainfo['categories'], key=metainfo['categories'].get)
    records = []
    for info in tqdm(infos['data_list'], desc='generate QA', unit='sample', disable=not progress):
        scene = load_scene(info, data_root, metainfo)
        conversations = generate_conversations(scene, seed, cfg, captioner, object_classes)
        if conversations:
            records.append(QARecord(sample_token=scene.token, conversations=conversations))
    return records


def write_qa_outputs(records: List[QARecord], out_path, max_answer_share: float, seed: int) -> dict:
    """Balance, write the JSONL and ``<out>.stats.json`` (both atomically); return the stats."""
    records = balance_answers(records, max_answer_share, seed)
    write_qa_file(records, out_path)
    stats = qa_stats(records)
    atomic_write_json(f'{out_path}.stats.json', stats)
    return stats


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--info', help='DrivePI info .pkl (generation mode; filter in import mode)')
    parser.add_argument('--out', required=True, help='output QA .jsonl')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--data-root', help="root of the info's relative paths (default: its directory)")
    parser.add_argument('--config', help='MMEngine config file of the data engine (QAEngineConfig)')
    parser.add_argument('--captioner', help='VLM captioner "package.module:function" (default: GT template)')
    parser.add_argument('--nuscenes-qa', help='import this nuScenes-QA questions JSON instead of generating')
    args = parser.parse_args(argv)
    if not args.info and not args.nuscenes_qa:
        parser.error('give --info (generate) or --nuscenes-qa (import)')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = QAEngineConfig.from_file(args.config) if args.config else QAEngineConfig()
    if args.nuscenes_qa:  # a public benchmark: imported whole, never balanced
        tokens = ({i['token'] for i in load_infos(args.info)['data_list']} if args.info else None)
        stats = write_qa_outputs(import_nuscenes_qa(args.nuscenes_qa, tokens), args.out, 1.0, args.seed)
    else:
        captioner = load_captioner(args.captioner) if args.captioner else TemplateCaptioner(cfg.caption_radius)
        records = generate_records(args.info, args.data_root, args.seed, cfg, captioner)
        stats = write_qa_outputs(records, args.out, cfg.max_answer_share, args.seed)
    print(format_stats_table(stats))
    print(f'written {args.out} and {args.out}.stats.json')
    return stats


if __name__ == '__main__':
    main()
