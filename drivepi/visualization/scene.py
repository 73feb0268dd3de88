"""open3d geometry of an occupancy scene: voxel cubes, flow arrows, ego car, trajectories.

Everything is built vectorised in numpy and handed to open3d as one merged geometry per kind, so a
full 200x200x16 grid becomes a single ``TriangleMesh``. Colours are baked per face (top faces carry
the exact palette colour, side faces a darker shade) and meant for an unlit material: the picture
reads as 3D without lights, and a class colour is recoverable from the rendered pixels.
All coordinates are in the ego frame, metres.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import open3d as o3d

from drivepi.geometry import EGO_LENGTH, EGO_WIDTH, FREE_INDEX, OCC_RANGE, OCC_VOXEL_SIZE, OPENOCC_CLASSES

from .occ_grid import voxel_centers
from .palette import EGO_COLOR, FLOW_COLOR, occ_palette

# Unit-cube faces in the order +x, -x, +y, -y, +z, -z: 4 corners each, counter-clockwise seen from outside.
_FACE_CORNERS = np.array([
    [[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 0, 1]],
    [[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0]],
    [[0, 1, 0], [0, 1, 1], [1, 1, 1], [1, 1, 0]],
    [[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]],
    [[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]],
    [[0, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0]],
], dtype=np.float64)
_FACE_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
# Brightness of each face direction: top exact, sides darker so edges and heights stay readable.
FACE_SHADE = np.array([0.78, 0.78, 0.62, 0.62, 1.0, 0.45])
# Ego vehicle of nuScenes (Renault Zoe), rear-axle origin; sizes as in configs/_base_/closed_loop.py.
EGO_BOX = dict(length=EGO_LENGTH, width=EGO_WIDTH, height=1.5, rear_axle_to_center=1.385)


@dataclass
class SceneItem:
    """One open3d geometry with how to draw it.

    Attributes:
        name: unique name in the scene.
        geometry: ``TriangleMesh`` or ``LineSet`` with per-vertex / per-line colours.
        line_width: pixel width for line sets.
    """
    name: str
    geometry: o3d.geometry.Geometry
    line_width: float = 1.0


def boxes_mesh(mins: np.ndarray, maxs: np.ndarray, colors: np.ndarray,
               face_mask: Optional[np.ndarray] = None) -> o3d.geometry.TriangleMesh:
    """Axis-aligned boxes as one mesh with face-shaded vertex colours.

    Args:
        mins, maxs: (N, 3) box corners in metres.
        colors: (N, 3) uint8 RGB per box.
        face_mask: (N, 6) bool, faces to emit (order +x, -x, +y, -y, +z, -z); all when None.

    Returns:
        TriangleMesh with 4 vertices and 2 triangles per emitted face.
    """
    mins, maxs = np.asarray(mins, np.float64), np.asarray(maxs, np.float64)
    if face_mask is None:
        face_mask = np.ones((len(mins), 6), dtype=bool)
    box_idx, face_idx = np.nonzero(face_mask)
    size = (maxs - mins)[box_idx]                                          # (F, 3)
    verts = mins[box_idx, None, :] + _FACE_CORNERS[face_idx] * size[:, None, :]  # (F, 4, 3)
    shade = FACE_SHADE[face_idx][:, None]
    face_colors = np.asarray(colors, np.float64)[box_idx] / 255.0 * shade    # (F, 3)
    base = 4 * np.arange(len(box_idx))[:, None]
    tris = np.concatenate([base + [0, 1, 2], base + [0, 2, 3]], axis=0)
    mesh = o3d.geometry.TriangleMesh()
    mesh.vertices = o3d.utility.Vector3dVector(verts.reshape(-1, 3))
    mesh.triangles = o3d.utility.Vector3iVector(tris.astype(np.int32))
    mesh.vertex_colors = o3d.utility.Vector3dVector(np.repeat(face_colors, 4, axis=0))
    return mesh


def exposed_faces(occupied: np.ndarray) -> np.ndarray:
    """Which faces of each voxel border a non-occupied voxel (or the grid edge).

    Args:
        occupied: bool grid (X, Y, Z).

    Returns:
        bool (X, Y, Z, 6) in face order +x, -x, +y, -y, +z, -z.
    """
    padded = np.pad(occupied, 1, constant_values=False)
    out = np.empty(occupied.shape + (6,), dtype=bool)
    for f, normal in enumerate(_FACE_NORMALS):
        shifted = tuple(slice(1 + d, padded.shape[a] - 1 + d) for a, d in enumerate(normal))
        out[..., f] = ~padded[shifted]
    return out & occupied[..., None]


def voxel_colors(semantics: np.ndarray, palette: np.ndarray, mask_camera: Optional[np.ndarray] = None,
                 invisible_dim: float = 0.6) -> np.ndarray:
    """uint8 RGB (X, Y, Z, 3) of every voxel; voxels with ``mask_camera == 0`` blended towards white."""
    colors = palette[semantics].astype(np.float64)
    if mask_camera is not None:
        hidden = ~np.asarray(mask_camera, bool)
        colors[hidden] = colors[hidden] * (1 - invisible_dim) + 255.0 * invisible_dim
    return np.round(colors).astype(np.uint8)


def occupancy_mesh(semantics: np.ndarray, free_index: int = FREE_INDEX,
                   palette: Optional[np.ndarray] = None, mask_camera: Optional[np.ndarray] = None,
                   invisible: str = 'dim', pc_range: Sequence[float] = OCC_RANGE,
                   voxel_size: float = OCC_VOXEL_SIZE) -> o3d.geometry.TriangleMesh:
    """Occupied voxels as coloured cubes, free space hidden, only faces that can be seen.

    Args:
        semantics: integer grid (X, Y, Z) of class ids.
        free_index: id of the free class (not drawn).
        palette: (K, 3) uint8, default :func:`occ_palette`.
        mask_camera: (X, Y, Z) camera visibility; used by ``invisible``.
        invisible: ``'show'``, ``'dim'`` (blend towards white) or ``'hide'`` camera-invisible voxels.
    """
    if invisible not in ('show', 'dim', 'hide'):
        raise ValueError(f"invisible must be 'show', 'dim' or 'hide', got {invisible!r}")
    palette = occ_palette() if palette is None else palette
    occupied = semantics != free_index
    if invisible == 'hide' and mask_camera is not None:
        occupied &= np.asarray(mask_camera, bool)
    faces = exposed_faces(occupied)
    dim_mask = mask_camera if invisible == 'dim' else None
    colors = voxel_colors(np.where(occupied, semantics, 0), palette, dim_mask)
    idx = np.argwhere(occupied)
    mins = voxel_centers(idx, pc_range, voxel_size) - voxel_size / 2
    return boxes_mesh(mins, mins + voxel_size, colors[occupied], faces[occupied])


def ego_car_mesh(color=EGO_COLOR) -> o3d.geometry.TriangleMesh:
    """The ego vehicle as a box on the ground around the rear-axle origin (:data:`EGO_BOX`)."""
    x0 = EGO_BOX['rear_axle_to_center'] - EGO_BOX['length'] / 2
    mins = np.array([[x0, -EGO_BOX['width'] / 2, 0.0]])
    maxs = np.array([[x0 + EGO_BOX['length'], EGO_BOX['width'] / 2, EGO_BOX['height']]])
    return boxes_mesh(mins, maxs, np.array([color]))


def trajectory_mesh(traj: np.ndarray, color, width: float = 0.6, z: float = 0.65,
                    start=(0.0, 0.0)) -> o3d.geometry.TriangleMesh:
    """A planned path as a flat ribbon from ``start`` through the waypoints.

    Args:
        traj: (T, 2) waypoints (x, y) in metres, ego frame.
        color: uint8 RGB.
        width: ribbon width in metres.
        z: height of the ribbon (above the ground voxels).
    """
    pts = np.concatenate([np.asarray(start, np.float64)[None], np.asarray(traj, np.float64)], axis=0)
    seg = np.diff(pts, axis=0)
    length = np.linalg.norm(seg, axis=1, keepdims=True)
    keep = length[:, 0] > 1e-6
    normal = np.stack([-seg[:, 1], seg[:, 0]], axis=1)[keep] / length[keep] * (width / 2)
    p0, p1 = pts[:-1][keep], pts[1:][keep]
    quad = np.stack([p0 - normal, p1 - normal, p1 + normal, p0 + normal], axis=1)  # (S, 4, 2)
    verts = np.concatenate([quad, np.full(quad.shape[:2] + (1,), z)], axis=2).reshape(-1, 3)
    base = 4 * np.arange(len(quad))[:, None]
    # both windings, so the ribbon shows from above and below
    tris = np.concatenate([base + [0, 1, 2], base + [0, 2, 3], base + [0, 2, 1], base + [0, 3, 2]])
    mesh = o3d.geometry.TriangleMesh()
    mesh.vertices = o3d.utility.Vector3dVector(verts)
    mesh.triangles = o3d.utility.Vector3iVector(tris.astype(np.int32))
    mesh.vertex_colors = o3d.utility.Vector3dVector(np.tile(np.asarray(color, np.float64) / 255.0,
                                                            (len(verts), 1)))
    return mesh


def flow_arrows(semantics: np.ndarray, flow: np.ndarray, moving_classes: Sequence[int] = tuple(range(8)),
                min_speed: float = 0.2, seconds: float = 1.0, stride: int = 2, color=FLOW_COLOR,
                pc_range: Sequence[float] = OCC_RANGE,
                voxel_size: float = OCC_VOXEL_SIZE) -> o3d.geometry.LineSet:
    """Arrows for the flow of moving voxels, one per (x, y) column on top of its highest moving voxel.

    Args:
        semantics: (X, Y, Z) class ids; flow: (X, Y, Z, 2) (vx, vy) in m/s.
        moving_classes: class ids that carry flow.
        min_speed: columns slower than this (m/s) get no arrow.
        seconds: arrow length = displacement over this time.
        stride: one arrow per ``stride x stride`` block of columns (keeps dense objects readable).

    Returns:
        LineSet with 3 lines per arrow (shaft and two head strokes).
    """
    moving = np.isin(semantics, moving_classes) & (np.linalg.norm(flow, axis=-1) >= min_speed)
    cols = np.argwhere(moving.any(axis=2))                                   # (A, 2)
    cols = cols[(cols % stride == 0).all(axis=1)]
    top = moving.shape[2] - 1 - np.argmax(moving[cols[:, 0], cols[:, 1], ::-1], axis=1)
    idx = np.concatenate([cols, top[:, None]], axis=1)
    start = voxel_centers(idx, pc_range, voxel_size) + [0, 0, voxel_size / 2 + 0.05]
    vel = flow[idx[:, 0], idx[:, 1], idx[:, 2]] * seconds
    end = start + np.concatenate([vel, np.zeros((len(vel), 1))], axis=1)
    heads = [_rotate_xy(-vel * 0.3, angle) for angle in (0.45, -0.45)]
    points = np.concatenate([start, end] + [end + np.concatenate([h, np.zeros((len(h), 1))], 1)
                                            for h in heads], axis=0)
    n = len(start)
    ar = np.arange(n)
    lines = np.concatenate([np.stack([ar, n + ar], 1), np.stack([n + ar, 2 * n + ar], 1),
                            np.stack([n + ar, 3 * n + ar], 1)], axis=0)
    lineset = o3d.geometry.LineSet(o3d.utility.Vector3dVector(points),
                                   o3d.utility.Vector2iVector(lines.astype(np.int32)))
    lineset.colors = o3d.utility.Vector3dVector(np.tile(np.asarray(color, np.float64) / 255, (len(lines), 1)))
    return lineset


def _rotate_xy(vec: np.ndarray, angle: float) -> np.ndarray:
    """Rotate (N, 2) vectors by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return vec @ np.array([[c, s], [-s, c]])


def build_scene(semantics: np.ndarray, flow: Optional[np.ndarray] = None,
                trajectories: Optional[dict] = None, mask_camera: Optional[np.ndarray] = None,
                class_names: Sequence[str] = OPENOCC_CLASSES, invisible: str = 'dim',
                show_ego: bool = True) -> List[SceneItem]:
    """All geometries of one occupancy picture.

    Args:
        semantics: (X, Y, Z) class ids (free = last class of ``class_names``).
        flow: optional (X, Y, Z, 2) m/s; arrows on moving voxels.
        trajectories: optional ``{name: ((T, 2) waypoints, uint8 RGB)}``.
        mask_camera: optional camera visibility grid for ``invisible``.
    """
    items = [SceneItem('occupancy', occupancy_mesh(semantics, len(class_names) - 1,
                                                   occ_palette(class_names), mask_camera, invisible))]
    if flow is not None:
        items.append(SceneItem('flow', flow_arrows(semantics, flow), line_width=2.0))
    if show_ego:
        items.append(SceneItem('ego', ego_car_mesh()))
    for name, (traj, color) in (trajectories or {}).items():
        items.append(SceneItem(f'traj_{name}', trajectory_mesh(traj, color)))
    return items
