"""Occupancy scene geometry and the headless open3d render, checked pixel by pixel.

One known scene is rendered once (top orthographic view, unlit, no post-processing) and checked
several ways: each class shows its palette colour where the grid puts it, camera-invisible voxels
are dimmed, the ego car and the planned trajectory are where they belong.
"""
import numpy as np
import pytest

from drivepi.geometry import FREE_INDEX, OCC_GRID, OPENOCC_CLASSES
from drivepi.visualization.palette import EGO_COLOR, PRED_TRAJ_COLOR, class_color, legend_handles, occ_palette
from drivepi.visualization.scene import build_scene, exposed_faces, flow_arrows, occupancy_mesh, trajectory_mesh

FREE = FREE_INDEX
CAR, DRIVEABLE, MANMADE = 0, 10, 14
IMAGE_SIZE = 400          # top view of the 80 m x 80 m grid: 0.2 m per pixel


def known_scene():
    """Ground everywhere, a car block, a building block; ground of the rear-left quarter not visible."""
    sem = np.full(OCC_GRID, FREE, np.uint8)
    sem[:, :, 2] = DRIVEABLE                       # z in [-0.2, 0.2]
    sem[120:130, 90:96, 3:7] = CAR                 # x in [8, 12), y in [-4, -1.6), z up to 1.8
    sem[60:70, 50:60, 3:10] = MANMADE              # x in [-16, -12), y in [-20, -16)
    mask = np.ones_like(sem)
    mask[:100, 100:, :] = 0                        # x < 0 and y > 0 invisible to the cameras
    flow = np.zeros(OCC_GRID + (2,), np.float32)
    flow[120:130, 90:96, 3:7] = (3.0, 1.0)
    traj = np.stack([np.arange(1, 7) * 2.0 + 2.0, np.zeros(6)], axis=1)   # straight ahead to x = 14
    return sem, mask, flow, traj


def pixel_of(x: float, y: float) -> tuple:
    """Independent top-view mapping: rows go down from x = 40, columns go right from y = 40."""
    metres_per_px = 80.0 / IMAGE_SIZE
    return int((40.0 - x) / metres_per_px), int((40.0 - y) / metres_per_px)


@pytest.fixture(scope='module')
def top_render():
    from drivepi.visualization.palette import PRED_TRAJ_COLOR as pred_color
    from drivepi.visualization.render import TOP_VIEW, render_offscreen
    sem, mask, flow, traj = known_scene()
    items = build_scene(sem, None, {'pred': (traj, pred_color)}, mask)
    return render_offscreen(items, IMAGE_SIZE, IMAGE_SIZE, view=TOP_VIEW)


def test_palette_is_the_nuscenes_colour_map_and_distinct():
    palette = occ_palette()
    assert palette.shape == (17, 3) and palette.dtype == np.uint8
    assert tuple(palette[CAR]) == (255, 158, 0)            # nuScenes vehicle.car
    assert tuple(palette[DRIVEABLE]) == (0, 207, 191)      # nuScenes flat.driveable_surface
    assert len({tuple(c) for c in palette[:16]}) == 16
    overlay = {EGO_COLOR, PRED_TRAJ_COLOR}
    assert not overlay & {tuple(int(v) for v in c) for c in palette}
    with pytest.raises(KeyError, match='no colour'):
        class_color('spaceship')
    labels = [h.get_label() for h in legend_handles(OPENOCC_CLASSES, present=[FREE, CAR, CAR, MANMADE],
                                                    extra={'ego vehicle': EGO_COLOR})]
    assert labels == ['car', 'manmade', 'ego vehicle']


def test_exposed_faces_hide_shared_faces():
    occ = np.zeros((3, 3, 3), bool)
    occ[1, 1, 0] = occ[1, 1, 1] = True                     # a two-voxel tower
    faces = exposed_faces(occ)
    # order +x, -x, +y, -y, +z, -z
    assert faces[1, 1, 0].tolist() == [True, True, True, True, False, True]
    assert faces[1, 1, 1].tolist() == [True, True, True, True, True, False]
    assert faces.sum() == 10 and not faces[0, 0, 0].any()


def test_occupancy_mesh_single_voxel_geometry_and_colour():
    sem = np.full(OCC_GRID, FREE, np.uint8)
    sem[100, 50, 3] = CAR
    mesh = occupancy_mesh(sem)
    assert len(mesh.vertices) == 24 and len(mesh.triangles) == 12
    bounds = np.asarray(mesh.vertices)
    # contract: voxel centre x = -40 + (ix + 0.5) * 0.4, ...
    centre = np.array([-40 + 100.5 * 0.4, -40 + 50.5 * 0.4, -1 + 3.5 * 0.4])
    np.testing.assert_allclose(bounds.min(0), centre - 0.2, atol=1e-9)
    np.testing.assert_allclose(bounds.max(0), centre + 0.2, atol=1e-9)
    top = np.asarray(mesh.vertices)[:, 2] > centre[2] + 0.1
    colors = np.asarray(mesh.vertex_colors)
    # the top face has the exact palette colour; side faces are darker shades of it
    np.testing.assert_allclose(colors[top & (np.abs(np.asarray(mesh.vertex_colors) - colors.max(0)).sum(1) < 1e-9)][0],
                               np.array([255, 158, 0]) / 255)
    assert (colors <= np.array([255, 158, 0]) / 255 + 1e-9).all()


def test_invisible_voxels_hide_option():
    sem = np.full(OCC_GRID, FREE, np.uint8)
    sem[10, 10, 3] = sem[20, 20, 3] = CAR
    mask = np.zeros_like(sem)
    mask[10, 10, 3] = 1
    assert len(occupancy_mesh(sem, mask_camera=mask, invisible='show').triangles) == 24
    assert len(occupancy_mesh(sem, mask_camera=mask, invisible='hide').triangles) == 12
    with pytest.raises(ValueError, match='invisible'):
        occupancy_mesh(sem, invisible='ghost')


def test_flow_arrows_start_on_moving_voxels_and_point_along_flow():
    sem, _, flow, _ = known_scene()
    arrows = flow_arrows(sem, flow, stride=2, seconds=1.0)
    pts, lines = np.asarray(arrows.points), np.asarray(arrows.lines)
    n = len(lines) // 3
    assert n == 5 * 3                                   # 10x6 moving columns, one per 2x2 block
    shaft = pts[lines[:n, 1]] - pts[lines[:n, 0]]
    np.testing.assert_allclose(shaft, np.tile([3.0, 1.0, 0.0], (n, 1)), atol=1e-6)
    start = pts[lines[:n, 0]]
    assert (start[:, 0] > 8) .all() and (start[:, 0] < 12).all()
    np.testing.assert_allclose(start[:, 2], -1 + 7 * 0.4 + 0.05, atol=1e-6)   # on top of the car
    # static voxels and slow flow give no arrow
    assert len(flow_arrows(sem, flow * 0.01).lines) == 0


def test_trajectory_ribbon_follows_waypoints():
    traj = np.array([[2.0, 0.0], [4.0, 2.0]])
    mesh = trajectory_mesh(traj, PRED_TRAJ_COLOR, width=0.6, z=0.5)
    verts = np.asarray(mesh.vertices)
    assert len(verts) == 8
    np.testing.assert_allclose(verts[:, 2], 0.5)
    np.testing.assert_allclose(verts[:4, 1], [-0.3, -0.3, 0.3, 0.3], atol=1e-9)  # first segment along x
    np.testing.assert_allclose(verts[:4, 0], [0, 2, 2, 0], atol=1e-9)


def test_render_shows_class_colours_where_the_grid_puts_them(top_render):
    image = top_render
    assert image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and image.dtype == np.uint8
    palette = occ_palette()
    expect = {  # (x, y): (colour, half-size of the checked pixel patch, away from anti-aliased edges)
        (10.0, -2.8): (palette[CAR], 2),          # centre of the car block
        (-14.0, -18.0): (palette[MANMADE], 2),    # centre of the building block
        (20.0, -20.0): (palette[DRIVEABLE], 2),   # visible ground
        (1.0, 0.0): (EGO_COLOR, 2),               # roof of the ego car
        (6.0, 0.0): (PRED_TRAJ_COLOR, 0),         # planned path (0.6 m = 3 px wide) ahead of the ego
        (12.0, 0.0): (PRED_TRAJ_COLOR, 0),
    }
    for (x, y), (color, r) in expect.items():
        row, col = pixel_of(x, y)
        patch = image[row - r:row + r + 1, col - r:col + r + 1].reshape(-1, 3)
        assert (patch == np.asarray(color)).all(), f'({x}, {y}) -> pixel {row, col}: {patch[0]} != {color}'
    # beside the path (y = 1 m) is ground again
    assert (image[pixel_of(6.0, 1.0)] == palette[DRIVEABLE]).all()


def test_render_dims_camera_invisible_voxels(top_render):
    row, col = pixel_of(-20.0, 20.0)                  # x < 0, y > 0: ground invisible to cameras
    dimmed = np.round(occ_palette()[DRIVEABLE] * 0.4 + 255 * 0.6).astype(np.uint8)
    np.testing.assert_array_equal(top_render[row, col], dimmed)
    # the border of the invisible quarter is at x = 0 and y = 0
    assert (top_render[pixel_of(-20.0, 0.5)] == dimmed).all()
    assert (top_render[pixel_of(-20.0, -0.5)] == occ_palette()[DRIVEABLE]).all()


def test_render_area_of_each_class_matches_the_grid(top_render):
    """Pixel counts of the car and building top faces equal their footprint in (0.2 m)^2 pixels."""
    palette = occ_palette()
    car_px = (top_render == palette[CAR]).all(-1).sum()
    manmade_px = (top_render == palette[MANMADE]).all(-1).sum()
    assert car_px == pytest.approx((4.0 * 2.4) / 0.04, rel=0.03)
    assert manmade_px == pytest.approx((4.0 * 4.0) / 0.04, rel=0.03)


def test_interactive_window_needs_a_display(monkeypatch):
    from drivepi.visualization.render import has_display, show_interactive
    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    assert not has_display()
    with pytest.raises(RuntimeError, match='no display'):
        show_interactive(build_scene(known_scene()[0]))
    monkeypatch.setenv('DISPLAY', ':99')
    assert has_display()


def test_meshes_reach_filament_as_tensor_meshes_with_every_vertex_and_colour():
    """open3d leaves the UVs of an uploaded legacy mesh uninitialised (frames 5-100x slower on llvmpipe);
    the tensor mesh that replaces it keeps every vertex, triangle and colour, and line sets pass through."""
    import open3d as o3d

    from drivepi.visualization.render import _filament_geometry
    mesh = occupancy_mesh(*known_scene()[:1])
    converted = _filament_geometry(mesh)
    assert isinstance(converted, o3d.t.geometry.TriangleMesh)
    np.testing.assert_array_equal(converted.vertex.positions.numpy(), np.asarray(mesh.vertices, np.float32))
    np.testing.assert_array_equal(converted.triangle.indices.numpy(), np.asarray(mesh.triangles))
    np.testing.assert_allclose(converted.vertex.colors.numpy(), np.asarray(mesh.vertex_colors), atol=1e-6)
    lines = o3d.geometry.LineSet.create_from_triangle_mesh(mesh)
    assert _filament_geometry(lines) is lines
