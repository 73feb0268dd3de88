"""Ada3D-style BEV token filter: top-k selection, exact gather/scatter-back, gradients, targets."""
import numpy as np
import pytest
import torch

from drivepi.geometry import OCC_GRID
from drivepi.models.ada3d.targets import bev_targets_from_occupancy
from drivepi.models.ada3d.token_filter import gather_tokens, num_kept_tokens, scatter_tokens
from drivepi.registry import MODELS


def build_filter(keep_ratio: float, channels: int = 6):
    return MODELS.build(dict(type='BEVTokenFilter', in_channels=channels, keep_ratio=keep_ratio, hidden_channels=8))


@pytest.mark.parametrize('keep_ratio', [0.2, 0.25, 0.5, 1.0])
def test_keeps_round_ratio_top_scores_in_raster_order(keep_ratio):
    torch.manual_seed(0)
    token_filter = build_filter(keep_ratio)
    bev = torch.randn(2, 6, 9, 7)  # Hb = 9 (x), Wb = 7 (y)
    out = token_filter(bev)
    k = round(keep_ratio * 63)
    assert out['scores'].shape == (2, 63) and out['keep_idx'].shape == (2, k) and out['tokens'].shape == (2, k, 6)
    assert out['keep_idx'].dtype == torch.long
    for b in range(2):
        idx = out['keep_idx'][b].numpy()
        assert (np.diff(idx) > 0).all()  # ascending, unique
        scores = out['scores'][b].detach().numpy()
        top = set(np.argsort(-scores, kind='stable')[:k].tolist())
        assert set(idx.tolist()) == top
        for j, pos in enumerate(idx):  # flattened position = ix * Wb + iy
            torch.testing.assert_close(out['tokens'][b, j], bev[b, :, pos // 7, pos % 7], rtol=0, atol=0)


def test_gather_then_scatter_restores_exactly_and_pruned_keep_pre_llm_features():
    torch.manual_seed(1)
    token_filter = build_filter(0.3)
    bev = torch.randn(2, 6, 10, 10)
    out = token_filter(bev)
    torch.testing.assert_close(scatter_tokens(out['tokens'], out['keep_idx'], bev), bev, rtol=0, atol=0)
    llm_out = torch.randn_like(out['tokens'])
    merged = scatter_tokens(llm_out, out['keep_idx'], bev)
    kept = torch.zeros(2, 100, dtype=torch.bool)
    kept[torch.arange(2).unsqueeze(1), out['keep_idx']] = True
    kept = kept.view(2, 10, 10)
    for b in range(2):
        torch.testing.assert_close(merged[b][:, ~kept[b]], bev[b][:, ~kept[b]], rtol=0, atol=0)
        torch.testing.assert_close(gather_tokens(merged, out['keep_idx'])[b], llm_out[b], rtol=0, atol=0)
    assert kept.sum() == 2 * 30


def test_scorer_trained_by_task_gradient_and_token_loss():
    torch.manual_seed(2)
    token_filter = build_filter(0.5)
    bev = torch.randn(1, 6, 10, 10, requires_grad=True)
    out = token_filter(bev)
    out['tokens'].square().sum().backward()  # a stand-in LLM loss on the kept tokens only
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in token_filter.parameters())
    token_filter.zero_grad()
    gt_occ = torch.full((1,) + OCC_GRID, 16, dtype=torch.long)
    gt_occ[0, :40, :40, 2] = 0
    loss = token_filter.loss(token_filter(bev)['scores'], gt_occ, (10, 10))
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in token_filter.parameters())


def test_bev_targets_from_occupancy_hand_computed():
    gt_occ = torch.full((1,) + OCC_GRID, 16, dtype=torch.long)
    gt_occ[0, 5, 197, 3] = 7  # pedestrian in BEV cell (ix=1, iy=49) at stride 4
    gt_occ[0, 120, 8, 0] = 10  # driveable surface: not in fg_classes
    targets = bev_targets_from_occupancy(gt_occ, range(10), (50, 50))
    assert targets.shape == (1, 50, 50)
    assert targets.sum() == 1 and targets[0, 1, 49] == 1
    with pytest.raises(ValueError, match='does not divide'):
        bev_targets_from_occupancy(gt_occ, range(10), (30, 30))


def test_num_kept_tokens_and_bad_inputs():
    assert num_kept_tokens(0.25, 2500) == 625 and num_kept_tokens(0.001, 100) == 1
    with pytest.raises(ValueError, match=r'keep_ratio must lie in \(0, 1\]'):
        build_filter(1.5)
    token_filter = build_filter(0.5)
    with pytest.raises(ValueError, match=r'bev must be \(B, C, Hb, Wb\)'):
        token_filter(torch.randn(6, 10, 10))
    bev = torch.randn(1, 6, 4, 4)
    with pytest.raises(ValueError, match='do not fit'):
        scatter_tokens(torch.randn(1, 8, 5), torch.arange(8).unsqueeze(0), bev)
