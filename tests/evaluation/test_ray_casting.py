"""Ray set and exact voxel traversal of the RayIoU ray caster."""
import math

import numpy as np
import pytest
import torch

from drivepi.evaluation.ray_casting import (
    cast_scene_rays,
    lidar_ray_directions,
    scene_ray_origins,
    scene_rays,
    traverse_first_hit,
)
from drivepi.geometry import OCC_GRID, OCC_RANGE, OCC_VOXEL_SIZE


def test_lidar_ray_directions_match_sparseocc_set():
    dirs = lidar_ray_directions()
    assert dirs.shape == (39 * 360, 3)
    assert torch.allclose(dirs.norm(dim=1), torch.ones(len(dirs)), atol=1e-6)
    pitch = torch.asin(dirs[::360, 2].double())
    assert pitch[0] == pytest.approx(-math.pi / 4, abs=1e-6)          # k = 0: -(pi/2 - atan(1))
    assert pitch[9] == pytest.approx(-(math.pi / 2 - math.atan(10)), abs=1e-6)
    assert pitch[-1] >= 0.21 > pitch[-2]                             # continued up to the LiDAR's top FOV
    spacing = pitch[10:] - pitch[9:-1]
    assert torch.allclose(spacing, spacing[0].expand_as(spacing), atol=1e-6)
    azimuth = torch.atan2(dirs[:360, 1], dirs[:360, 0]).rad2deg() % 360
    assert torch.allclose(azimuth.double(), torch.arange(360).double(), atol=1e-3)


def test_single_ray_first_hit_and_exit_depth():
    occupied = torch.zeros(4, 3, 2, dtype=torch.bool)
    occupied[2, 0, 0] = occupied[3, 0, 0] = True
    depth, voxel, hit = traverse_first_hit(occupied, torch.tensor([[0.5, 0.5, 0.5]]), torch.tensor([[1.0, 0, 0]]))
    assert hit.tolist() == [True]
    assert voxel.tolist() == [[2, 0, 0]]
    assert depth.tolist() == [2.5]          # the ray leaves voxel 2 at x = 3


def test_ray_without_hit_reports_last_voxel_and_grid_exit():
    occupied = torch.zeros(4, 3, 2, dtype=torch.bool)
    depth, voxel, hit = traverse_first_hit(occupied, torch.tensor([[0.5, 1.5, 0.5]]),
                                           torch.tensor([[0.6, 0.0, 0.8]]))
    assert hit.tolist() == [False]
    assert voxel.tolist() == [[1, 1, 1]]      # leaves through the top z = 2 at x = 0.5 + 0.6 * 1.875
    assert depth.item() == pytest.approx(1.5 / 0.8)


def test_metric_cast_tie_break_steps_y_before_x():
    """A ray through a voxel edge visits (0, 1, 0) before (1, 1, 0), as SparseOcc's traversal does."""
    semantics = torch.full((4, 4, 4), 16, dtype=torch.long)
    semantics[0, 1, 0] = 3
    semantics[1, 0, 0] = 5
    direction = torch.tensor([[1.0, 1.0, 0.0]]) / math.sqrt(2)
    label, depth, voxel = cast_scene_rays(semantics, torch.tensor([[0.25, 0.25, 0.25]]), direction, 16,
                                          point_cloud_range=(0, 0, 0, 2, 2, 2), voxel_size=0.5)
    assert label.tolist() == [3]
    assert voxel.tolist() == [[0, 1, 0]]
    assert depth.item() == pytest.approx(0.25 * math.sqrt(2), abs=1e-6)


def _march(occupied: np.ndarray, origin: np.ndarray, direction: np.ndarray, step: float):
    """Brute force: sample the ray every ``step`` voxels; first sample inside an occupied voxel."""
    t = np.arange(0, sum(occupied.shape) * 2, step)
    points = origin + t[:, None] * direction
    cells = np.floor(points).astype(int)
    inside = ((cells >= 0) & (cells < occupied.shape)).all(1)
    first_out = np.argmax(~inside) if (~inside).any() else len(t)
    cells = cells[:first_out]
    occ = occupied[cells[:, 0], cells[:, 1], cells[:, 2]]
    return tuple(cells[np.argmax(occ)]) if occ.any() else None


def _slab_interval(lower, upper, origin, direction):
    """Entry and exit distance of a ray through an axis-aligned box (slab method)."""
    with np.errstate(divide='ignore'):
        t0 = (np.asarray(lower) - origin) / direction
        t1 = (np.asarray(upper) - origin) / direction
    return np.minimum(t0, t1).max(), np.maximum(t0, t1).min()


def test_traversal_matches_brute_force_marcher_on_random_grids():
    rng = np.random.default_rng(0)
    occupied = rng.random((10, 9, 7)) < 0.15
    origins = rng.random((300, 3)) * np.array(occupied.shape)
    dirs = rng.normal(size=(300, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    depth, voxel, hit = traverse_first_hit(torch.from_numpy(occupied), torch.from_numpy(origins),
                                           torch.from_numpy(dirs))
    step, agree, hits = 1e-3, 0, 0
    for i in range(len(origins)):
        marched = _march(occupied, origins[i], dirs[i], step)
        found = tuple(voxel[i].tolist())
        entry, exit_ = _slab_interval(found, np.add(found, 1), origins[i], dirs[i])
        assert depth[i].item() == pytest.approx(exit_, abs=1e-9)      # depth = exit of the reported voxel
        if hit[i]:
            hits += 1
            assert occupied[found]
        else:   # the last voxel inside the grid: it is left where the ray leaves the grid
            grid_exit = _slab_interval((0, 0, 0), occupied.shape, origins[i], dirs[i])[1]
            assert depth[i].item() == pytest.approx(grid_exit, abs=1e-9)
        if marched == (found if hit[i] else None):
            agree += 1
        else:   # only a voxel the ray clips over less than the marcher's step may be missed by it
            assert hit[i] and exit_ - max(entry, 0.0) < 2 * step
    assert 100 < hits < 280 and agree >= len(origins) - 3


def test_scene_ray_origins_from_poses():
    lidar2ego = np.eye(4)
    lidar2ego[:3, 3] = (0.94, 0.0, 1.84)

    def pose(x, y, yaw_deg=0.0):
        m = np.eye(4)
        c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
        m[:2, :2] = [[c, -s], [s, c]]
        m[:2, 3] = (x, y)
        return m

    # ego heading +y in the global frame; next frame 10 m further along +y, one 60 m away (dropped)
    poses = [pose(0, 0, 90), pose(0, 10, 90), pose(0, 60, 90)]
    origins = scene_ray_origins(poses, [lidar2ego] * 3, ref_index=0)
    np.testing.assert_allclose(origins, [[0.94, 0, 1.84], [10.94, 0, 1.84]], atol=1e-5)

    poses = [pose(float(i), 0.0) for i in range(12)]
    origins = scene_ray_origins(poses, [lidar2ego] * 12, ref_index=5)
    expected_frames = [0, 2, 3, 5, 6, 8, 9, 11]                  # round(linspace(0, 11, 8))
    np.testing.assert_allclose(origins[:, 0], [f - 5 + 0.94 for f in expected_frames], atol=1e-5)


def _scalar_amanatides_woo(occupied: np.ndarray, origin, direction):
    """One ray, one step at a time (the textbook loop, z before y before x on ties): (voxel, exit, hit)."""
    voxel = [math.floor(c) for c in origin]
    step = [1 if d >= 0 else -1 for d in direction]
    t_max = [(voxel[a] + (step[a] > 0) - origin[a]) / direction[a] if direction[a] else math.inf for a in range(3)]
    t_delta = [step[a] / direction[a] if direction[a] else math.inf for a in range(3)]
    last = None
    while True:
        inside = all(0 <= voxel[a] < occupied.shape[a] for a in range(3))
        if not inside:
            return last + (False,)
        if t_max[0] < t_max[1]:
            axis = 0 if t_max[0] < t_max[2] else 2
        else:
            axis = 1 if t_max[1] < t_max[2] else 2
        last = (tuple(voxel), t_max[axis])
        if occupied[tuple(voxel)]:
            return last + (True,)
        voxel[axis] += step[axis]
        t_max[axis] += t_delta[axis]


def test_full_ray_set_matches_scalar_traversal_including_face_aligned_rays():
    """Real ray directions from an origin on a voxel face (y = 0 m): many rays run along voxel faces."""
    rng = np.random.default_rng(1)
    semantics = torch.full(OCC_GRID, 16, dtype=torch.long)
    semantics[:, :, 0] = 10
    semantics[torch.from_numpy(rng.random(OCC_GRID) < 0.003)] = 4
    dirs = lidar_ray_directions()
    pick = torch.cat([torch.arange(0, len(dirs), 360 // 4 * 1),              # azimuths 0/90/180/270 deg
                      torch.from_numpy(rng.choice(len(dirs), 200, replace=False))])
    origin = torch.tensor([[0.94, 0.0, 1.84]])
    label, depth, voxel = cast_scene_rays(semantics, origin, dirs[pick], 16)
    occupied = (semantics != 16).numpy()
    origin_vox = ((origin - torch.tensor(OCC_RANGE[:3])) / torch.full((3,), OCC_VOXEL_SIZE))[0].double().tolist()
    for i, d in enumerate(dirs[pick]):
        end = ((d + origin[0] - torch.tensor(OCC_RANGE[:3])) / torch.full((3,), OCC_VOXEL_SIZE)).double().tolist()
        ray = [e - o for e, o in zip(end, origin_vox)]
        norm = math.sqrt(ray[0] * ray[0] + ray[1] * ray[1] + ray[2] * ray[2])
        ref_voxel, ref_exit, ref_hit = _scalar_amanatides_woo(occupied, origin_vox, [r / norm for r in ray])
        assert tuple(voxel[i].tolist()) == ref_voxel
        assert depth[i].item() == pytest.approx(ref_exit * 0.4, rel=1e-6)
        assert label[i].item() == (semantics[ref_voxel].item() if ref_hit else 16)


def test_grids_cast_in_one_pass_equal_separate_casts():
    rng = np.random.default_rng(2)
    grids = torch.from_numpy(np.where(rng.random((2, 20, 20, 8)) < 0.05, 3, 16))
    grids[1, :, :, 0] = 10
    dirs = lidar_ray_directions()[::7]
    origins = torch.tensor([[0.3, -0.2, 0.5], [1.1, 0.4, 0.3]])
    cfg = dict(point_cloud_range=(-4, -4, -1, 4, 4, 2.2), voxel_size=0.4)
    together = cast_scene_rays(grids, origins, dirs, 16, **cfg)
    for g in range(2):
        alone = cast_scene_rays(grids[g], origins, dirs, 16, **cfg)
        for both, one in zip(together, alone):
            assert torch.equal(both[g], one)
    assert (together[0][1] == 10).any() and not (together[0][0] == 10).any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='the Triton traversal runs on a GPU')
def test_cuda_triton_traversal_equals_the_torch_steps():
    """Same float64 operations in the same order: identical depth, voxel and hit on two grids, rays from
    inside and outside, axis-aligned rays (zero direction components) and a step limit that cuts rays."""
    rng = np.random.default_rng(0)
    occupied = torch.from_numpy(rng.random((2, 40, 30, 8)) < 0.05)
    origins = torch.from_numpy(rng.uniform(-5, 45, (2000, 3)))
    dirs = torch.from_numpy(rng.normal(size=(2000, 3)))
    dirs[:200, 1:] = 0  # along x
    dirs[200:300, :2] = 0  # along z
    dirs /= dirs.norm(dim=1, keepdim=True)
    grid_index = torch.from_numpy(rng.integers(0, 2, 2000))
    for max_steps in (None, 7):
        on_cpu = traverse_first_hit(occupied, origins, dirs, grid_index, max_steps)
        on_gpu = traverse_first_hit(occupied.cuda(), origins, dirs, grid_index, max_steps)
        for cpu, gpu in zip(on_cpu, on_gpu):
            assert gpu.is_cuda and torch.equal(cpu, gpu.cpu())
        assert on_cpu[2].any() and not on_cpu[2].all() and (on_cpu[0] == -1).any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='casting through grids on a GPU needs a CUDA GPU')
def test_a_cuda_cast_through_grids_gives_the_cpu_results():
    """The ~112 k rays of a frame, origins on voxel faces included, cast through grids on the GPU (rays formed on the
    host, the Triton traversal): the same labels, depths and voxels as on the CPU."""
    origins = torch.tensor([[0.94, 0.0, 1.84], [0.0, 0.0, 0.0], [12.4, -3.2, 1.6], [-7.13, 2.71, 0.33]])
    dirs = lidar_ray_directions()
    rng = np.random.default_rng(3)
    semantics = torch.from_numpy(np.where(rng.random(OCC_GRID) < 0.003, 4, 16))
    semantics[:, :, 0] = 10
    on_cpu, on_gpu = cast_scene_rays(semantics, origins, dirs, 16), cast_scene_rays(semantics.cuda(), origins, dirs, 16)
    for cpu, gpu in zip(on_cpu, on_gpu):
        assert gpu.is_cuda and torch.equal(cpu, gpu.cpu())


def test_scene_rays_are_unit_rays_from_the_voxel_unit_origins():
    """Shapes, origin-major order, unit length, and the origin of each ray in voxel units."""
    origins = torch.tensor([[0.0, 0.0, 0.0], [2.0, -1.0, 0.4]])
    dirs = lidar_ray_directions()[::100]
    origin_vox, ray = scene_rays(origins, dirs)
    assert origin_vox.shape == ray.shape == (2 * len(dirs), 3) and ray.dtype == torch.float64
    torch.testing.assert_close(ray.norm(dim=1), torch.ones(len(ray), dtype=torch.float64))
    expected = (origins.double() - torch.tensor(OCC_RANGE[:3]).double()) / OCC_VOXEL_SIZE
    torch.testing.assert_close(origin_vox[::len(dirs)], expected)
    # the scale is the same on every axis: the directions again, up to the float32 end points' rounding
    torch.testing.assert_close(ray[len(dirs):], dirs.double(), atol=2e-5, rtol=0)
