"""The wall-clock training budget (TrainTimeBudgetHook) and the resume that does not reload skipped batches
(FastResumeIterBasedTrainLoop), on a toy model through MMEngine's Runner."""
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

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


def make_runner(work_dir, max_iters: int, resume: bool = False, budget_s=None) -> Runner:
    return Runner(
        model=IndexModel(), work_dir=str(work_dir), experiment_name='toy',
        train_dataloader=dict(dataset=IndexDataset(), batch_size=2, num_workers=0,
                              sampler=dict(type='InfiniteSampler', shuffle=True),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(type='FastResumeIterBasedTrainLoop', max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=100, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=100)),
        custom_hooks=[dict(type='TrainTimeBudgetHook', budget_s=budget_s)],
        randomness=dict(seed=3), resume=resume, default_scope='drivepi')


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
