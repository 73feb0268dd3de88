"""Benchmark of the QA data engine on one CPU core: samples per second of generation and verification.

Usage::

    python tools/benchmark_data_engine.py [--info INFO_PKL] [--data-root DIR] [--repeat 3]
        [--num-scenes 2] [--preset test] [--out work_dirs/benchmark_data_engine.json]

Without ``--info`` a mini set is generated in a temporary directory first (not timed). Timed
stages, each over all samples ``--repeat`` times: reading the ground truth (``load_scene``),
generating the conversations, the whole generation path (read + generate + balance + write), and
the verifier; wall time and CPU time (the one-core cost on a shared machine). Prints a table and
writes JSON.
"""
import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Tuple

os.environ.setdefault('OMP_NUM_THREADS', '1')  # one core, before numpy starts its thread pools

from data_engine.captions import TemplateCaptioner
from data_engine.generate_qa import (
    QAEngineConfig,
    generate_conversations,
    generate_records,
    load_infos,
    write_qa_outputs,
)
from data_engine.scene import load_scene
from data_engine.verify import verify_file
from drivepi.fileio import atomic_write_json


def make_mini_set(workdir: Path, num_scenes: int, preset: str) -> Path:
    """Generate a mini set and its infos in ``workdir``; return the train info path."""
    from drivepi.datasets.converters.nuscenes_converter import create_drivepi_infos
    from drivepi.sim.mini_dataset import generate_mini_dataset
    version = generate_mini_dataset(workdir, num_scenes=num_scenes, seed=0, preset=preset)
    return Path(create_drivepi_infos(workdir, workdir, version)['train'])


def timed(fn, repeat: int) -> Tuple[float, float]:
    """Best wall time and best CPU time (s) of ``repeat`` runs of ``fn``.

    The CPU time of this single-threaded process is the one-core cost even on a shared machine,
    where the wall time also counts the waits for a core.
    """
    best_wall = best_cpu = float('inf')
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu


def run(info_path: Path, data_root: Path, repeat: int, out_dir: Path) -> dict:
    cfg = QAEngineConfig()
    captioner = TemplateCaptioner(cfg.caption_radius)
    infos = load_infos(info_path)
    metainfo, data_list = infos['metainfo'], infos['data_list']
    classes = sorted(metainfo['categories'], key=metainfo['categories'].get)
    scenes = [load_scene(info, data_root, metainfo) for info in data_list]
    qa_path = out_dir / 'qa.jsonl'
    stages = {
        'read ground truth': lambda: [load_scene(info, data_root, metainfo) for info in data_list],
        'generate conversations': lambda: [generate_conversations(s, 0, cfg, captioner, classes) for s in scenes],
        'full generation (read+generate+balance+write)': lambda: write_qa_outputs(
            generate_records(info_path, data_root, 0, cfg, captioner, progress=False), qa_path,
            cfg.max_answer_share, 0),
        'verify': lambda: verify_file(info_path, qa_path, data_root, cfg, progress=False),
    }
    rows = {}
    for name, fn in stages.items():
        wall, cpu = timed(fn, repeat)
        rows[name] = dict(wall_s=wall, cpu_s=cpu, samples_per_wall_s=len(data_list) / wall,
                          samples_per_cpu_s=len(data_list) / cpu)
    turns = sum(len(c.turns) for s in scenes for c in generate_conversations(s, 0, cfg, captioner, classes))
    return dict(info=str(info_path), num_samples=len(data_list), turns_per_sample=turns / len(data_list),
                repeat=repeat, omp_num_threads=os.environ.get('OMP_NUM_THREADS'),
                load_average_1min=os.getloadavg()[0], cpu_count=os.cpu_count(), stages=rows)


def print_table(result: dict) -> None:
    print(f'\n{result["num_samples"]} samples, {result["turns_per_sample"]:.1f} QA turns per sample, '
          f'best of {result["repeat"]}, OMP_NUM_THREADS={result["omp_num_threads"]}, '
          f'load average {result["load_average_1min"]:.1f} on {result["cpu_count"]} cores')
    print(f'{"stage":<48} {"wall s":>8} {"CPU s":>8} {"samples/wall s":>15} {"samples/CPU s":>14}')
    for name, row in result['stages'].items():
        print(f'{name:<48} {row["wall_s"]:>8.3f} {row["cpu_s"]:>8.3f} {row["samples_per_wall_s"]:>15.1f} '
              f'{row["samples_per_cpu_s"]:>14.1f}')


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description='Benchmark the QA data engine on one CPU core')
    parser.add_argument('--info', help='DrivePI info .pkl (default: a fresh mini set)')
    parser.add_argument('--data-root')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--num-scenes', type=int, default=2)
    parser.add_argument('--preset', default='test', help='mini-set preset when no --info is given')
    parser.add_argument('--out', default='work_dirs/benchmark_data_engine.json')
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        info_path = Path(args.info) if args.info else make_mini_set(Path(tmp) / 'mini', args.num_scenes, args.preset)
        data_root = Path(args.data_root) if args.data_root else info_path.parent
        result = run(info_path, data_root, args.repeat, Path(tmp))
    print_table(result)
    atomic_write_json(args.out, result)
    print(f'written {args.out}')
    return result


if __name__ == '__main__':
    main()
