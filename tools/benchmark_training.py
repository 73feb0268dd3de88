"""Training throughput of a config on real samples through its real data pipeline: samples/s, s/step, GPU busy
share, host synchronisations per step and the data loader's wait.

    python tools/benchmark_training.py CONFIG --data-root DIR [--batch-size 16] [--iters 30] [--warmup 5] \
        [--num-workers 8] [--amp] [--device cuda] [--profile] [--cfg-options k=v ...] --out work_dirs/train.json

The config's train dataloader is built on DIR (every path of the config under its ``data_root``: infos, QA
file, a tiny LLM kept there, is moved under DIR; ``--cfg-options`` overrides anything else) with an infinite
shuffled sampler, ``--batch-size`` and ``--num-workers`` workers (persistent; pinned memory on a GPU). Each
step is what MMEngine's training loop runs: ``model.train_step(batch, optim_wrapper)`` with the config's
optimizer wrapper (``--amp``: bf16 autocast as ``tools/train.py --amp`` sets it; the non-finite step guard
when the config's ``default_hooks`` have it) and its logged values read as floats, as the loop's
``RuntimeInfoHook`` does. After ``--warmup`` steps, ``--iters`` steps are timed end to end (wall clock,
including waits for the loader; also the main process's CPU time, a figure that other processes on a shared
machine do not inflate); then, on a GPU, the host synchronisations of one step are counted
(``tools/benchmark.py: host_syncs``) and the kernel time of 5 steps is taken from torch.profiler
(``gpu_kernel_ms``): GPU busy share = kernel time per step / wall time per step. Prints a table, writes JSON.
"""
import argparse
import platform
import statistics
import sys
import time
import types
from pathlib import Path

import torch
from mmengine.config import DictAction
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import gpu_kernel_ms, host_syncs, spread, write_profile  # noqa: E402  (tools/benchmark.py)

from drivepi.benchmarking import synchronized_clock  # noqa: E402
from drivepi.fileio import atomic_write_json  # noqa: E402
from drivepi.registry import HOOKS, MODELS  # noqa: E402
from drivepi.utils import load_config, register_all_modules  # noqa: E402

AMP_TYPES = {'OptimWrapper': 'AmpOptimWrapper', 'GuardedOptimWrapper': 'GuardedAmpOptimWrapper'}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config with model, train_dataloader and optim_wrapper')
    parser.add_argument('--data-root', required=True, help="the mini set's root (replaces the config's data_root)")
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--iters', type=int, default=30, help='timed steps')
    parser.add_argument('--warmup', type=int, default=5, help='untimed steps first')
    parser.add_argument('--num-workers', type=int, default=8, help='data loader worker processes')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--amp', action='store_true', help='bf16 autocast on CUDA (AmpOptimWrapper), as '
                        'tools/train.py --amp; without it the config\'s optim_wrapper as it is')
    parser.add_argument('--profile', action='store_true', help='also write torch.profiler tables of 3 steps')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries')
    parser.add_argument('--out', type=Path, default=Path('work_dirs/benchmark_training.json'))
    return parser.parse_args(argv)


def under_root(obj, old: str, new: str):
    """``obj`` (config dicts, lists, strings) with every string that starts with ``old`` moved under ``new``."""
    if isinstance(obj, str):
        return new + obj[len(old):] if old and obj.startswith(old) else obj
    if isinstance(obj, dict):
        return {key: under_root(value, old, new) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(under_root(value, old, new) for value in obj)
    return obj


def train_config(args: argparse.Namespace):
    """The config with the data root moved, the loader's batch, workers and sampler, and ``--amp``."""
    cfg = load_config(args.config, args.cfg_options)
    root = args.data_root.rstrip('/') + '/'
    old_root = cfg.get('data_root') or cfg.train_dataloader.dataset.get('data_root', '')
    cfg.model = under_root(cfg.model.to_dict(), old_root, root)
    loader = under_root(cfg.train_dataloader.to_dict(), old_root, root)
    loader['dataset']['data_root'] = root
    cuda = torch.device(args.device).type == 'cuda'
    loader.update(batch_size=args.batch_size, num_workers=args.num_workers,
                  persistent_workers=args.num_workers > 0, pin_memory=cuda,
                  sampler=dict(type='InfiniteSampler', shuffle=True, seed=0))
    cfg.train_dataloader = loader
    if args.amp and cuda:
        wrapper = cfg.optim_wrapper
        wrapper.type = AMP_TYPES.get(wrapper.get('type', 'OptimWrapper'), wrapper.get('type'))
        wrapper.setdefault('dtype', 'bfloat16')
    return cfg


def optim_wrapper_as_trained(cfg, model):
    """The config's optimizer wrapper, with the non-finite step guard that its ``default_hooks`` put on it
    before training (``NonFiniteGuardHook.before_train``), if they have one."""
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    guard = (cfg.get('default_hooks') or {}).get('nonfinite_guard')
    if guard:
        HOOKS.build(guard).before_train(types.SimpleNamespace(optim_wrapper=optim_wrapper, model=model))
    return optim_wrapper


def measure(model, optim_wrapper, loader, device: torch.device, args: argparse.Namespace) -> dict:
    """Warm-up, timed steps, then (GPU) host synchronisations and kernel time; see the module docstring."""
    batches = iter(loader)

    def step(batch=None) -> dict:
        outputs = model.train_step(next(batches) if batch is None else batch, optim_wrapper)
        # the logged values read on the host, as the training loop's RuntimeInfoHook reads them
        return {key: float(value.detach() if torch.is_tensor(value) else value) for key, value in outputs.items()}

    for _ in range(args.warmup):
        step()
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    waits, host_times = [], []
    start, cpu_start = synchronized_clock(device), time.process_time()
    for _ in range(args.iters):
        before = time.perf_counter()
        batch = next(batches)
        fetched = time.perf_counter()
        outputs = step(batch)
        waits.append(fetched - before)
        host_times.append(time.perf_counter() - fetched)
    wall = (synchronized_clock(device) - start) / args.iters
    cpu = (time.process_time() - cpu_start) / args.iters
    result = dict(s_per_step=wall, samples_per_s=args.batch_size / wall, host_cpu_s_per_step=cpu,
                  loader_wait_s_per_step=statistics.mean(waits), loader_wait_share=statistics.mean(waits) / wall,
                  loader_wait_s_range=spread(waits), host_s_per_step=statistics.mean(host_times),
                  losses={key: value for key, value in outputs.items()},
                  peak_mem_gib=torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == 'cuda' else None)
    if device.type == 'cuda':
        syncs = host_syncs(step)
        result.update(host_syncs_per_step=syncs['host_syncs_per_frame'], host_sync_sites=syncs['host_sync_sites'])
        result['gpu_kernel_ms_per_step'] = gpu_kernel_ms(step)
        result['gpu_busy_share'] = result['gpu_kernel_ms_per_step'] / (1e3 * wall)
    else:
        result.update(host_syncs_per_step='n/a', gpu_kernel_ms_per_step='n/a', gpu_busy_share='n/a')
    if args.profile:
        result['profile_table'] = write_profile('training', step, device, args.out)
    return result


def table_rows(report: dict) -> list:
    def fmt(value, spec):
        return format(value, spec) if isinstance(value, (int, float)) else str(value)
    rows = [('config', report['config']), ('device', report['device_name']),
            ('batch size, loader workers (tensor sharing)',
             f"{report['batch_size']}, {report['num_workers']} ({report['tensor_sharing']})"),
            ('optimizer wrapper', report['optim_wrapper']),
            ('samples/s', fmt(report['samples_per_s'], '.1f')),
            ('s/step (wall)', fmt(report['s_per_step'], '.4f')),
            ('  host time in train_step, s/step', fmt(report['host_s_per_step'], '.4f')),
            ('  CPU time of the main process, s/step', fmt(report['host_cpu_s_per_step'], '.4f')),
            ('  data loader wait, s/step (share of wall)',
             f"{report['loader_wait_s_per_step']:.4f} ({report['loader_wait_share']:.2f})"),
            ('GPU kernel ms/step', fmt(report['gpu_kernel_ms_per_step'], '.1f')),
            ('GPU busy share (kernel time / wall)', fmt(report['gpu_busy_share'], '.2f')),
            ('host synchronisations/step (torch-visible)', fmt(report['host_syncs_per_step'], 'd')),
            ('peak GPU memory, GiB', fmt(report['peak_mem_gib'] or 'n/a', '.2f'))]
    rows += [(f'  sync site {site}', str(count)) for site, count in report.get('host_sync_sites', {}).items()]
    return rows


def main(argv=None) -> dict:
    args = parse_args(argv)
    register_all_modules()
    device = torch.device(args.device)
    cfg = train_config(args)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = cfg.get('env_cfg', {}).get('cudnn_benchmark', False)
    sharing = (cfg.get('default_hooks') or {}).get('tensor_sharing')
    if sharing:   # as the Runner's before_run: the loader's workers hand tensors over the config's way
        HOOKS.build(sharing).before_run(None)
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(device)
    model.init_weights()
    model.train()
    optim_wrapper = optim_wrapper_as_trained(cfg, model)
    report = dict(config=args.config, data_root=args.data_root, device=str(device), torch=torch.__version__,
                  device_name=torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor(),
                  batch_size=args.batch_size, num_workers=args.num_workers, iters=args.iters, warmup=args.warmup,
                  tensor_sharing=torch.multiprocessing.get_sharing_strategy(),
                  num_train_samples=len(loader.dataset), optim_wrapper=type(optim_wrapper).__name__,
                  amp_dtype=str(getattr(optim_wrapper, 'cast_dtype', None)))
    report.update(measure(model, optim_wrapper, loader, device, args))
    rows = table_rows(report)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f'{name:<{width}} | {value}')
    atomic_write_json(args.out, report)
    print(f'wrote {args.out}')
    return report


if __name__ == '__main__':
    main()
