"""Train a DrivePI model with the MMEngine Runner (the FlexibleRunner for the sharded FSDP configs).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--allow-partial]
        [--cfg-options k=v ...]

Multi-GPU / multi-node: ``bash tools/dist_train.sh CONFIG NGPUS`` (torchrun; NNODES, NODE_RANK,
MASTER_ADDR, MASTER_PORT are honoured) or ``--launcher slurm`` under srun. A ``load_from`` or resumed
checkpoint must match the model; ``--allow-partial`` loads the matching part (e.g. to fine-tune a new head).
"""
import argparse

from mmengine.config import Config, DictAction

from drivepi.engine.checkpoint_loading import ALLOW_PARTIAL_HELP
from drivepi.engine.distributed import build_runner
from drivepi.utils import load_run_config, register_all_modules


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a DrivePI model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in the work dir '
                        'when no path is given')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (bf16 on CUDA)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_cfg.max_iters=100')
    parser.add_argument('--allow-partial', action='store_true', help=ALLOW_PARTIAL_HELP)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    return parser.parse_args()


def build_config(args: argparse.Namespace) -> Config:
    """Load the config file and apply the command-line overrides."""
    cfg = load_run_config(args.config, args.launcher, args.cfg_options, args.work_dir, args.allow_partial)
    if args.amp:
        cfg.optim_wrapper.type = 'GuardedAmpOptimWrapper'
        cfg.optim_wrapper.setdefault('dtype', 'bfloat16')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main() -> None:
    args = parse_args()
    register_all_modules(init_default_scope=False)
    runner = build_runner(build_config(args))
    runner.train()


if __name__ == '__main__':
    main()
