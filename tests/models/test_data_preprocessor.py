"""DrivePIDataPreprocessor gives the model what mmdet3d's Det3DDataPreprocessor gives it, with pinned,
non-blocking copies and the data samples (their ground truth) left on the host."""
import copy

import pytest
import torch
from mmdet3d.structures import Det3DDataSample

from drivepi.registry import MODELS
from drivepi.utils import register_all_modules

NORMALISE = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32)


def batch(img_sizes) -> dict:
    g = torch.Generator().manual_seed(0)
    samples = []
    for i, size in enumerate(img_sizes):
        sample = Det3DDataSample(metainfo=dict(ego_fut_cmd=i % 3))
        sample.gt_occ = torch.randint(0, 17, (4, 4, 2), generator=g)
        sample.gt_fut_boxes = [torch.randn(2, 7, generator=g)]
        samples.append(sample)
    return dict(inputs=dict(points=[torch.randn(100 + i, 5, generator=g) for i in range(len(img_sizes))],
                            img=[torch.randint(0, 256, (6, 3) + size, generator=g, dtype=torch.uint8)
                                 for size in img_sizes]),
                data_samples=samples)


@pytest.mark.parametrize('img_sizes', [[(30, 90), (30, 90)], [(32, 96)], [(30, 90), (28, 96)]])
def test_same_outputs_as_det3d_data_preprocessor(img_sizes):
    register_all_modules()
    ours = MODELS.build(dict(type='DrivePIDataPreprocessor', **NORMALISE))
    theirs = MODELS.build(dict(type='Det3DDataPreprocessor', **NORMALISE))
    data = batch(img_sizes)
    out, expected = ours(copy.deepcopy(data), True), theirs(copy.deepcopy(data), True)
    assert torch.allclose(out['inputs']['imgs'], expected['inputs']['imgs'], atol=1e-5)
    assert out['inputs']['imgs'].shape == expected['inputs']['imgs'].shape
    for a, b in zip(out['inputs']['points'], expected['inputs']['points']):
        assert torch.equal(a, b)
    for a, b in zip(out['data_samples'], expected['data_samples']):
        assert a.metainfo == b.metainfo and torch.equal(a.gt_occ, b.gt_occ)
        assert torch.equal(a.gt_fut_boxes[0], b.gt_fut_boxes[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_inputs_reach_the_gpu_and_ground_truth_stays_on_the_host():
    register_all_modules()
    ours = MODELS.build(dict(type='DrivePIDataPreprocessor', **NORMALISE)).cuda()
    theirs = MODELS.build(dict(type='Det3DDataPreprocessor', **NORMALISE)).cuda()
    data = batch([(30, 90), (30, 90)])
    out, expected = ours(copy.deepcopy(data), True), theirs(copy.deepcopy(data), True)
    assert out['inputs']['imgs'].is_cuda and all(p.is_cuda for p in out['inputs']['points'])
    assert torch.allclose(out['inputs']['imgs'], expected['inputs']['imgs'], atol=1e-5)
    assert not out['data_samples'][0].gt_occ.is_cuda
