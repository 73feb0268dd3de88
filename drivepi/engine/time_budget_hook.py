"""Stop a training run cleanly when its wall-clock budget is spent (preemptible and time-limited jobs)."""
import time
from typing import Optional

import torch
from mmengine.dist import get_dist_info
from mmengine.hooks import CheckpointHook, Hook

from drivepi.registry import HOOKS


@HOOKS.register_module()
class TrainTimeBudgetHook(Hook):
    """Ends training after ``budget_s`` seconds of the training loop and saves a checkpoint of that iteration.

    The clock starts at ``before_train`` (after the model, data and a resumed checkpoint are loaded). After each
    iteration past the budget the loop's ``stop_training`` flag is raised, and the ``CheckpointHook`` of the
    run saves the iteration (unless it just saved it), so ``--resume`` continues exactly there and the
    ``last_checkpoint`` file names it. In a distributed run rank 0's clock decides, so every rank stops at the
    same iteration.

    Args:
        budget_s: seconds of training; None or <= 0: no budget (the hook does nothing).
    """

    priority = 'LOWEST'   # after the CheckpointHook (VERY_LOW) has had its turn at this iteration

    def __init__(self, budget_s: Optional[float] = None) -> None:
        self.budget_s = budget_s if budget_s and budget_s > 0 else None
        self._start: Optional[float] = None

    def before_train(self, runner) -> None:
        self._start = time.monotonic()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.budget_s is None or not self._over_budget(runner):
            return
        runner.train_loop.stop_training = True
        runner.logger.info(f'TrainTimeBudgetHook: the {self.budget_s:.0f} s training budget is spent at '
                           f'iteration {runner.iter + 1}: saving and stopping')
        hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        if hook is None:
            raise RuntimeError('TrainTimeBudgetHook needs a CheckpointHook (default_hooks.checkpoint) to save '
                               'the last iteration')
        name = hook.filename_tmpl.format(runner.iter + 1)
        if not (hook.last_ckpt or '').endswith(name):
            hook._save_checkpoint(runner)

    def _over_budget(self, runner) -> bool:
        over = time.monotonic() - self._start > self.budget_s
        if get_dist_info()[1] > 1:   # rank 0 decides for all
            nccl = torch.distributed.get_backend() == 'nccl'
            flag = torch.tensor([float(over)], device=torch.cuda.current_device() if nccl else 'cpu')
            torch.distributed.broadcast(flag, src=0)
            over = bool(flag.item())
        return over
