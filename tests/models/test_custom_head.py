"""A new head is one file plus one config entry (docs/adding_a_head.md): a head registered here, outside
``drivepi/``, trains and predicts inside DrivePI without any change to the library."""
import copy

import torch
import torch.nn.functional as F
from test_drivepi import CONVERSATIONS, collate, make_sample
from torch import nn

from drivepi.models.heads import BaseDrivePIHead, HeadInputs, stack_field
from drivepi.registry import MODELS
from drivepi.utils import register_all_modules

DRIVEABLE = 10  # OpenOcc class index of driveable_surface


@MODELS.register_module(force=True)
class DriveableAreaHead(BaseDrivePIHead):
    """BEV driveable-area logits (B, X, Y) at the occupancy grid's resolution; BCE against the columns of
    ``gt_occ`` that hold driveable surface."""
    feature = 'bev'

    def __init__(self, in_channels: int, grid_size, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.grid_size = tuple(grid_size)
        self.conv = nn.Conv2d(in_channels, 1, 1)

    def forward(self, feats: HeadInputs, batch_data_samples=()) -> dict:
        logits = F.interpolate(self.conv(feats.bev), size=self.grid_size[:2], mode='bilinear', align_corners=False)
        return dict(driveable_logits=logits[:, 0])

    def loss_by_feat(self, outputs: dict, batch_data_samples) -> dict:
        logits = outputs['driveable_logits']
        gt_occ = stack_field(batch_data_samples, 'gt_occ', self.grid_size, torch.long, logits.device)
        target = (gt_occ == DRIVEABLE).any(dim=-1).float()
        return dict(loss_driveable=F.binary_cross_entropy_with_logits(logits, target))

    def predict_by_feat(self, outputs: dict, batch_data_samples) -> None:
        for sample, logits in zip(batch_data_samples, outputs['driveable_logits'].cpu()):
            sample.pred_driveable = logits > 0


def test_a_head_registered_outside_the_library_trains_and_predicts(mini_cfg):
    register_all_modules()
    cfg = copy.deepcopy(mini_cfg)
    cfg.heads['driveable'] = dict(type='DriveableAreaHead', grid_size=cfg.grid_size)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    assert isinstance(model.heads['driveable'], DriveableAreaHead) and model.heads['driveable'].conv.in_channels == 32
    batch = collate([make_sample(0, CONVERSATIONS[0]), make_sample(1, CONVERSATIONS[1])])
    for sample in batch['data_samples']:
        sample.gt_occ[:, :, 0] = DRIVEABLE
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.heads['driveable'].conv.weight.detach().clone()
    losses = model(**model.data_preprocessor(copy.deepcopy(batch), training=True), mode='loss')
    assert {'loss_driveable', 'loss_occ_ce', 'loss_plan', 'loss_text'} <= set(losses)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    optimizer.step()
    assert not torch.equal(model.heads['driveable'].conv.weight, before)   # one training step moved it
    model.eval()
    results = model(**model.data_preprocessor(copy.deepcopy(batch), training=False), mode='predict')
    assert results[0].pred_driveable.shape == tuple(cfg.grid_size[:2]) and results[0].pred_driveable.dtype == torch.bool
    assert results[0].pred_occ.shape == tuple(cfg.grid_size)   # the other heads still predict
    raw = model(**model.data_preprocessor(copy.deepcopy(batch), training=False), mode='tensor')
    assert raw['driveable_logits'].shape == (2,) + tuple(cfg.grid_size[:2])
