"""The training guard: an iteration whose loss, gradient norm or running statistics are not finite is not applied,
a run that keeps producing them stops with an error, and no checkpoint holds a non-finite weight.

Two parts, both on by default in every DrivePI config (``configs/_base_/``):

- :class:`GuardedOptimWrapper` / :class:`GuardedAmpOptimWrapper` (``optim_wrapper.type`` of the schedules; a
  config naming MMEngine's ``OptimWrapper`` or ``AmpOptimWrapper`` is upgraded to them by the hook): before each
  optimizer step they check that every loss back-propagated since the last step, the gradient norm and the
  model's floating-point buffers (BatchNorm running statistics, which the forward pass updates) are finite. On
  every process of a distributed run the flag is all-reduced (minimum), so all ranks skip or step together. A
  skipped step applies nothing (no optimizer or loss-scaler update; the hook puts the buffers, counters included,
  back as they were before the iteration) and the gradients are zeroed as usual. Cost per optimizer step: one
  more read of the gradients and the buffers, a copy of the buffers, and one host synchronisation. With float16
  autocast, non-finite gradients of a finite loss are the loss scaler's business (it skips the step and lowers
  the scale), so they do not count there.
- :class:`NonFiniteGuardHook` (``default_hooks.nonfinite_guard``): logs each skipped step with its iteration and
  what was not finite (the losses, the gradient norm, the buffers); after ``max_skipped_in_a_row`` skipped steps
  in a row it stops training with :class:`TrainingDivergedError`, naming the iteration, those values and the
  last good checkpoint (the one ``<work_dir>/last_checkpoint`` names, which ``--resume`` continues from); and it
  refuses to save a checkpoint with a non-finite weight or buffer (before the file is opened).

Finite but huge values are not caught before they overflow: a run at an absurd learning rate may apply a step or
two of finite garbage first (the weights of those checkpoints are finite).
"""
import logging
import math
from typing import List, Optional

import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict

from drivepi.registry import HOOKS, OPTIM_WRAPPERS

LISTED_NAMES = 8  # non-finite weights or buffers named in a message


class TrainingDivergedError(RuntimeError):
    """Training produced non-finite losses, gradients or weights: stopped before anything wrong was saved."""


def floating_buffers(module: Optional[torch.nn.Module]) -> List[torch.Tensor]:
    """The floating-point buffers of ``module`` (running statistics; integer counters left out)."""
    return [] if module is None else [b for b in module.buffers() if b.is_floating_point()]


def _all_finite(tensors: List[torch.Tensor]) -> torch.Tensor:
    """A 0-d bool tensor: every value of ``tensors`` is finite (exact: x * 0 is NaN only for NaN and inf)."""
    return torch.isfinite(torch.nn.utils.get_total_norm(torch._foreach_mul(tensors, 0.0)))


class NonFiniteGuardMixin:
    """The step guard of :class:`GuardedOptimWrapper` and :class:`GuardedAmpOptimWrapper` (see the module
    docstring). ``guard_module``: the model whose buffers are checked too (set by :class:`NonFiniteGuardHook`).
    Read by the hook: ``guard_steps`` (optimizer steps decided), ``guard_skipped`` (whether the last one was
    skipped), ``guard_skipped_in_a_row``, ``guard_grad_norm`` (the gradient norm of the last skipped step,
    unscaled; None when not measured)."""

    def _guard_init(self) -> None:
        self.guard_steps, self.guard_skipped, self.guard_skipped_in_a_row = 0, False, 0
        self.guard_grad_norm: Optional[float] = None
        self.guard_module: Optional[torch.nn.Module] = None
        self._guard_loss_finite: Optional[torch.Tensor] = None

    def _guard_state(self) -> None:
        if not hasattr(self, 'guard_steps'):  # a wrapper upgraded by NonFiniteGuardHook after it was built
            self._guard_init()

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        self._guard_state()
        finite = torch.isfinite(loss.detach()).all()
        self._guard_loss_finite = finite if self._guard_loss_finite is None else self._guard_loss_finite & finite
        super().backward(loss, **kwargs)

    def _checks_gradients(self) -> bool:
        """False under float16 autocast, whose loss scaler handles overflowing gradients itself."""
        return not (isinstance(self, AmpOptimWrapper) and self.cast_dtype == torch.float16)

    def _gradient_norm(self) -> Optional[torch.Tensor]:
        grads = [p.grad for group in self.optimizer.param_groups for p in group['params'] if p.grad is not None]
        return torch.nn.utils.get_total_norm(grads) if grads else None

    def step(self, **kwargs) -> None:
        """The wrapped optimizer's step, unless the loss, the gradient norm or a buffer of ``guard_module`` is
        not finite on any process."""
        self._guard_state()
        flags = [] if self._guard_loss_finite is None else [self._guard_loss_finite]
        norm = self._gradient_norm() if self._checks_gradients() else None
        if norm is not None:
            flags.append(torch.isfinite(norm))
        buffers = floating_buffers(self.guard_module)
        if buffers:
            flags.append(_all_finite(buffers))
        self._guard_loss_finite = None
        self.guard_steps += 1
        finite = True
        if flags:
            flag = torch.stack([f.to(flags[0].device) for f in flags]).all().to(torch.int32)
            all_reduce(flag, op='min')  # every process takes the same decision
            finite = bool(flag.item())
        self.guard_skipped = not finite
        if finite:
            self.guard_skipped_in_a_row, self.guard_grad_norm = 0, None
            super().step(**kwargs)
            return
        self.guard_skipped_in_a_row += 1
        scale = self.loss_scaler.get_scale() if isinstance(self, AmpOptimWrapper) else 1.0
        self.guard_grad_norm = None if norm is None else float(norm) / scale
        if self.guard_grad_norm is not None and self.clip_grad_kwargs and self.grad_name == 'grad_norm':
            # the log shows this step's norm, not the last applied step's (clipping, which logs it, did not run)
            self.message_hub.update_scalar('train/grad_norm', self.guard_grad_norm)


@OPTIM_WRAPPERS.register_module()
class GuardedOptimWrapper(NonFiniteGuardMixin, OptimWrapper):
    """MMEngine's ``OptimWrapper`` that does not apply a step whose loss or gradient norm is not finite."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._guard_init()


@OPTIM_WRAPPERS.register_module()
class GuardedAmpOptimWrapper(NonFiniteGuardMixin, AmpOptimWrapper):
    """MMEngine's ``AmpOptimWrapper`` that does not apply a step whose loss or gradient norm is not finite."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._guard_init()


GUARDED_WRAPPERS = {OptimWrapper: GuardedOptimWrapper, AmpOptimWrapper: GuardedAmpOptimWrapper}


def _wrappers(optim_wrapper) -> list:
    return list(optim_wrapper.values()) if isinstance(optim_wrapper, OptimWrapperDict) else [optim_wrapper]


def _value(value) -> float:
    return float(value.detach().float().mean()) if torch.is_tensor(value) else float(value)


def last_good_checkpoint(work_dir) -> Optional[str]:
    """The checkpoint ``<work_dir>/last_checkpoint`` names (written after each complete save), or None."""
    from mmengine.runner.checkpoint import find_latest_checkpoint
    try:
        return find_latest_checkpoint(str(work_dir)) or None
    except OSError:
        return None


@HOOKS.register_module()
class NonFiniteGuardHook(Hook):
    """Stops a diverging run and keeps non-finite weights out of checkpoints (module docstring).

    Args:
        max_skipped_in_a_row: optimizer steps skipped in a row (a non-finite loss, gradient norm or buffer) after
            which training stops with :class:`TrainingDivergedError`.
    """
    priority = 'LOW'  # after the LoggerHook (the iteration's losses are logged), before the CheckpointHook

    def __init__(self, max_skipped_in_a_row: int = 3) -> None:
        if int(max_skipped_in_a_row) < 1:
            raise ValueError(f'max_skipped_in_a_row must be at least 1, got {max_skipped_in_a_row}')
        self.max_skipped_in_a_row = int(max_skipped_in_a_row)
        self._steps_seen = {}
        self._skipped_iters: List[int] = []
        self._saved_buffers: Optional[List[torch.Tensor]] = None
        self._snapshot_due = True

    def before_train(self, runner) -> None:
        wrappers = _wrappers(runner.optim_wrapper)
        for wrapper in wrappers:
            if isinstance(wrapper, NonFiniteGuardMixin):
                continue
            guarded = GUARDED_WRAPPERS.get(type(wrapper))
            if guarded is None:
                raise TypeError(f'optim_wrapper {type(wrapper).__name__} has no non-finite step guard: use one of '
                                f'{[cls.__name__ for cls in GUARDED_WRAPPERS.values()]} (drivepi/engine/'
                                'nonfinite_guard.py), or turn the guard off with default_hooks.nonfinite_guard=None')
            name = type(wrapper).__name__
            wrapper.__class__ = guarded  # the same object with the guard's step; its state starts now
            wrapper._guard_state()
            print_log(f'optim_wrapper {name} runs as {guarded.__name__} (steps with a non-finite loss or gradient '
                      'norm are skipped)', logger='current')
        wrappers[0].guard_module = runner.model  # its buffers are checked once per step

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if not self._snapshot_due:
            return  # inside a gradient accumulation window: the buffers of its start are kept
        buffers = list(runner.model.buffers())  # running statistics and their counters
        saved = self._saved_buffers
        if saved is None or [b.shape for b in saved] != [b.shape for b in buffers]:
            self._saved_buffers = [b.detach().clone() for b in buffers]
        elif buffers:
            torch._foreach_copy_(saved, buffers)
        self._snapshot_due = False

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs: Optional[dict] = None) -> None:
        for wrapper in _wrappers(runner.optim_wrapper):
            if not isinstance(wrapper, NonFiniteGuardMixin) or not hasattr(wrapper, 'guard_steps'):
                continue
            if self._steps_seen.get(id(wrapper)) == wrapper.guard_steps:
                continue  # no optimizer step in this iteration (gradient accumulation)
            self._steps_seen[id(wrapper)] = wrapper.guard_steps
            self._snapshot_due = True
            if not wrapper.guard_skipped:
                self._skipped_iters = []
                continue
            self._skipped_iters.append(runner.iter + 1)
            bad_buffers = _nonfinite_names(_plain(runner.model).named_buffers())
            if self._saved_buffers:  # the iteration is not applied: running statistics included
                torch._foreach_copy_(list(runner.model.buffers()), self._saved_buffers)
            self._report(runner, wrapper, outputs or {}, bad_buffers)

    def _report(self, runner, wrapper, outputs: dict, bad_buffers: List[str]) -> None:
        iteration = runner.iter + 1
        bad = [f'{name}={_value(value):g}' for name, value in outputs.items() if not math.isfinite(_value(value))]
        norm = wrapper.guard_grad_norm
        if norm is not None and not math.isfinite(norm):
            bad.append(f'grad_norm={norm:g}')
        if bad_buffers:
            bad.append(f'{len(bad_buffers)} buffers ({_listing(bad_buffers)})')
        what = ', '.join(bad) if bad else 'nothing on this process: a value of another process was not finite'
        count = wrapper.guard_skipped_in_a_row
        if count < self.max_skipped_in_a_row:
            print_log(f'iteration {iteration}: optimizer step skipped, not finite: {what} ({count} in a row; '
                      f'training stops after {self.max_skipped_in_a_row})', logger='current', level=logging.WARNING)
            return
        first = self._skipped_iters[-count] if len(self._skipped_iters) >= count else iteration - count + 1
        raise TrainingDivergedError(
            f'training stopped at iteration {iteration}: the loss, gradient norm or running statistics were not '
            f'finite in {count} optimizer steps in a row (iterations {first}-{iteration}), none of them applied; '
            f'not finite at iteration {iteration}: {what}. No checkpoint with non-finite weights was written; '
            f'{_last_good(runner)} (lower optim_wrapper.optimizer.lr or check the inputs; '
            f'default_hooks.nonfinite_guard.max_skipped_in_a_row={self.max_skipped_in_a_row})')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        bad = _nonfinite_names((checkpoint.get('state_dict') or {}).items())
        if bad:
            raise TrainingDivergedError(f'not saving the checkpoint of iteration {runner.iter + 1}: {len(bad)} weights '
                                        f'are not finite ({_listing(bad)}); {_last_good(runner)}')


def _plain(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if is_model_wrapper(model) else model


def _nonfinite_names(named_tensors) -> List[str]:
    return [name for name, value in named_tensors
            if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all()]


def _listing(names: List[str]) -> str:
    more = len(names) - LISTED_NAMES
    return ', '.join(names[:LISTED_NAMES]) + (f', ... ({more} more)' if more > 0 else '')


def _last_good(runner) -> str:
    last = last_good_checkpoint(runner.work_dir)
    return (f'the last good checkpoint is {last}: `--resume` continues from it' if last else
            f'no checkpoint has been written in {runner.work_dir}')
