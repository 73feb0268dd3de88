"""TensorSharingHook: the strategy reaches forked loader workers and their tensors arrive intact."""
import pytest
import torch
import torch.multiprocessing
from torch.utils.data import DataLoader, Dataset

from drivepi.engine import TensorSharingHook
from drivepi.utils import load_config


class _Samples(Dataset):
    """Samples of several tensors (as a DrivePI sample has) and the sharing strategy of the process that made them."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> dict:
        return dict(points=torch.arange(50.0).reshape(10, 5) + index,
                    grid=torch.full((4, 4, 2), index, dtype=torch.uint8),
                    boxes=[torch.full((k + 1, 7), float(index)) for k in range(3)],
                    strategy=torch.multiprocessing.get_sharing_strategy())


@pytest.fixture
def restore_strategy():
    before = torch.multiprocessing.get_sharing_strategy()
    yield
    torch.multiprocessing.set_sharing_strategy(before)


@pytest.mark.parametrize('strategy', ['file_system', 'file_descriptor'])
def test_forked_workers_send_with_the_hooks_strategy(strategy, restore_strategy):
    TensorSharingHook(strategy).before_run(None)
    loader = DataLoader(_Samples(), batch_size=3, num_workers=2, collate_fn=list, multiprocessing_context='fork')
    samples = [sample for batch in loader for sample in batch]
    assert [s['strategy'] for s in samples] == [strategy] * 6
    for index, sample in enumerate(samples):
        assert torch.equal(sample['points'], torch.arange(50.0).reshape(10, 5) + index)
        assert torch.equal(sample['grid'], torch.full((4, 4, 2), index, dtype=torch.uint8))
        assert [b.shape[0] for b in sample['boxes']] == [1, 2, 3] and all((b == index).all() for b in sample['boxes'])


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match=r"strategy must be one of \['file_descriptor', 'file_system'\], got 'shm'"):
        TensorSharingHook('shm')


def test_every_config_shares_by_file_name():
    for config in ('configs/drivepi/drivepi_mini.py', 'configs/drivepi/drivepi_mini_long_no_questions.py',
                   'configs/drivepi/drivepi_qwen2.5-0.5b_8xb4-24e_nuscenes-openocc.py'):
        hook = load_config(config).default_hooks['tensor_sharing']
        assert (hook['type'], hook['strategy']) == ('TensorSharingHook', 'file_system'), config
