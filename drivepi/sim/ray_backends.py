"""Ray-casting backends of the mini worlds: nearest hits of rays against a ground quad and oriented boxes.

- ``'embree'``: the boxes as triangle meshes in ``open3d.t.geometry.RaycastingScene`` (Embree, CPU);
- ``'torch'``: analytic slab tests of the rays rotated into each box's frame (boxes turn about z only), on
  CUDA when available (every ray against every box, in chunks), else on the CPU with culling (:func:`_candidates`)
  (:class:`TorchBackend`);
- ``'auto'``: Embree where ``open3d`` imports, torch otherwise (:func:`resolve_ray_backend`).

Both hit the ground quad the same way, analytically in float64 (:class:`GroundQuad`). A backend builds a static
:class:`Scene` once per world (:meth:`~_Backend.static_scene`: ground quad + static boxes) and per instant one with
the agents' boxes added (:meth:`~_Backend.scene`). ``scene.cast(rays)`` takes (R,6) float32 rays ``[origin, unit
direction]`` (global frame, m) and returns the nearest hit at distance t >= 0 (back faces count, so a ray starting
inside a box hits its exit face): distance (R,) float64 m (inf = miss), solid (R,) int64 (index into the static
boxes, then the agents' boxes; -1 = ground or miss) and the normal (R,3) float32 of the face hit (outward; the
ground's is +z; zero for a miss). The backends agree to float32 precision (tests/sim/test_ray_backends.py).
"""
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch

from drivepi.sim.geometry import TRIANGLES_PER_BOX, boxes_mesh
from drivepi.threads import one_cpu_thread

RAY_BACKENDS = ('auto', 'embree', 'torch')


def resolve_ray_backend(name: str) -> str:
    """The backend ``name`` stands for: ``'embree'`` or ``'torch'`` (``'auto'``: Embree where ``open3d``
    imports, torch otherwise). Only ``'auto'`` and ``'embree'`` try to import ``open3d``.

    Raises:
        ValueError: ``name`` is not one of :data:`RAY_BACKENDS`, or it is ``'embree'`` and ``open3d`` does not import.
    """
    if name not in RAY_BACKENDS:
        raise ValueError(f'unknown ray backend {name!r}; choose from {RAY_BACKENDS}')
    if name == 'torch':
        return name
    try:
        import open3d  # noqa: F401
    except ImportError as err:
        if name == 'embree':
            raise ValueError(f"ray backend 'embree' needs open3d, which does not import here ({err}); "
                             "use 'torch' or 'auto'") from err
        return 'torch'
    return 'embree'


@lru_cache(maxsize=None)
def get_ray_backend(name: str) -> '_Backend':
    """The backend object of ``name`` (:data:`RAY_BACKENDS`), one per process and name."""
    resolved = resolve_ray_backend(name)
    return EmbreeBackend() if resolved == 'embree' else TorchBackend()


# ---------------------------------------------------------------------------------------------------------- scenes
@dataclass
class GroundQuad:
    """The ground: a horizontal quad, hit analytically (float64) by every backend.

    Attributes:
        centre: (3,) global m; axes: (2,2) unit x and y axes of the quad's frame (rows, global xy);
        half: (2,) half side lengths m.
    """
    centre: np.ndarray
    axes: np.ndarray
    half: np.ndarray

    @classmethod
    def from_corners(cls, corners: np.ndarray) -> 'GroundQuad':
        """The quad of (4,3) corners (-,-), (+,-), (-,+), (+,+) of its frame, all at one height."""
        edges = corners[[1, 2], :2] - corners[0, :2]
        lengths = np.linalg.norm(edges, axis=1)
        return cls(corners.mean(0), edges / lengths[:, None], lengths / 2)

    def hits(self, rays: np.ndarray) -> np.ndarray:
        """(R,) float64 distance m at which (R,6) rays meet the quad (inf = never, or behind the origin)."""
        origins, dirs = rays[:, :3].astype(np.float64), rays[:, 3:6].astype(np.float64)
        with np.errstate(divide='ignore', invalid='ignore'):
            t = (self.centre[2] - origins[:, 2]) / dirs[:, 2]
            local = (origins[:, :2] + t[:, None] * dirs[:, :2] - self.centre[:2]) @ self.axes.T
            inside = (t >= 0) & np.all(np.abs(local) <= self.half, axis=1)
        return np.where(inside, t, np.inf)


@dataclass
class Scene:
    """The ground quad and a backend's boxes (:class:`EmbreeBoxes` or :class:`TorchBoxes`)."""
    ground: GroundQuad
    boxes: object

    def cast(self, rays: np.ndarray) -> tuple:
        """Nearest hits of (R,6) float32 rays: distance (R,), solid (R,), normal (R,3) (module docstring); a box
        and the ground hit at exactly the same distance give the box."""
        dist, solid, normals = self.boxes.cast(rays)
        ground = self.ground.hits(rays)
        on_ground = ground < dist
        dist[on_ground], solid[on_ground], normals[on_ground] = ground[on_ground], -1, (0.0, 0.0, 1.0)
        return dist, solid, normals


class _Backend:
    """What the backends share: scenes made of a ground quad and their box scenes (``box_scene``, ``add_boxes``)."""

    def static_scene(self, ground: np.ndarray, boxes: np.ndarray) -> Scene:
        """Scene of the ground quad (4,3) (corners (-,-), (+,-), (-,+), (+,+) of its frame, global m, at one
        height) and (S,7) boxes (solids 0...S-1)."""
        quad = GroundQuad.from_corners(ground)
        return Scene(quad, self.box_scene(boxes, quad.centre))

    def scene(self, static: Scene, boxes: np.ndarray) -> Scene:
        """The scene of one instant: ``static`` plus (D,7) ``boxes`` (solids S...S+D-1)."""
        return replace(static, boxes=self.add_boxes(static.boxes, boxes))


# ---------------------------------------------------------------------------------------------------------- Embree
class EmbreeBackend(_Backend):
    """Boxes as triangle meshes in Embree scenes (``open3d``), on the CPU."""
    name = 'embree'
    device = 'cpu'

    def box_scene(self, boxes: np.ndarray, ref: np.ndarray) -> 'EmbreeBoxes':
        """Embree scene of (S,7) boxes (12 triangles per box, global coordinates: ``ref`` is not used)."""
        verts, tris = boxes_mesh(boxes)
        return EmbreeBoxes(_embree_scene(verts, tris), len(boxes))

    def add_boxes(self, static: 'EmbreeBoxes', boxes: np.ndarray) -> 'EmbreeBoxes':
        """``static`` and a second Embree scene of (D,7) ``boxes``."""
        verts, tris = boxes_mesh(boxes)
        return replace(static, dynamic=_embree_scene(verts, tris) if len(boxes) else None)


@dataclass
class EmbreeBoxes:
    """An Embree scene of S static boxes and optionally one of the agents' boxes (solids S...)."""
    static: object
    num_static: int
    dynamic: object = None

    def cast(self, rays: np.ndarray) -> tuple:
        """Nearest box hits of (R,6) float32 rays: distance (R,), solid (R,), normal (R,3) (module docstring)."""
        import open3d as o3d
        tensor = o3d.core.Tensor(rays)
        static = self.static.cast_rays(tensor)
        dist = static['t_hit'].numpy().astype(np.float64)
        solid = static['primitive_ids'].numpy().astype(np.int64) // TRIANGLES_PER_BOX
        normals = static['primitive_normals'].numpy()
        if self.dynamic is not None:
            dyn = self.dynamic.cast_rays(tensor)
            closer = dyn['t_hit'].numpy() < dist
            dist[closer] = dyn['t_hit'].numpy()[closer]
            solid[closer] = self.num_static + dyn['primitive_ids'].numpy()[closer].astype(np.int64) // TRIANGLES_PER_BOX
            normals[closer] = dyn['primitive_normals'].numpy()[closer]
        solid[~np.isfinite(dist)] = -1
        return dist, solid, normals


def _embree_scene(vertices: np.ndarray, triangles: np.ndarray):
    """An ``open3d.t.geometry.RaycastingScene`` of one triangle mesh."""
    import open3d as o3d
    scene = o3d.t.geometry.RaycastingScene()
    if len(triangles):
        scene.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)),
                            o3d.core.Tensor(triangles.astype(np.uint32)))
    return scene


# ---------------------------------------------------------------------------------------------------------- torch
# box parameter rows (float32, relative to the scene's reference point): centre x, y, z, half sizes, cos, sin of yaw
CENTRE, HALF, COS, SIN = slice(0, 3), slice(3, 6), 6, 7
BIN = np.deg2rad(2.0)        # culling: direction bins (azimuth x elevation, rad) ...
ORIGIN_CELL = 0.5            # ... per cell of ray origins (m)
MAX_ORIGIN_CELLS = 256       # more runs of origin cells than this: no culling (every box a candidate of every ray)
ANGLE_MARGIN = 1e-4          # rad added to every box's angular extent (float32 round-off of the angles)
PAIRS_PER_CHUNK = dict(cpu=1 << 20, cuda=1 << 24)   # ray-box pairs tested at once (memory bound)


class TorchBackend(_Backend):
    """Analytic ray/box slab tests in torch, on ``device`` (default: CUDA where available, else the CPU).

    With ``cull`` (default: on the CPU) each ray is only tested against the candidate boxes of its bundle
    (:func:`_candidates`), else against every box (in chunks). On the CPU it runs in one thread: its many small
    operations lose more to the synchronisation of torch's intra-op threads than they gain (up to 10x slower
    with 2 threads on a loaded 2-core machine), so CPU cores are better used by processes (``workers``).
    """
    name = 'torch'

    def __init__(self, device: str = None, cull: bool = None):
        self.device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
        self.cull = self.device.type == 'cpu' if cull is None else cull

    def box_scene(self, boxes: np.ndarray, ref: np.ndarray) -> 'TorchBoxes':
        """(S,7) boxes on the device, coordinates relative to ``ref`` (3,) (global m; float32 is then ~1e-5 m
        exact in a world ~1 km across)."""
        ref = np.array([ref[0], ref[1], 0.0])
        return TorchBoxes(ref, self._params(boxes, ref), self.cull)

    def add_boxes(self, static: 'TorchBoxes', boxes: np.ndarray) -> 'TorchBoxes':
        """``static`` with (D,7) ``boxes`` appended."""
        return replace(static, params=torch.cat([static.params, self._params(boxes, static.ref)]))

    def _params(self, boxes: np.ndarray, ref: np.ndarray) -> torch.Tensor:
        """(N,8) float32 parameter rows (``CENTRE, HALF, COS, SIN``) of (N,7) boxes, centres relative to ``ref``."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
        centre = boxes[:, :3] - ref + [0, 0, 0.5] * boxes[:, 5:6]
        params = np.c_[centre, boxes[:, 3:6] / 2, np.cos(boxes[:, 6]), np.sin(boxes[:, 6])]
        return torch.from_numpy(params.astype(np.float32)).to(self.device)


@dataclass
class TorchBoxes:
    """Oriented boxes as (N,8) float32 parameter rows ``params`` on one device (the static boxes, then the
    agents'), centres relative to ``ref`` (3,) float64 (global m, z = 0); ``cull``: see :class:`TorchBackend`."""
    ref: np.ndarray
    params: torch.Tensor
    cull: bool

    @torch.no_grad()
    def cast(self, rays: np.ndarray) -> tuple:
        """Nearest box hits of (R,6) float32 rays: distance (R,), solid (R,), normal (R,3) (module docstring)."""
        if not len(rays):
            return np.zeros(0), np.zeros(0, np.int64), np.zeros((0, 3), np.float32)
        device = self.params.device
        origins = torch.from_numpy((rays[:, :3] - self.ref).astype(np.float32)).to(device)
        dirs = torch.from_numpy(np.ascontiguousarray(rays[:, 3:6], np.float32)).to(device)
        with one_cpu_thread() if device.type == 'cpu' else nullcontext():
            bundles = _candidates(origins, dirs, self.params) if self.cull else _all_candidates(origins, self.params)
            dist, box = _nearest_hits(origins, dirs, self.params, *bundles, PAIRS_PER_CHUNK[device.type])
            hit = torch.isfinite(dist)
            normals = torch.zeros_like(origins)
            normals[hit] = _hit_normals(origins[hit], dirs[hit], self.params[box[hit]])
        return dist.double().cpu().numpy(), torch.where(hit, box, -1).cpu().numpy(), normals.cpu().numpy()


def _all_candidates(origins: torch.Tensor, boxes: torch.Tensor) -> tuple:
    """Every box a candidate of every ray: key (R,) int64 zeros, and one candidate list (see :func:`_candidates`)."""
    device = boxes.device
    return (torch.zeros(len(origins), dtype=torch.long, device=device), torch.zeros(1, dtype=torch.long, device=device),
            torch.tensor([len(boxes)], device=device), torch.arange(len(boxes), device=device))


def _candidates(origins: torch.Tensor, dirs: torch.Tensor, boxes: torch.Tensor) -> tuple:
    """Candidate boxes per ray bundle (consecutive rays whose origins share a ``ORIGIN_CELL`` cell, with
    directions in one ``BIN`` x ``BIN`` azimuth-elevation bin): the boxes whose angular extent, seen from the
    bundle's origins, overlaps the bin; every box when the rays start in more than ``MAX_ORIGIN_CELLS`` runs of cells.

    Args:
        origins, dirs: (R,3) float32, R > 0 (relative to the scene's reference point; unit directions).
        boxes: (N,8) parameter rows.
    Returns:
        key (R,) int64 bundle of each ray; starts, counts (K,) int64: each bundle's slice of cand;
        cand (C,) int64 box indices (ascending within a bundle).
    """
    cells = torch.floor(origins / ORIGIN_CELL)
    new_cell = torch.ones(len(cells), dtype=torch.bool, device=cells.device)
    new_cell[1:] = (cells[1:] != cells[:-1]).any(1)
    cell_of_ray = torch.cumsum(new_cell, 0) - 1
    num_cells = int(cell_of_ray[-1]) + 1
    if num_cells > MAX_ORIGIN_CELLS:
        return _all_candidates(origins, boxes)
    num_az, num_el = int(np.ceil(2 * np.pi / BIN)), int(np.ceil(np.pi / BIN))
    az_bin = ((torch.atan2(dirs[:, 1], dirs[:, 0]) + np.pi) / BIN).long().clamp_(0, num_az - 1)
    el_bin = ((torch.asin(dirs[:, 2].clamp(-1, 1)) + np.pi / 2) / BIN).long().clamp_(0, num_el - 1)
    bins = (cell_of_ray * num_el + el_bin) * num_az + az_bin
    used = torch.zeros(num_cells * num_el * num_az, dtype=torch.bool, device=bins.device).index_fill_(0, bins, True)
    key = (torch.cumsum(used, 0) - 1)[bins]
    bundles = used.nonzero()[:, 0]
    index = cell_of_ray[:, None].expand(-1, 3)
    lo = torch.full((num_cells, 3), np.inf, device=origins.device).scatter_reduce_(0, index, origins, 'amin')
    hi = torch.full_like(lo, -np.inf).scatter_reduce_(0, index, origins, 'amax')
    az_mid, az_half, el_lo, el_hi = _angular_extents((lo + hi) / 2, (hi - lo).norm(dim=1) / 2, boxes)
    bin_az = ((torch.arange(num_az, device=bins.device) + 0.5) * BIN - np.pi)[None, :, None]
    bin_el = (torch.arange(num_el, device=bins.device) * BIN - np.pi / 2)[None, :, None]
    az_ok = _wrap(az_mid[:, None] - bin_az).abs() <= az_half[:, None] + BIN / 2          # (G,num_az,N)
    el_ok = (el_hi[:, None] >= bin_el) & (el_lo[:, None] <= bin_el + BIN)               # (G,num_el,N)
    cell = bundles // (num_el * num_az)
    bundle, cand = (az_ok[cell, bundles % num_az] & el_ok[cell, bundles // num_az % num_el]).nonzero().unbind(1)
    counts = torch.bincount(bundle, minlength=len(bundles))
    return key, torch.cumsum(counts, 0) - counts, counts, cand


def _angular_extents(points: torch.Tensor, radius: torch.Tensor, boxes: torch.Tensor) -> tuple:
    """Directions (rad) from which rays starting within ``radius`` (G,) of ``points`` (G,3) can hit each box:
    azimuth centre and half width, elevation low and high, each (G,N) (+ ``ANGLE_MARGIN``). Conservative: the
    extents of the box grown by ``radius`` on every side, seen from the point; all azimuths where the point lies
    over the grown footprint."""
    grown = boxes[None, :, HALF] + radius[:, None, None]                       # (G,N,3)
    rel = boxes[None, :, CENTRE] - points[:, None]                             # centre - point
    c, s = boxes[:, COS], boxes[:, SIN]
    local = torch.stack([c * rel[..., 0] + s * rel[..., 1], c * rel[..., 1] - s * rel[..., 0]], -1).abs()
    outside = (local - grown[..., :2]).clamp(min=0)
    d_min, d_max = outside.norm(dim=-1), (local + grown[..., :2]).norm(dim=-1)
    az_centre = torch.atan2(rel[..., 1], rel[..., 0])
    corners = torch.stack([torch.atan2(rel[..., 1] + sx * s * grown[..., 0] + sy * c * grown[..., 1],
                                       rel[..., 0] + sx * c * grown[..., 0] - sy * s * grown[..., 1])
                           for sx in (-1, 1) for sy in (-1, 1)], -1)
    delta = _wrap(corners - az_centre[..., None])
    lo, hi = delta.min(-1).values, delta.max(-1).values
    over = (outside == 0).all(-1)
    az_half = torch.where(over, np.pi, (hi - lo) / 2 + ANGLE_MARGIN)
    dz_lo, dz_hi = rel[..., 2] - grown[..., 2], rel[..., 2] + grown[..., 2]
    el_lo = torch.atan2(dz_lo, torch.where(dz_lo < 0, d_min, d_max)) - ANGLE_MARGIN
    el_hi = torch.atan2(dz_hi, torch.where(dz_hi > 0, d_min, d_max)) + ANGLE_MARGIN
    return az_centre + (lo + hi) / 2, az_half, el_lo, el_hi


def _wrap(angle: torch.Tensor) -> torch.Tensor:
    """Angles (rad) wrapped into [-pi, pi)."""
    return torch.remainder(angle + np.pi, 2 * np.pi) - np.pi


def _nearest_hits(origins, dirs, boxes, key, starts, counts, cand, pairs_per_chunk: int) -> tuple:
    """Nearest hit of each ray among its candidate boxes (:func:`_candidates`); ties go to the lowest box index.

    Rays are sorted by their number of candidates and tested in chunks of rays with as many candidates, at most
    ``pairs_per_chunk`` ray-box pairs each.

    Returns:
        distance (R,) float32 (inf = miss) and box (R,) int64 of the hit.
    """
    num_rays, device = len(origins), origins.device
    dist = torch.full((num_rays,), np.inf, device=device)
    box = torch.zeros(num_rays, dtype=torch.long, device=device)
    count = counts[key]
    order = torch.argsort(count, stable=True)
    count, first = count[order], starts[key[order]]
    for r0, r1 in _chunks(count, pairs_per_chunk):
        rays = order[r0:r1]
        index = cand[first[r0:r1, None] + torch.arange(int(count[r0]), device=device)]        # (n,K)
        best, slot = _slab_distances(origins[rays, None], dirs[rays, None], boxes[index]).min(1)
        dist[rays], box[rays] = best, index.gather(1, slot[:, None])[:, 0]
    return dist, box


def _chunks(count: torch.Tensor, pairs_per_chunk: int):
    """``(r0, r1)`` ranges of rays sorted by their (R,) candidate ``count``, each of rays with one count (rays
    without candidates left out) and at most ``pairs_per_chunk`` pairs (at least one ray)."""
    values, sizes = torch.unique_consecutive(count, return_counts=True)
    ends = torch.cumsum(sizes, 0)
    for value, end, size in zip(values.tolist(), ends.tolist(), sizes.tolist()):
        step = max(1, pairs_per_chunk // max(value, 1))
        for r0 in range(end - size, end, step) if value else ():
            yield r0, min(r0 + step, end)


def _slab_distances(origins: torch.Tensor, dirs: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """(...) float32 smallest t >= 0 at which rays meet the surface of boxes (inf = miss), by the slab test in each
    box's frame; origins, dirs (...,3) float32 and boxes (...,8) parameter rows broadcast."""
    centre_t, half_t, _ = _slabs(origins, dirs, boxes)         # slab i of the box: t in centre_t -+ half_t
    t_near, t_far = -(half_t - centre_t).amin(-1), (centre_t + half_t).amin(-1)
    return torch.where((t_near <= t_far) & (t_far >= 0), torch.where(t_near >= 0, t_near, t_far), np.inf)


def _hit_normals(origins: torch.Tensor, dirs: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """(P,3) float32 global outward unit normals of the faces where P rays (origins, dirs (P,3)) first meet the
    surface of their boxes (P,8) at t >= 0 (the ray's exit face when it starts inside)."""
    centre_t, half_t, step = _slabs(origins, dirs, boxes)
    minus_near, axis_near = (half_t - centre_t).min(-1)
    axis_far = (centre_t + half_t).argmin(-1)
    entry = minus_near <= 0                                    # the ray enters the box at t >= 0
    axis = torch.where(entry, axis_near, axis_far)
    # entering, the face's normal points against the ray's step along the axis; leaving, along it
    outward = torch.where((step.gather(1, axis[:, None])[:, 0] < 0) == entry, 1.0, -1.0)
    c, s, zero = boxes[:, COS], boxes[:, SIN], torch.zeros_like(boxes[:, COS])
    axes = torch.stack([torch.stack([c, s, zero], 1), torch.stack([-s, c, zero], 1),
                        torch.stack([zero, zero, zero + 1], 1)], 1)             # (P,3 axes,3) global
    return axes[torch.arange(len(axis), device=axis.device), axis] * outward[:, None]


def _slabs(origins: torch.Tensor, dirs: torch.Tensor, boxes: torch.Tensor) -> tuple:
    """Where rays cross the three slabs of boxes, in each box's frame: centre and half width in t and the ray's
    step per unit t, each (...,3)."""
    c, s = boxes[..., COS, None], boxes[..., SIN, None]
    rel = origins - boxes[..., CENTRE]
    start = torch.cat([c * rel[..., :1] + s * rel[..., 1:2], c * rel[..., 1:2] - s * rel[..., :1], rel[..., 2:]], -1)
    step = torch.cat([c * dirs[..., :1] + s * dirs[..., 1:2], c * dirs[..., 1:2] - s * dirs[..., :1],
                      dirs[..., 2:].expand_as(c)], -1)
    inv = 1 / torch.where(step == 0, 1e-30, step)
    return -start * inv, boxes[..., HALF] * inv.abs(), step
