"""Speed of the full-size DrivePI model: latency, decoding, training throughput, memory, FLOPs, profile.

    python tools/benchmark.py [CONFIG] [--device cuda] [--out work_dirs/benchmark.json]

Inputs are one frame of the real nuScenes demo sweep stacked to ``--num-sweeps`` sweeps (see
``drivepi.benchmarking``), six camera images of ``--img-size`` with nuScenes calibration, and random
GT for training. The LLM is the config's architecture with random weights (speed does not depend on
the values) and the tokenizer of ``--tokenizer`` (default: a tiny one made on the fly: token ids only).
Timings are CUDA-synchronised medians of ``--iters`` runs after ``--warmup`` runs.

Training runs first, as configured (LoRA adapters, the config's ``optim_wrapper``: bf16 AMP, fused
AdamW). Then the model is deployed as for inference (LoRA merged into the base weights, eval mode) and
all inference figures are taken on it, with the LLM's CUDA graphs on and, for comparison, off.
``--profile`` writes torch.profiler operator tables beside the JSON and adds a per-module breakdown.
The ``attention`` section times the LLM's pass over the frame's prompt with each SDPA attention backend.
Prints a table and writes JSON atomically.
"""
import argparse
import collections
import contextlib
import operator
import platform
import statistics
import tempfile
import warnings
from pathlib import Path

import torch
from mmengine.config import DictAction
from mmengine.optim import build_optim_wrapper
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from drivepi.benchmarking import (
    DEFAULT_DEMO_DIR,
    FILTER_SETTINGS,
    build_model,
    gpu_kernel_ms,
    gpu_kernels,
    kernel_table,
    kernel_totals,
    load_demo_sweep,
    make_batch,
    median_ms,
    module_timing_hooks,
    parse_filter_setting,
    stack_sweeps,
    timed_runs,
)
from drivepi.fileio import atomic_write_json, atomic_write_text
from drivepi.models.heads import stack_field
from drivepi.utils import load_config, register_all_modules

DEFAULT_CONFIG = 'configs/drivepi/drivepi_qwen2.5-0.5b_8xb4-24e_nuscenes-openocc.py'
SECTIONS = ('training', 'inference', 'filter_sweep', 'ada3d', 'attention', 'decode', 'decode_agreement')
DEFAULT_SECTIONS = SECTIONS[:-1]  # decode_agreement compiles a decoding step (~30 s): asked for by name
MODULES = ('lidar_branch', 'camera_branch', 'fuser', 'token_filter', 'projector', 'llm.causal_lm.model',
           'back_projector', 'heads.occ', 'heads.flow', 'heads.plan')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG, help='config with `model` and `optim_wrapper`')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--num-sweeps', type=int, default=10)
    parser.add_argument('--img-size', type=int, nargs=2, default=[256, 704], help='H W')
    parser.add_argument('--train-batch', type=int, default=4, help='samples per training step')
    parser.add_argument('--filter-settings', nargs='+', default=list(FILTER_SETTINGS),
                        help="token keep ratio / Ada3D voxel keep ratios per range ring of the filter_sweep "
                             "section, e.g. 0.25/0.4,0.7,1")
    parser.add_argument('--decode-tokens', type=int, default=64)
    parser.add_argument('--decode-variants', nargs='+', default=list(DECODE_VARIANTS), choices=list(DECODE_VARIANTS),
                        help='decoding variants the decode section measures (default: all)')
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--tokenizer', help='tokenizer directory (default: a tiny one, made on the fly)')
    parser.add_argument('--demo-dir', type=Path, default=DEFAULT_DEMO_DIR)
    parser.add_argument('--out', type=Path, default=Path('work_dirs/benchmark.json'))
    parser.add_argument('--sections', nargs='+', default=list(DEFAULT_SECTIONS), choices=SECTIONS,
                        help='what to measure (default: all but decode_agreement)')
    parser.add_argument('--profile', action='store_true',
                        help='also write torch.profiler tables of training and inference and a per-module breakdown')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries')
    return parser.parse_args()


AMP = {'enabled': True}  # bf16 autocast on CUDA; run_section turns it off for a section that fails with it


def autocast(device: torch.device):
    return (torch.autocast('cuda', dtype=torch.bfloat16) if device.type == 'cuda' and AMP['enabled']
            else contextlib.nullcontext())


def run_section(report: dict, name: str, fn) -> None:
    """``report[name] = fn()``, first with bf16 autocast, then in fp32/TF32 if that fails; a section that
    fails both ways is reported as ``{'error': ...}`` (in the table and the JSON) and the others still run."""
    errors = []
    for amp in (True, False):
        AMP['enabled'] = amp
        try:
            report[name] = dict(fn(), amp=amp)
            if errors:
                report[name]['amp_error'] = errors[0]
            return
        except Exception as exc:  # noqa: BLE001 -- recorded, never silent
            errors.append(f'{type(exc).__name__}: {exc}'[:500])
            print(f'[benchmark] {name} failed (amp={amp}): {errors[-1]}')
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    report[name] = dict(error=' | '.join(errors))


def bench_inference(model, inputs, samples, device, args) -> dict:
    """All-heads latency (no text generation) with and without the LLM's CUDA graphs, the LiDAR and
    camera branches alone, FLOPs, peak memory."""
    with torch.no_grad(), autocast(device):
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(device)
        total = median_ms(lambda: model._forward(inputs, samples), device, args.iters, args.warmup)
        peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == 'cuda' else float('nan')
        with cuda_graphs_off(model):
            eager = median_ms(lambda: model._forward(inputs, samples), device, args.iters, args.warmup)
        lidar = median_ms(lambda: model.lidar_branch(inputs['points']), device, args.iters, args.warmup)
        _, aux = model.lidar_branch(inputs['points'])
        camera = float('nan')
        if model.camera_branch is not None:
            ego2img = stack_field(samples, 'ego2img', None, torch.float32, device, metainfo=True)
            cam_valid = torch.ones(len(samples), 6, dtype=torch.bool, device=device)
            camera = median_ms(lambda: model.camera_branch(inputs['imgs'], ego2img, cam_valid), device,
                               args.iters, args.warmup)
        gflops = count_gflops(model, inputs, samples)
        result = dict(latency_ms=total, latency_ms_no_cuda_graphs=eager, lidar_ms=lidar, camera_ms=camera,
                      peak_mem_gib=peak, gflops=gflops, num_voxels=int(aux['num_voxels']),
                      num_kept_voxels=int(aux['num_kept_voxels']))
        if device.type == 'cuda':
            result.update(host_syncs(lambda: model._forward(inputs, samples)))
            result['gpu_kernel_ms'] = gpu_kernel_ms(lambda: model._forward(inputs, samples))
            result['gpu_busy_share'] = result['gpu_kernel_ms'] / total
        if args.profile:
            result['profile_table'] = write_profile('inference', lambda: model._forward(inputs, samples),
                                                    device, args.out)
    if args.profile:
        result['module_ms'] = module_breakdown(model, inputs, samples, device, args)
    return result


@contextlib.contextmanager
def cuda_graphs_off(model):
    """The CUDA graphs of the LLM and of the camera branch (if any) off inside the block and as configured
    after it; either change drops the captured graphs."""
    modules = [m for m in (model.llm, model.camera_branch) if m is not None]
    configured = [m.cuda_graphs for m in modules]
    for module in modules:
        module.cuda_graphs = False
    try:
        yield
    finally:
        for module, enabled in zip(modules, configured):
            module.cuda_graphs = enabled


def host_syncs(fn) -> dict:
    """Host synchronisations torch counts in one ``fn()`` (``torch.cuda.set_sync_debug_mode``; syncs inside
    extensions such as spconv are not seen) and the 8 most frequent calling lines."""
    fn()
    torch.cuda.set_sync_debug_mode('warn')
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            fn()
    finally:
        torch.cuda.set_sync_debug_mode('default')
    sites = collections.Counter(f'{Path(w.filename).name}:{w.lineno}' for w in caught
                                if 'synchroniz' in str(w.message))
    return dict(host_syncs_per_frame=sum(sites.values()), host_sync_sites=dict(sites.most_common(8)))


def count_gflops(model, inputs, samples) -> float:
    """GFLOPs of one all-heads forward counted by torch's FlopCounterMode (matmuls, convolutions,
    attention; spconv's sparse convolutions are custom ops and are not counted). Attention is counted
    in its eager form: the counter cannot read grouped-query SDPA shapes."""
    config = model.llm.causal_lm.config
    attn_implementation, config._attn_implementation = config._attn_implementation, 'eager'
    try:
        with cuda_graphs_off(model), FlopCounterMode(display=False) as counter:  # a graph replay hides its kernels
            model._forward(inputs, samples)
    finally:
        config._attn_implementation = attn_implementation
    return counter.get_total_flops() / 1e9


ATTENTION_BACKENDS = dict(cudnn=SDPBackend.CUDNN_ATTENTION, flash=SDPBackend.FLASH_ATTENTION,
                          efficient=SDPBackend.EFFICIENT_ATTENTION, math=SDPBackend.MATH)


def bench_attention(model, inputs, samples, device, args) -> dict:
    """The LLM's pass over the frame's prefix (its part of the all-heads frame, without the CUDA graph) with
    torch's own choice of attention kernel (``default_ms``; cuDNN's on an H100, 3.1 of the frame's 20 ms of
    kernels, 2026-12-07) and with each SDPA backend of ``ATTENTION_BACKENDS`` alone (``<name>_ms``; None and
    ``<name>_error`` for a backend that cannot run these shapes here)."""
    llm = model.llm
    with torch.no_grad(), autocast(device), cuda_graphs_off(model):
        prefix = frame_prefix(model, inputs, samples)
        mask = torch.ones(prefix.shape[:2], dtype=torch.bool)

        def llm_pass() -> torch.Tensor:
            return llm.hidden_states(prefix, mask)
        result = dict(prefix_tokens=prefix.shape[1], default_ms=median_ms(llm_pass, device, args.iters, args.warmup))
        for name, backend in ATTENTION_BACKENDS.items():
            try:
                with sdpa_kernel(backend):
                    result[f'{name}_ms'] = median_ms(llm_pass, device, args.iters, args.warmup)
            except RuntimeError as error:
                result[f'{name}_ms'], result[f'{name}_error'] = None, str(error).splitlines()[0]
    return result


DECODE_VARIANTS = dict(  # name: (table label, compile_decoder, cuda_graphs, decode_compile_options)
    compiled=('compiled CUDA graph', True, True, None),
    coordinate_descent=('  + coordinate-descent tuning', True, True, dict(coordinate_descent_tuning=True)),
    max_autotune=('  + max-autotune', True, True, dict(max_autotune=True, coordinate_descent_tuning=True)),
    no_compile=('CUDA graph', False, True, None), no_cuda_graphs=('eager', False, False, None))


def bench_decode(model, inputs, samples, device, args) -> dict:
    """Per-token greedy answer decoding after the frame's multimodal prefix (KV cache) for each of
    ``DECODE_VARIANTS`` (``decode_ms_per_token_<variant>`` and its ``_range``; on a GPU also
    ``decode_kernels_per_token_<variant>`` and ``decode_kernel_ms_per_token_<variant>``); ``decode_ms_per_token``,
    ``prefill_ms`` and ``prefix_tokens`` are those of the variant the LLM is configured as (the first variant
    when none matches)."""
    llm = model.llm
    configured = (llm.compile_decoder, llm.cuda_graphs, llm.decode_compile_options)
    runs = {}
    for name in args.decode_variants:
        _, compile_decoder, graphs, options = DECODE_VARIANTS[name]
        llm.compile_decoder, llm.decode_compile_options = compile_decoder, options
        llm.cuda_graphs = graphs  # the setter drops the decoder
        runs[name] = decode_latency(model, inputs, samples, device, args)
    llm.compile_decoder, llm.decode_compile_options = configured[0], configured[2]
    llm.cuda_graphs = configured[1]
    default = next((name for name in runs if DECODE_VARIANTS[name][1:] == configured), next(iter(runs)))
    result = dict(runs[default], configured_variant=default)
    for name, run in runs.items():
        result[f'decode_ms_per_token_{name}'] = run['decode_ms_per_token']
        result[f'decode_ms_per_token_{name}_range'] = run['decode_ms_per_token_range']
        for key in ('decode_kernels_per_token', 'decode_kernel_ms_per_token', 'decode_top_kernels'):
            if key in run:
                result[f'{key}_{name}'] = run[key]
    return result


# the questions decoded after the frame's prefix (decode_latency times the first)
DECODE_QUESTIONS = ('Is there a car 10 m ahead?', 'How many pedestrians are there?',
                       'What is at x = 3 m, y = -2 m?', 'Should the ego vehicle stop?')


def frame_prefix(model, inputs, samples) -> torch.Tensor:
    """The multimodal prefix embeddings (1, P, D) of the first frame (instruction, spatial tokens, planning
    queries), as the model builds it before answering."""
    bev, _ = model.extract_feat(inputs, samples[:1])
    return model._run_llm(bev[:1], samples[:1], [[]])['embeds'][:1]


def question_embeds(model, question: str, device) -> torch.Tensor:
    """The embedded prompt turn (1, C, D) of ``question``."""
    ids = torch.tensor([model.prompt.question_ids(question)], device=device)
    return model.llm.causal_lm.get_input_embeddings()(ids)


def decode_latency(model, inputs, samples, device, args) -> dict:
    """Prefill ms of the multimodal prefix and ms per decoded token: (time of a ``decode_tokens + 1``-token
    answer - time of a 1-token answer) / ``decode_tokens``; no stop token ends the answers early."""
    llm = model.llm
    with torch.no_grad(), autocast(device):
        prefix = frame_prefix(model, inputs, samples)
        question = question_embeds(model, DECODE_QUESTIONS[0], device)
        prefill = median_ms(lambda: llm.prefill(prefix), device, args.iters, 3)

        def answer(num_tokens: int) -> list:
            return llm.decoder.generate(question, num_tokens, stop_ids=())
        assert len(answer(args.decode_tokens + 1)) == args.decode_tokens + 1
        one = median_ms(lambda: answer(1), device, args.iters, 3)
        full = timed_runs(lambda: answer(args.decode_tokens + 1), device, max(3, args.iters // 4), 2)
        per_token = [(1e3 * t - one) / args.decode_tokens for t in full]
        result = dict(decode_ms_per_token=statistics.median(per_token), decode_ms_per_token_range=spread(per_token),
                      prefill_ms=prefill, prefix_tokens=prefix.shape[1])
        if device.type == 'cuda':
            full_table = kernel_table(lambda: answer(args.decode_tokens + 1), runs=2)
            kernels_full, ms_full = kernel_totals(full_table)
            kernels_one, ms_one = gpu_kernels(lambda: answer(1), runs=2)
            result.update(decode_kernels_per_token=(kernels_full - kernels_one) / args.decode_tokens,
                          decode_kernel_ms_per_token=(ms_full - ms_one) / args.decode_tokens,
                          decode_top_kernels=[dict(name=name[:120], calls=calls, ms=ms) for name, calls, ms in
                                              full_table[:15]])
    return result


def decode_agreement(model, inputs, samples, device, args) -> dict:
    """The compiled decoding step against the eager one on the same answers (issue 28: a compiled decoder
    once left the eager tokens at the 7th token). Per question of ``DECODE_QUESTIONS``: the eager greedy
    answer of ``--decode-tokens`` tokens after the frame's prefix, then both steps' logits along it
    (``GreedyDecoder.forced_logits``). A token where the argmaxes differ is a near-tie when the eager top-2
    margin there is below the largest compiled-eager logit difference of the answer; a margin above it
    points to a real difference."""
    llm = model.llm
    decoder = llm.decoder
    steps, disagreements, diffs, margins = 0, [], [], []
    with torch.no_grad(), autocast(device):
        llm.prefill(frame_prefix(model, inputs, samples))
        for number, question in enumerate(DECODE_QUESTIONS):
            embeds = question_embeds(model, question, device)
            tokens = decoder.generate(embeds, args.decode_tokens, stop_ids=())
            eager = decoder.forced_logits(embeds, tokens, compiled=False)
            compiled = decoder.forced_logits(embeds, tokens, compiled=True)
            top2 = eager.topk(2, dim=-1).values
            margin = top2[:, 0] - top2[:, 1]
            diff = (compiled - eager).abs().amax(-1)
            steps += len(tokens)
            diffs.append(float(diff.max()))
            margins += margin.tolist()
            for step in (compiled.argmax(-1) != eager.argmax(-1)).nonzero().flatten().tolist():
                disagreements.append(dict(question=number, token=step, margin=float(margin[step]),
                                          max_logit_diff=diffs[-1]))
    return dict(tokens=steps, disagreements=disagreements, max_logit_diff=max(diffs),
                median_logit_diff_per_answer=statistics.median(diffs), min_margin=min(margins),
                median_margin=statistics.median(margins),
                all_disagreements_near_ties=all(d['margin'] <= d['max_logit_diff'] for d in disagreements),
                dtype=str(llm.causal_lm.dtype))


def spread(values: list) -> list:
    """[min, max] of the timed runs behind a median."""
    return [min(values), max(values)]


def train_step_fn(model, optim_wrapper, inputs, samples):
    """One MMEngine training step (``BaseModel.train_step`` after the data preprocessor)."""
    def step() -> None:
        with optim_wrapper.optim_context(model):
            losses = model.loss(inputs, samples)
        loss, _ = model.parse_losses(losses)
        optim_wrapper.update_params(loss)
    return step


def bench_training(model, cfg, inputs, samples, device, args) -> dict:
    """Samples/s of full training steps with the config's optimizer wrapper (bf16 AMP, fused AdamW,
    gradient clipping); gradient checkpointing as the LLM config sets it."""
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    step = train_step_fn(model, optim_wrapper, inputs, samples)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    runs = [1e3 * t for t in timed_runs(step, device, max(3, args.iters // 2), 3)]
    ms = statistics.median(runs)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == 'cuda' else float('nan')
    params = [p for p in model.parameters() if p.requires_grad]
    result = dict(step_ms=ms, step_ms_range=spread(runs), batch_size=len(samples),
                  samples_per_s=1e3 * len(samples) / ms, peak_mem_gib=peak,
                  trainable_params_m=sum(p.numel() for p in params) / 1e6, optim_wrapper=cfg.optim_wrapper.type)
    if args.profile:
        result['profile_table'] = write_profile('training', step, device, args.out)
    return result


def filter_sweep(model, inputs, samples, device, args) -> dict:
    """Per redundancy-filter setting (``'TOKEN/V1,V2,V3'``, set in place on the deployed model): all-heads and
    LiDAR-branch latency, LLM spatial tokens, non-empty and kept voxels."""
    token_filter, voxel_filter = model.token_filter, model.lidar_branch.voxel_filter
    if voxel_filter is None:
        raise ValueError('the config has no Ada3D voxel filter to sweep')
    configured = (token_filter.keep_ratio, voxel_filter.keep_ratios.clone())
    sweep = {}
    try:
        for setting in args.filter_settings:
            token_filter.keep_ratio, voxel_ratios = parse_filter_setting(setting)
            voxel_filter.keep_ratios.copy_(torch.tensor(voxel_ratios))
            with torch.no_grad(), autocast(device):
                latency = median_ms(lambda: model._forward(inputs, samples), device, args.iters, args.warmup)
                lidar = median_ms(lambda: model.lidar_branch(inputs['points']), device, args.iters, args.warmup)
                bev, aux = model.extract_feat(inputs, samples)
                tokens = int(model.token_filter(bev)['keep_idx'].shape[1])
            sweep[setting] = dict(latency_ms=latency, lidar_ms=lidar, tokens=tokens, num_voxels=int(aux['num_voxels']),
                                  num_kept_voxels=int(aux['num_kept_voxels']))
    finally:
        token_filter.keep_ratio = configured[0]
        voxel_filter.keep_ratios.copy_(configured[1])
    return sweep


def ada3d_on_off(cfg, tokenizer, inference_on: dict, inputs, samples, device, args) -> dict:
    """LiDAR-branch and all-heads latency without Ada3D (no importance predictor, no voxel filter), beside
    the filtered model's."""
    if 'error' in inference_on:
        raise RuntimeError('the filtered model failed, nothing to compare')
    no_ada3d = dict(importance_predictor=None, voxel_filter=None)
    no_filter = build_model(cfg, tokenizer, device, lidar_branch=no_ada3d).deploy()
    off = bench_inference(no_filter, inputs, samples, device, argparse.Namespace(**dict(vars(args), profile=False)))
    return dict(num_voxels=inference_on['num_voxels'], num_kept_voxels=inference_on['num_kept_voxels'],
                lidar_ms_on=inference_on['lidar_ms'], lidar_ms_off=off['lidar_ms'],
                latency_ms_on=inference_on['latency_ms'], latency_ms_off=off['latency_ms'])


def module_breakdown(model, inputs, samples, device, args) -> dict:
    """Median ms of each top-level module inside one all-heads forward (synchronising forward hooks)."""
    times = {}
    handles = module_timing_hooks({name: operator.attrgetter(name)(model) for name in MODULES}, device, times)
    try:
        with torch.no_grad(), autocast(device):
            for _ in range(args.warmup + args.iters):
                model._forward(inputs, samples)
    finally:
        for handle in handles:
            handle.remove()
    return {name: 1e3 * statistics.median(t[args.warmup:]) for name, t in times.items()}


def write_profile(name: str, fn, device: torch.device, out: Path) -> str:
    """Run ``fn`` once, then profile 3 runs with torch.profiler; write its operator tables (by device time,
    then by CPU time, then our own functions by host time)
    to ``<out stem>_profile_<name>.txt``; return the path."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    sort_device = 'cuda_time_total' if device.type == 'cuda' else 'cpu_time_total'
    fn()
    with profile(activities=activities, with_stack=True) as prof:
        for _ in range(3):
            fn()
    averages = prof.key_averages()
    path = out.with_name(f'{out.stem}_profile_{name}.txt')
    atomic_write_text(path, f'# 3 runs, sorted by {sort_device}\n' + averages.table(sort_by=sort_device, row_limit=40)
                      + '\n# sorted by cpu_time_total\n' + averages.table(sort_by='cpu_time_total', row_limit=25)
                      + '\n' + our_functions_table(averages, runs=3))
    return str(path)


def our_functions_table(averages, runs: int, limit: int = 30) -> str:
    """DrivePI's own Python functions (``with_stack`` profiler events named ``drivepi/...py(line): name``) by
    host time per run, inclusive of what they call: which of our functions spends the host's time."""
    ours = sorted((e for e in averages if 'drivepi/' in e.key), key=lambda e: e.cpu_time_total, reverse=True)
    lines = [f'# our functions by host time per run (ms, inclusive / self; calls per run), top {limit}']
    lines += [f'{e.cpu_time_total / 1e3 / runs:9.2f} {e.self_cpu_time_total / 1e3 / runs:9.2f} '
              f'{e.count / runs:7.1f}  {e.key}' for e in ours[:limit]]
    return '\n'.join(lines) + '\n'


def matmul_peak_tflops(device: torch.device) -> float:
    """Measured bf16 (CUDA) or fp32 (CPU) matmul throughput, TFLOP/s."""
    n = 8192 if device.type == 'cuda' else 1024
    dtype = torch.bfloat16 if device.type == 'cuda' else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    ms = median_ms(lambda: a @ b, device, 10, 3)
    return 2 * n ** 3 / (ms * 1e-3) / 1e12


# ----------------------------------------------------------------------------- report
def table_rows(report: dict) -> list:
    """(name, value) rows of the measured sections; a failed section shows its error."""
    rows = [('device', report['device_name']), ('parameters, M', f"{report['params_m']:.1f}")]
    for name in SECTIONS:
        section = report.get(name)
        if section is None:
            continue
        if 'error' in section:
            rows.append((name, f"FAILED: {section['error']}"))
            continue
        rows += SECTION_ROWS[name](section, report)
    return rows


SECTION_ROWS = dict(
    inference=lambda s, r: [
        ('all-heads inference, ms/frame', f"{s['latency_ms']:.1f}"),
        ('  without CUDA graphs, ms/frame', f"{s['latency_ms_no_cuda_graphs']:.1f}"),
        ('  LiDAR branch, ms', f"{s['lidar_ms']:.1f}"), ('  camera branch, ms', f"{s['camera_ms']:.1f}"),
        ('  peak memory, GiB', f"{s['peak_mem_gib']:.2f}"), ('  GFLOPs/frame (counted)', f"{s['gflops']:.0f}"),
        ('  achieved fraction of matmul peak', f"{r.get('achieved_fraction_of_peak', float('nan')):.3f}"),
        ('  GPU kernel ms/frame, share of wall time', f"{s.get('gpu_kernel_ms', float('nan')):.1f}, "
                                                       f"{s.get('gpu_busy_share', float('nan')):.2f}"),
        ('  host synchronisations/frame (torch-visible)', f"{s.get('host_syncs_per_frame', 'n/a')}")]
    + [(f'  {name}, ms', f'{ms:.1f}') for name, ms in s.get('module_ms', {}).items()],
    filter_sweep=lambda s, r: [(f'filters {k}: ms/frame, LiDAR ms, tokens, voxels kept',
                                f"{v['latency_ms']:.1f}, {v['lidar_ms']:.1f}, {v['tokens']}, {v['num_kept_voxels']} / "
                                f"{v['num_voxels']}") for k, v in s.items() if isinstance(v, dict)],
    ada3d=lambda s, r: [
        ('Ada3D voxels kept / all', f"{s['num_kept_voxels']} / {s['num_voxels']} "
         f"({100 * (1 - s['num_kept_voxels'] / s['num_voxels']):.0f}% removed)"),
        ('Ada3D LiDAR branch off / on, ms', f"{s['lidar_ms_off']:.1f} / {s['lidar_ms_on']:.1f} "
         f"({s['lidar_ms_off'] / s['lidar_ms_on']:.2f}x)"),
        ('Ada3D all heads off / on, ms', f"{s['latency_ms_off']:.1f} / {s['latency_ms_on']:.1f}")],
    training=lambda s, r: [(f"training, samples/s (batch {s['batch_size']})", f"{s['samples_per_s']:.2f}"),
                           ('  step, ms (median, min-max)', f"{s['step_ms']:.0f} ({s['step_ms_range'][0]:.0f}-"
                            f"{s['step_ms_range'][1]:.0f})"),
                           ('  peak memory, GiB', f"{s['peak_mem_gib']:.2f}")],
    attention=lambda s, r: [(f"LLM pass over the {s['prefix_tokens']}-token prefix, ms: torch's choice",
                             f"{s['default_ms']:.2f}")] + [
        (f'  {name} attention only', 'cannot run here' if s[f'{name}_ms'] is None else f"{s[f'{name}_ms']:.2f}")
        for name in ATTENTION_BACKENDS],
    decode=lambda s, r: [('answer decode, ms/token (median, min-max); GPU kernels/token, kernel ms/token', '')] + [
        (f'  {label}', '{:.2f} ({:.2f}-{:.2f}); {}, {}'.format(
            s[f'decode_ms_per_token_{name}'], *s[f'decode_ms_per_token_{name}_range'],
            *(f"{s[f'{key}_{name}']:.{digits}f}" if f'{key}_{name}' in s else 'n/a'
              for key, digits in (('decode_kernels_per_token', 0), ('decode_kernel_ms_per_token', 2)))))
        for name, (label, *_) in DECODE_VARIANTS.items() if f'decode_ms_per_token_{name}' in s]
    + [(f"  prefill of {s['prefix_tokens']} tokens, ms", f"{s['prefill_ms']:.1f}")],
    decode_agreement=lambda s, r: [
        ('compiled vs eager decoding: tokens differing / compared', f"{len(s['disagreements'])} / {s['tokens']}"),
        ('  logit |compiled - eager|, max (median of answers)',
         f"{s['max_logit_diff']:.4f} ({s['median_logit_diff_per_answer']:.4f})"),
        ('  eager top-2 margin, min (median)', f"{s['min_margin']:.4f} ({s['median_margin']:.4f})"),
        ('  every difference a near-tie (margin <= logit diff)', str(s['all_disagreements_near_ties']))],
)


def print_table(report: dict) -> None:
    rows = table_rows(report)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f'{name:<{width}} | {value}')


def main() -> None:
    args = parse_args()
    register_all_modules()
    device = torch.device(args.device)
    cfg = load_config(args.config, args.cfg_options)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = cfg.get('env_cfg', {}).get('cudnn_benchmark', False)
    points = stack_sweeps(load_demo_sweep(args.demo_dir), args.num_sweeps)
    grid, img_size = tuple(cfg.model.grid_size), tuple(args.img_size)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = args.tokenizer
        if tokenizer is None:
            from drivepi.testing import make_tiny_llm
            make_tiny_llm(Path(tmp), seed=0)
            tokenizer = tmp
        model = build_model(cfg, tokenizer, device)
        inputs, samples = make_batch(points, 1, img_size, grid, device, with_gt=False)
        train_inputs, train_samples = make_batch(points, args.train_batch, img_size, grid, device, with_gt=True)
        report = dict(config=args.config, device=str(device), torch=torch.__version__,
                      device_name=torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor(),
                      num_points=len(points), img_size=args.img_size, cudnn_benchmark=torch.backends.cudnn.benchmark,
                      params_m=sum(p.numel() for p in model.parameters()) / 1e6)
        sections = dict(
            training=lambda: bench_training(model, cfg, train_inputs, train_samples, device, args),
            inference=lambda: bench_inference(model.deploy(), inputs, samples, device, args),
            filter_sweep=lambda: filter_sweep(model.deploy(), inputs, samples, device, args),
            ada3d=lambda: ada3d_on_off(cfg, tokenizer, report.get('inference', {'error': 'not run'}), inputs,
                                       samples, device, args),
            attention=lambda: bench_attention(model.deploy(), inputs, samples, device, args),
            decode=lambda: bench_decode(model.deploy(), inputs, samples, device, args),
            decode_agreement=lambda: decode_agreement(model.deploy(), inputs, samples, device, args))
        for name in SECTIONS:
            if name in args.sections:
                run_section(report, name, sections[name])
        report['matmul_peak_tflops'] = matmul_peak_tflops(device)
        inf = report.get('inference', {'error': 'not run'})
        if 'error' not in inf:  # GFLOP/ms = TFLOP/s
            report['achieved_fraction_of_peak'] = inf['gflops'] / inf['latency_ms'] / report['matmul_peak_tflops']
    print_table(report)
    atomic_write_json(args.out, report)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
