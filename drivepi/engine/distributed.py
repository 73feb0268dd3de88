"""The training runner of a config, and distributed runs on machines without CUDA.

``tools/train.py`` builds MMEngine's ``Runner`` (data parallel, torch DDP, under ``tools/dist_train.sh``) or,
for a config with ``runner_type = 'FlexibleRunner'``, MMEngine's ``FlexibleRunner`` with the config's
``strategy`` (the sharded configs: FSDP, :mod:`drivepi.engine.fsdp`).

MMEngine's distributed set-up assumes GPUs: it initialises the process group with ``env_cfg.dist_cfg``'s
backend (NCCL, ``configs/_base_/default_runtime.py``) after ``torch.cuda.set_device(LOCAL_RANK)``, and wraps
the model in DDP with ``device_ids=[LOCAL_RANK]``. On a machine without CUDA (CI, a laptop) each of these fails;
:func:`setup_cpu_distributed` makes the same config run there on gloo.
"""
from typing import Union

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.runner import FlexibleRunner, Runner

from drivepi.engine.checkpoint_loading import resume_checkpoint
from drivepi.registry import RUNNERS

CPU_BACKEND = 'gloo'
# The DDP wrapper MMEngine's Runner builds when the config has no model_wrapper_cfg (Runner.wrap_model)
RUNNER_DDP = dict(type='MMDistributedDataParallel', broadcast_buffers=False)


def setup_cpu_distributed(cfg: Config) -> None:
    """Let a run under torchrun (``cfg.launcher == 'pytorch'``: ``tools/dist_train.sh``) train on CPU processes
    when CUDA is unavailable; on a CUDA machine the config is left as it is (NCCL).

    Sets ``env_cfg.dist_cfg.backend`` to gloo and initialises the process group with it from torchrun's
    environment (MMEngine then skips its own initialisation, which would pin a GPU), and builds the Runner's
    DDP wrapper without ``device_ids`` (a CPU module). A FlexibleRunner's FSDP wrapper is put on CPU by
    :class:`drivepi.engine.fsdp.DrivePIFSDPStrategy`.
    """
    if cfg.launcher != 'pytorch' or torch.cuda.is_available():
        return
    cfg.env_cfg.dist_cfg = dict(cfg.env_cfg.get('dist_cfg') or {}, backend=CPU_BACKEND)
    if 'strategy' not in cfg:
        cfg.model_wrapper_cfg = {**RUNNER_DDP, 'find_unused_parameters': cfg.get('find_unused_parameters', False),
                                 **(cfg.get('model_wrapper_cfg') or {}), 'device_ids': None}
    dist.init_process_group(backend=CPU_BACKEND)


def build_runner(cfg: Config) -> Union[Runner, FlexibleRunner]:
    """The config's runner: ``Runner``, or the registered ``cfg.runner_type`` (``'FlexibleRunner'``), after
    :func:`setup_cpu_distributed`. An automatic resume (``resume=True`` without ``load_from``) continues from
    :func:`drivepi.engine.checkpoint_loading.resume_checkpoint`: the newest intact checkpoint when the one
    ``last_checkpoint`` names is truncated."""
    setup_cpu_distributed(cfg)
    if cfg.get('resume') and cfg.get('load_from') is None and cfg.get('work_dir'):
        cfg.load_from = resume_checkpoint(cfg.work_dir)
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
