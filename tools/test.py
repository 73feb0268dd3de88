"""Evaluate a DrivePI checkpoint: every metric in one table, saved as JSON.

    python tools/test.py CONFIG CKPT [--out-dir DIR] [--work-dir DIR] [--blind] [--cfg-options k=v ...]

``--out-dir DIR`` also writes each sample's predictions to ``DIR/predictions/<token>.npz`` (read by
``visualization/render_occupancy.py``) and the metrics to ``DIR/metrics.json``. ``--blind`` adds a
second, "blind" pass over the same samples with the spatial tokens replaced by zeros (everything else
equal) and reports its QA accuracy as ``blind_qa/...`` beside the model's ``qa/...``: how much of the
answers comes from the scene.
"""
import argparse
from pathlib import Path

from mmengine.config import Config, DictAction
from mmengine.runner import Runner, TestLoop

from drivepi.evaluation import format_metrics_table, save_metrics_json
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
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    return parser.parse_args()


def test_metric_cfgs(cfg: Config) -> list:
    """The config's ``test_evaluator`` as a list of metric configs (it may be a single dict)."""
    return cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]


def build_config(args: argparse.Namespace) -> Config:
    """Load the config, apply overrides, point it at the checkpoint, deploy the model (LoRA merged)
    before testing and add the prediction writer."""
    cfg = load_run_config(args.config, args.launcher, args.cfg_options, args.work_dir)
    cfg.load_from = args.checkpoint
    cfg.custom_hooks = [*cfg.get('custom_hooks', []), dict(type='DeployModelHook')]  # LoRA merged for inference
    if args.out_dir:
        cfg.test_evaluator = [*test_metric_cfgs(cfg), dict(type='PredictionWriter', out_dir=args.out_dir)]
    return cfg


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


def main() -> None:
    args = parse_args()
    register_all_modules(init_default_scope=False)
    runner = Runner.from_cfg(build_config(args))
    metrics = runner.test()
    if args.blind:
        metrics.update(blind_qa_metrics(runner))
    print(format_metrics_table(metrics))
    if args.out_dir:
        save_metrics_json(metrics, Path(args.out_dir) / 'metrics.json')
        print(f'predictions and metrics.json written to {args.out_dir}')


if __name__ == '__main__':
    main()
