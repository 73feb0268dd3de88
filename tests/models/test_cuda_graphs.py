import pytest
import torch

from drivepi.models.cuda_graphs import GraphedFunction, autocast_cache_disabled


def test_autocast_cache_disabled_inside_and_restored_after_an_error():
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert torch.is_autocast_cache_enabled()
        with pytest.raises(ValueError):
            with autocast_cache_disabled():
                assert not torch.is_autocast_cache_enabled()
                assert torch.is_autocast_enabled('cpu')  # autocast itself stays on
                raise ValueError
        assert torch.is_autocast_cache_enabled()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs need a GPU')
def test_cuda_graph_captured_under_autocast_survives_the_region_and_a_later_capture():
    """The bf16 weight copies that autocast caches die with the autocast region; a graph that read them
    replays garbage (or an illegal memory access) once their memory is reused or released by the next
    capture. The camera branch's graph crashed this way on the H200."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 256).cuda()
    graphed = GraphedFunction(lambda x: layer(x).float())
    x = torch.randn(64, 256, device='cuda')
    with torch.no_grad():
        with torch.autocast('cuda', dtype=torch.bfloat16):
            layer(x)  # an eager call first fills the cast cache, as the model's other layers do
            graphed(x)
        filler = [torch.full((256, 256), float('nan'), device='cuda', dtype=torch.bfloat16) for _ in range(64)]
        other = GraphedFunction(lambda y: y * 2)
        other(torch.ones(8, device='cuda'))  # a second capture empties the allocator's cache
        with torch.autocast('cuda', dtype=torch.bfloat16):
            replayed = graphed(x)
            eager = layer(x).float()
    torch.cuda.synchronize()
    assert len(graphed.graphs) == 1 and len(filler) == 64
    torch.testing.assert_close(replayed, eager)
