"""The spatial tokens' position embedding: metric cell centres of kept BEV positions, and their encoding."""
import pytest
import torch

from drivepi.models.llm.spatial_position import BEVPositionEmbedding, token_cell_centers

OCC_RANGE = [-40.0, -40.0, -1.0, 40.0, 40.0, 5.4]


def test_cell_centres_of_flattened_positions_known_values():
    # 50 x 50 BEV over 80 m: 1.6 m cells; position ix * 50 + iy
    keep_idx = torch.tensor([[0, 25 * 50, 25 * 50 + 25, 49 * 50 + 49, 3 * 50 + 7]])
    centres = token_cell_centers(keep_idx, (50, 50), OCC_RANGE)
    expected = torch.tensor([[[-39.2, -39.2], [0.8, -39.2], [0.8, 0.8], [39.2, 39.2], [-34.4, -28.0]]])
    torch.testing.assert_close(centres, expected)


def test_cell_centres_of_a_non_square_grid():
    # Hb = 4 cells along x (20 m each), Wb = 2 along y (40 m each): position 5 = (ix 2, iy 1)
    centres = token_cell_centers(torch.tensor([[5]]), (4, 2), OCC_RANGE)
    torch.testing.assert_close(centres, torch.tensor([[[10.0, 20.0]]]))


def test_embedding_shape_position_dependence_and_gradients():
    torch.manual_seed(0)
    embed = BEVPositionEmbedding(out_channels=24, point_cloud_range=OCC_RANGE, num_frequencies=6)
    keep_idx = torch.tensor([[0, 1, 2500 - 1], [1, 1, 0]])
    out = embed(keep_idx, (50, 50))
    assert out.shape == (2, 3, 24) and torch.isfinite(out).all()
    torch.testing.assert_close(out[1, 0], out[0, 1])   # same cell, same embedding, whatever the batch row
    torch.testing.assert_close(out[1, 2], out[0, 0])
    assert not torch.allclose(out[0, 0], out[0, 1])    # neighbouring cells (1.6 m apart) differ
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in embed.parameters())


def test_rejects_a_bad_range():
    with pytest.raises(ValueError, match='6 values'):
        BEVPositionEmbedding(out_channels=8, point_cloud_range=[-40, -40, 40, 40])
