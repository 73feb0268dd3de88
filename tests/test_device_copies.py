import pytest
import torch

from drivepi.device_copies import count_bins, count_indices, device_tensor, to_device


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


@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='the synchronisation-free count is the GPU path'))])
def test_count_bins_skips_negative_entries_without_a_host_synchronisation(device):
    bins = torch.tensor([2, -1, 0, 2, -1, 4, 2], device=device)
    if device == 'cuda':
        torch.cuda.set_sync_debug_mode('error')  # a host read (bincount's, boolean indexing) raises
    try:
        counts, indices = count_bins(bins, 5), count_indices(bins.clamp(min=0), 5)
    finally:
        if device == 'cuda':
            torch.cuda.set_sync_debug_mode('default')
    assert counts.device.type == device and counts.tolist() == [1, 0, 3, 0, 1]
    assert indices.tolist() == [3, 0, 3, 0, 1]  # the -1 entries counted at 0


def test_stack_to_device_converts_on_either_side_with_the_same_values():
    from drivepi.device_copies import stack_to_device
    values = [torch.tensor([1, 250], dtype=torch.uint8), torch.tensor([7, 0], dtype=torch.uint8)]
    wide = stack_to_device(values, 'cpu', torch.long)  # widened after the copy
    assert wide.dtype == torch.long and wide.tolist() == [[1, 250], [7, 0]]
    doubles = [torch.tensor([0.1, 2.5], dtype=torch.float64)] * 3
    narrow = stack_to_device(doubles, None, torch.float32)  # narrowed before it
    assert narrow.dtype == torch.float32 and torch.equal(narrow, torch.stack(doubles).float())
    assert stack_to_device([torch.ones(2, dtype=torch.bool)], 'cpu', torch.float32).tolist() == [[1.0, 1.0]]


def test_scalars_to_host_reads_every_value_as_a_float():
    from drivepi.device_copies import scalars_to_host
    read = scalars_to_host(dict(loss=torch.tensor(1.5), ratio=torch.tensor([0.25]), count=torch.tensor(3)))
    assert read() == dict(loss=1.5, ratio=0.25, count=3.0)
    assert scalars_to_host({})() == {}


@pytest.mark.skipif(not torch.cuda.is_available(), reason='pinned copies need a GPU')
def test_cuda_stack_and_scalars_round_trip():
    from drivepi.device_copies import scalars_to_host, stack_to_device
    values = [(torch.arange(1000) % 256).to(torch.uint8) for _ in range(3)]
    on_gpu = stack_to_device(values, 'cuda', torch.long)
    assert on_gpu.is_cuda and torch.equal(on_gpu.cpu(), torch.stack(values).long())
    read = scalars_to_host(dict(a=on_gpu.sum(), b=on_gpu.float().mean()))()
    assert read['a'] == float(torch.stack(values).long().sum())
    # a float32 mean of 3,000 values: the GPU sums them in another order (H100: 124.71599579, the CPU 124.71600342)
    assert read['b'] == pytest.approx(float(torch.stack(values).double().mean()), rel=1e-6)
