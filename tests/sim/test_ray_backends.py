"""The torch ray-casting backend against Embree: the same hits for the sensor rays of a generated world (agents
included), the same generated sample, and the backend choice (drivepi.sim.ray_backends)."""
import io
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from drivepi.sim.generator import generate_world
from drivepi.sim.geometry import points_in_boxes
from drivepi.sim.mini_dataset import EGO_ROUTES, PRESETS, export_scene
from drivepi.sim.ray_backends import TorchBackend, get_ray_backend, resolve_ray_backend
from drivepi.sim.sensors import camera_rays, cast_rays, lidar_directions
from drivepi.sim.world import SensorSetup

SETUP = SensorSetup(image_width=160, image_height=90, lidar_azimuth_res_deg=1.0)
# a generated sample: 2 keyframes, 2 sweeps per keyframe of the 'test' preset
PRESET = replace(PRESETS['test'], num_keyframes=2)


@pytest.fixture(scope='module')
def world():
    return generate_world('scene-0003', seed=3, num_keyframes=2, ego_actions=['right', 'straight'], sensors=SETUP,
                          ego_lead_in=(4.0, 10.0))


def sensor_rays(world, t: float) -> tuple:
    """(R,3) origins and unit directions of the LiDAR beams and every camera pixel of the logged ego at ``t``."""
    ego2global = world.ego2global(t)
    lidar2global = ego2global @ world.sensors.lidar2ego
    dirs, *_ = lidar_directions(world.sensors)
    origins, directions = [np.broadcast_to(lidar2global[:3, 3], dirs.shape)], [dirs @ lidar2global[:3, :3].T]
    calibs, units, _ = camera_rays(world.sensors)
    for calib, unit in zip(calibs.values(), units):
        cam2global = ego2global @ calib.cam2ego
        origins.append(np.broadcast_to(cam2global[:3, 3], unit.shape))
        directions.append(unit @ cam2global[:3, :3].T)
    return np.concatenate(origins), np.concatenate(directions)


def test_torch_hits_equal_embree_hits(world):
    """Every LiDAR and camera ray of two instants (97,920 rays each, ~76k hits): same hit or miss, label, owner and
    ground material; distance within 1 mm. Where the ray meets the face at a grazing angle (|cos| < 0.05 for
    either backend, ~2.8 % of the hits), float32 rounding of the box corners moves the hit along the ray by up to
    1/|cos| times as much (measured: up to 0.30 m for a ray nearly parallel to a long kerb, where Embree is itself
    0.34 m off a float64 slab test and torch 0.05 m), so there only the offset along the face normal, distance
    difference x |cos|, is checked (measured <= 2.3e-5 m). Solid ids differ only on exact ties between coplanar
    faces (overlapping sidewalk slabs, a car body's top under its cabin: 1,971 and 1,305 rays), where Embree's hit
    lies on torch's solid too; elsewhere the face normals agree to 1.4e-4 but on box edges."""
    pytest.importorskip('open3d')
    for t in world.keyframe_times:
        agents = world.agents_at(t)
        origins, dirs = sensor_rays(world, t)
        embree = cast_rays(replace(world, ray_backend='embree').mesh(agents), origins, dirs)
        torch_hits = cast_rays(replace(world, ray_backend='torch').mesh(agents), origins, dirs)
        hit = np.isfinite(embree.distance)
        assert np.array_equal(hit, np.isfinite(torch_hits.distance))
        assert hit.mean() > 0.5 and (embree.owner >= 0).sum() > 1000
        for field in ('label', 'owner', 'material'):
            assert np.array_equal(getattr(embree, field), getattr(torch_hits, field)), field
        cos = np.minimum(*(np.abs(np.einsum('ij,ij->i', h.normals, dirs)) for h in (embree, torch_hits)))
        grazing = hit & (cos < 0.05)
        diff = np.abs(np.nan_to_num(embree.distance, posinf=0) - np.nan_to_num(torch_hits.distance, posinf=0))
        assert grazing.sum() < 0.05 * hit.sum()
        assert diff[hit & ~grazing].max() < 1e-3 and (diff * cos)[grazing].max() < 1e-4
        tie = embree.solid != torch_hits.solid
        assert tie.sum() < 0.05 * hit.sum()
        assert on_solids(embree.points[tie], torch_hits.solid[tie], world, agents).all()
        other_face = hit & ~grazing & ~tie & (np.abs(embree.normals - torch_hits.normals).max(1) > 1e-3)
        assert other_face.sum() <= 1e-4 * hit.sum()   # rays through a box edge, where both faces are right (0 and 2)


def on_solids(points: np.ndarray, solid: np.ndarray, world, agents) -> np.ndarray:
    """(n,) bool: each of (n,3) global ``points`` lies within 1 mm of its solid (``-1``: the ground z = 0)."""
    boxes = world.solids(agents).boxes
    return np.array([abs(p[2]) < 1e-3 if s < 0 else points_in_boxes(p[None].astype(float), boxes[s], 1e-3)[0, 0]
                     for p, s in zip(points, solid)])


def test_culling_changes_nothing(world):
    """The CPU's candidate boxes per ray bundle give exactly the box hits of every ray against every box (CUDA's
    way), for every 7th sensor ray of a keyframe (the culling is conservative)."""
    agents = world.agents_at(0.5)
    rays = np.concatenate(sensor_rays(world, 0.5), axis=1)[::7].astype(np.float32)
    boxes, centre = world.solids(agents).boxes, world.grid.grid2global[:3, 3]
    culled, every = (TorchBackend('cpu', cull).box_scene(boxes, centre).cast(rays) for cull in (True, False))
    assert all(np.array_equal(a, b) for a, b in zip(culled, every))
    assert np.isfinite(culled[0]).mean() > 0.3


def test_a_generated_sample_is_the_same_with_both_backends(tmp_path):
    """One scene of 2 keyframes and 3 LiDAR sweeps ('test' preset sensors) made with each backend: the same table
    records (annotations' LiDAR point counts and visibilities included), world and map files, occupancy semantics
    and flow. Measured differences, which the bounds below leave room for: LiDAR points 1 of 29,604 1.4 mm apart
    (grazing), the rest < 1 mm, 6 intensities 1 apart (the Lambert term of a normal 1e-4 apart rounds the other
    way); JPEGs 0 at 9 of 12 cameras, elsewhere mean 0.006 / max 45 grey levels over all values (a tie pixel
    between a car body and its cabin, spread over its 8 x 8 JPEG block); 1 of 1.3M visibility-mask voxels."""
    pytest.importorskip('open3d')
    roots = [tmp_path / 'embree', tmp_path / 'torch']
    records = [export_scene(root, 'scene-0001', 1, EGO_ROUTES[1], PRESET, start_timestamp_us=1_600_000_000_000_000,
                            ray_backend=root.name) for root in roots]
    assert records[0] == records[1]
    files = [sorted(p.relative_to(root) for p in root.rglob('*') if p.is_file()) for root in roots]
    assert files[0] == files[1]
    pairs = {}
    for rel in files[0]:
        pairs.setdefault(rel.suffix, []).append([(root / rel).read_bytes() for root in roots])
    assert {k: len(v) for k, v in pairs.items()} == {'.json': 1, '.png': 1, '.bin': 3, '.jpg': 12, '.npz': 2}
    assert all(a == b for a, b in pairs['.json'] + pairs['.png'])
    assert any(a != b for a, b in pairs['.bin'])   # each backend did cast
    points = [np.concatenate([np.frombuffer(p[k], np.float32).reshape(-1, 5) for p in pairs['.bin']]) for k in (0, 1)]
    apart = np.abs(points[0][:, :3] - points[1][:, :3]).max(1)
    assert (apart > 1e-3).mean() < 1e-3 and apart.max() < 5e-3
    assert np.abs(points[0][:, 3] - points[1][:, 3]).max() <= 1 and np.array_equal(points[0][:, 4], points[1][:, 4])
    images = [np.stack([np.asarray(Image.open(io.BytesIO(p[k])), np.int16) for p in pairs['.jpg']]) for k in (0, 1)]
    diff = np.abs(images[0] - images[1])
    assert diff.mean() < 0.02 and (diff > 2).mean() < 2e-3
    occupancy = [[np.load(io.BytesIO(p[k])) for k in (0, 1)] for p in pairs['.npz']]
    for a, b in occupancy:
        assert np.array_equal(a['semantics'], b['semantics']) and np.array_equal(a['flow'], b['flow'])
    assert sum((a[k] != b[k]).sum() for a, b in occupancy for k in ('mask_lidar', 'mask_camera')) <= 10


def test_backend_choice(monkeypatch):
    assert resolve_ray_backend('torch') == 'torch'
    assert get_ray_backend('torch').name == 'torch'
    with pytest.raises(ValueError, match="unknown ray backend 'optix'"):
        resolve_ray_backend('optix')
    monkeypatch.setitem(sys.modules, 'open3d', None)   # open3d does not import
    assert resolve_ray_backend('auto') == 'torch'
    with pytest.raises(ValueError, match="'embree' needs open3d"):
        resolve_ray_backend('embree')


def test_the_torch_backend_never_imports_open3d():
    """Without open3d, the sim package and the generator import, and 'auto' means torch."""
    code = ("import sys; sys.modules['open3d'] = None\n"
            "import drivepi.sim.mini_dataset\n"
            "from drivepi.sim.ray_backends import get_ray_backend\n"
            "assert get_ray_backend('auto').name == 'torch'\n")
    subprocess.run([sys.executable, '-c', code], check=True)
