"""The wall-clock training budget (TrainTimeBudgetHook) and the resume that does not reload skipped batches
(FastResumeIterBasedTrainLoop), on a toy model through MMEngine's Runner."""
import math

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from drivepi.registry import HOOKS
from drivepi.utils import register_all_modules

register_all_modules(init_default_scope=False)


class IndexDataset(Dataset):
    """Item i is ``dict(inputs=i)``; ``loaded`` lists every index the loader read."""

    def __init__(self, size: int = 7) -> None:
        self.size, self.loaded = size, []

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict:
        self.loaded.append(i)
        return dict(inputs=i)


class IndexModel(BaseModel):
    """A one-weight model whose ``seen`` lists the indices of every trained batch."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def forward(self, inputs, data_samples=None, mode='loss'):
        self.seen.append(inputs.tolist())
        return dict(loss=((self.w - inputs.float().mean()) ** 2).sum())


def make_runner(work_dir, max_iters: int, resume: bool = False, budget_s=None, model=None, **runner_args) -> Runner:
    runner_args.setdefault('custom_hooks', [dict(type='TrainTimeBudgetHook', budget_s=budget_s)])
    runner_args.setdefault('train_cfg', dict(type='FastResumeIterBasedTrainLoop', max_iters=max_iters))
    return Runner(
        model=model or IndexModel(), work_dir=str(work_dir), experiment_name='toy',
        train_dataloader=dict(dataset=IndexDataset(), batch_size=2, num_workers=0,
                              sampler=dict(type='InfiniteSampler', shuffle=True),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=100, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=100)),
        randomness=dict(seed=3), resume=resume, default_scope='drivepi', **runner_args)


def test_resume_trains_on_the_same_samples_without_loading_the_skipped_ones(tmp_path):
    straight = make_runner(tmp_path / 'straight', max_iters=8)
    straight.train()
    first = make_runner(tmp_path / 'chained', max_iters=5)
    first.train()   # the CheckpointHook saves the last iteration (5)
    second = make_runner(tmp_path / 'chained', max_iters=8, resume=True)
    second.train()
    assert first.model.seen + second.model.seen == straight.model.seen
    assert len(second.model.seen) == 3
    # only the trained batches were read (MMEngine's own skip reads the 5 skipped batches too)
    assert len(second.train_dataloader.dataset.loaded) == 3 * 2
    assert torch.equal(second.model.w, straight.model.w)


def test_budget_stops_at_once_and_saves_the_iteration(tmp_path):
    runner = make_runner(tmp_path, max_iters=50, budget_s=1e-9)
    runner.train()
    assert len(runner.model.seen) == 1      # stopped after the first iteration, not at max_iters
    assert (tmp_path / 'iter_1.pth').is_file()
    assert (tmp_path / 'last_checkpoint').read_text().strip().endswith('iter_1.pth')
    resumed = make_runner(tmp_path, max_iters=3, resume=True)
    resumed.train()
    assert len(resumed.model.seen) == 2     # continued at iteration 2 (no budget: ran to max_iters)


def test_no_budget_runs_to_max_iters(tmp_path):
    runner = make_runner(tmp_path, max_iters=4, budget_s=None)
    runner.train()
    assert len(runner.model.seen) == 4


class FakeClock:
    """``time.monotonic`` of the budget hook: one second per trained batch (``TickingModel``), else frozen."""
    now = 0.0

    @classmethod
    def monotonic(cls) -> float:
        return cls.now


class TickingModel(IndexModel):
    """An ``IndexModel`` whose every batch takes one second of ``FakeClock``; ``lrs`` records the learning rate."""

    def __init__(self) -> None:
        super().__init__()
        self.lrs = []

    def forward(self, inputs, data_samples=None, mode='loss'):
        FakeClock.now += 1.0
        return super().forward(inputs, data_samples, mode)


WARMUP, MAX_ITERS, ETA_MIN_RATIO = 10, 200, 0.02


@HOOKS.register_module(force=True)
class EveryIterLRRecorder(Hook):
    """Appends the learning rate each iteration trains with to the model's ``lrs``."""

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        runner.model.lrs.append(runner.optim_wrapper.optimizer.param_groups[0]['lr'])


def fitted_runner(work_dir, budget_s, margin=0.95, resume=False, measure=(2, 6), model=None,
                  **runner_args) -> Runner:
    """200 configured iterations: a 10-iteration linear warm-up, then a cosine to the end; a fitting budget hook."""
    return make_runner(
        work_dir, max_iters=MAX_ITERS, resume=resume, model=model or TickingModel(), **runner_args,
        param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=WARMUP),
                         dict(type='CosineAnnealingLR', by_epoch=False, begin=WARMUP, end=MAX_ITERS,
                              T_max=MAX_ITERS - WARMUP, eta_min_ratio=ETA_MIN_RATIO)],
        custom_hooks=[dict(type='TrainTimeBudgetHook', budget_s=budget_s, fit_schedule=True, measure=measure,
                           margin=margin),
                      dict(type='EveryIterLRRecorder')])


def cosine_lr(it: int, end: int) -> float:
    """The expected rate at iteration ``it`` of a cosine from 0.1 (iteration WARMUP) to 0.1 x ETA_MIN_RATIO."""
    eta_min = 0.1 * ETA_MIN_RATIO
    return eta_min + (0.1 - eta_min) * (1 + math.cos(math.pi * (it - WARMUP) / (end - WARMUP))) / 2


@pytest.fixture
def fake_clock(monkeypatch):
    import drivepi.engine.time_budget_hook as module
    FakeClock.now = 0.0
    monkeypatch.setattr(module, 'time', FakeClock)


def test_fit_schedule_shortens_the_run_and_completes_the_cosine(tmp_path, fake_clock):
    runner = fitted_runner(tmp_path, budget_s=100)
    runner.train()
    # iterations 3-6 took 1 s each; 94 s of the 100 were left at iteration 6: 6 + int(0.95 x 94) = 95
    fitted = 6 + int(0.95 * 94)
    assert runner.train_loop.max_iters == fitted == len(runner.model.seen)
    cosine = runner.param_schedulers[1]
    assert (cosine.end, cosine.T_max) == (fitted, fitted - WARMUP)
    # the rate decays along the fitted cosine and ends at its floor, not near its peak
    for it in (WARMUP, 50, fitted - 1):
        assert runner.model.lrs[it] == pytest.approx(cosine_lr(it, fitted), rel=1e-6)
    assert runner.model.lrs[-1] < 0.1 * 0.01 + 0.1 * ETA_MIN_RATIO
    assert torch.load(tmp_path / f'iter_{fitted}.pth', weights_only=False)['meta']['fitted_max_iters'] == fitted


def test_a_resumed_run_keeps_the_fitted_schedule(tmp_path, fake_clock):
    first = fitted_runner(tmp_path, budget_s=100, margin=2.0)   # fits 194 iterations, the budget stops it at 101
    first.train()
    fitted = 6 + int(2.0 * 94)
    assert len(first.model.seen) == 101 and first.train_loop.max_iters == fitted
    second = fitted_runner(tmp_path, budget_s=None, resume=True)  # configured 200, no budget
    second.train()
    assert len(second.model.seen) == fitted - 101
    assert second.model.lrs == pytest.approx([cosine_lr(it, fitted) for it in range(101, fitted)], rel=1e-6)


def test_fit_never_lengthens_and_shortens_a_started_cosine_to_its_floor(tmp_path, fake_clock):
    long_budget = fitted_runner(tmp_path / 'long', budget_s=10_000)
    long_budget.train()
    assert len(long_budget.model.seen) == MAX_ITERS and long_budget.param_schedulers[1].T_max == MAX_ITERS - WARMUP
    late = fitted_runner(tmp_path / 'late', budget_s=100, measure=(12, 20))   # the cosine began at 10
    late.train()
    fitted = 20 + int(0.95 * 80)
    assert late.train_loop.max_iters == fitted == len(late.model.seen)
    assert late.param_schedulers[1].T_max == fitted - WARMUP
    lrs = late.model.lrs
    assert lrs[WARMUP:21] == pytest.approx([cosine_lr(it, MAX_ITERS) for it in range(WARMUP, 21)], rel=1e-6)
    # MMEngine's chainable cosine: from the fit on it falls from its rate then to its floor at the new end
    eta_min, t0 = 0.1 * ETA_MIN_RATIO, 20 - WARMUP
    for it in (40, 70, fitted - 1):
        t = it - WARMUP
        expected = eta_min + (cosine_lr(20, MAX_ITERS) - eta_min) * (1 + math.cos(math.pi * t / (fitted - WARMUP))) \
            / (1 + math.cos(math.pi * t0 / (fitted - WARMUP)))
        assert lrs[it] == pytest.approx(expected, rel=1e-6)
    assert lrs[-1] < eta_min + 0.1 * 0.01


def test_fit_is_made_again_after_each_validation(tmp_path, fake_clock):
    """A validation every 20 iterations costs 10 s beside 1 s an iteration: the first fit (at iteration 6, 190
    iterations of the 200 s budget) would run out of time mid-cosine; fitted again after the first validation
    from the 28 s of iterations 2-20 (1.556 s each), the run ends at 20 + int(0.95 x 170 / 1.556) = 123 with its
    learning rate at the floor, every later validation finding that it still fits, inside the budget."""
    from mmengine.evaluator import BaseMetric
    from mmengine.registry import METRICS

    @METRICS.register_module(force=True)
    class SampleCount(BaseMetric):
        def process(self, data_batch, data_samples) -> None:
            self.results.append(len(data_samples))

        def compute_metrics(self, results) -> dict:
            return dict(samples=sum(results))

    class SlowValidationModel(TickingModel):
        def forward(self, inputs, data_samples=None, mode='loss'):
            if mode == 'loss':
                return super().forward(inputs, data_samples, mode)
            FakeClock.now += 10.0 / 4   # 4 batches of the 7-sample set: 10 s a validation
            return [dict(i=int(i)) for i in inputs]

    runner = fitted_runner(
        tmp_path, budget_s=200, model=SlowValidationModel(),
        train_cfg=dict(type='FastResumeIterBasedTrainLoop', max_iters=MAX_ITERS, val_interval=20),
        val_dataloader=dict(dataset=IndexDataset(), batch_size=2, num_workers=0,
                            sampler=dict(type='DefaultSampler', shuffle=False),
                            collate_fn=dict(type='default_collate')),
        val_evaluator=dict(type='SampleCount'), val_cfg=dict())
    runner.train()
    fitted = 20 + int(0.95 * 170 / (28 / 18))
    assert fitted == 123 and runner.train_loop.max_iters == fitted == len(runner.model.seen)
    assert FakeClock.now <= 200   # 123 iterations and 7 validations (the last at the end): 193 s
    assert runner.param_schedulers[1].T_max == fitted - WARMUP
    assert runner.model.lrs[-1] < 0.1 * ETA_MIN_RATIO + 0.1 * 0.01
