"""Occupancy, flow and planning heads on the head contract: shapes, channel-to-height layout, losses read
from data samples, predictions written into them, errors."""
import pytest
import torch
import torch.nn.functional as F
from mmdet3d.structures import Det3DDataSample

from drivepi.geometry import OCC_GRID
from drivepi.models.heads import HeadInputs, stack_field
from drivepi.registry import MODELS

GRID = OCC_GRID


SMALL = (16, 16, 4)  # a grid for the loss tests (the losses do not depend on the grid's size)


def occ_head(**kw):
    return MODELS.build(dict(dict(type='OccupancyHead', in_channels=8, mid_channels=8, grid_size=GRID, num_classes=17),
                             **kw))


def bev_inputs(bev: torch.Tensor) -> HeadInputs:
    return HeadInputs(bev=bev, plan_states=torch.zeros(bev.shape[0], 1, 1))


def samples(n: int, **fields) -> list:
    """n data samples; each keyword is a batch tensor split over them (``meta_*``: metainfo)."""
    out = []
    for i in range(n):
        ds = Det3DDataSample(metainfo={k[5:]: v[i] for k, v in fields.items() if k.startswith('meta_')})
        for key, value in fields.items():
            if not key.startswith('meta_'):
                setattr(ds, key, value[i])
        out.append(ds)
    return out


@pytest.fixture(params=['host', 'gpu'])
def loss_path(request, monkeypatch):
    """The heads' two loss paths: 'host' indexes the counted voxels (CPU tensors), 'gpu' weighs the others out
    (what runs on a GPU, without reading a mask back), taken here on the CPU."""
    if request.param == 'gpu':
        from drivepi.models.heads import flow_head, occupancy_head
        monkeypatch.setattr(occupancy_head, 'host_reads_are_free', lambda tensor: False)
        monkeypatch.setattr(flow_head, 'host_reads_are_free', lambda tensor: False)
    return request.param


def test_occupancy_head_shapes_and_predictions():
    head = occ_head().eval()
    batch = samples(2)
    out = head.predict(bev_inputs(torch.randn(2, 8, 25, 25)), batch)
    assert out['occ_logits'].shape == (2,) + GRID + (17,) and out['occ_logits'].dtype == torch.float32
    for ds, logits in zip(batch, out['occ_logits']):
        assert ds.pred_occ.shape == GRID and ds.pred_occ.dtype == torch.uint8 and int(ds.pred_occ.max()) <= 16
        assert torch.equal(ds.pred_occ.long(), logits.argmax(-1))


def test_channel_to_height_layout():
    """Output channel ``z * C + c`` of the last conv is class c at height z, for every (x, y)."""
    head = occ_head().eval()
    with torch.no_grad():
        head.decoder.out_conv.weight.zero_()
        head.decoder.out_conv.bias.copy_(torch.arange(17 * 16, dtype=torch.float32))
    logits = head(bev_inputs(torch.randn(1, 8, 50, 50)))['occ_logits']
    z, c = torch.meshgrid(torch.arange(16), torch.arange(17), indexing='ij')
    expected = (z * 17 + c).float()  # (Z, C)
    assert torch.equal(logits[0, 3, 150], expected) and torch.equal(logits[0, 199, 0], expected)


def test_bev_axes_map_to_grid_axes():
    """A feature at BEV cell (ix, iy) influences voxels near (8 ix, 8 iy), not the transposed cell."""
    head = occ_head().eval()
    bev = torch.randn(1, 8, 25, 25, requires_grad=True)
    head(bev_inputs(bev))['occ_logits'][0, 164, 36].sum().backward()
    grad = bev.grad.abs().sum((0, 1))
    assert grad[20, 4] > 0 and grad[4, 20] == 0


def test_occupancy_loss_is_ce_plus_lovasz_on_visible_voxels(loss_path):
    head = occ_head(grid_size=SMALL)
    logits = torch.randn((1,) + SMALL + (17,))
    gt = torch.randint(0, 17, (1,) + SMALL)
    mask = torch.rand((1,) + SMALL) < 0.3
    losses = head.loss_by_feat(dict(occ_logits=logits), samples(1, gt_occ=gt, gt_mask_camera=mask))
    assert torch.allclose(losses['loss_occ_ce'], F.cross_entropy(logits[mask], gt[mask]), atol=1e-5)
    from drivepi.models.losses import lovasz_softmax
    assert torch.allclose(losses['loss_occ_lovasz'], lovasz_softmax(logits[mask].softmax(-1), gt[mask]))
    changed = logits.clone()  # invisible voxels do not count
    changed[~mask] += 10 * torch.randn(17)
    assert torch.allclose(head.loss_by_feat(dict(occ_logits=changed), samples(1, gt_occ=gt, gt_mask_camera=mask))
                          ['loss_occ_ce'], losses['loss_occ_ce'])


def test_occupancy_loss_without_visible_voxels_or_mask(loss_path):
    head = occ_head(grid_size=SMALL)
    logits = torch.randn((1,) + SMALL + (17,), requires_grad=True)
    gt = torch.randint(0, 17, (1,) + SMALL)
    none_visible = samples(1, gt_occ=gt, gt_mask_camera=torch.zeros_like(gt).bool())
    hidden = head.loss_by_feat(dict(occ_logits=logits), none_visible)
    assert hidden['loss_occ_ce'] == 0 and hidden['loss_occ_lovasz'] == 0
    sum(hidden.values()).backward()  # zero, with the graph kept
    assert logits.grad.abs().sum() == 0
    unmasked_head = occ_head(grid_size=SMALL, use_mask_camera=False)
    unmasked = unmasked_head.loss_by_feat(dict(occ_logits=logits), samples(1, gt_occ=gt))
    assert torch.allclose(unmasked['loss_occ_ce'], F.cross_entropy(logits.reshape(-1, 17), gt.reshape(-1)))


def test_occupancy_loss_rejects_bad_gt():
    head = occ_head()
    logits = dict(occ_logits=torch.zeros((1,) + GRID + (17,)))
    small = samples(1, gt_occ=torch.zeros(1, 100, 100, 16, dtype=torch.long),
                    gt_mask_camera=torch.ones(1, 100, 100, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match=r'sample 0: `gt_occ` has shape \(100, 100, 16\), expected \(200, 200, 16\)'):
        head.loss_by_feat(logits, small)
    with pytest.raises(ValueError, match=r'sample 0: `gt_occ` values must lie in \[0, 16\], got \[17, 17\]'):
        head.loss_by_feat(logits, samples(1, gt_occ=torch.full((1,) + GRID, 17),
                                          gt_mask_camera=torch.ones((1,) + GRID, dtype=torch.bool)))
    with pytest.raises(KeyError, match='data sample 0 has no `gt_mask_camera`'):
        head.loss_by_feat(logits, samples(1, gt_occ=torch.zeros((1,) + GRID, dtype=torch.long)))
    with pytest.raises(ValueError, match='expects a BEV'):
        head(bev_inputs(torch.zeros(1, 4, 25, 25)))


def test_flow_head_shape_and_l1_on_occupied_voxels(loss_path):
    head = MODELS.build(dict(type='FlowHead', in_channels=8, mid_channels=8, grid_size=GRID, free_index=16))
    batch = samples(2)
    flow = head.predict(bev_inputs(torch.randn(2, 8, 25, 25)), batch)['flow']
    assert flow.shape == (2,) + GRID + (2,) and torch.equal(batch[1].pred_flow, flow[1])
    gt_flow = torch.randn_like(flow)
    gt_occ = torch.full((2,) + GRID, 16)
    gt_occ[0, 10:20, 30:40, 2:5] = 0
    gt_occ[1, 100, 100, 8] = 7
    occupied = gt_occ != 16
    expected = (flow - gt_flow).abs()[occupied].mean()
    loss = head.loss_by_feat(dict(flow=flow), samples(2, gt_flow=gt_flow, gt_occ=gt_occ))['loss_flow']
    assert torch.allclose(loss, expected)
    free = samples(2, gt_flow=gt_flow, gt_occ=torch.full((2,) + GRID, 16))
    assert head.loss_by_feat(dict(flow=flow), free)['loss_flow'] == 0
    nan_flow = gt_flow.clone()
    nan_flow[1, 0, 0, 0, 0] = float('nan')
    with pytest.raises(ValueError, match='data sample 1: `gt_flow` contains NaN'):
        head.loss_by_feat(dict(flow=flow), samples(2, gt_flow=nan_flow, gt_occ=gt_occ))


def plan_head(**kw):
    return MODELS.build(dict(type='PlanningHead', in_channels=16, num_queries=3, num_waypoints=6,
                             hidden_channels=32, **kw))


def plan_inputs(states: torch.Tensor) -> HeadInputs:
    return HeadInputs(bev=torch.zeros(states.shape[0], 1, 1, 1), plan_states=states)


def test_planning_head_reads_the_command_of_each_sample():
    head = plan_head().eval()
    states = torch.randn(1, 3, 16).expand(3, -1, -1)
    batch = samples(3, meta_ego_fut_cmd=[0, 1, 2])
    traj = head.predict(plan_inputs(states), batch)['traj']
    assert traj.shape == (3, 6, 2) and torch.equal(batch[2].pred_traj, traj[2])
    assert not torch.allclose(traj[0], traj[1]) and not torch.allclose(traj[1], traj[2])
    for bad in ([0, 1, 3], [-1, 1, 2]):
        with pytest.raises(ValueError, match=r'driving commands must lie in \[0, 2\]'):
            head(plan_inputs(states), samples(3, meta_ego_fut_cmd=bad))
    with pytest.raises(ValueError, match=r'query states \(B, 3, 16\)'):
        head(plan_inputs(torch.randn(3, 2, 16)), batch)
    with pytest.raises(KeyError, match='data sample 0 has no metainfo `ego_fut_cmd`'):
        head(plan_inputs(states), samples(3))


def test_planning_head_ego_status():
    head = plan_head(use_ego_status=True).eval()
    states = torch.randn(2, 3, 16)
    slow = head(plan_inputs(states), samples(2, meta_ego_fut_cmd=[2, 2], meta_ego_status=torch.zeros(2, 5)))
    fast = head(plan_inputs(states), samples(2, meta_ego_fut_cmd=[2, 2],
                                             meta_ego_status=torch.tensor([[10.0, 0, 0, 0, 0]] * 2)))
    assert not torch.allclose(slow['traj'], fast['traj'])
    with pytest.raises(KeyError, match='ego_status'):
        head(plan_inputs(states), samples(2, meta_ego_fut_cmd=[2, 2]))
    with pytest.raises(ValueError, match='ego_status` contains NaN'):
        head(plan_inputs(states), samples(2, meta_ego_fut_cmd=[2, 2], meta_ego_status=torch.full((2, 5), float('nan'))))


def test_planning_loss_masks_invalid_steps():
    head = plan_head()
    pred = dict(traj=torch.zeros(1, 6, 2))
    gt = torch.ones(1, 6, 2)
    gt[0, 4:] = 100.0  # past the scene end, masked out
    mask = torch.tensor([[1.0, 1, 1, 1, 0, 0]])
    batch = samples(1, gt_traj=gt, gt_traj_mask=mask, gt_fut_boxes=[[torch.zeros(0, 7)] * 6])
    losses = head.loss_by_feat(pred, batch)
    assert torch.allclose(losses['loss_plan'], torch.tensor(1.0)) and losses['loss_plan_col'] == 0
    with pytest.raises(ValueError, match=r'`gt_traj` has shape \(5, 2\), expected \(6, 2\)'):
        head.loss_by_feat(pred, samples(1, gt_traj=gt[:, :5], gt_traj_mask=mask))


def test_stack_field_checks_every_sample():
    batch = samples(2, gt_x=torch.ones(2, 3))
    assert torch.equal(stack_field(batch, 'gt_x', (3,), torch.long), torch.ones(2, 3, dtype=torch.long))
    labels = samples(2, gt_y=torch.tensor([[0, 3], [2, 5]], dtype=torch.uint8))
    stacked = stack_field(labels, 'gt_y', (2,), torch.long, value_range=(0, 6))
    assert stacked.dtype == torch.long and stacked.tolist() == [[0, 3], [2, 5]]
    with pytest.raises(ValueError, match=r'data sample 1: `gt_y` values must lie in \[0, 4\], got \[2, 5\]'):
        stack_field(labels, 'gt_y', value_range=(0, 5))
    batch[1].gt_x = torch.ones(4)
    with pytest.raises(ValueError, match='differs in shape across the batch'):
        stack_field(batch, 'gt_x')


def test_stack_field_finite_check_rejects_nan_and_inf_and_accepts_values_whose_sum_overflows():
    """The finite check sums first: a NaN or +-inf anywhere is refused, while finite values whose float32 sum
    overflows to inf (3e38 + 3e38) pass through the exact check."""
    for bad in (float('nan'), float('inf'), -float('inf')):
        value = torch.zeros(4, 3)
        value[2, 1] = bad
        with pytest.raises(ValueError, match=r'data sample 1: `gt_flow` contains NaN/inf'):
            stack_field([Det3DDataSample(gt_flow=torch.zeros(4, 3)), Det3DDataSample(gt_flow=value)], 'gt_flow')
    huge = torch.full((4, 3), 3e38)
    assert not torch.isfinite(huge.sum())
    assert torch.equal(stack_field([Det3DDataSample(gt_flow=huge)], 'gt_flow'), huge[None])
