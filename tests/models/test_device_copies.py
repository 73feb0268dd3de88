import pytest
import torch

from drivepi.models.device_copies import count_indices, device_tensor, to_device


def test_to_device_on_the_cpu_and_without_a_device():
    x = torch.arange(6).view(2, 3)
    assert to_device(x, None) is x
    assert to_device(x, 'cpu') is x  # torch's .to returns the tensor itself when nothing changes
    t = device_tensor([0.5, 1.5], torch.float32, torch.device('cpu'))
    assert t.dtype == torch.float32 and t.tolist() == [0.5, 1.5]


@pytest.mark.skipif(not torch.cuda.is_available(), reason='pinned copies need a GPU')
def test_cuda_pinned_copy_keeps_the_values_of_the_moment_it_was_queued():
    x = torch.arange(100_000)
    y = to_device(x, 'cuda')
    x.zero_()  # the queued copy reads a pinned snapshot, not x
    assert y.is_cuda and torch.equal(y.cpu(), torch.arange(100_000))
    assert to_device(y, 'cuda') is y


def test_count_indices_equals_bincount_with_minlength():
    index = torch.tensor([0, 3, 3, 1, 3, 0])
    assert count_indices(index, 6).tolist() == [2, 1, 0, 3, 0, 0]
    assert torch.equal(count_indices(index, 6), torch.bincount(index, minlength=6))
    assert count_indices(torch.zeros(0, dtype=torch.long), 2).tolist() == [0, 0]
