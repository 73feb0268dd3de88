"""Speed of the full-size DrivePI model: latency, decoding, training throughput, memory, FLOPs.

    python tools/benchmark.py [CONFIG] [--device cuda] [--out work_dirs/benchmark.json]

Inputs are one frame of the real nuScenes demo sweep stacked to ``--num-sweeps`` sweeps (see
``drivepi.benchmarking``), six camera images of ``--img-size`` with nuScenes calibration, and random
GT for training. The LLM is the config's architecture with random weights (speed does not depend on
the values) and the tokenizer of ``--tokenizer`` (default: a tiny one made on the fly: token ids only).
Timings are CUDA-synchronised medians of ``--iters`` runs after ``--warmup`` runs. Prints a table and
writes JSON atomically.
"""
import argparse
import contextlib
import platform
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from mmdet3d.structures import Det3DDataSample
from mmengine.config import Config, DictAction
from torch.utils.flop_counter import FlopCounterMode

from drivepi.benchmarking import DEFAULT_DEMO_DIR, load_demo_sweep, stack_sweeps, synchronized_clock
from drivepi.fileio import atomic_write_json
from drivepi.registry import MODELS
from drivepi.sim.calibration import camera_calibs
from drivepi.utils import register_all_modules

DEFAULT_CONFIG = 'configs/_base_/models/drivepi_qwen2.5-0.5b.py'
GRID = (200, 200, 16)
SECTIONS = ('inference', 'keep_ratio_sweep', 'ada3d', 'training', 'decode')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG, help='config with a `model` dict')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--num-sweeps', type=int, default=10)
    parser.add_argument('--img-size', type=int, nargs=2, default=[256, 704], help='H W')
    parser.add_argument('--train-batch', type=int, default=4, help='samples per training step')
    parser.add_argument('--keep-ratios', type=float, nargs='+', default=[0.1, 0.2, 0.5, 1.0])
    parser.add_argument('--decode-tokens', type=int, default=64)
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--tokenizer', help='tokenizer directory (default: a tiny one, made on the fly)')
    parser.add_argument('--demo-dir', type=Path, default=DEFAULT_DEMO_DIR)
    parser.add_argument('--out', type=Path, default=Path('work_dirs/benchmark.json'))
    parser.add_argument('--sections', nargs='+', default=list(SECTIONS), choices=SECTIONS,
                        help='what to measure (decode runs last: it merges LoRA adapters)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries')
    return parser.parse_args()


# ----------------------------------------------------------------------------- inputs
def ego2img_matrices(height: int, width: int) -> np.ndarray:
    """(6, 4, 4) ego -> image projections of the nuScenes cameras resized to ``width`` and cropped
    from the top to ``height`` (the usual 256x704 recipe)."""
    full_height = round(width * 900 / 1600)
    mats = []
    for calib in camera_calibs(width, full_height).values():
        intrinsic = np.eye(4)
        intrinsic[:3, :3] = calib.intrinsic
        intrinsic[1, 2] -= full_height - height
        mats.append(intrinsic @ np.linalg.inv(calib.cam2ego))
    return np.stack(mats).astype(np.float32)


def make_batch(points: torch.Tensor, batch_size: int, img_size: tuple, device: torch.device,
               with_gt: bool) -> tuple:
    """(inputs, data_samples) as ``Det3DDataPreprocessor`` would hand them to the model."""
    generator = torch.Generator().manual_seed(0)
    imgs = torch.randn(batch_size, 6, 3, *img_size, generator=generator).to(device)
    samples = []
    for _ in range(batch_size):
        sample = Det3DDataSample(metainfo=dict(
            ego2img=ego2img_matrices(*img_size), cam_valid=np.ones(6, dtype=bool), ego_fut_cmd=2,
            ego_status=np.array([5.0, 0.0, 0.2, 0.0, 0.01], dtype=np.float32)))
        if with_gt:
            sample.gt_occ = torch.randint(0, 17, GRID, generator=generator)
            sample.gt_flow = torch.randn(*GRID, 2, generator=generator)
            sample.gt_mask_camera = torch.ones(GRID, dtype=torch.bool)
            sample.gt_traj = torch.cumsum(torch.full((6, 2), 0.5), 0) * torch.tensor([5.0, 0.1])
            sample.gt_traj_mask = torch.ones(6)
            sample.gt_fut_boxes = [torch.tensor([[10.0, 3.0, 0.0, 4.5, 1.9, 1.6, 0.0]])] * 6
            sample.conversations = [[dict(question='Is there a car 10 m ahead?', answer='yes', type='exist')]]
        samples.append(sample)
    return dict(points=[points.to(device)] * batch_size, imgs=imgs), samples


def build_model(cfg: Config, tokenizer: str, device: torch.device, **overrides) -> torch.nn.Module:
    model_cfg = cfg.model.to_dict()
    model_cfg['llm'] = dict(model_cfg['llm'], tokenizer_path=tokenizer)
    for key, value in overrides.items():
        model_cfg[key] = dict(model_cfg[key], **value) if isinstance(value, dict) else value
    torch.manual_seed(0)
    return MODELS.build(model_cfg).to(device)


# ----------------------------------------------------------------------------- timing
def median_ms(fn, device: torch.device, iters: int, warmup: int) -> float:
    """Median wall time (ms) of ``fn()`` over ``iters`` synchronised runs after ``warmup`` runs."""
    times = []
    for i in range(warmup + iters):
        start = synchronized_clock(device)
        fn()
        if i >= warmup:
            times.append(1e3 * (synchronized_clock(device) - start))
    return statistics.median(times)


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
    """All-heads latency (no text generation), the LiDAR and camera branches alone, FLOPs, memory."""
    model.eval()
    with torch.no_grad(), autocast(device):
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(device)
        total = median_ms(lambda: model._forward(inputs, samples), device, args.iters, args.warmup)
        peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == 'cuda' else float('nan')
        lidar = median_ms(lambda: model.lidar_branch(inputs['points']), device, args.iters, args.warmup)
        _, aux = model.lidar_branch(inputs['points'])
        ego2img = torch.from_numpy(np.stack([s.ego2img for s in samples])).to(device)
        cam_valid = torch.ones(len(samples), 6, dtype=torch.bool, device=device)
        camera = median_ms(lambda: model.camera_branch(inputs['imgs'], ego2img, cam_valid), device,
                           args.iters, args.warmup)
        gflops = count_gflops(model, inputs, samples)
    return dict(latency_ms=total, lidar_ms=lidar, camera_ms=camera, peak_mem_gib=peak,
                gflops=gflops, num_voxels=int(aux['num_voxels']),
                num_kept_voxels=int(aux['num_kept_voxels']))


def count_gflops(model, inputs, samples) -> float:
    """GFLOPs of one all-heads forward counted by torch's FlopCounterMode (matmuls, convolutions,
    attention; spconv's sparse convolutions are custom ops and are not counted). Attention is counted
    in its eager form: the counter cannot read grouped-query SDPA shapes."""
    config = model.llm.causal_lm.config
    attn_implementation, config._attn_implementation = config._attn_implementation, 'eager'
    try:
        with FlopCounterMode(display=False) as counter:
            model._forward(inputs, samples)
    finally:
        config._attn_implementation = attn_implementation
    return counter.get_total_flops() / 1e9


def bench_decode(model, inputs, samples, device, num_tokens: int, iters: int) -> dict:
    """Per-token greedy decode latency with the KV cache after the full multimodal prefix, as configured
    and, for a LoRA model, with the adapters merged into the base weights (how one deploys it; this
    changes ``model``, so it runs last)."""
    result = decode_latency(model, inputs, samples, device, num_tokens, iters)
    if model.llm.train_mode == 'lora':
        model.llm.merge_lora()
        merged = decode_latency(model, inputs, samples, device, num_tokens, iters)
        result.update({f'{key}_lora_merged': value for key, value in merged.items()})
    return result


def decode_latency(model, inputs, samples, device, num_tokens: int, iters: int) -> dict:
    """Median ms per decoded token and prefill ms of the multimodal prefix."""
    from transformers import DynamicCache
    model.eval()
    lm = model.llm.causal_lm
    with torch.no_grad(), autocast(device):
        bev, _ = model.extract_feat(inputs, samples[:1])
        out = model._run_llm(bev[:1], samples[:1], [[]])
        prefix = out['embeds'][:1]

        def decode() -> list:
            cache = DynamicCache(config=lm.config)
            logits = lm(inputs_embeds=prefix, past_key_values=cache, use_cache=True).logits[:, -1]
            step_ms = []
            for _ in range(num_tokens):
                start = synchronized_clock(device)
                token = logits.argmax(-1, keepdim=True)
                logits = lm(input_ids=token, past_key_values=cache, use_cache=True).logits[:, -1]
                step_ms.append(1e3 * (synchronized_clock(device) - start))
            return step_ms
        decode()  # warm-up
        steps = [ms for _ in range(max(1, iters // 5)) for ms in decode()]
        prefill = median_ms(lambda: lm(inputs_embeds=prefix, use_cache=False), device, iters, 3)
    return dict(decode_ms_per_token=statistics.median(steps), prefill_ms=prefill, prefix_tokens=prefix.shape[1])


def bench_training(model, inputs, samples, device, args) -> dict:
    """Samples/s of full training steps (forward, losses, backward, AdamW) with bf16 autocast."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)

    def step() -> None:
        with autocast(device):
            losses = model.loss(inputs, samples)
        loss = sum(v for k, v in losses.items() if k.startswith('loss'))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    ms = median_ms(step, device, max(3, args.iters // 2), 3)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == 'cuda' else float('nan')
    return dict(step_ms=ms, batch_size=len(samples), samples_per_s=1e3 * len(samples) / ms, peak_mem_gib=peak,
                trainable_params_m=sum(p.numel() for p in params) / 1e6)


def keep_ratio_sweep(model, inputs, samples, device, args) -> dict:
    """All-heads latency and LLM spatial-token count per token keep ratio."""
    sweep, configured = {}, model.token_filter.keep_ratio
    for ratio in args.keep_ratios:
        model.token_filter.keep_ratio = ratio
        with torch.no_grad(), autocast(device):
            latency = median_ms(lambda: model._forward(inputs, samples), device, args.iters, args.warmup)
            tokens = int(model.token_filter(model.extract_feat(inputs, samples)[0])['keep_idx'].shape[1])
        sweep[str(ratio)] = dict(latency_ms=latency, tokens=tokens)
    model.token_filter.keep_ratio = configured
    return sweep


def ada3d_on_off(cfg, tokenizer, inference_on: dict, inputs, samples, device, args) -> dict:
    """LiDAR-branch and all-heads latency without the Ada3D voxel filter, beside the filtered model's."""
    if 'error' in inference_on:
        raise RuntimeError('the filtered model failed, nothing to compare')
    no_filter = build_model(cfg, tokenizer, device, lidar_branch=dict(voxel_filter=None)).eval()
    off = bench_inference(no_filter, inputs, samples, device, args)
    return dict(num_voxels=inference_on['num_voxels'], num_kept_voxels=inference_on['num_kept_voxels'],
                lidar_ms_on=inference_on['lidar_ms'], lidar_ms_off=off['lidar_ms'],
                latency_ms_on=inference_on['latency_ms'], latency_ms_off=off['latency_ms'])


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
        ('all-heads inference, ms/frame', f"{s['latency_ms']:.1f}"), ('  LiDAR branch, ms', f"{s['lidar_ms']:.1f}"),
        ('  camera branch, ms', f"{s['camera_ms']:.1f}"), ('  peak memory, GiB', f"{s['peak_mem_gib']:.2f}"),
        ('  GFLOPs/frame (counted)', f"{s['gflops']:.0f}"),
        ('  achieved fraction of matmul peak', f"{r.get('achieved_fraction_of_peak', float('nan')):.3f}")],
    keep_ratio_sweep=lambda s, r: [(f'keep ratio {k}: ms/frame, tokens', f"{v['latency_ms']:.1f}, {v['tokens']}")
                                   for k, v in s.items() if isinstance(v, dict)],
    ada3d=lambda s, r: [
        ('Ada3D voxels kept / all', f"{s['num_kept_voxels']} / {s['num_voxels']} "
         f"({100 * (1 - s['num_kept_voxels'] / s['num_voxels']):.0f}% removed)"),
        ('Ada3D LiDAR branch off / on, ms', f"{s['lidar_ms_off']:.1f} / {s['lidar_ms_on']:.1f} "
         f"({s['lidar_ms_off'] / s['lidar_ms_on']:.2f}x)"),
        ('Ada3D all heads off / on, ms', f"{s['latency_ms_off']:.1f} / {s['latency_ms_on']:.1f}")],
    training=lambda s, r: [(f"training, samples/s (batch {s['batch_size']})", f"{s['samples_per_s']:.2f}"),
                           ('  peak memory, GiB', f"{s['peak_mem_gib']:.2f}")],
    decode=lambda s, r: [('answer decode, ms/token', f"{s['decode_ms_per_token']:.2f}"),
                         (f"  prefill of {s['prefix_tokens']} tokens, ms", f"{s['prefill_ms']:.1f}")]
    + ([('  decode with LoRA merged, ms/token', f"{s['decode_ms_per_token_lora_merged']:.2f}")]
       if 'decode_ms_per_token_lora_merged' in s else []),
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
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    points = stack_sweeps(load_demo_sweep(args.demo_dir), args.num_sweeps)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = args.tokenizer
        if tokenizer is None:
            from drivepi.models.llm.tiny_llm import make_tiny_llm
            make_tiny_llm(Path(tmp), seed=0)
            tokenizer = tmp
        model = build_model(cfg, tokenizer, device)
        inputs, samples = make_batch(points, 1, tuple(args.img_size), device, with_gt=False)
        report = dict(config=args.config, device=str(device), torch=torch.__version__,
                      device_name=torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor(),
                      num_points=len(points), img_size=args.img_size,
                      params_m=sum(p.numel() for p in model.parameters()) / 1e6)
        train_inputs, train_samples = make_batch(points, args.train_batch, tuple(args.img_size), device, True)
        sections = dict(
            inference=lambda: bench_inference(model, inputs, samples, device, args),
            keep_ratio_sweep=lambda: keep_ratio_sweep(model, inputs, samples, device, args),
            ada3d=lambda: ada3d_on_off(cfg, tokenizer, report.get('inference', {'error': 'not run'}), inputs, samples, device, args),
            training=lambda: bench_training(model, train_inputs, train_samples, device, args),
            decode=lambda: bench_decode(model, inputs, samples, device, args.decode_tokens, args.iters))
        for name in SECTIONS:
            if name in args.sections:
                run_section(report, name, sections[name])
        report['matmul_peak_tflops'] = matmul_peak_tflops(device)
        inf = report.get('inference', {'error': 'not run'})
        if 'error' not in inf:
            report['achieved_fraction_of_peak'] = inf['gflops'] / inf['latency_ms'] / report['matmul_peak_tflops']  # GFLOP/ms = TFLOP/s
    print_table(report)
    atomic_write_json(args.out, report)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
