"""LiDAR branch: voxelizer, Ada3D importance targets + density-guided filter, SP-BN, sparse backbone."""
import logging
import pickle
import warnings

import numpy as np
import pytest
import spconv.pytorch as spconv
import torch

from drivepi.geometry import OCC_GRID, OCC_RANGE, OCC_VOXEL_SIZE
from drivepi.models.ada3d import DensityGuidedVoxelFilter, SparsityPreservingBatchNorm2d, voxel_ranges
from drivepi.models.ada3d.targets import voxel_targets_from_occupancy
from drivepi.models.lidar import DynamicVoxelizer, LiDARBranch
from drivepi.models.lidar.sparse_backbone import dense_volume
from drivepi.models.lidar.spconv_compat import FX_TRACING_NOTE
from drivepi.registry import MODELS

DEMO_LOG = 'n015-2018-07-24-11-22-45+0800'


def mini_branch_cfg(**overrides) -> dict:
    """The mini LiDAR branch: 0.4 m voxels, BEV stride 4 (50 x 50), Ada3D filter on."""
    cfg = dict(type='LiDARBranch',
               voxelizer=dict(type='DynamicVoxelizer', point_cloud_range=OCC_RANGE, voxel_size=[OCC_VOXEL_SIZE] * 3),
               backbone=dict(type='SparseBEVBackbone', stage_channels=[8, 16, 32], stage_strides=[1, 2, 2],
                             out_channels=32),
               importance_predictor=dict(type='VoxelImportancePredictor', hidden_channels=8),
               voxel_filter=dict(type='DensityGuidedVoxelFilter', range_bins=[15.0, 30.0], keep_ratios=[0.4, 0.7, 1.0]))
    cfg.update(overrides)
    return cfg


@pytest.fixture(scope='module')
def demo_points(demo_dir) -> torch.Tensor:
    """The real LIDAR_TOP sweep moved to the ego frame with lidar2ego: (34688, 5), time lag 0."""
    info = pickle.loads((demo_dir / f'{DEMO_LOG}.pkl').read_bytes())['data_list'][0]
    raw = np.fromfile(demo_dir / info['lidar_points']['lidar_path'], dtype=np.float32).reshape(-1, 5)
    lidar2ego = np.asarray(info['lidar_points']['lidar2ego'], dtype=np.float64)
    xyz = raw[:, :3] @ lidar2ego[:3, :3].T + lidar2ego[:3, 3]
    points = np.concatenate([xyz, raw[:, 3:4], np.zeros((len(raw), 1))], axis=1).astype(np.float32)
    assert points.shape == (34688, 5)
    return torch.from_numpy(points)


@pytest.mark.parametrize('num_outside', [5, 0])
def test_voxelizer_matches_per_point_loop(num_outside):
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.uniform(-3, 3, (300, 3)), rng.uniform(0, 255, (300, 1)),
                          rng.uniform(0, 0.5, (300, 1))], 1)
    pts[:num_outside, 0] = 45.0  # outside the range: dropped
    pts = pts.astype(np.float32)
    vox = DynamicVoxelizer(OCC_RANGE, [1.0, 1.0, 0.4])
    out = vox([torch.from_numpy(pts), torch.from_numpy(pts[100:])])
    expected = {}
    for b, cloud in enumerate([pts, pts[100:]]):
        for p in cloud:
            idx = np.floor((p[:3] - np.array(OCC_RANGE[:3])) / np.array([1.0, 1.0, 0.4])).astype(int)
            if (idx >= 0).all() and (idx < np.array([80, 80, 16])).all():
                expected.setdefault((b, *idx), []).append(p)
    coords = out['coords'].numpy()
    assert sorted(expected) == [tuple(c) for c in coords]  # sorted by (b, ix, iy, iz)
    for row, key in enumerate(map(tuple, coords)):
        members = np.stack(expected[key])
        mean = members.mean(0)
        center = np.array(OCC_RANGE[:3]) + (np.array(key[1:]) + 0.5) * np.array([1.0, 1.0, 0.4])
        want = np.concatenate([(mean[:3] - OCC_RANGE[:3]) / (np.array(OCC_RANGE[3:]) - OCC_RANGE[:3]),
                               [mean[3] / 255.0, mean[4]], (mean[:3] - center) / [1.0, 1.0, 0.4],
                               [np.log1p(len(members))]])
        np.testing.assert_allclose(out['feats'][row].numpy(), want, rtol=1e-5, atol=1e-5)
        assert out['num_points'][row] == len(members)
        np.testing.assert_allclose(out['centers'][row].numpy(), center, atol=1e-5)


@pytest.mark.parametrize('points, message', [
    ([torch.zeros(10, 4)], r'points\[0\] must have shape \(N, 5\)'),
    ([torch.ones(10, 5), torch.zeros(0, 5)], r'points\[1\] is an empty point cloud'),
    ([torch.ones(10, 5), torch.full((3, 5), float('nan'))], r'points\[1\] contain NaN'),
    ([torch.full((4, 5), 100.0)], r'no point inside point_cloud_range'),
    (torch.ones(10, 5), 'non-empty list'),
])
def test_voxelizer_rejects_bad_points(points, message):
    with pytest.raises(ValueError, match=message):
        DynamicVoxelizer(OCC_RANGE, [OCC_VOXEL_SIZE] * 3)(points)


def test_voxelizer_rejects_range_not_multiple_of_voxel():
    with pytest.raises(ValueError, match='whole number'):
        DynamicVoxelizer(OCC_RANGE, [0.3, 0.3, 0.4])


def inverse_square_cloud(num_points: int, seed: int) -> torch.Tensor:
    """Ground-like scan whose areal density falls as 1/r^2 (r between 2 and 40 m), like a spinning LiDAR."""
    rng = np.random.default_rng(seed)
    r = 2.0 * (40.0 / 2.0) ** rng.uniform(0, 1, num_points)  # p(r) ~ 1/r  <=>  areal density ~ 1/r^2
    theta = rng.uniform(-np.pi, np.pi, num_points)
    pts = np.stack([r * np.cos(theta), r * np.sin(theta), rng.uniform(-0.5, 1.5, num_points),
                    rng.uniform(0, 255, num_points), np.zeros(num_points)], 1)
    inside = (np.abs(pts[:, 0]) < 40) & (np.abs(pts[:, 1]) < 40)
    return torch.from_numpy(pts[inside].astype(np.float32))


def test_density_filter_keeps_ring_quota_of_top_scores_and_prunes_near_harder():
    clouds = [inverse_square_cloud(60000, seed) for seed in (1, 2)]
    vox = DynamicVoxelizer(OCC_RANGE, [OCC_VOXEL_SIZE] * 3)(clouds)
    ranges, batch_idx = voxel_ranges(vox['centers']), vox['coords'][:, 0].long()
    scores = torch.rand(len(ranges), generator=torch.Generator().manual_seed(0))
    ratios = [0.3, 0.6, 1.0]
    keep = DensityGuidedVoxelFilter(range_bins=[15.0, 30.0], keep_ratios=ratios)(scores, ranges, batch_idx, 2)
    ring = np.digitize(ranges.numpy(), [15.0, 30.0])
    kept_fraction = {}
    for b in range(2):
        for j, ratio in enumerate(ratios):
            members = (batch_idx.numpy() == b) & (ring == j)
            kept, dropped = scores.numpy()[members & keep.numpy()], scores.numpy()[members & ~keep.numpy()]
            assert len(kept) == round(ratio * members.sum())
            if len(dropped):
                assert kept.min() >= dropped.max()  # the kept voxels are the ring's top scores
            kept_fraction[b, j] = len(kept) / members.sum()
    assert kept_fraction[0, 0] < kept_fraction[0, 1] < kept_fraction[0, 2] == 1.0
    # density guidance: the near/far voxel-density ratio shrinks after filtering
    area = np.array([np.pi * 15 ** 2, np.pi * (30 ** 2 - 15 ** 2)])
    before = np.bincount(ring[batch_idx.numpy() == 0], minlength=3)[:2] / area
    after = np.bincount(ring[(batch_idx.numpy() == 0) & keep.numpy()], minlength=3)[:2] / area
    assert before[0] / before[1] > 2.0  # the synthetic cloud is denser near the sensor
    assert after[0] / after[1] < before[0] / before[1] * 0.6


def test_density_filter_rejects_inconsistent_config():
    with pytest.raises(ValueError, match='keep_ratios needs 3 values'):
        DensityGuidedVoxelFilter(range_bins=[10.0, 20.0], keep_ratios=[0.5, 1.0])
    with pytest.raises(ValueError, match=r'\(0, 1\]'):
        DensityGuidedVoxelFilter(range_bins=[10.0], keep_ratios=[0.0, 1.0])


def test_sp_batchnorm_zero_on_empty_and_active_only_statistics():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6) * 3 + 1
    active = torch.rand(2, 5, 6) > 0.6
    x = x * active.unsqueeze(1)  # sparse map: inactive cells are 0, as after the voxel filter
    norm = SparsityPreservingBatchNorm2d(3, momentum=0.1)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.5, -0.5, 2.0]))
        norm.bias.copy_(torch.tensor([0.3, 0.1, -0.2]))
    out = norm(x, active)
    assert (out.permute(0, 2, 3, 1)[~active] == 0).all()
    vals = x.permute(0, 2, 3, 1)[active].double().numpy()  # (N_active, C)
    mean, var = vals.mean(0), vals.var(0)
    want = (vals - mean) / np.sqrt(var + 1e-5) * [1.5, -0.5, 2.0] + [0.3, 0.1, -0.2]
    np.testing.assert_allclose(out.permute(0, 2, 3, 1)[active].detach().numpy(), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm.running_mean.numpy(), 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(norm.running_var.numpy(), 0.9 + 0.1 * vals.var(0, ddof=1), rtol=1e-5)
    # a dense BatchNorm2d would have counted the zeros and moved empty cells off zero
    dense = torch.nn.BatchNorm2d(3)(x)
    assert (dense.permute(0, 2, 3, 1)[~active].abs() > 1e-3).any()


def test_voxel_targets_from_occupancy_hand_computed():
    gt_occ = torch.full((2,) + OCC_GRID, 16, dtype=torch.long)
    gt_occ[1, 100, 100, 8] = 0  # a car voxel: x, y in [0, 0.4), z in [2.2, 2.6)
    gt_occ[1, 101, 100, 8] = 10  # driveable surface: not foreground
    centers = torch.tensor([[0.1, 0.1, 2.3], [0.1, 0.1, 2.3], [0.5, 0.1, 2.3], [45.0, 0.0, 0.0]])
    batch_idx = torch.tensor([0, 1, 1, 1])
    targets = voxel_targets_from_occupancy(centers, batch_idx, gt_occ, range(10), OCC_RANGE, [OCC_VOXEL_SIZE] * 3)
    assert targets.tolist() == [0.0, 1.0, 0.0, 0.0]


def occupancy_from_points(points: torch.Tensor) -> torch.Tensor:
    """A GT-like occupancy: voxels holding points above 0.3 m are 'car' (0), the rest free (16)."""
    occ = torch.full((1,) + OCC_GRID, 16, dtype=torch.long)
    idx = torch.floor((points[:, :3] - torch.tensor(OCC_RANGE[:3])) / 0.4).long()
    keep = ((idx >= 0) & (idx < torch.tensor(OCC_GRID))).all(1) & (points[:, 2] > 0.3)
    occ[0, idx[keep, 0], idx[keep, 1], idx[keep, 2]] = 0
    return occ


def test_real_sweep_through_branch_shapes_sparsity_and_gradients(demo_points):
    torch.manual_seed(0)
    branch = MODELS.build(mini_branch_cfg())
    assert isinstance(branch, LiDARBranch) and branch.bev_shape == (50, 50)
    bev, aux = branch([demo_points], gt_occ=occupancy_from_points(demo_points))
    assert bev.shape == (1, 32, 50, 50) and bev.dtype == torch.float32 and torch.isfinite(bev).all()
    num_voxels = int(aux['num_voxels'])
    assert 5000 < num_voxels < 34688
    ranges = voxel_ranges(branch.voxelizer([demo_points])['centers']).numpy()
    ring_sizes = np.bincount(np.digitize(ranges, [15.0, 30.0]), minlength=3)
    assert len(ranges) == num_voxels
    assert int(aux['num_kept_voxels']) == sum(round(r * n) for r, n in zip([0.4, 0.7, 1.0], ring_sizes))
    assert aux['voxel_keep_ratio'] == pytest.approx(int(aux['num_kept_voxels']) / num_voxels)
    nonzero_cells = (bev.abs().sum(1) > 0).float().mean()
    assert 0 < nonzero_cells <= aux['bev_active_ratio'] < 1  # SP-BN: cells without voxels stay exactly 0
    assert torch.isfinite(aux['loss_importance']) and aux['loss_importance'] > 0
    (bev.square().mean() + aux['loss_importance']).backward()
    missing = [name for name, p in branch.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert missing == []


def test_importance_predictor_gets_task_gradient_without_importance_loss(demo_points):
    branch = MODELS.build(mini_branch_cfg())
    bev, aux = branch([demo_points[::4]])
    assert 'loss_importance' not in aux
    bev.square().mean().backward()  # only the straight-through gate connects the predictor
    grads = [p.grad for p in branch.importance_predictor.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_filter_off_keeps_every_voxel_and_full_size_grid(demo_points):
    branch = MODELS.build(mini_branch_cfg(
        voxelizer=dict(type='DynamicVoxelizer', point_cloud_range=OCC_RANGE, voxel_size=[0.2, 0.2, 0.2]),
        importance_predictor=None, voxel_filter=None)).eval()
    assert branch.voxelizer.grid_shape == (400, 400, 32) and branch.bev_shape == (100, 100)
    with torch.no_grad():
        bev, aux = branch([demo_points, demo_points[::2]])
    assert bev.shape == (2, 32, 100, 100) and torch.isfinite(bev).all()
    assert float(aux['voxel_keep_ratio']) == 1.0 and aux['num_kept_voxels'] == aux['num_voxels']


def test_filter_without_predictor_is_rejected():
    with pytest.raises(ValueError, match='needs an importance_predictor'):
        MODELS.build(mini_branch_cfg(importance_predictor=None))


def test_bev_importance_predictor_sees_its_neighbourhood_only():
    """Two 3x3 convs: a voxel's logit changes with a voxel 2 columns away, not 3 columns away nor in
    another sample; voxels of one column at different heights score differently."""
    from drivepi.models.ada3d import BEVImportancePredictor
    torch.manual_seed(0)
    predictor = BEVImportancePredictor(in_channels=9, hidden_channels=8, num_convs=2).eval()
    coords = torch.tensor([[0, 10, 10, 3], [0, 10, 10, 7], [0, 12, 10, 3], [0, 13, 10, 3], [1, 10, 10, 3]],
                          dtype=torch.int32)
    feats = torch.rand(5, 9)
    with torch.no_grad():
        base = predictor(feats, coords, (20, 20, 16), 2)
        assert base.shape == (5,) and base[0] != base[1]
        changed = feats.clone()
        changed[2] += 1.0  # two columns from voxels 0 and 1
        assert not torch.allclose(predictor(changed, coords, (20, 20, 16), 2)[:2], base[:2])
        changed = feats.clone()
        changed[3] += 1.0  # three columns away from voxels 0/1; changing it must not reach them
        changed[4] += 1.0  # the other sample, same column
        out = predictor(changed, coords, (20, 20, 16), 2)
        torch.testing.assert_close(out[:2], base[:2])
        assert out[2] != base[2]  # one column from the changed voxel 3


def test_bev_importance_predictor_in_the_branch_trains_and_filters(demo_points):
    branch = MODELS.build(mini_branch_cfg(importance_predictor=dict(type='BEVImportancePredictor',
                                                                    hidden_channels=8))).train()
    gt_occ = torch.full((1,) + OCC_GRID, 16, dtype=torch.long)
    gt_occ[0, 90:110, 95:105, 5:8] = 0  # a car-class block near the ego
    bev, aux = branch([demo_points], gt_occ=gt_occ)
    assert 0.4 < float(aux['voxel_keep_ratio']) < 0.9
    (bev.square().mean() + aux['loss_importance']).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in branch.importance_predictor.parameters())


def test_dense_volume_is_spconvs_dense_without_its_warning():
    """spconv's dense() warns on every call (a list index, deprecated by torch); ours is the same scatter."""
    torch.manual_seed(0)
    coords = torch.unique(torch.stack([torch.randint(0, n, (40,)) for n in (2, 8, 7, 9)], 1), dim=0).int()
    volume = spconv.SparseConvTensor(torch.randn(len(coords), 3), coords, [8, 7, 9], batch_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        ours = dense_volume(volume)  # (B, C, nx, ny, nz)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        reference = volume.dense()
    assert any('non-tuple sequence' in str(w.message) for w in caught)
    assert ours.shape == (2, 3, 8, 7, 9) and torch.equal(ours, reference)


def test_only_the_fx_tracing_note_of_spconv_tensors_is_dropped():
    logger = logging.getLogger('torch.fx._symbolic_trace')
    assert not logger.filter(logging.makeLogRecord(dict(msg=FX_TRACING_NOTE + '. Please use ...')))
    assert logger.filter(logging.makeLogRecord(dict(msg='another torch.fx warning')))


def test_full_resolution_first_stage_reuses_the_stems_rulebook():
    """The stem and stage 0's submanifold convs share one rulebook; the output is what separate ones give."""
    torch.manual_seed(0)
    backbone = MODELS.build(dict(type='SparseBEVBackbone', in_channels=3, grid_shape=(16, 16, 8),
                                 stage_channels=[4, 8], stage_strides=[1, 2], out_channels=6)).eval()
    coords = torch.unique(torch.stack([torch.randint(0, n, (300,)) for n in (1, 16, 16, 8)], 1), dim=0).int()
    feats = torch.randn(len(coords), 3)

    def encode():
        return backbone.encoder(spconv.SparseConvTensor(feats, coords, [16, 16, 8], 1))
    with torch.no_grad():
        shared = encode()
        backbone.encoder[0][0].indice_key = 'stem'  # the stem builds its own rulebook again
        separate = encode()
    assert 'stem' not in shared.indice_dict and 'stem' in separate.indice_dict
    assert {'subm0', 'down1', 'subm1'} <= set(shared.indice_dict)
    torch.testing.assert_close(shared.features, separate.features)
    assert torch.equal(shared.indices, separate.indices)


@pytest.mark.parametrize('stride', [1, 2])
def test_spconv_on_two_cpu_threads_equals_the_dense_convolution(stride):
    """spconv 2.3.8's CPU kernels are wrong with more than one torch thread (up to 0.5 off the dense conv3d
    they stand for; traveller59/spconv#679): ``spconv_compat`` runs them in one thread. A submanifold and a
    strided sparse 3x3x3 conv on 3,000 random voxels, with torch at 2 threads: features and the weight
    gradient equal those of ``torch.nn.functional.conv3d`` on the dense volume, at the active outputs."""
    size, generator = 24, torch.Generator().manual_seed(0)
    coords = torch.unique(torch.randint(0, size, (3000, 3), generator=generator), dim=0)
    feats = torch.randn(len(coords), 8, generator=generator)
    conv = (spconv.SubMConv3d(8, 16, 3, padding=1, bias=False) if stride == 1
            else spconv.SparseConv3d(8, 16, 3, stride=2, padding=1, bias=False))
    dense = torch.zeros(1, 8, size, size, size)
    dense[0, :, coords[:, 0], coords[:, 1], coords[:, 2]] = feats.T
    weight = conv.weight.detach().permute(0, 4, 1, 2, 3).clone().requires_grad_()  # (out, k, k, k, in) -> OIDHW
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = conv(spconv.SparseConvTensor(feats, torch.cat([torch.zeros_like(coords[:, :1]), coords], 1).int(),
                                           [size] * 3, 1))
        out.features.sum().backward()
    finally:
        torch.set_num_threads(before)
    sites = out.indices[:, 1:].long()
    expected = torch.nn.functional.conv3d(dense, weight, stride=stride, padding=1)[0][
        :, sites[:, 0], sites[:, 1], sites[:, 2]].T
    expected.sum().backward()
    assert torch.allclose(out.features, expected, atol=1e-5)
    assert torch.allclose(conv.weight.grad.permute(0, 4, 1, 2, 3), weight.grad, atol=1e-3)
    if stride == 1:
        assert torch.equal(sites, coords)  # submanifold: the active outputs are the inputs
