"""The multi-mode planning head: anchors + offsets, winner-take-all losses by hand, predictions, and the
single-mode head's state dict (the model zoo checkpoint's planning weights load unchanged)."""
import copy
import math
import sys
from pathlib import Path

import pytest
import torch
from mmdet3d.structures import Det3DDataSample

from drivepi.models.heads import HeadInputs
from drivepi.registry import MODELS
from drivepi.utils import load_config, register_all_modules

REPO = Path(__file__).resolve().parents[2]
ZOO_CHECKPOINT = REPO / 'model_zoo' / 'drivepi_mini_long' / 'drivepi_mini_long-edd81574.pth'
ZOO_CONFIG = REPO / 'configs' / 'drivepi' / 'drivepi_mini_long.py'
MODES_CONFIG = REPO / 'configs' / 'drivepi' / 'drivepi_mini_modes.py'

# (C=3, M=2, T=2, 2): per command a straight anchor and one drifting left
ANCHORS = torch.tensor([[[1.0, 0.0], [2.0, 0.0]], [[1.0, 1.0], [2.0, 2.0]]]).expand(3, -1, -1, -1).clone()


def head(**kw):
    register_all_modules()
    cfg = dict(type='PlanningHead', in_channels=4, num_queries=1, num_waypoints=2, hidden_channels=8,
               num_modes=2, anchors=ANCHORS.numpy())
    return MODELS.build(dict(cfg, **kw))


def samples(commands, gt=None, mask=None):
    out = []
    for i, command in enumerate(commands):
        ds = Det3DDataSample(metainfo=dict(ego_fut_cmd=command))
        if gt is not None:
            ds.gt_traj, ds.gt_traj_mask = gt[i], mask[i]
            ds.gt_fut_boxes = [torch.zeros(0, 7)] * gt.shape[1]
        out.append(ds)
    return out


def test_winner_take_all_losses_by_hand():
    """Sample 0: GT (1, 0.2), (2, 0.5). Anchor distances 0.2 + 0.5 = 0.7 (straight) and 0.8 + 1.5 = 2.3 (left):
    the straight mode wins by anchor, although its prediction (0, 0), (0, 0) is far and the left mode's
    (1, 0.3), (2, 0.5) is close (the winner by prediction). Sample 1 has no valid step: no loss at all."""
    gt = torch.tensor([[[1.0, 0.2], [2.0, 0.5]], [[9.0, 9.0], [9.0, 9.0]]])
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    modes = torch.tensor([[[[0.0, 0.0], [0.0, 0.0]], [[1.0, 0.3], [2.0, 0.5]]]]).expand(2, -1, -1, -1)
    scores = torch.tensor([[2.0, 0.0], [-5.0, 5.0]])
    outputs = dict(traj=modes[:, 0], traj_modes=modes, traj_scores=scores, traj_anchors=ANCHORS[:2])
    by_anchor = head(assign_by='anchor')
    assert by_anchor.winners(outputs, gt, mask)[0] == 0
    losses = by_anchor.loss_by_feat(outputs, samples([2, 2], gt, mask))
    torch.testing.assert_close(losses['loss_plan'], torch.tensor((1 + 0.2 + 2 + 0.5) / 4))
    torch.testing.assert_close(losses['loss_plan_cls'], torch.tensor(0.5 * math.log(1 + math.exp(-2.0))))
    assert losses['loss_plan_col'] == 0
    by_prediction = head(assign_by='prediction')
    assert by_prediction.winners(outputs, gt, mask)[0] == 1
    losses = by_prediction.loss_by_feat(outputs, samples([2, 2], gt, mask))
    torch.testing.assert_close(losses['loss_plan'], torch.tensor(0.1 / 4))
    torch.testing.assert_close(losses['loss_plan_cls'], torch.tensor(0.5 * math.log(1 + math.exp(2.0))))


def test_collision_loss_sees_the_winner_or_the_best_mode():
    """A box right of the winner's (straight) path, 0.5 m from it, clear of the left mode: with
    collision_on='winner' it costs, with 'best' (the left mode scores higher) it does not."""
    gt = torch.tensor([[[1.0, 0.0], [2.0, 0.0]]])
    mask = torch.ones(1, 2)
    modes = ANCHORS[:1].clone()
    outputs = dict(traj=modes[:, 1], traj_modes=modes, traj_scores=torch.tensor([[0.0, 3.0]]), traj_anchors=modes)
    batch = samples([2], gt, mask)
    batch[0].gt_fut_boxes = [torch.tensor([[2.0, -1.0, 0.0, 2.0, 1.0, 1.5, 0.0]])] * 2
    assert head(collision_on='winner').loss_by_feat(outputs, batch)['loss_plan_col'] > 0
    assert head(collision_on='best').loss_by_feat(outputs, batch)['loss_plan_col'] == 0


def test_modes_are_anchor_plus_offsets_and_prediction_is_the_best_score():
    plan = head().eval()
    for layer in (plan.mlp[-1], plan.score_mlp[-1]):  # zero offsets, equal scores
        torch.nn.init.zeros_(layer.weight), torch.nn.init.zeros_(layer.bias)
    batch = samples([1, 2])
    inputs = HeadInputs(bev=torch.zeros(2, 1, 1, 1), plan_states=torch.randn(2, 1, 4))
    out = plan.predict(inputs, batch)
    torch.testing.assert_close(out['traj_modes'], ANCHORS[[1, 2]])
    assert out['traj_scores'].shape == (2, 2) and out['traj'].shape == (2, 2, 2)
    assert batch[0].pred_traj_modes.shape == (2, 2, 2) and batch[0].pred_traj.shape == (2, 2)
    torch.testing.assert_close(batch[0].pred_traj_scores, torch.tensor([0.5, 0.5]))
    torch.nn.init.normal_(plan.score_mlp[-1].weight)
    torch.nn.init.normal_(plan.mlp[-1].weight)
    out = plan.predict(inputs, batch)
    best = out['traj_scores'].argmax(1)
    torch.testing.assert_close(out['traj'], out['traj_modes'][torch.arange(2), best])
    for i in range(2):
        torch.testing.assert_close(batch[i].pred_traj, out['traj'][i])
        torch.testing.assert_close(batch[i].pred_traj_scores, out['traj_scores'][i].softmax(0))


def test_mode_settings_are_checked():
    with pytest.raises(ValueError, match='needs anchors'):
        head(anchors=None)
    with pytest.raises(ValueError, match=r'shape \(commands, modes, waypoints, 2\) = \(3, 3, 2, 2\)'):
        head(num_modes=3)
    with pytest.raises(ValueError, match='assign_by'):
        head(assign_by='score')


def test_single_mode_head_loads_the_model_zoo_planning_weights():
    """num_modes=1 has the parameters of the first recipes: the zoo checkpoint's ``heads.plan.*`` load strictly;
    the multi-mode head of drivepi_mini_modes.py takes the same trunk, only its new parts are missing."""
    register_all_modules()
    state = torch.load(ZOO_CHECKPOINT, map_location='cpu', weights_only=True)['state_dict']
    plan_state = {k[len('heads.plan.'):]: v for k, v in state.items() if k.startswith('heads.plan.')}
    cfg = load_config(str(ZOO_CONFIG)).model.heads.plan
    in_channels = plan_state['query_proj.weight'].shape[1] // 6
    widths = dict(in_channels=in_channels, num_queries=6)
    single = MODELS.build(dict(cfg, **widths))
    assert set(single.state_dict()) == set(plan_state)
    single.load_state_dict(plan_state, strict=True)
    modes_cfg = load_config(str(MODES_CONFIG)).model.heads.plan
    if not Path(REPO / modes_cfg.anchors).is_file():
        pytest.skip(f'{modes_cfg.anchors} not made yet')
    multi = MODELS.build(dict(modes_cfg, anchors=str(REPO / modes_cfg.anchors), **widths))
    missing, unexpected = multi.load_state_dict(plan_state, strict=False)
    assert not unexpected and {k.split('.')[0] for k in missing} == {'anchors', 'anchor_embed', 'score_mlp'}


def test_drivepi_with_modes_trains_and_predicts_the_cheapest_candidate(mini_cfg):
    """The mini model with a 2-mode head: the classification loss joins the losses; predict leaves the modes,
    their probabilities and the plan refiner's candidates and costs, and ``pred_traj`` is the cheapest."""
    sys.path.insert(0, str(REPO / 'tests' / 'models'))
    from test_drivepi import collate, make_sample
    t = 0.5 * torch.arange(1, 7)
    anchors = torch.stack([torch.stack([5 * t, 0 * t], 1), torch.stack([5 * t, 0.3 * t ** 2], 1)]).expand(3, -1, -1, -1)
    cfg = copy.deepcopy(mini_cfg)
    cfg.heads.plan.update(num_modes=2, anchors=anchors.numpy())
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    batch = collate([make_sample(0, []), make_sample(1, [])])
    losses = model(**model.data_preprocessor(copy.deepcopy(batch), training=True), mode='loss')
    assert {'loss_plan', 'loss_plan_cls', 'loss_plan_col'} <= set(losses)
    assert all(torch.isfinite(losses[k]) for k in ('loss_plan', 'loss_plan_cls', 'loss_plan_col'))
    model.eval()
    for ds in model(**model.data_preprocessor(copy.deepcopy(batch), training=False), mode='predict'):
        assert ds.pred_traj_modes.shape == (2, 6, 2) and torch.isclose(ds.pred_traj_scores.sum(), torch.tensor(1.0))
        assert len(ds.pred_traj_candidates) == len(ds.pred_traj_costs) >= 2
        assert torch.equal(ds.pred_traj, ds.pred_traj_candidates[ds.pred_traj_costs.argmin()])
