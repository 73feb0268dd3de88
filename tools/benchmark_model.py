"""Benchmark DrivePI training and inference steps of a config on its dataset's first samples.

Builds ``model`` and ``optim_wrapper`` of the config and the train / test datasets (their pipelines run
once, outside the timing), then measures ``train_step`` (forward, losses, backward, optimizer step) and
``test_step`` (predict: occupancy, flow, trajectory and greedy answers to every conversation turn),
median / mean over ``--iters`` after ``--warmup``, plus parameter counts, spatial tokens K, the LLM
sequence length and peak CUDA memory. Prints a table and writes JSON atomically.

    python tools/benchmark_model.py configs/drivepi/drivepi_mini.py --iters 5 \
        --out work_dirs/benchmark_model.json
"""
import argparse
import copy
import platform
import statistics

import torch
from mmengine.config import DictAction
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper

from drivepi.benchmarking import timed_runs
from drivepi.fileio import atomic_write_json
from drivepi.registry import DATASETS, MODELS
from drivepi.utils import load_config, register_all_modules


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='full DrivePI config (model, optim_wrapper, train/test dataloaders)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--out', default='work_dirs/benchmark_model.json', help='JSON result file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries')
    return parser.parse_args()


def summary(times: list) -> dict:
    return dict(median_s=statistics.median(times), mean_s=statistics.mean(times), iters=len(times))


def main() -> None:
    args = parse_args()
    register_all_modules()
    cfg = load_config(args.config, args.cfg_options)
    device = torch.device(args.device)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(device)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    train_set, test_set = DATASETS.build(cfg.train_dataloader.dataset), DATASETS.build(cfg.test_dataloader.dataset)
    train_batch = pseudo_collate([train_set[i] for i in range(args.batch_size)])
    test_batch = pseudo_collate([test_set[i] for i in range(args.batch_size)])
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)

    model.train()
    train_times = timed_runs(lambda: model.train_step(copy.deepcopy(train_batch), optim_wrapper), device,
                             args.iters, args.warmup)
    model.eval()
    with torch.no_grad():
        predict_times = timed_runs(lambda: model.test_step(copy.deepcopy(test_batch)), device, args.iters, args.warmup)
        data = model.data_preprocessor(copy.deepcopy(test_batch), False)
        bev, _ = model.extract_feat(data['inputs'], data['data_samples'])
        num_tokens = model.token_filter(bev)['keep_idx'].shape[1]
    device_name = (torch.cuda.get_device_name(device) if device.type == 'cuda'
                   else platform.processor() or platform.machine())
    turns = sum(len(c) for ds in test_batch['data_samples'] for c in ds.get('conversations', []))
    result = dict(
        config=args.config, device=str(device), device_name=device_name,
        torch_threads=torch.get_num_threads(), batch_size=args.batch_size,
        params_total=sum(p.numel() for p in model.parameters()),
        params_trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        bev_shape=list(bev.shape[2:]), spatial_tokens=num_tokens, answer_turns_per_predict=turns,
        train_step=summary(train_times), predict_step=summary(predict_times),
        peak_cuda_memory_gib=(torch.cuda.max_memory_allocated(device) / 2**30 if device.type == 'cuda' else None))
    print(f"{'config':>10} | {result['config']}\n{'device':>10} | {result['device_name']} ({device})")
    print(f"{'params':>10} | {result['params_total']:,} total, {result['params_trainable']:,} trainable")
    print(f"{'tokens':>10} | BEV {result['bev_shape']}, K = {num_tokens} spatial tokens")
    for name in ('train_step', 'predict_step'):
        s = result[name]
        print(f'{name:>12} | median {s["median_s"]:.3f} s | mean {s["mean_s"]:.3f} s | {s["iters"]} iters')
    print(f'{"predict":>12} | answers {turns} turns per batch')
    if result['peak_cuda_memory_gib'] is not None:
        print(f'{"peak mem":>12} | {result["peak_cuda_memory_gib"]:.2f} GiB')
    atomic_write_json(args.out, result)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
