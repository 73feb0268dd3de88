"""Pack the first N held-out samples of a mini set into a small folder that a GPU machine can carry (it has
no open3d to generate one): their info entries (a reduced ``drivepi_infos_val.pkl``, with only the LiDAR
sweeps the configs load), every file those entries name (LiDAR sweeps, camera images, occupancy GT), and the
QA files. ``tools/gpu/benchmark_eval.sh`` evaluates on it.

    python tools/gpu/pack_eval_subset.py data/drivepi-mini .bench/drivepi-mini --num-samples 40
"""
import argparse
import shutil
from pathlib import Path
from typing import Iterator

from drivepi.datasets.drivepi_dataset import NUSCENES_DATA_PREFIX
from drivepi.fileio import atomic_write_pickle, read_pickle

INFO_FILE = 'drivepi_infos_val.pkl'
QA_FILES = ('qa_val.jsonl', 'qa_train.jsonl')  # the held-out questions and the most-common-answer baseline


def strings(value) -> Iterator[str]:
    """Every string inside nested dicts and lists."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from strings(item)


def referenced_files(info: dict, data_root: Path) -> set:
    """Paths (relative to ``data_root``) of the files an info entry names, directly or under a data prefix."""
    found = set()
    for name in strings(info):
        for folder in ('', *NUSCENES_DATA_PREFIX.values()):
            path = data_root / folder / name
            if name and path.is_file():
                found.add(path.relative_to(data_root))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data_root', type=Path, help='mini set (holds drivepi_infos_val.pkl and the QA files)')
    parser.add_argument('out_dir', type=Path)
    parser.add_argument('--num-samples', type=int, default=24)
    parser.add_argument('--num-sweeps', type=int, default=3,
                        help="earlier LiDAR sweeps kept per sample (the mini configs' num_sweeps), the rest dropped")
    args = parser.parse_args()
    infos = read_pickle(args.data_root / INFO_FILE)
    subset = [dict(info, lidar_sweeps=info.get('lidar_sweeps', [])[:args.num_sweeps])
              for info in infos['data_list'][:args.num_samples]]
    files = set().union(*(referenced_files(info, args.data_root) for info in subset))
    if not any(f.parts[0] == 'samples' for f in files):
        raise SystemExit(f'{args.data_root / INFO_FILE}: its entries name no file under {args.data_root}/samples')
    for rel in sorted(files) + [Path(name) for name in QA_FILES]:
        (args.out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.data_root / rel, args.out_dir / rel)
    atomic_write_pickle(args.out_dir / INFO_FILE, dict(infos, data_list=subset))
    size = sum(p.stat().st_size for p in args.out_dir.rglob('*') if p.is_file())
    print(f'{args.out_dir}: {len(subset)} samples, {len(files)} files, {size / 2 ** 20:.1f} MiB')


if __name__ == '__main__':
    main()
