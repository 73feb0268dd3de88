"""Stop a training run cleanly when its wall-clock budget is spent (preemptible and time-limited jobs), and
optionally fit the run's schedule to that budget."""
import time
from typing import Optional, Sequence

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

    With ``fit_schedule`` a fresh run times its iterations ``measure[0]`` to ``measure[1]`` (the first ones
    build kernels and fill the loader) and then shortens ``max_iters`` to the iterations that fit the rest of the
    budget (times ``margin``), never lengthens it. Every parameter scheduler that ended at the old ``max_iters``
    is moved to end at the new one, a cosine's period with it, so the learning rate completes its decay instead
    of being cut off at its peak. A cosine that has begun is shortened too: MMEngine computes it in its chainable
    form, so from the fit on it decays from its current rate to its floor at the new end. (A scheduler that would
    not begin before the new end cannot be fitted: the hook says so and the budget alone stops the run.)

    The iteration time of the first fit leaves out the validations and checkpoint saves still to come (on the
    GPU mini recipe 8 of them, ~15 s each, cut the last 12 % of a fitted job, 2026-12-07). So after every
    validation of a fitted fresh run the fit is made again from the whole time per iteration since
    ``measure[0]``, overheads included, and shortens the run further where it must.
    The fitted length is saved in the checkpoints (``meta['fitted_max_iters']``) and a resumed run keeps it.

    Args:
        budget_s: seconds of training; None or <= 0: no budget (the hook does nothing).
        fit_schedule: fit ``max_iters`` and the schedules to the budget (above).
        measure: the iterations (start, end) whose mean duration the fit uses.
        margin: the share of the remaining budget the fitted iterations may take.
    """

    priority = 'LOWEST'   # after the CheckpointHook (VERY_LOW) has had its turn at this iteration

    def __init__(self, budget_s: Optional[float] = None, fit_schedule: bool = False,
                 measure: Sequence[int] = (10, 40), margin: float = 0.95) -> None:
        if not 0 <= measure[0] < measure[1]:
            raise ValueError(f'TrainTimeBudgetHook: measure must be (start, end) with 0 <= start < end, '
                             f'got {measure}')
        self.budget_s = budget_s if budget_s and budget_s > 0 else None
        self.fit_schedule, self.measure, self.margin = fit_schedule, tuple(measure), margin
        self.fitted_max_iters: Optional[int] = None
        self._start: Optional[float] = None
        self._measure_start: Optional[float] = None

    def before_train(self, runner) -> None:
        self._start = time.monotonic()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.budget_s is None:
            return
        if self.fit_schedule and self.fitted_max_iters is None:
            self._time_and_fit(runner)
        if self._over_budget():
            self._stop_and_save(runner)

    def after_val(self, runner) -> None:
        """Fit again with the time the validations and saves so far added to each iteration (class docstring)."""
        if self.budget_s is None or self.fitted_max_iters is None or self._measure_start is None:
            return
        done = runner.iter   # iterations finished: the loop validates after its counter moved on
        if done <= self.measure[1] or runner.train_loop.stop_training:
            return
        step_s = (time.monotonic() - self._measure_start) / (done - self.measure[0])
        # at least one more iteration: the CheckpointHook saves the last one only when it knows it is the last
        fit = self._end_within_budget(done, step_s, at_least=1)
        if fit < runner.train_loop.max_iters:
            self.fit(runner, fit, f'{step_s:.3f} s an iteration over iterations {self.measure[0]}-{done}, '
                                  f'validations and saves included')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.fitted_max_iters is not None:
            checkpoint['meta']['fitted_max_iters'] = self.fitted_max_iters

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        fitted = checkpoint.get('meta', {}).get('fitted_max_iters')
        if fitted is not None:   # the schedulers' fitted ends come back with their own state
            self.fitted_max_iters = fitted
            runner.train_loop._max_iters = fitted

    def _time_and_fit(self, runner) -> None:
        done = runner.iter + 1   # iterations finished
        if done == self.measure[0]:
            self._measure_start = time.monotonic()
        elif done == self.measure[1] and self._measure_start is not None:
            step_s = (time.monotonic() - self._measure_start) / (self.measure[1] - self.measure[0])
            fit = self._end_within_budget(done, step_s, at_least=0)
            self.fit(runner, fit, f'{step_s:.3f} s an iteration over iterations {self.measure[0]}-{done}')

    def _end_within_budget(self, done: int, step_s: float, at_least: int) -> int:
        """The iteration the run can end at: ``done`` plus the iterations of ``step_s`` seconds that fit
        ``margin`` of the budget left (at least ``at_least``); rank 0's answer on every rank."""
        left_s = self.budget_s - (time.monotonic() - self._start)
        return int(_from_rank0(done + max(int(self.margin * left_s / step_s), at_least)))

    def fit(self, runner, max_iters: int, why: str = '') -> None:
        """Shorten the run to ``max_iters`` (if shorter) and move the schedules that ended at the old end."""
        old = runner.train_loop.max_iters
        new = min(max_iters, old)
        self.fitted_max_iters = new
        if new == old:
            runner.logger.info(f'TrainTimeBudgetHook: {why}; the {old} iterations fit the budget')
            return
        moved = [s for s in _schedulers(runner) if s.end == old]
        unfit = [s for s in moved if s.begin >= new]
        if unfit:
            s = unfit[0]
            runner.logger.warning(f'TrainTimeBudgetHook: {why}; {type(s).__name__} (iterations {s.begin}-{old}) '
                                  f'cannot be fitted to {new} iterations (it would not begin): the schedule '
                                  f'stays, the budget stops the run')
            self.fitted_max_iters = old
            return
        for scheduler in moved:
            if getattr(scheduler, 'T_max', None) == old - scheduler.begin:
                scheduler.T_max = new - scheduler.begin
            scheduler.end = new
        runner.train_loop._max_iters = new
        runner.logger.info(f'TrainTimeBudgetHook: {why}; the schedule is fitted to {new} iterations '
                           f'(configured {old})')

    def _stop_and_save(self, runner) -> None:
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

    def _over_budget(self) -> bool:
        return bool(_from_rank0(float(time.monotonic() - self._start > self.budget_s)))


def _from_rank0(value: float) -> float:
    """Rank 0's ``value`` on every rank of a distributed run (its clock decides for all); ``value`` alone."""
    if get_dist_info()[1] == 1:
        return value
    nccl = torch.distributed.get_backend() == 'nccl'
    flag = torch.tensor([float(value)], dtype=torch.float64, device=torch.cuda.current_device() if nccl else 'cpu')
    torch.distributed.broadcast(flag, src=0)
    return flag.item()


def _schedulers(runner) -> list:
    """The run's parameter schedulers, flattened (MMEngine keeps a list, or a dict of lists per optimizer)."""
    schedulers = runner.param_schedulers or []
    if isinstance(schedulers, dict):
        return [s for group in schedulers.values() for s in group]
    return list(schedulers)
