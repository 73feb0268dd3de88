"""Road layout of a mini world: a grid of two-lane streets in the *grid frame*.

Cross-section of every street, by lateral offset |d| from its centreline (metres):
0-3.5 travel lane (right-hand traffic), 3.5-6 parking strip, 6-9 sidewalk (kerb 0.15 m high),
beyond: terrain, trees, street lights and buildings. Intersections carry zebra crossings.
The grid frame is mapped to the global frame by ``grid2global`` (a random yaw and offset),
so nothing downstream may assume axis-aligned roads.
"""
from dataclasses import dataclass

import numpy as np
import shapely
import shapely.affinity
from shapely.geometry import LineString, box

from drivepi.sim.geometry import transform_points

LANE_WIDTH = 3.5
ROAD_HALF_WIDTH = 6.0       # travel lane + parking strip
SIDEWALK_OUTER = 9.0
KERB_HEIGHT = 0.15
CROSSWALK = (6.0, 9.0)      # along-road distance band from the intersection centre
RASTER_RES = 0.1            # m per ground-material cell

# ground materials of the raster
TERRAIN, ROAD, SIDEWALK, WHITE_PAINT, YELLOW_PAINT = range(5)
MATERIAL_NAMES = ('terrain', 'road', 'sidewalk', 'white_paint', 'yellow_paint')


@dataclass
class RoadGrid:
    """Street grid: centrelines ``x = c`` and ``y = c`` for every ``c`` in ``centres`` (grid frame, m)."""
    centres: np.ndarray   # (n,) sorted
    half_extent: float    # the world is [-half_extent, half_extent]^2 in the grid frame
    grid2global: np.ndarray  # (4,4)

    @classmethod
    def make(cls, num_roads: int, block: float, grid2global: np.ndarray) -> 'RoadGrid':
        centres = block * (np.arange(num_roads) - (num_roads - 1) / 2)
        return cls(centres, float(centres[-1] + block / 2), np.asarray(grid2global, float))

    def to_dict(self) -> dict:
        return dict(centres=self.centres.tolist(), half_extent=self.half_extent,
                    grid2global=self.grid2global.tolist())

    @classmethod
    def from_dict(cls, d: dict) -> 'RoadGrid':
        return cls(np.asarray(d['centres'], float), float(d['half_extent']), np.asarray(d['grid2global'], float))

    def segments(self, margin: float) -> list:
        """(lo, hi) intervals along a street between crossing streets, kept ``margin`` m off their centres."""
        bounds = [-self.half_extent - margin] + list(self.centres) + [self.half_extent + margin]
        return [(lo + margin, hi - margin) for lo, hi in zip(bounds[:-1], bounds[1:])]

    def blocks(self) -> list:
        """(lo, hi) intervals of the block interiors beyond the sidewalks, per axis."""
        bounds = [-self.half_extent] + list(self.centres) + [self.half_extent]
        out = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            lo_off = SIDEWALK_OUTER if lo in self.centres else 0.0
            hi_off = SIDEWALK_OUTER if hi in self.centres else 0.0
            out.append((lo + lo_off, hi - hi_off))
        return out


def ground_height(grid: RoadGrid, xy: np.ndarray) -> np.ndarray:
    """(N,) height of the ground surface (m) at grid-frame (N,2) points: the kerb height on sidewalks
    (within ``SIDEWALK_OUTER`` of a centreline but off every street), 0 elsewhere."""
    lateral = np.abs(np.asarray(xy, float)[:, :, None] - grid.centres).min(axis=2)   # (N,2): to x / y streets
    on_road = (lateral <= ROAD_HALF_WIDTH).any(axis=1)
    near_street = (lateral <= SIDEWALK_OUTER).any(axis=1)
    return np.where(near_street & ~on_road, KERB_HEIGHT, 0.0)


def _axis_rect(axis: int, centre: float, lat: tuple, along: tuple) -> tuple:
    """(xmin, ymin, xmax, ymax) of a band ``lat`` across / ``along`` a street along ``axis`` at ``centre``."""
    if axis == 0:
        return along[0], centre + lat[0], along[1], centre + lat[1]
    return centre + lat[0], along[0], centre + lat[1], along[1]


def sidewalk_boxes(grid: RoadGrid) -> np.ndarray:
    """(M,7) kerb-high sidewalk slabs in the grid frame."""
    out = []
    for axis in (0, 1):
        for c in grid.centres:
            for lo, hi in grid.segments(ROAD_HALF_WIDTH):
                for lat in ((ROAD_HALF_WIDTH, SIDEWALK_OUTER), (-SIDEWALK_OUTER, -ROAD_HALF_WIDTH)):
                    x0, y0, x1, y1 = _axis_rect(axis, c, lat, (lo, hi))
                    out.append([(x0 + x1) / 2, (y0 + y1) / 2, 0.0, x1 - x0, y1 - y0, KERB_HEIGHT, 0.0])
    return np.array(out)


def ground_raster(grid: RoadGrid) -> np.ndarray:
    """(S,S) uint8 ground-material raster of the grid frame, cell [iy, ix] centred at
    ``-half_extent + (i + 0.5) * RASTER_RES``; materials ``TERRAIN`` ... ``YELLOW_PAINT``."""
    n = int(round(2 * grid.half_extent / RASTER_RES))
    coords = -grid.half_extent + (np.arange(n) + 0.5) * RASTER_RES
    raster = np.full((n, n), TERRAIN, np.uint8)
    near_crossing = np.min(np.abs(coords[:, None] - grid.centres[None]), axis=1)
    paint_along = near_crossing > CROSSWALK[1] + 0.5
    dash = (np.floor(coords / 3.0) % 2 == 0) & paint_along
    for value, lat_lo, lat_hi, along_mask in (
            (SIDEWALK, ROAD_HALF_WIDTH, SIDEWALK_OUTER, None), (ROAD, 0.0, ROAD_HALF_WIDTH, None),
            (YELLOW_PAINT, 0.0, 0.08, paint_along), (WHITE_PAINT, LANE_WIDTH - 0.08, LANE_WIDTH + 0.08, dash)):
        for c in grid.centres:
            lat = np.abs(coords - c)
            across = np.where((lat >= lat_lo) & (lat <= lat_hi))[0]
            along = np.arange(n) if along_mask is None else np.where(along_mask)[0]
            if value == SIDEWALK:   # sidewalks never cover a crossing street
                along = np.where(near_crossing > ROAD_HALF_WIDTH)[0]
            raster[np.ix_(across, along)] = value    # street along x: rows = y
            raster[np.ix_(along, across)] = value    # street along y
    _paint_crossings(raster, coords, grid)
    return raster


def _paint_crossings(raster: np.ndarray, coords: np.ndarray, grid: RoadGrid) -> None:
    """Zebra stripes (0.5 m paint every 1 m) on every crossing band of every intersection arm."""
    stripes = np.floor(coords / 0.5) % 2 == 0
    for c in grid.centres:
        lat = np.abs(coords - c)
        on_road = np.where((lat <= ROAD_HALF_WIDTH - 0.3) & stripes)[0]
        for c2 in grid.centres:
            d = np.abs(coords - c2)
            band = np.where((d >= CROSSWALK[0]) & (d <= CROSSWALK[1]))[0]
            raster[np.ix_(on_road, band)] = WHITE_PAINT   # street along x at y=c, crossing at x near c2
            raster[np.ix_(band, on_road)] = WHITE_PAINT


def raster_lookup(raster: np.ndarray, grid: RoadGrid, xy_global: np.ndarray) -> np.ndarray:
    """Ground material (N,) uint8 at global (N,2) points (TERRAIN outside the world)."""
    inv = np.linalg.inv(grid.grid2global)
    xy = np.c_[xy_global, np.zeros(len(xy_global))]
    local = transform_points(inv, xy)[:, :2]
    idx = np.floor((local + grid.half_extent) / RASTER_RES).astype(np.int64)
    n = raster.shape[0]
    inside = np.all((idx >= 0) & (idx < n), axis=1)
    out = np.full(len(xy_global), TERRAIN, np.uint8)
    out[inside] = raster[idx[inside, 1], idx[inside, 0]]
    return out


def map_layers(grid: RoadGrid) -> dict:
    """Map polygons/lines in the *grid frame*: ``drivable_area`` (Polygon), ``walkway`` and
    ``ped_crossing`` (lists of Polygons), ``lane`` (list of LineStrings, drawn in travel direction)."""
    e = grid.half_extent
    world = box(-e, -e, e, e)
    roads, walkways, crossings, lanes = [], [], [], []
    for axis in (0, 1):
        for c in grid.centres:
            roads.append(box(*_axis_rect(axis, c, (-ROAD_HALF_WIDTH, ROAD_HALF_WIDTH), (-e, e))))
            for lo, hi in grid.segments(ROAD_HALF_WIDTH):
                for lat in ((ROAD_HALF_WIDTH, SIDEWALK_OUTER), (-SIDEWALK_OUTER, -ROAD_HALF_WIDTH)):
                    walkways.append(box(*_axis_rect(axis, c, lat, (max(lo, -e), min(hi, e)))))
            for c2 in grid.centres:
                for sign in (-1, 1):
                    band = sorted((c2 + sign * CROSSWALK[0], c2 + sign * CROSSWALK[1]))
                    crossings.append(box(*_axis_rect(axis, c, (-ROAD_HALF_WIDTH, ROAD_HALF_WIDTH), band)))
            for direction in (1, -1):
                # right-hand traffic: the lane lies right of its travel direction, which is -y
                # for a road along x driven towards +x, and +x for a road along y driven towards +y
                lat = (-direction if axis == 0 else direction) * LANE_WIDTH / 2
                pts = np.array([[-e, c + lat], [e, c + lat]])[::direction]
                lanes.append(LineString(pts if axis == 0 else pts[:, ::-1]))
    drivable = shapely.union_all(roads).intersection(world)
    return dict(drivable_area=drivable, walkway=walkways, ped_crossing=crossings, lane=lanes)


def to_global(geom, grid: RoadGrid):
    """A shapely geometry moved from the grid frame to the global frame."""
    m = grid.grid2global
    return shapely.affinity.affine_transform(geom, [m[0, 0], m[0, 1], m[1, 0], m[1, 1], m[0, 3], m[1, 3]])
