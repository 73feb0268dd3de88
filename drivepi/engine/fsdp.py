"""Sharded training (FSDP) of DrivePI through MMEngine's ``FlexibleRunner`` (``configs/_base_/fsdp.py``).

FSDP shards the parameters, gradients and optimizer state over the processes. Each decoder layer of the LLM is
one FSDP unit (:func:`llm_layer_policy`), gathered only while it runs; the rest of DrivePI (LiDAR and camera
branches, fuser, heads, the LLM's embeddings and final norm) is the root unit. Activation checkpointing is the
LLM's own (``Qwen2LLM(gradient_checkpointing=True)``), which recomputes each decoder layer inside its unit.
"""
from collections import OrderedDict
from functools import partial
from typing import Optional

import torch
from mmengine._strategy import FSDPStrategy
from mmengine.optim import AmpOptimWrapper, BaseOptimWrapper
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel
from torch.distributed.fsdp._common_utils import FSDP_PREFIX
from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy
from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer

from drivepi.registry import FUNCTIONS, OPTIM_WRAPPERS, STRATEGIES


def is_llm_layer(module: nn.Module) -> bool:
    """Whether ``module`` is a decoder layer of the LLM: the unit that FSDP shards and gathers."""
    return isinstance(module, Qwen2DecoderLayer)


@FUNCTIONS.register_module()
def llm_layer_policy(module: nn.Module, recurse: bool, nonwrapped_numel: int) -> bool:
    """FSDP ``auto_wrap_policy``: one unit per LLM decoder layer (:func:`is_llm_layer`)."""
    return lambda_auto_wrap_policy(module, recurse, nonwrapped_numel, lambda_fn=is_llm_layer)


def unwrapped_name(name: str) -> str:
    """The name in the plain model of a module of the FSDP-wrapped one (without ``_fsdp_wrapped_module``)."""
    return (name + '.').replace(FSDP_PREFIX, '')[:-1]


def clip_global_grad_norm(model: FullyShardedDataParallel, params, max_norm: float,
                          norm_type: float = 2.0) -> torch.Tensor:
    """An OptimWrapper's ``clip_func`` under FSDP: clips by the norm of the whole gradient, reduced over the
    ranks by ``model`` (the root FSDP module), instead of the norm of ``params`` (this rank's shards)."""
    return model.clip_grad_norm_(max_norm, norm_type)


def _is_amp_wrapper(wrapper_type) -> bool:
    """Whether an ``optim_wrapper.type`` (name or class) is an ``AmpOptimWrapper``, e.g. ``GuardedAmpOptimWrapper``."""
    if isinstance(wrapper_type, str):
        wrapper_type = OPTIM_WRAPPERS.get(wrapper_type)
    return isinstance(wrapper_type, type) and issubclass(wrapper_type, AmpOptimWrapper)


@STRATEGIES.register_module()
class DrivePIFSDPStrategy(FSDPStrategy):
    """MMEngine's ``FSDPStrategy`` with the gradient norm of the whole model, checkpoints that load as a plain
    model's, and on CPU processes.

    MMEngine's OptimWrapper clips with ``torch.nn.utils.clip_grad_norm_`` over the parameters it holds; under
    FSDP those are this rank's shards, so every rank would measure (and log) a different, smaller norm and clip
    its shard by a different factor. Here the clip goes through :func:`clip_global_grad_norm`. Without CUDA
    (CI, gloo; see :mod:`drivepi.engine.distributed`) it runs FSDP on the CPU (:meth:`_run_on_cpu`).

    A state dict keeps each module's metadata (``_metadata``, e.g. ``{'version': 2}``) under the module's name,
    and FSDP names the modules of the wrapped model (``_fsdp_wrapped_module.lidar_branch...``) while it writes
    and reads the parameters under their plain names. mmdet3d's spconv modules read that version to tell their
    kernel layout (without it they permute the weights as spconv 1 kernels): a checkpoint of FSDP would not load
    in a plain model, nor a plain checkpoint under FSDP. Here the metadata is saved under the plain names and
    handed to FSDP under the wrapped ones.
    """

    def _wrap_model(self, model: nn.Module) -> FullyShardedDataParallel:
        if not torch.cuda.is_available():
            self._run_on_cpu()
        return super()._wrap_model(model)

    def _run_on_cpu(self) -> None:
        """Compute on the CPU (not on GPU ``LOCAL_RANK``), and gather checkpoints without offloading them to
        the CPU: they are there already, and torch's offload of CPU tensors crashes (SIGSEGV, torch 2.13)."""
        self.model_wrapper = dict(self.model_wrapper or {}, device_id='cpu')
        for config in (self.state_dict_config, self.optim_state_dict_config):
            config.offload_to_cpu = False

    def build_optim_wrapper(self, optim_wrapper, model: Optional[nn.Module] = None) -> BaseOptimWrapper:
        if isinstance(optim_wrapper, dict) and _is_amp_wrapper(optim_wrapper.get('type')):
            optim_wrapper.setdefault('use_fsdp', True)  # the sharded loss scaler (MMEngine: for 'AmpOptimWrapper')
        optim_wrapper = super().build_optim_wrapper(optim_wrapper, model)
        if optim_wrapper.clip_grad_kwargs and optim_wrapper.grad_name == 'grad_norm':
            optim_wrapper.clip_func = partial(clip_global_grad_norm, model)
        return optim_wrapper

    def model_state_dict(self) -> dict:
        state_dict = super().model_state_dict()
        metadata = getattr(state_dict, '_metadata', {})
        state_dict = OrderedDict(state_dict)
        state_dict._metadata = OrderedDict((unwrapped_name(name), meta) for name, meta in metadata.items())
        return state_dict

    def load_model_state_dict(self, state_dict: dict, **kwargs) -> None:
        metadata = getattr(state_dict, '_metadata', {})
        state_dict = OrderedDict(state_dict)
        state_dict._metadata = OrderedDict((name, metadata[unwrapped_name(name)]) for name, _ in
                                           self.model.named_modules() if unwrapped_name(name) in metadata)
        super().load_model_state_dict(state_dict, **kwargs)
