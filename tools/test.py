"""Evaluate a DrivePI checkpoint: every metric in one table, saved as JSON.

    python tools/test.py CONFIG CKPT [--out-dir DIR] [--work-dir DIR] [--blind] [--allow-partial]
        [--cfg-options k=v ...]

``--out-dir DIR`` also writes each sample's predictions to ``DIR/predictions/<token>.npz`` (read by
``visualization/render_occupancy.py``), the metrics to ``DIR/metrics.json`` and the test loop's wall time and
frames/s (overall and after the first iterations' warm-up) to ``DIR/timing.json``, all or nothing: into
``.DIR.incomplete`` beside it, which replaces DIR (and what an earlier run left there) when the run ends.
``--blind`` adds a second, "blind" pass over the same samples with the spatial tokens replaced by zeros
(everything else equal) and reports its QA accuracy as ``blind_qa/...`` beside the model's ``qa/...``: how
much of the answers comes from the scene. The checkpoint must match the config's model (keys, shapes, LLM tokenizer);
``--allow-partial`` loads the matching part of one that does not and lists the rest.
"""
import argparse
import contextlib
import shutil
import time
from pathlib import Path
from typing import Iterator

from mmengine.config import Config, DictAction
from mmengine.dist import barrier, is_main_process
from mmengine.runner import Runner, TestLoop

from drivepi.engine import TestThroughputHook
from drivepi.engine.checkpoint_loading import ALLOW_PARTIAL_HELP
from drivepi.evaluation import format_metrics_table, save_metrics_json
from drivepi.fileio import atomic_write_json, replace_directory
from drivepi.utils import load_run_config, register_all_modules


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (evaluate) a DrivePI model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-dir', help='write predictions and metrics.json here')
    parser.add_argument('--work-dir', help='where logs go (default: work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. test_dataloader.dataset.indices=10')
    parser.add_argument('--blind', action='store_true',
                        help='also answer the questions with the spatial tokens zeroed and report that QA accuracy')
    parser.add_argument('--allow-partial', action='store_true', help=ALLOW_PARTIAL_HELP)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    return parser.parse_args()


def test_metric_cfgs(cfg: Config) -> list:
    """The config's ``test_evaluator`` as a list of metric configs (it may be a single dict)."""
    return cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]


def build_config(args: argparse.Namespace) -> Config:
    """Load the config, apply overrides, point it at the checkpoint, deploy the model (LoRA merged)
    before testing and add the prediction writer."""
    cfg = load_run_config(args.config, args.launcher, args.cfg_options, args.work_dir, args.allow_partial)
    cfg.load_from = args.checkpoint
    cfg.custom_hooks = [*cfg.get('custom_hooks', []), dict(type='DeployModelHook'),  # LoRA merged for inference
                        dict(type='TestThroughputHook')]
    if args.out_dir:
        writer = dict(type='PredictionWriter', out_dir=str(staging_dir(args.out_dir)))
        cfg.test_evaluator = [*test_metric_cfgs(cfg), writer]
    return cfg


def staging_dir(out_dir: str) -> Path:
    """Where a run writes its outputs until they replace ``out_dir``: ``.<name>.incomplete`` beside it."""
    out_dir = Path(out_dir)
    return out_dir.parent / f'.{out_dir.name}.incomplete'


@contextlib.contextmanager
def fresh_output_dir(out_dir: str) -> Iterator[Path]:
    """An empty :func:`staging_dir` of ``out_dir`` for a run's outputs: it replaces ``out_dir`` when the block
    succeeds and is removed when it fails, so ``out_dir`` never mixes two runs (new predictions beside an old
    ``metrics.json``). The main process manages the folder; every process may write into it."""
    staging = staging_dir(out_dir)
    if is_main_process():
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    barrier()
    try:
        yield staging
    except BaseException:
        if is_main_process():
            shutil.rmtree(staging, ignore_errors=True)
        raise
    if is_main_process():
        replace_directory(staging, out_dir)


def blind_qa_metrics(runner: Runner) -> dict:
    """QA metrics of a second pass over the test set with the model's spatial tokens zeroed."""
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    qa_metrics = [m for m in test_metric_cfgs(runner.cfg) if m['type'] == 'QAMetric']
    if not qa_metrics:
        raise SystemExit('--blind needs a QAMetric in test_evaluator')
    model.blind_spatial_tokens = True
    try:
        blind = TestLoop(runner, runner.test_dataloader, [dict(qa_metrics[0], prefix='blind_qa')]).run()
    finally:
        model.blind_spatial_tokens = False
    return blind


def evaluation_timing(frames: int, seconds: float, throughput: TestThroughputHook) -> dict:
    """Wall time of the test loop (the blind pass not included), its throughput, and the throughput after the
    warm-up with the shares of it spent waiting for data and in the metrics (``TestThroughputHook``; None for a
    run too short)."""
    return dict(frames=frames, seconds=seconds, frames_per_s=frames / seconds,
                steady_frames_per_s=throughput.steady_frames_per_s(),
                steady_data_wait_share=throughput.steady_data_wait_share(),
                steady_metric_share=throughput.steady_metric_share())


def main() -> None:
    args = parse_args()
    register_all_modules(init_default_scope=False)
    runner = Runner.from_cfg(build_config(args))
    with fresh_output_dir(args.out_dir) if args.out_dir else contextlib.nullcontext() as out_dir:
        start = time.perf_counter()
        metrics = runner.test()
        throughput = next(hook for hook in runner.hooks if isinstance(hook, TestThroughputHook))
        timing = evaluation_timing(len(runner.test_dataloader.dataset), time.perf_counter() - start, throughput)
        if args.blind:
            metrics.update(blind_qa_metrics(runner))
        if out_dir and is_main_process():
            save_metrics_json(metrics, out_dir / 'metrics.json')
            atomic_write_json(out_dir / 'timing.json', timing)
    print(format_metrics_table(metrics))
    steady = timing['steady_frames_per_s']
    print(f"evaluated {timing['frames']} frames in {timing['seconds']:.1f} s: {timing['frames_per_s']:.2f} frames/s, "
          + (f'{steady:.2f} after the first {throughput.warmup_iters} iterations, '
             f"{100 * timing['steady_data_wait_share']:.0f} % of that time waiting for data, "
             f"{100 * timing['steady_metric_share']:.0f} % in the metrics " if steady else '')
          + '(data loading, model, answers if the samples have questions, metrics)')
    if args.out_dir:
        print(f'predictions and metrics.json written to {args.out_dir}')


if __name__ == '__main__':
    main()
