"""Bird's-eye-view geometry of oriented boxes with shapely (global frame, metres, radians)."""
import numpy as np
import shapely

from drivepi.geometry import bev_corners

from .kinematics import EgoState, VehicleParams


def box_polygons(boxes: np.ndarray) -> np.ndarray:
    """shapely Polygons (N,) of boxes ``(N, 7) [x, y, z_bottom, l, w, h, yaw]`` (z ignored)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    if len(boxes) == 0:
        return np.empty(0, dtype=object)
    return shapely.polygons(bev_corners(boxes))


def ego_corners(state: EgoState, params: VehicleParams, advance: float = 0.0) -> np.ndarray:
    """(4, 2) corners of the ego box, optionally moved ``advance`` m forward along the heading."""
    center = state.center(params) + advance * np.array([np.cos(state.yaw), np.sin(state.yaw)])
    return bev_corners(np.array([[center[0], center[1], 0.0, params.length, params.width, 1.0, state.yaw]]))[0]


def ego_polygon(state: EgoState, params: VehicleParams, advance: float = 0.0) -> shapely.Polygon:
    """shapely Polygon of the ego box (see :func:`ego_corners`)."""
    return shapely.Polygon(ego_corners(state, params, advance))


class MapGeometry:
    """The map layers the closed loop scores against, global frame.

    Args:
        drivable_area: shapely (Multi)Polygon of the drivable surface.
        lanes: lane centerlines as shapely LineStrings, travel direction = coordinate order.
    """

    def __init__(self, drivable_area, lanes):
        if drivable_area is None or shapely.is_empty(drivable_area):
            raise ValueError('MapGeometry: empty drivable area')
        self.drivable_area = drivable_area
        self.lanes = np.asarray(list(lanes), dtype=object)
        shapely.prepare(self.drivable_area)

    def inside_drivable(self, points: np.ndarray) -> np.ndarray:
        """bool (N,): which points (N, 2) lie on the drivable area (boundary included)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return shapely.intersects_xy(self.drivable_area, points[:, 0], points[:, 1])

    def lane_directions_near(self, point: np.ndarray, radius: float) -> np.ndarray:
        """Unit travel directions (K, 2) of the lanes whose centerline passes within ``radius`` of ``point``."""
        if len(self.lanes) == 0:
            return np.zeros((0, 2))
        pt = shapely.Point(point)
        near = self.lanes[shapely.distance(self.lanes, pt) < radius]
        dirs = []
        for lane in near:
            s = lane.project(pt)
            a = shapely.get_coordinates(lane.interpolate(max(s - 0.5, 0.0)))[0]
            b = shapely.get_coordinates(lane.interpolate(min(s + 0.5, lane.length)))[0]
            if np.linalg.norm(b - a) > 1e-6:
                dirs.append((b - a) / np.linalg.norm(b - a))
        return np.array(dirs).reshape(-1, 2)

    def distance_to_lanes(self, point: np.ndarray) -> float:
        """Distance (m) from ``point`` (2,) to the nearest lane centerline (inf without lanes)."""
        if len(self.lanes) == 0:
            return float('inf')
        return float(shapely.distance(self.lanes, shapely.Point(point)).min())
