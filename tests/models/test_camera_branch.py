"""Camera branch (mmdet ResNet + FPN, LSS view transform, missing cameras) and LiDAR+camera BEV fusion."""
import pickle

import numpy as np
import pytest
import torch

from drivepi.models.camera import LSSViewTransform, frustum_points
from drivepi.models.camera.lss_view_transform import splat
from drivepi.models.cuda_graphs import run_overlapped
from drivepi.registry import MODELS

DEMO_LOG = 'n015-2018-07-24-11-22-45+0800'
CAMERAS = ['CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK', 'CAM_BACK_LEFT', 'CAM_BACK_RIGHT']
SCALE = 0.11  # the 1600 x 900 demo images resized to 176 x 99, cropped to 176 x 64 from the top row 24
IMG_HW = (64, 176)


@pytest.fixture(scope='module')
def demo_calib(demo_dir) -> dict:
    """Real intrinsics / extrinsics of the demo keyframe and the matching augmented ego2img (6, 4, 4)."""
    info = pickle.loads((demo_dir / f'{DEMO_LOG}.pkl').read_bytes())['data_list'][0]
    cam2img = np.stack([np.asarray(info['images'][c]['cam2img']) for c in CAMERAS])
    cam2ego = np.stack([np.asarray(info['images'][c]['cam2ego']) for c in CAMERAS])
    aug = np.array([[SCALE, 0, 0, 0], [0, SCALE, -24.0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])  # acts on [u*d, v*d, d, 1]
    intrinsics = np.tile(np.eye(4), (6, 1, 1))
    intrinsics[:, :3, :3] = cam2img
    ego2img = aug @ intrinsics @ np.linalg.inv(cam2ego)
    return dict(cam2img=cam2img, cam2ego=cam2ego, aug=aug, ego2img=torch.from_numpy(ego2img).float())


def camera_branch_cfg() -> dict:
    return dict(type='CameraBranch',
                backbone=dict(type='mmdet.ResNet', depth=18, base_channels=8, num_stages=3, strides=(1, 2, 2),
                              dilations=(1, 1, 1), out_indices=(1, 2), norm_eval=False),
                neck=dict(type='mmdet.FPN', in_channels=[16, 32], out_channels=16, num_outs=2),
                view_transform=dict(type='LSSViewTransform', in_channels=16, out_channels=8,
                                    depth_bins=[1.0, 41.0, 2.0], bev_cell_size=[1.6, 1.6]),
                feat_level=0)


def test_frustum_points_project_back_to_their_pixels(demo_calib):
    depths = torch.tensor([2.0, 10.0, 35.0])
    pts = frustum_points(demo_calib['ego2img'], (8, 22), IMG_HW, depths)  # stride 8
    assert pts.shape == (6, 3, 8, 22, 3)
    homo = torch.cat([pts, torch.ones_like(pts[..., :1])], -1).double()
    proj = torch.einsum('nij,ndhwj->ndhwi', demo_calib['ego2img'].double(), homo)
    u, v, d = proj[..., 0] / proj[..., 2], proj[..., 1] / proj[..., 2], proj[..., 2]
    torch.testing.assert_close(d, depths.double().view(1, 3, 1, 1).expand_as(d), atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(u[0, 0, 0], torch.arange(22).double() * 8 + 3.5, atol=1e-3, rtol=0)
    torch.testing.assert_close(v[0, 0, :, 0], torch.arange(8).double() * 8 + 3.5, atol=1e-3, rtol=0)
    # CAM_FRONT looks along ego +x: the sample 10 m deep at the image centre lies about 10 m ahead of the camera
    front_centre = frustum_points(demo_calib['ego2img'][:1], (1, 1), IMG_HW, torch.tensor([10.0]))[0, 0, 0, 0]
    cam_pos = demo_calib['cam2ego'][0, :3, 3]
    assert 9.0 < front_centre[0] - cam_pos[0] < 10.5 and abs(front_centre[1] - cam_pos[1]) < 2.0


def test_lss_splat_matches_independent_projection(demo_calib):
    vt = LSSViewTransform(in_channels=4, out_channels=3, depth_bins=[1.0, 41.0, 2.0], bev_cell_size=[1.6, 1.6]).eval()
    target_bin = 6  # bin centre 1 + 6.5 * 2 = 14 m
    with torch.no_grad():  # depth one-hot on target_bin, context = 1: the BEV counts the frustum samples
        vt.depth_net[-1].weight.zero_()
        vt.depth_net[-1].bias.zero_()
        vt.depth_net[-1].bias[target_bin] = 60.0
        vt.depth_net[-1].bias[len(vt.depths):] = 1.0
        bev = vt(torch.randn(6, 4, 8, 22), demo_calib['ego2img'], IMG_HW, torch.zeros(6, dtype=torch.long), 1)
    assert bev.shape == (1, 3, 50, 50)
    expected = np.zeros((50, 50))
    rows, cols = np.meshgrid(np.arange(8), np.arange(22), indexing='ij')
    u_aug, v_aug = cols * 8 + 3.5, rows * 8 + 3.5
    u, v = u_aug / SCALE, (v_aug + 24.0) / SCALE  # undo the crop and resize: original pixels
    for cam in range(6):
        rays = np.linalg.inv(demo_calib['cam2img'][cam]) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
        cam_pts = rays * 14.0
        ego = demo_calib['cam2ego'][cam][:3, :3] @ cam_pts + demo_calib['cam2ego'][cam][:3, 3:4]
        inside = (np.abs(ego[0]) < 40) & (np.abs(ego[1]) < 40) & (ego[2] >= -1) & (ego[2] < 5.4)
        ix, iy = np.floor((ego[:2, inside] + 40) / 1.6).astype(int)
        np.add.at(expected, (ix, iy), 1.0)
    assert expected.sum() > 50
    np.testing.assert_allclose(bev[0, 0].numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(bev[0, 2].numpy(), expected, atol=1e-4)


def test_affine_inverse_equals_the_general_inverse(demo_calib):
    from drivepi.models.camera.lss_view_transform import affine_inverse
    matrices = demo_calib['ego2img'].double()
    torch.testing.assert_close(affine_inverse(matrices), torch.linalg.inv(matrices))
    assert torch.equal(affine_inverse(matrices)[:, 3], matrices[:, 3])


def test_sync_free_splat_equals_splat_of_the_selected_samples():
    torch.manual_seed(0)
    lifted = torch.randn(2, 5, 4, 6, 3)
    inside = torch.rand(2, 5, 4, 6) < 0.6
    outside_cells = torch.randint(7, 10 ** 6, (2, 5, 4, 6)) * (torch.randint(0, 2, (2, 5, 4, 6)) * 2 - 1)
    cells = torch.where(inside, torch.randint(0, 7, (2, 5, 4, 6)), outside_cells)  # out of the grid on both sides
    selected = splat(lifted, cells, inside, 7, sync_free=False)
    torch.testing.assert_close(splat(lifted, cells, inside, 7, sync_free=True), selected)
    expected = torch.zeros(7, 3)
    for c, f in zip(cells[inside].tolist(), lifted[inside]):
        expected[c] += f
    torch.testing.assert_close(selected, expected)


def test_all_views_path_keeps_each_sample_its_own_views(demo_calib):
    """The fixed-shape path (every view valid, what the CUDA graph captures) = each sample alone."""
    torch.manual_seed(0)
    branch = MODELS.build(camera_branch_cfg()).eval()
    imgs = torch.randn(2, 6, 3, *IMG_HW)
    ego2img = demo_calib['ego2img'].expand(2, 6, 4, 4).clone()
    with torch.no_grad():
        both = branch.all_views_bev(imgs, ego2img)
        alone = [branch(imgs[i:i + 1], ego2img[i:i + 1], torch.ones(1, 6, dtype=torch.bool)) for i in range(2)]
        first_view_missing = torch.ones(2, 6, dtype=torch.bool)
        first_view_missing[0, 0] = False
        selected = branch(imgs, ego2img, first_view_missing)  # the eager path with views selected
    torch.testing.assert_close(both, torch.cat(alone), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(selected[1], both[1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(selected[0], both[0], atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs and streams need a GPU')
def test_cuda_graph_camera_branch_on_a_side_stream_equals_eager(demo_calib):
    torch.manual_seed(0)
    branch = MODELS.build(dict(camera_branch_cfg(), cuda_graphs=True)).cuda().eval()
    ego2img = demo_calib['ego2img'].expand(2, 6, 4, 4).cuda()
    valid = torch.ones(2, 6, dtype=torch.bool, device='cuda')
    with torch.no_grad():
        for _ in range(2):  # the second input replays the graph captured for the first
            imgs = torch.randn(2, 6, 3, *IMG_HW, device='cuda')
            graphed, doubled = run_overlapped(lambda: branch(imgs, ego2img, valid), lambda: imgs * 2,
                                              torch.device('cuda'))
            eager = branch.all_views_bev(imgs, ego2img)  # the captured function, run eagerly
            torch.testing.assert_close(graphed, eager, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(doubled, imgs * 2)
    assert len(branch._graphed_all_views.graphs) == 1


def test_run_overlapped_on_cpu_runs_both_in_order():
    calls = []
    side, main = run_overlapped(lambda: calls.append('side') or torch.ones(1), lambda: calls.append('main') or 2,
                                torch.device('cpu'))
    assert calls == ['side', 'main'] and side.item() == 1 and main == 2


def test_camera_branch_shapes_missing_camera_and_gradients(demo_calib):
    torch.manual_seed(0)
    branch = MODELS.build(camera_branch_cfg())
    assert branch.bev_shape == (50, 50) and branch.out_channels == 8
    imgs = torch.randn(2, 6, 3, *IMG_HW)
    ego2img = demo_calib['ego2img'].expand(2, 6, 4, 4).clone()
    all_valid = torch.ones(2, 6, dtype=torch.bool)
    bev = branch(imgs, ego2img, all_valid)
    assert bev.shape == (2, 8, 50, 50) and bev.dtype == torch.float32 and torch.isfinite(bev).all()
    bev.square().mean().backward()
    missing = [n for n, p in branch.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []

    cam_valid = all_valid.clone()
    cam_valid[1, 0] = False  # CAM_FRONT of sample 1 is missing
    zero_img, noise_img = imgs.clone(), imgs.clone()
    zero_img[1, 0] = 0
    noise_img[1, 0] = torch.randn(3, *IMG_HW) * 10
    broken = ego2img.clone()
    broken[1, 0] = float('nan')  # a missing camera may carry no calibration at all
    with torch.no_grad():
        bev_zero = branch(zero_img, ego2img, cam_valid)
        bev_noise = branch(noise_img, broken, cam_valid)
        bev_full = branch(imgs, ego2img, all_valid)
    assert torch.isfinite(bev_zero).all()
    torch.testing.assert_close(bev_zero, bev_noise, rtol=0, atol=0)  # the missing view contributes nothing
    assert not torch.allclose(bev_zero[1], bev_full[1], atol=1e-4)
    front_cells = bev_full[1].abs().sum(0) > 0
    with torch.no_grad():
        only_front = branch(imgs, ego2img, torch.tensor([[False] * 6, [True] + [False] * 5]))
    assert (only_front[0] == 0).all() and (only_front[1].abs().sum(0) > 0).sum() > 0
    assert ((only_front[1].abs().sum(0) > 0) <= front_cells).all()
    with torch.no_grad():
        none_valid = branch(imgs, ego2img, torch.zeros(2, 6, dtype=torch.bool))
    assert none_valid.shape == (2, 8, 50, 50) and (none_valid == 0).all()


@pytest.mark.parametrize('change, message', [
    (lambda i, e, v: (i[:, :, :2], e, v), r'imgs must be float \(B, V, 3, H, W\)'),
    (lambda i, e, v: (i, e[:, :5], v), r'ego2img must be \(B, V, 4, 4\)'),
    (lambda i, e, v: (i, e, v.float()), 'cam_valid must be bool'),
    (lambda i, e, v: (i.index_put((torch.tensor([0]), torch.tensor([2])), torch.tensor(float('nan'))), e, v),
     r'non-finite values in valid views: imgs at \(b, v\) \[\[0, 2\]\]'),
    (lambda i, e, v: (i, e.index_put((torch.tensor([0]), torch.tensor([4]), torch.tensor([3]), torch.tensor([2])),
                                     torch.tensor(0.5)), v),
     r'ego2img not finite and affine \(last row 0, 0, 0, 1\) at \(b, v\) \[\[0, 4\]\]'),
])
def test_camera_branch_rejects_bad_inputs(demo_calib, change, message):
    branch = MODELS.build(camera_branch_cfg())
    imgs, ego2img = torch.zeros(1, 6, 3, *IMG_HW), demo_calib['ego2img'].unsqueeze(0)
    with pytest.raises(ValueError, match=message):
        branch(*change(imgs, ego2img, torch.ones(1, 6, dtype=torch.bool)))


def test_conv_bev_fuser_shapes_gradients_and_errors():
    fuser = MODELS.build(dict(type='ConvBEVFuser', in_channels=[4, 3], out_channels=5))
    lidar, camera = torch.randn(2, 4, 10, 10, requires_grad=True), torch.randn(2, 3, 10, 10, requires_grad=True)
    fused = fuser(lidar, camera)
    assert fused.shape == (2, 5, 10, 10) and (fused >= 0).all()
    fused.sum().backward()
    assert lidar.grad.abs().sum() > 0 and camera.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r'channels \[4, 3\]'):
        fuser(lidar, torch.randn(2, 3, 12, 10))
