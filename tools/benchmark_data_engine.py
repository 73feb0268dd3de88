"""Benchmark of the QA data engine on one CPU core: samples per second of generation and verification.

Usage::

    python tools/benchmark_data_engine.py [--info INFO_PKL] [--data-root DIR] [--repeat 3]
        [--num-scenes 2] [--preset test] [--out work_dirs/benchmark_data_engine.json]

Without ``--info`` a mini set is generated in a temporary directory first (not timed). Timed
stages, each over all samples ``--repeat`` times: reading the ground truth (``load_scene``),
generating the conversations, the whole generation path (read + generate + balance + write), and
the verifier. Prints a table and writes JSON.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault('OMP_NUM_THREADS', '1')  # one core, before numpy starts its thread pools
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_engine.captions import TemplateCaptioner  # noqa: E402
from data_engine.generate_qa import (QAEngineConfig, generate_conversations, generate_records,  # noqa: E402
                                     load_infos, write_qa_outputs)
from data_engine.scene import load_scene  # noqa: E402
from data_engine.verify import verify_file  # noqa: E402
from drivepi.fileio import atomic_write_json  # noqa: E402


def make_mini_set(workdir: Path, num_scenes: int, preset: str) -> Path:
    """Generate a mini set and its infos in ``workdir``; return the train info path."""
    from drivepi.datasets.converters.nuscenes_converter import create_drivepi_infos
    from drivepi.sim.mini_dataset import generate_mini_dataset
    version = generate_mini_dataset(workdir, num_scenes=num_scenes, seed=0, preset=preset)
    return Path(create_drivepi_infos(workdir, workdir, version)['train'])


def timed(fn, repeat: int) -> float:
    """Best wall time (s) of ``repeat`` runs of ``fn``."""
    best = float('inf')
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


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
        seconds = timed(fn, repeat)
        rows[name] = dict(seconds=seconds, samples_per_s=len(data_list) / seconds)
    turns = sum(len(c.turns) for s in scenes for c in generate_conversations(s, 0, cfg, captioner, classes))
    return dict(info=str(info_path), num_samples=len(data_list), turns_per_sample=turns / len(data_list),
                repeat=repeat, omp_num_threads=os.environ.get('OMP_NUM_THREADS'), stages=rows)


def print_table(result: dict) -> None:
    print(f'\n{result["num_samples"]} samples, {result["turns_per_sample"]:.1f} QA turns per sample, '
          f'best of {result["repeat"]}, OMP_NUM_THREADS={result["omp_num_threads"]}')
    print(f'{"stage":<48} {"seconds":>9} {"samples/s":>10}')
    for name, row in result['stages'].items():
        print(f'{name:<48} {row["seconds"]:>9.3f} {row["samples_per_s"]:>10.1f}')


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
