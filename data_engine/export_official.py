"""Write the training files of the official DrivePI release (GitHub ``happinesslz/DrivePI``) for an info file.

Usage (from the repository root)::

    python data_engine/export_official.py --info data/drivepi-mini/drivepi_infos_train.pkl \\
        --out data/drivepi-mini/official [--qa data/drivepi-mini/qa_train.jsonl] \\
        [--nuscenes-qa NuScenes_train_questions.json] [--split train] [--cells-per-sample 8] [--seed 0]

Without ``--qa`` our QA is generated first (as ``generate_qa.py`` does, same seed). Writes, for split S::

    OUT/drivepi_captions/<family>_S.json   LLaVA-style records per QA family (data_engine/official_format.py)
    OUT/saved_action_S/<token>.npy          planning targets (the trainer's planning_dir, evaluate_plan's gt_dir)
    OUT/saved_openocc_gt_occ_S/<token>.npz  occupancy labels, key data (occ_grid_dir)
    OUT/saved_openocc_gt_occ_flow_S/<token>.npz  occupancy flow, key data (occ_flow_dir), OpenOcc GT only
    OUT/export_S.json                       what was written, the official config entries, the format gaps

Families: ``captions_all`` (our captions), ``occ_text`` (our occupancy questions), ``occ_flow`` (our flow
questions), ``action`` (our planning questions), ``nuscenes_qa`` (nuScenes-QA in its official form, from
``--nuscenes-qa`` or the ``nuscenes_qa`` family of ``--qa``), and from the GT grid ``occ_class`` / ``occ_yorn``
(what occupies a cell / is it occupied). The BEV features come from ``tools/export_bev_features.py``.
"""
import argparse
import zlib
from collections import defaultdict
from pathlib import Path
from typing import List, Optional

import numpy as np
from tqdm import tqdm

from data_engine.balance import balance_answers
from data_engine.generate_qa import QAEngineConfig, generate_records, load_infos
from data_engine.nuscenes_qa import import_nuscenes_qa
from data_engine.official_format import (
    FAMILY_FILES,
    FORMAT_GAPS,
    GT_FILES,
    cell_records,
    future_infos,
    lidar_positions,
    nuscenes_qa_record,
    planning_target,
    record_from_conversation,
    save_planning_target,
    write_records,
)
from data_engine.scene import load_occupancy
from drivepi.datasets.qa_schema import QARecord, load_qa_file
from drivepi.fileio import atomic_write_json, atomic_write_npz
from drivepi.geometry import OPENOCC_CLASSES

CAPTION_DIR = 'drivepi_captions'


def split_of(info_path) -> str:
    """``train`` / ``val`` / ``test`` from an info file name (``drivepi_infos_val.pkl`` -> ``val``), else ``train``."""
    stem = Path(info_path).stem
    return next((s for s in ('train', 'val', 'test') if stem.endswith(s)), 'train')


def our_qa(args: argparse.Namespace) -> List[QARecord]:
    """Our QA records: read from ``--qa``, or generated and answer-balanced as ``generate_qa.py`` does."""
    if args.qa:
        return [QARecord(sample_token=t, conversations=c) for t, c in load_qa_file(args.qa).items()]
    cfg = QAEngineConfig()
    records = generate_records(args.info, args.data_root, args.seed, cfg, progress=False)
    return balance_answers(records, cfg.max_answer_share, args.seed)


def qa_files(records: List[QARecord], tokens: set, split: str, nuscenes_qa: Optional[str]) -> dict:
    """``{file stem: [official records]}`` of our QA records (samples of the info file only)."""
    files = defaultdict(list)
    for record in records:
        if record.sample_token not in tokens:
            continue
        for conv in record.conversations:
            if conv.family == 'nuscenes_qa':
                if not nuscenes_qa:
                    turn = conv.turns[0]
                    files[FAMILY_FILES['nuscenes_qa']].append(nuscenes_qa_record(
                        record.sample_token, turn.question, turn.answer, turn.type, turn.meta.get('num_hop'), split))
            else:
                files[FAMILY_FILES[conv.family]].append(record_from_conversation(record.sample_token, conv))
    if nuscenes_qa:
        for record in import_nuscenes_qa(nuscenes_qa, tokens):
            for conv in record.conversations:
                turn = conv.turns[0]
                files[FAMILY_FILES['nuscenes_qa']].append(nuscenes_qa_record(
                    record.sample_token, turn.question, turn.answer, turn.type, turn.meta.get('num_hop'), split))
    return files


def export(args: argparse.Namespace) -> dict:
    """Write every file (module docstring); returns the manifest."""
    infos = load_infos(args.info)
    data_list = infos['data_list']
    split = args.split or split_of(args.info)
    data_root = Path(args.data_root) if args.data_root else Path(args.info).parent
    occ_classes = tuple(infos['metainfo'].get('occ_classes', OPENOCC_CLASSES))
    out = Path(args.out)
    dirs = {name: out / f'{name}_{split}' for name in ('saved_action', 'saved_openocc_gt_occ',
                                                       'saved_openocc_gt_occ_flow')}
    by_token = {info['token']: info for info in data_list}
    files = qa_files(our_qa(args), set(by_token), split, args.nuscenes_qa)
    written = defaultdict(int)
    poses = 0
    for info in tqdm(data_list, desc='export', unit='sample', disable=not args.progress):
        token = info['token']
        target = planning_target(info, by_token)
        save_planning_target(dirs['saved_action'] / f'{token}.npy', target)
        n = int(target['gt_ego_fut_masks'].sum())
        poses += lidar_positions(info, future_infos(info, by_token, n))[1]
        written['saved_action'] += 1
        if not info.get('occ_path'):
            continue
        semantics, mask_camera = load_occupancy(data_root / info['occ_path'], len(occ_classes))
        rng = np.random.default_rng([args.seed, zlib.crc32(token.encode('utf-8')), 1])
        for family, records in cell_records(token, semantics, mask_camera, occ_classes, args.cells_per_sample,
                                            rng).items():
            files[GT_FILES[family]] += records
        if args.gt_grids:
            atomic_write_npz(dirs['saved_openocc_gt_occ'] / f'{token}.npz', dict(data=semantics))
            written['saved_openocc_gt_occ'] += 1
            with np.load(data_root / info['occ_path']) as labels:
                flow = labels['flow'].astype(np.float32) if 'flow' in labels.files else None
            if flow is not None:
                atomic_write_npz(dirs['saved_openocc_gt_occ_flow'] / f'{token}.npz', dict(data=flow))
                written['saved_openocc_gt_occ_flow'] += 1
    record_files = {}
    for stem, records in sorted(files.items()):
        path = out / CAPTION_DIR / f'{stem}_{split}.json'
        write_records(path, records)
        record_files[str(path.relative_to(out))] = len(records)
    manifest = dict(
        format='drivepi-official-export/1', info=str(args.info), split=split, samples=len(data_list),
        records=record_files,
        files={f'{name}_{split}': count for name, count in written.items()},
        planning_from_keyframe_poses=int(poses), planning_from_waypoints=len(data_list) - int(poses),
        official_config=dict(data_path=[str(out / p) for p in record_files],
                             planning_dir=str(dirs['saved_action']),
                             occ_grid_dir=(str(dirs['saved_openocc_gt_occ'])
                                           if written['saved_openocc_gt_occ'] else None),
                             occ_flow_dir=(str(dirs['saved_openocc_gt_occ_flow'])
                                           if written['saved_openocc_gt_occ_flow'] else None),
                             bev_feature_folder='(tools/export_bev_features.py --out DIR)'),
        format_gaps=list(FORMAT_GAPS))
    atomic_write_json(out / f'export_{split}.json', manifest)
    return manifest


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--info', required=True, help='DrivePI info .pkl')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--qa', help='our QA .jsonl of these samples (default: generate it)')
    parser.add_argument('--nuscenes-qa', help='nuScenes-QA questions JSON to write in its official form')
    parser.add_argument('--split', help='split name of the files (default: from the info file name)')
    parser.add_argument('--data-root', help="root of the info's relative paths (default: its directory)")
    parser.add_argument('--cells-per-sample', type=int, default=8, help='GT cell questions per sample')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--no-gt-grids', dest='gt_grids', action='store_false',
                        help='do not write the occupancy / flow GT files')
    parser.add_argument('--no-progress', dest='progress', action='store_false')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    manifest = export(args)
    for path, count in manifest['records'].items():
        print(f'{count:8d} records  {path}')
    for name, count in manifest['files'].items():
        print(f'{count:8d} files    {name}/')
    print(f"planning targets from keyframe poses: {manifest['planning_from_keyframe_poses']}, from waypoints: "
          f"{manifest['planning_from_waypoints']}")
    print(f"written {Path(args.out) / ('export_' + manifest['split'] + '.json')}")
    return manifest


if __name__ == '__main__':
    main()
