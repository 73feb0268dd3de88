"""Occupancy, flow and planning heads: shapes, channel-to-height layout, losses, errors."""
import pytest
import torch
import torch.nn.functional as F

from drivepi.geometry import OCC_GRID as GRID
from drivepi.registry import MODELS


def occ_head(**kw):
    return MODELS.build(dict(type='OccupancyHead', in_channels=8, mid_channels=8, grid_size=GRID, **kw))


def test_occupancy_head_shapes_and_labels():
    head = occ_head().eval()
    logits = head(torch.randn(2, 8, 25, 25))
    assert logits.shape == (2, 17) + GRID and logits.dtype == torch.float32
    labels = head.predict(logits)
    assert labels.shape == (2,) + GRID and labels.dtype == torch.uint8 and int(labels.max()) <= 16
    assert torch.equal(labels.long(), logits.argmax(1))


def test_channel_to_height_layout():
    """Output channel ``z * C + c`` of the last conv is class c at height z, for every (x, y)."""
    head = occ_head().eval()
    with torch.no_grad():
        head.out_conv.weight.zero_()
        head.out_conv.bias.copy_(torch.arange(17 * 16, dtype=torch.float32))
    logits = head(torch.randn(1, 8, 50, 50))
    z, c = torch.meshgrid(torch.arange(16), torch.arange(17), indexing='ij')
    expected = (z * 17 + c).float().T  # (C, Z)
    assert torch.equal(logits[0, :, 3, 150], expected) and torch.equal(logits[0, :, 199, 0], expected)


def test_bev_axes_map_to_grid_axes():
    """A feature at BEV cell (ix, iy) influences voxels near (8 ix, 8 iy), not the transposed cell."""
    head = occ_head().eval()
    bev = torch.randn(1, 8, 25, 25, requires_grad=True)
    head(bev)[0, :, 164, 36].sum().backward()
    grad = bev.grad.abs().sum((0, 1))
    assert grad[20, 4] > 0 and grad[4, 20] == 0


def test_occupancy_loss_is_ce_plus_lovasz_on_visible_voxels():
    head = occ_head()
    logits = torch.randn(1, 17, *GRID)
    gt = torch.randint(0, 17, (1,) + GRID)
    mask = torch.rand((1,) + GRID) < 0.3
    losses = head.loss(logits, gt, mask)
    voxel_logits = logits.permute(0, 2, 3, 4, 1)[mask]
    assert torch.allclose(losses['loss_occ_ce'], F.cross_entropy(voxel_logits, gt[mask]), atol=1e-5)
    from drivepi.models.losses import lovasz_softmax
    assert torch.allclose(losses['loss_occ_lovasz'], lovasz_softmax(voxel_logits.softmax(-1), gt[mask]))
    # invisible voxels do not count
    changed = logits.clone()
    changed.permute(0, 2, 3, 4, 1)[~mask] += 10 * torch.randn(17)
    assert torch.allclose(head.loss(changed, gt, mask)['loss_occ_ce'], losses['loss_occ_ce'])


def test_occupancy_loss_rejects_bad_gt():
    head = occ_head()
    logits = torch.zeros(1, 17, *GRID)
    with pytest.raises(ValueError, match='does not match'):
        head.loss(logits, torch.zeros(1, 100, 100, 16, dtype=torch.long), torch.ones(1, 100, 100, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 16\]'):
        head.loss(logits, torch.full((1,) + GRID, 17), torch.ones((1,) + GRID, dtype=torch.bool))
    with pytest.raises(ValueError, match='expects a BEV'):
        head(torch.zeros(1, 4, 25, 25))


def test_flow_head_shape_and_l1_on_occupied_voxels():
    head = MODELS.build(dict(type='FlowHead', in_channels=8, mid_channels=8, grid_size=GRID))
    flow = head(torch.randn(2, 8, 25, 25))
    assert flow.shape == (2,) + GRID + (2,)
    gt_flow = torch.randn_like(flow)
    gt_occ = torch.full((2,) + GRID, 16)
    gt_occ[0, 10:20, 30:40, 2:5] = 0
    gt_occ[1, 100, 100, 8] = 7
    occupied = gt_occ != 16
    expected = (flow - gt_flow).abs()[occupied].mean()
    assert torch.allclose(head.loss(flow, gt_flow, gt_occ)['loss_flow'], expected)
    assert head.loss(flow, gt_flow, torch.full((2,) + GRID, 16))['loss_flow'] == 0


def plan_head(**kw):
    return MODELS.build(dict(type='PlanningHead', in_channels=16, num_queries=3, hidden_channels=32, **kw))


def test_planning_head_is_command_conditioned():
    head = plan_head().eval()
    states = torch.randn(1, 3, 16).expand(3, -1, -1)
    traj = head(states, torch.tensor([0, 1, 2]))
    assert traj.shape == (3, 6, 2)
    assert not torch.allclose(traj[0], traj[1]) and not torch.allclose(traj[1], traj[2])
    with pytest.raises(ValueError, match='driving commands'):
        head(states, torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match=r'query states \(B, 3, 16\)'):
        head(torch.randn(3, 2, 16), torch.tensor([0, 1, 2]))


def test_planning_head_ego_status():
    head = plan_head(use_ego_status=True).eval()
    states, command = torch.randn(2, 3, 16), torch.tensor([2, 2])
    slow = head(states, command, torch.zeros(2, 5))
    fast = head(states, command, torch.tensor([[10.0, 0, 0, 0, 0]] * 2))
    assert not torch.allclose(slow, fast)
    with pytest.raises(ValueError, match='ego_status'):
        head(states, command)
    with pytest.raises(ValueError, match='ego_status'):
        head(states, command, torch.full((2, 5), float('nan')))


def test_planning_loss_masks_invalid_steps():
    head = plan_head()
    pred = torch.zeros(1, 6, 2)
    gt = torch.ones(1, 6, 2)
    gt[0, 4:] = 100.0  # past the scene end, masked out
    mask = torch.tensor([[1.0, 1, 1, 1, 0, 0]])
    losses = head.loss(pred, gt, mask, [[torch.zeros(0, 7)] * 6])
    assert torch.allclose(losses['loss_plan'], torch.tensor(1.0)) and losses['loss_plan_col'] == 0
    with pytest.raises(ValueError, match='gt_traj shape'):
        head.loss(pred, gt[:, :5], mask, [[torch.zeros(0, 7)] * 6])
