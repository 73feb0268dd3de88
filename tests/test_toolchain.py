"""The toolchain is real: mmdet3d structures and transforms, mmcv ops, spconv and open3d all work here,
on the real nuScenes keyframe where data matters. Each check compares against an independent numpy
computation."""
import multiprocessing
import pickle

import numpy as np
import pytest
import torch

from drivepi.geometry import OCC_GRID, OCC_RANGE, OCC_VOXEL_SIZE

DEMO_PKL = 'n015-2018-07-24-11-22-45+0800.pkl'
DEMO_SWEEP = 'n015-2018-07-24-11-22-45+0800__LIDAR_TOP__1532402927647951.pcd.bin'


@pytest.fixture(scope='module')
def demo_info(demo_dir):
    with open(demo_dir / DEMO_PKL, 'rb') as f:
        return pickle.load(f)['data_list'][0]


@pytest.fixture(scope='module')
def demo_points(demo_dir) -> np.ndarray:
    return np.fromfile(demo_dir / DEMO_SWEEP, dtype=np.float32).reshape(-1, 5)


def test_registry_scope_falls_back_to_mmdet3d(demo_dir):
    """A drivepi-scoped registry builds mmdet3d's transform through the parent chain."""
    from mmengine.registry import DefaultScope

    from drivepi.registry import TRANSFORMS
    from drivepi.utils import register_all_modules
    register_all_modules()
    assert DefaultScope.get_current_instance().scope_name == 'drivepi'
    load = TRANSFORMS.build(dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=5))
    assert type(load).__module__.startswith('mmdet3d.')
    results = load(dict(lidar_points=dict(lidar_path=str(demo_dir / DEMO_SWEEP))))
    points = results['points'].tensor.numpy()
    raw = np.fromfile(demo_dir / DEMO_SWEEP, dtype=np.float32).reshape(-1, 5)
    assert points.shape == (34688, 5)
    np.testing.assert_array_equal(points, raw)


def test_range_filter_transform_matches_numpy(demo_points):
    from mmdet3d.datasets.transforms import PointsRangeFilter
    from mmdet3d.structures import LiDARPoints
    pc_range = list(OCC_RANGE)
    out = PointsRangeFilter(pc_range)(dict(points=LiDARPoints(torch.from_numpy(demo_points), points_dim=5)))
    xyz = demo_points[:, :3]
    keep = np.all((xyz >= pc_range[:3]) & (xyz < pc_range[3:]), axis=1)
    np.testing.assert_allclose(out['points'].tensor.numpy(), demo_points[keep])
    assert 0 < keep.sum() < len(demo_points)


def test_lidar_boxes_contain_their_annotated_points(demo_info, demo_points):
    """mmdet3d boxes + mmcv's CPU points_in_boxes op agree with an independent box test, and boxes
    with many annotated LiDAR points really contain returns."""
    from mmcv.ops import points_in_boxes_cpu
    from mmdet3d.structures import LiDARInstance3DBoxes
    # mmdet3d's nuScenes infos store the box centre; LiDARInstance3DBoxes keeps the bottom centre
    centres = np.array([inst['bbox_3d'] for inst in demo_info['instances']], dtype=np.float32)
    boxes = LiDARInstance3DBoxes(torch.from_numpy(centres), origin=(0.5, 0.5, 0.5))
    torch.testing.assert_close(boxes.gravity_center, torch.from_numpy(centres[:, :3]))
    boxes_np = boxes.tensor.numpy()
    inside = points_in_boxes_cpu(torch.from_numpy(demo_points[None, :, :3]),
                                 boxes.tensor[None]).numpy()[0].astype(bool)

    # Independent test: rotate points into each box frame (z at the box bottom, mmdet3d LiDAR boxes).
    x, y, z, dx, dy, dz, yaw = boxes_np.T
    rel = demo_points[:, None, :3] - np.stack([x, y, z], 1)[None]
    c, s = np.cos(-yaw), np.sin(-yaw)
    local_x = rel[..., 0] * c - rel[..., 1] * s
    local_y = rel[..., 0] * s + rel[..., 1] * c
    expected = ((np.abs(local_x) <= dx / 2) & (np.abs(local_y) <= dy / 2)
                & (rel[..., 2] >= 0) & (rel[..., 2] <= dz))
    assert (inside != expected).sum() <= 2, 'points_in_boxes disagrees with the numpy box test'
    annotated = np.array([inst['num_lidar_pts'] for inst in demo_info['instances']])
    counted = inside.sum(0)
    assert (annotated >= 20).sum() >= 5
    np.testing.assert_allclose(counted, annotated, rtol=0.1, atol=2)


def test_mmcv_voxelization_matches_numpy(demo_points):
    from mmcv.ops import Voxelization
    voxel_size, pc_range = [OCC_VOXEL_SIZE] * 3, list(OCC_RANGE)
    voxelize = Voxelization(voxel_size, pc_range, max_num_points=-1, max_voxels=-1, deterministic=True)
    # dynamic voxelization: one voxel coordinate (z, y, x) per point, -1 outside the range
    coors = voxelize(torch.from_numpy(demo_points)).numpy()
    idx = np.floor((demo_points[:, :3] - np.array(pc_range[:3])) / np.array(voxel_size)).astype(int)
    grid = np.array(OCC_GRID)
    valid = np.all((idx >= 0) & (idx < grid), axis=1)
    np.testing.assert_array_equal(coors[valid], idx[valid][:, ::-1])
    assert np.all(coors[~valid] == -1)
    n_voxels = len(np.unique(idx[valid], axis=0))
    assert len(np.unique(coors[valid], axis=0)) == n_voxels > 2000


def test_spconv_submanifold_conv_matches_dense_conv():
    import spconv.pytorch as spconv
    torch.manual_seed(0)
    shape, channels = (8, 9, 10), 4
    coords = torch.unique(torch.stack([torch.randint(0, s, (60,)) for s in shape], 1), dim=0)
    feats = torch.randn(len(coords), channels)
    indices = torch.cat([torch.zeros(len(coords), 1, dtype=torch.int32), coords.int()], 1)
    conv = spconv.SubMConv3d(channels, 5, 3, padding=1, bias=False, indice_key='subm')
    out = conv(spconv.SparseConvTensor(feats, indices, shape, batch_size=1))
    # Dense reference: the same weights applied by torch's conv3d, read at the active sites.
    dense = torch.zeros(1, channels, *shape)
    dense[0, :, coords[:, 0], coords[:, 1], coords[:, 2]] = feats.T
    weight = conv.weight.permute(0, 4, 1, 2, 3)  # spconv (out, k, k, k, in) -> torch (out, in, k, k, k)
    ref = torch.nn.functional.conv3d(dense, weight, padding=1)[0][:, coords[:, 0], coords[:, 1], coords[:, 2]].T
    order = torch.argsort(out.indices[:, 1] * 10000 + out.indices[:, 2] * 100 + out.indices[:, 3])
    ref_order = torch.argsort(coords[:, 0] * 10000 + coords[:, 1] * 100 + coords[:, 2])
    torch.testing.assert_close(out.features[order], ref[ref_order], rtol=1e-4, atol=1e-4)


def render_red_box() -> np.ndarray:
    """A red unit box on white, 160 x 120 pixels, through open3d's headless OffscreenRenderer."""
    import open3d as o3d
    from open3d.visualization import rendering
    renderer = rendering.OffscreenRenderer(160, 120)
    renderer.scene.set_background([1.0, 1.0, 1.0, 1.0])
    box = o3d.geometry.TriangleMesh.create_box(1.0, 1.0, 1.0)
    box.translate([-0.5, -0.5, -0.5])
    box.compute_vertex_normals()
    material = rendering.MaterialRecord()
    material.shader = 'defaultUnlit'
    material.base_color = [1.0, 0.0, 0.0, 1.0]
    renderer.scene.add_geometry('box', box, material)
    renderer.setup_camera(60.0, [0, 0, 0], [0, 0, 4], [0, 1, 0])
    return np.asarray(renderer.render_to_image())


def test_open3d_headless_render_draws_the_object():
    """Rendered in a forked child, as drivepi.visualization.render does: a renderer made in the test process
    itself would leave Filament's engine in every later fork, whose renders then take minutes (measured: the
    inferencer's picture 4.7 s alone, 12 min after this test in one pytest process)."""
    with multiprocessing.get_context('fork').Pool(1) as pool:
        image = pool.apply(render_red_box)
    assert image.shape == (120, 160, 3)
    centre, corner = image[60, 80], image[2, 2]
    assert centre[0] > 150 and centre[1] < 50 and centre[2] < 50, f'centre pixel {centre} is not red'
    assert np.all(corner > 200) and np.ptp(corner) < 20, f'corner pixel {corner} is not the white background'
