"""Time info creation and the data pipeline of a dataset config; print a table and write JSON.

    python tools/benchmark_data_pipeline.py configs/_base_/datasets/drivepi_mini.py \
        --data-root data/drivepi-mini --version v1.0-drivepi-mini --num-samples 20 --out bench_data.json

Info creation is timed when ``--version`` is given (infos are written into the data root).
The pipeline is timed per sample (``dataset[i]``, loading + transforms + packing) for the train
and val dataloaders of the config.
"""
import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from drivepi.datasets.converters.nuscenes_converter import create_drivepi_infos
from drivepi.fileio import atomic_write_json, read_config, read_pickle
from drivepi.registry import DATASETS
from drivepi.utils import register_all_modules


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Benchmark info creation and the data pipeline')
    parser.add_argument('config', help='dataset config (e.g. configs/_base_/datasets/drivepi_mini.py)')
    parser.add_argument('--data-root', help='override the config data_root')
    parser.add_argument('--version', help='nuScenes version: also time tools/create_data.py on the data root')
    parser.add_argument('--num-samples', type=int, default=20, help='samples timed per split')
    parser.add_argument('--out', default='bench_data_pipeline.json', help='JSON result file')
    return parser.parse_args()


def time_info_creation(root: Path, version: str) -> dict:
    start = time.perf_counter()
    paths = create_drivepi_infos(root, root, version)
    seconds = time.perf_counter() - start
    num_keyframes = sum(len(read_pickle(path, 'info file')['data_list']) for path in paths.values())
    return dict(seconds=seconds, keyframes=num_keyframes, keyframes_per_s=num_keyframes / seconds)


def time_pipeline(dataset_cfg: dict, data_root: str, num_samples: int) -> dict:
    dataset_cfg.data_root = data_root
    if dataset_cfg.get('qa_file') and not Path(dataset_cfg.qa_file).is_file():
        dataset_cfg.qa_file = None  # no QA file generated yet: time the sensor/GT path alone
    dataset = DATASETS.build(dataset_cfg)
    indices = np.linspace(0, len(dataset) - 1, min(num_samples, len(dataset))).astype(int)
    np.random.seed(0)
    seconds, num_points = [], []
    for index in indices:
        start = time.perf_counter()
        packed = dataset[int(index)]
        seconds.append(time.perf_counter() - start)
        num_points.append(len(packed['inputs']['points']))
    seconds = np.array(seconds)
    return dict(samples=len(indices), mean_ms=1e3 * seconds.mean(), median_ms=1e3 * np.median(seconds),
                p90_ms=1e3 * np.percentile(seconds, 90), samples_per_s=1 / seconds.mean(),
                mean_points=float(np.mean(num_points)), img_shape=list(packed['inputs']['img'].shape))


def main() -> None:
    args = parse_args()
    register_all_modules()
    cfg = read_config(args.config)
    data_root = args.data_root or cfg.data_root
    result = dict(config=args.config, data_root=data_root, cpu=platform.processor() or platform.machine(),
                  torch_threads=torch.get_num_threads())
    if args.version:
        result['create_data'] = time_info_creation(Path(data_root), args.version)
    for split in ('train', 'val'):
        result[f'pipeline_{split}'] = time_pipeline(cfg[f'{split}_dataloader'].dataset, data_root, args.num_samples)
    print(f'{"stage":<16}{"samples":>9}{"mean ms":>10}{"median ms":>11}{"p90 ms":>9}{"per s":>9}')
    if 'create_data' in result:
        info = result['create_data']
        print(f'{"create_data":<16}{info["keyframes"]:>9}{1e3 * info["seconds"] / info["keyframes"]:>10.1f}'
              f'{"":>11}{"":>9}{info["keyframes_per_s"]:>9.1f}')
    for split in ('train', 'val'):
        row = result[f'pipeline_{split}']
        print(f'{"pipeline " + split:<16}{row["samples"]:>9}{row["mean_ms"]:>10.1f}{row["median_ms"]:>11.1f}'
              f'{row["p90_ms"]:>9.1f}{row["samples_per_s"]:>9.2f}')
    atomic_write_json(args.out, result)
    print(f'written {args.out}')


if __name__ == '__main__':
    main()
