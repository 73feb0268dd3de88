"""tools/dist_train.sh on 2 CPU processes (gloo): data-parallel (torch DDP) and sharded (FSDP) training of the
mini model against one process, and a 2-process checkpoint resumed in one process.

The same global batch of 2 samples in one process is 2 iterations of 1 sample with gradient accumulation
(``optim_wrapper.accumulative_counts=2``): the mean of the two samples' gradients, which is what DDP and FSDP
compute from one sample per process. One process with batch 2 would differ by design: the losses average over
the batch's answer tokens and voxels, and batch norm over its samples. So losses, gradient norms and weights
must match that reference. Every run starts from the same weights and sees the same samples: a fixed sampler
seed, the test pipeline (no augmentation), the Lovasz loss on every voxel (no random subset). Every run trains
the LLM as the sharded configs do (in full, activation checkpointing, a tenth of the learning rate), the mini
model's tiny Qwen2 standing in for Qwen2.5-1.5B.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from test_train_test import REPO, mini_config, run_tool  # noqa: F401  (the fixture mini_config, by name)

from drivepi.engine.checkpoint_loading import load_model_checkpoint
from drivepi.registry import MODELS
from drivepi.utils import register_all_modules

ITERS = 2  # iterations of the 2-process runs; the reference runs twice as many of one sample each
CONFIGS = REPO / 'configs'
SHARDED_CONFIGS = {'drivepi_qwen2.5-1.5b_fsdp_8xb4-24e_nuscenes-openocc': 1.54e9,  # parameters of the LLM
                   'drivepi_qwen2.5-3b_fsdp_8xb4-24e_nuscenes-openocc': 3.09e9}   # (Qwen2.5 model cards)
SHARDED_LLM_TRAINING = ('train_mode', 'gradient_checkpointing', 'dtype', 'cuda_graphs')  # of model.llm


@pytest.fixture(scope='module')
def start(request, tmp_path_factory) -> dict:
    """The run config, on the mini config of tools/train.py's test (deterministic, a checkpoint every iteration,
    per-iteration logs, from ``init.pth``) and the model built from it, whose initial weights ``init.pth`` holds."""
    folder = tmp_path_factory.mktemp('dist_train')
    config = folder / 'config.py'
    sharded = Config.fromfile(CONFIGS / 'drivepi' / f'{next(iter(SHARDED_CONFIGS))}.py')
    llm = {key: sharded.model.llm[key] for key in SHARDED_LLM_TRAINING}
    config.write_text(
        f"_base_ = ['{request.getfixturevalue('mini_config')}']\n"
        "train_dataloader = dict(batch_size=1, sampler=dict(seed=0), dataset=dict(pipeline={{_base_.test_pipeline}}))\n"
        f"model = dict(llm={llm!r}, heads=dict(occ=dict(loss_lovasz=dict(max_voxels=None))))\n"
        f"optim_wrapper = dict(paramwise_cfg={sharded.optim_wrapper.paramwise_cfg.to_dict()!r})\n"
        "default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=-1))\n"
        "log_processor = dict(window_size=1)\n"
        "param_scheduler = []\n")
    register_all_modules()
    model = MODELS.build(Config.fromfile(config).model)
    torch.save(dict(state_dict=model.state_dict()), folder / 'init.pth')
    config.write_text(config.read_text() + f"load_from = '{folder / 'init.pth'}'\n")
    return dict(config=config, model=model)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def dist_train(config: Path, work: Path) -> None:
    """``bash tools/dist_train.sh CONFIG 2`` as a user runs it; fails with its output if it fails."""
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()))
    proc = subprocess.run(['bash', 'tools/dist_train.sh', str(config), '2', '--work-dir', str(work),
                           '--cfg-options', f'train_cfg.max_iters={ITERS}'],
                          cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f'dist_train.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'


@pytest.fixture(scope='module')
def reference(start, tmp_path_factory) -> Path:
    """One process, 1 sample per iteration, gradients of 2 iterations per step."""
    work = tmp_path_factory.mktemp('one_process')
    run_tool('tools/train.py', start['config'], '--work-dir', work, '--cfg-options',
             f'train_cfg.max_iters={2 * ITERS}', 'optim_wrapper.accumulative_counts=2')
    return work


@pytest.fixture(scope='module')
def ddp(start, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp('ddp')
    dist_train(start['config'], work)
    return work


def logged(work: Path) -> dict:
    """The scalars logged at each iteration (rank 0's): ``{iteration: {name: value}}``."""
    lines = next(work.glob('*/vis_data/scalars.json')).read_text().splitlines()
    return {entry['iter']: entry for entry in map(json.loads, lines)}


def load(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=False)


def parameter_names(model: torch.nn.Module) -> list:
    """In the order of the optimizer's parameters (``model.parameters()``)."""
    return [name for name, _ in model.named_parameters()]


def assert_matches_reference(work: Path, reference: Path, model: torch.nn.Module) -> None:
    """Iteration i of 2 processes against iterations 2i - 1 and 2i of the reference: rank 0's sample is the
    first of each global batch (the sampler deals the shuffled samples out in turn), so its losses are those
    of iteration 2i - 1; the step's gradient norm is logged at 2i; the weights after the step are equal. Batch
    norm's running statistics are per process, as MMEngine's DDP keeps them (broadcast_buffers=False), and are
    not compared: rank 0's saw half the samples. The last checkpoint loads in one process (into ``model``),
    through the checkpoint check of every tool."""
    assert sorted(p.name for p in work.glob('*.pth')) == [f'iter_{i}.pth' for i in range(1, ITERS + 1)]
    runs, ones = logged(work), logged(reference)
    for i in range(1, ITERS + 1):
        losses = {k: v for k, v in runs[i].items() if k.startswith('loss')}
        assert losses == pytest.approx({k: ones[2 * i - 1][k] for k in losses}, rel=1e-5, abs=1e-6), i
        assert runs[i]['grad_norm'] == pytest.approx(ones[2 * i]['grad_norm'], rel=1e-5), i
        weights = load(work / f'iter_{i}.pth')['state_dict']
        expected = load(reference / f'iter_{2 * i}.pth')['state_dict']
        for name in parameter_names(model):
            torch.testing.assert_close(weights[name], expected[name], msg=lambda m: f'iteration {i}, {name}: {m}')
    with torch.no_grad():  # every weight compared below is then the checkpoint's
        for param in model.parameters():
            param.zero_()
    load_model_checkpoint(model, work / f'iter_{ITERS}.pth')
    loaded = model.state_dict()
    for name in parameter_names(model):
        torch.testing.assert_close(loaded[name], expected[name], msg=name)


def test_ddp_on_two_processes_matches_one_process(start, reference, ddp):
    assert_matches_reference(ddp, reference, start['model'])


def adamw_step(weight: torch.Tensor, state: dict, group: dict) -> torch.Tensor:
    """``torch.optim.AdamW``'s update of ``weight`` by the moments after the step (``state``: ``exp_avg``,
    ``exp_avg_sq``, ``step``) with the hyper-parameters of its ``group``."""
    step, (beta1, beta2), lr = float(state['step']), group['betas'], group['lr']
    denom = (state['exp_avg_sq'] / (1 - beta2 ** step)).sqrt() + group['eps']
    return weight * (1 - lr * group['weight_decay']) - lr / (1 - beta1 ** step) * state['exp_avg'] / denom


def test_ddp_checkpoint_resumes_in_one_process(start, ddp, tmp_path):
    """The 2-process checkpoint of iteration 1 resumes in one process with the same global batch (2 samples per
    iteration): the run continues at iteration 2, and its step is exactly one AdamW step from the checkpoint's
    weights, with the AdamW state continued (step count 2)."""
    log = run_tool('tools/train.py', start['config'], '--work-dir', tmp_path, '--resume', ddp / 'iter_1.pth',
                   '--cfg-options', f'train_cfg.max_iters={ITERS}', 'train_dataloader.batch_size=2')
    assert 'resumed epoch: 0, iter: 1' in log and 'Iter(train) [2/2]' in log and 'Iter(train) [1/2]' not in log
    resumed, before = load(tmp_path / 'iter_2.pth'), load(ddp / 'iter_1.pth')['state_dict']
    assert resumed['meta']['iter'] == 2
    names, groups = parameter_names(start['model']), resumed['optimizer']['param_groups']
    assert sorted(index for group in groups for index in group['params']) == list(range(len(names)))
    for group in groups:
        for index in group['params']:
            state, name = resumed['optimizer']['state'][index], names[index]
            assert state['step'] == 2, name
            torch.testing.assert_close(resumed['state_dict'][name], adamw_step(before[name], state, group), msg=name)


def test_fsdp_on_two_processes_matches_one_process(start, reference, tmp_path):
    """The sharded configs' runner and strategy (configs/_base_/fsdp.py) on the mini model: the parameters
    sharded over 2 processes, the LLM layers gathered one at a time; the gradient norm is the whole model's
    (DrivePIFSDPStrategy), one checkpoint file that loads in one process."""
    config = tmp_path / 'fsdp.py'
    config.write_text(f"_base_ = ['{start['config']}', '{CONFIGS / '_base_' / 'fsdp.py'}']\n")
    dist_train(config, tmp_path / 'work')
    assert_matches_reference(tmp_path / 'work', reference, start['model'])


@pytest.mark.parametrize('name', SHARDED_CONFIGS)
def test_sharded_config(name):
    """The sharded configs run FSDP through the FlexibleRunner on Qwen2.5 architectures of the right size."""
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Config.fromfile(CONFIGS / 'drivepi' / f'{name}.py')
    assert cfg.runner_type == 'FlexibleRunner' and cfg.strategy.type == 'drivepi.DrivePIFSDPStrategy'
    llm = cfg.model.llm
    assert llm.train_mode == 'full' and llm.gradient_checkpointing and llm.dtype == 'float32'
    assert cfg.optim_wrapper.type == 'GuardedAmpOptimWrapper' and cfg.optim_wrapper.dtype == 'bfloat16'
    with torch.device('meta'):
        params = sum(p.numel() for p in Qwen2ForCausalLM(Qwen2Config(**llm.llm_config)).parameters())
    assert params == pytest.approx(SHARDED_CONFIGS[name], rel=0.01)
