"""Closed-loop driving metrics in the nuPlan / NAVSIM family, with shapely geometry.

Per episode (all scores in [0, 1], higher is better):
- ``nc`` no at-fault collision: 0 after an at-fault collision with a vehicle or a vulnerable road
  user, 0.5 after one with a static object, else 1. Only the first contact with each agent counts.
  Fault (nuPlan's rules): the ego is never at fault when it is stopped or hit from behind; it is at
  fault when it hits a stopped agent, hits an agent with its front, or touches one sideways while off
  the drivable area or between lanes (centre more than ``lateral_fault_offset`` from every centerline).
- ``dac`` drivable-area compliance: 1 when all four ego corners stay on the drivable area at every step.
- ``ttc`` time to collision within bound: 0 when, at some step with the ego moving, the ego driven on
  at constant velocity would hit an agent (also at constant velocity) that is not behind it within
  ``ttc_horizon`` seconds.
- ``comfort``: 1 when longitudinal / lateral acceleration, jerk, yaw rate and yaw acceleration (from
  Savitzky-Golay derivatives of the ego poses) stay within the nuPlan bounds at every step.
- ``ep`` ego progress along the expert route relative to the logged expert's progress (clipped to
  [0, 1]; 1 when the expert moves less than ``min_expert_progress``).
- ``ddc`` driving direction compliance: the most distance driven against the lane direction in any
  ``ddc_window`` seconds: under ``ddc_ok`` m -> 1, under ``ddc_bad`` m -> 0.5, else 0. A step is
  against the lane direction when the ego moves within ``ddc_align_deg`` of the axis of some lane
  centerline nearer than ``lane_match_radius`` and opposite to all such lanes (so turning across
  lanes in an intersection does not count).
- ``pdms`` = nc x dac x (5 ttc + 2 comfort + 5 ep) / 12.
- ``route_completion``: the furthest point of the expert route reached while within ``route_max_lateral``
  of it, as a fraction of the route length; ``collisions_per_km``: at-fault collisions per km driven.
"""
from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np
import shapely
from scipy.signal import savgol_filter

from drivepi.sim.geometry import wrap_angle
from drivepi.sim.world import AgentStates

from .geometry import MapGeometry, box_polygons, ego_corners, ego_polygon
from .kinematics import EgoState, VehicleParams

SCORE_KEYS = ('nc', 'dac', 'ttc', 'comfort', 'ep', 'ddc', 'pdms', 'route_completion')
STATIC_PREFIXES = ('movable_object.', 'static_object.')


def default_comfort_bounds() -> Dict[str, float]:
    """nuPlan comfort bounds (m/s^2, m/s^3, rad/s, rad/s^2)."""
    return dict(min_lon_accel=-4.05, max_lon_accel=2.40, max_abs_lat_accel=4.89, max_abs_lon_jerk=4.13,
                max_abs_jerk=8.37, max_abs_yaw_rate=0.95, max_abs_yaw_accel=1.93)


@dataclass
class ScoringParams:
    """Metric bounds; see the module docstring for their meaning (m, s, m/s)."""
    stopped_speed: float = 0.05
    ttc_horizon: float = 1.0
    ttc_step: float = 0.1
    min_expert_progress: float = 5.0
    ddc_window: float = 1.0
    ddc_ok: float = 2.0
    ddc_bad: float = 6.0
    ddc_align_deg: float = 30.0
    lane_match_radius: float = 2.0
    lateral_fault_offset: float = 1.0
    route_max_lateral: float = 4.0
    front_angle_deg: float = 60.0
    rear_angle_deg: float = 120.0
    savgol_window: int = 7
    comfort_bounds: Dict[str, float] = field(default_factory=default_comfort_bounds)


def pdm_score(nc: float, dac: float, ttc: float, comfort: float, ep: float) -> float:
    """NAVSIM PDM score: NC x DAC x (5 TTC + 2 C + 5 EP) / 12."""
    return nc * dac * (5.0 * ttc + 2.0 * comfort + 5.0 * ep) / 12.0


class EpisodeScorer:
    """Scores one driven episode against the map, the agents and the logged expert.

    Args:
        params: :class:`ScoringParams`. vehicle: ego geometry.
    """

    def __init__(self, params: ScoringParams = ScoringParams(), vehicle: VehicleParams = VehicleParams()):
        self.p, self.vehicle = params, vehicle

    def __call__(self, ego: List[EgoState], agents: List[AgentStates], expert_xy: np.ndarray,
                 scene_map: MapGeometry) -> dict:
        """Metrics and events of an episode.

        Args:
            ego: T ego states at the simulation steps. agents: T agent sets at the same times.
            expert_xy: (T, 2) logged expert rear-axle positions over the episode (the route).
            scene_map: drivable area and lanes.

        Returns:
            dict with the keys of ``SCORE_KEYS`` plus ``collisions_per_km``, ``num_at_fault_collisions``,
            ``distance_m``, ``ego_progress_m``, ``expert_progress_m`` and ``events`` (list of dicts
            ``{type, step, t, ...}``, types ``collision``, ``offroad``, ``ttc``, ``wrong_way``, ``discomfort``).
        """
        if len(ego) != len(agents) or len(ego) < 2:
            raise ValueError(f'EpisodeScorer: need >= 2 steps with one agent set each, got {len(ego)} / {len(agents)}')
        xy = np.array([[s.x, s.y] for s in ego])
        events: List[dict] = []
        nc, n_fault = self._collisions(ego, agents, scene_map, events)
        dac = self._drivable(ego, scene_map, events)
        ttc = self._ttc(ego, agents, events)
        comfort = self._comfort(ego, events)
        ddc = self._direction(ego, scene_map, events)
        ep, ego_prog, expert_prog = self._progress(xy, np.asarray(expert_xy, dtype=np.float64))
        rc = self._route_completion(xy, np.asarray(expert_xy, dtype=np.float64))
        distance = float(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum())
        return dict(nc=nc, dac=dac, ttc=ttc, comfort=comfort, ep=ep, ddc=ddc,
                    pdms=pdm_score(nc, dac, ttc, comfort, ep), route_completion=rc,
                    collisions_per_km=n_fault / (distance / 1000.0) if distance > 1.0 else 0.0,
                    num_at_fault_collisions=n_fault, distance_m=distance, ego_progress_m=ego_prog,
                    expert_progress_m=expert_prog, events=events)

    # --- no at-fault collision -------------------------------------------------------------
    def _collisions(self, ego, agents, scene_map, events):
        nc, n_fault, seen = 1.0, 0, set()
        for k, (state, others) in enumerate(zip(ego, agents)):
            if not len(others):
                continue
            hit = np.flatnonzero(shapely.intersects(ego_polygon(state, self.vehicle), box_polygons(others.boxes)))
            for j in hit:
                token = others.tokens[j]
                if token in seen:
                    continue
                seen.add(token)
                kind, at_fault = self._collision_kind(state, others, j, scene_map)
                events.append(dict(type='collision', step=k, t=round(state.t, 4), agent=token,
                                   category=others.categories[j], kind=kind, at_fault=at_fault))
                if at_fault:
                    n_fault += 1
                    static = others.categories[j].startswith(STATIC_PREFIXES)
                    nc = min(nc, 0.5 if static else 0.0)
        return nc, n_fault

    def _relative_angle(self, state: EgoState, point: np.ndarray) -> float:
        """Absolute angle (deg) of ``point`` seen from the ego centre, 0 = straight ahead."""
        d = point - state.center(self.vehicle)
        return float(abs(np.degrees(wrap_angle(np.arctan2(d[1], d[0]) - state.yaw))))

    def _collision_kind(self, state, others, j, scene_map):
        """(kind, at_fault) of a contact between the ego and agent ``j``."""
        p = self.p
        if state.v < p.stopped_speed:
            return 'stopped_ego', False
        if np.linalg.norm(others.velocities[j]) < p.stopped_speed:
            return 'stopped_track', True
        angle = self._relative_angle(state, others.boxes[j, :2])
        if angle <= p.front_angle_deg:
            return 'active_front', True
        if angle >= p.rear_angle_deg:
            return 'active_rear', False
        corners = ego_corners(state, self.vehicle)
        off_lane = (not scene_map.inside_drivable(corners).all() or
                    scene_map.distance_to_lanes(state.center(self.vehicle)) > p.lateral_fault_offset)
        return 'active_lateral', bool(off_lane)

    # --- drivable area, direction ------------------------------------------------------------
    def _drivable(self, ego, scene_map, events):
        corners = np.stack([ego_corners(s, self.vehicle) for s in ego])  # (T, 4, 2)
        inside = scene_map.inside_drivable(corners.reshape(-1, 2)).reshape(len(ego), 4).all(axis=1)
        off = np.flatnonzero(~inside)
        if len(off):
            events.append(dict(type='offroad', step=int(off[0]), t=round(ego[off[0]].t, 4), num_steps=int(len(off))))
        return float(len(off) == 0)

    def _direction(self, ego, scene_map, events):
        p = self.p
        against = np.zeros(len(ego))
        for k in range(1, len(ego)):
            step = np.array([ego[k].x - ego[k - 1].x, ego[k].y - ego[k - 1].y])
            dist = np.linalg.norm(step)
            if dist < 1e-3:
                continue
            dots = scene_map.lane_directions_near(ego[k].center(self.vehicle), p.lane_match_radius) @ (step / dist)
            aligned = dots[np.abs(dots) > np.cos(np.radians(p.ddc_align_deg))]
            if len(aligned) and (aligned < 0).all():
                against[k] = dist
        dt = ego[1].t - ego[0].t
        window = max(1, int(round(p.ddc_window / dt)))
        worst = float(np.convolve(against, np.ones(window), mode='full').max())
        if worst >= p.ddc_ok:
            events.append(dict(type='wrong_way', step=int(np.flatnonzero(against)[0]),
                               t=round(ego[int(np.flatnonzero(against)[0])].t, 4), distance_m=worst))
        return 1.0 if worst < p.ddc_ok else (0.5 if worst < p.ddc_bad else 0.0)

    # --- time to collision ---------------------------------------------------------------------
    def _ttc(self, ego, agents, events):
        p = self.p
        taus = np.arange(1, int(round(p.ttc_horizon / p.ttc_step)) + 1) * p.ttc_step
        for k, (state, others) in enumerate(zip(ego, agents)):
            if state.v < p.stopped_speed or not len(others):
                continue
            touching = shapely.intersects(ego_polygon(state, self.vehicle), box_polygons(others.boxes))
            for tau in taus:
                moved = others.boxes.copy()
                moved[:, :2] += others.velocities * tau
                hit = shapely.intersects(ego_polygon(state, self.vehicle, state.v * tau), box_polygons(moved))
                for j in np.flatnonzero(hit & ~touching):
                    if self._relative_angle(state, others.boxes[j, :2]) < p.rear_angle_deg:
                        events.append(dict(type='ttc', step=k, t=round(state.t, 4), agent=others.tokens[j],
                                           ttc_s=float(tau)))
                        return 0.0
        return 1.0

    # --- comfort -------------------------------------------------------------------------------
    def _comfort(self, ego, events):
        signals = comfort_signals(ego, self.p.savgol_window)
        b = self.p.comfort_bounds
        lon = signals['lon_accel']
        checks = dict(lon_accel=(lon < b['min_lon_accel']) | (lon > b['max_lon_accel']),
                      lat_accel=np.abs(signals['lat_accel']) > b['max_abs_lat_accel'],
                      lon_jerk=np.abs(signals['lon_jerk']) > b['max_abs_lon_jerk'],
                      jerk=np.abs(signals['jerk']) > b['max_abs_jerk'],
                      yaw_rate=np.abs(signals['yaw_rate']) > b['max_abs_yaw_rate'],
                      yaw_accel=np.abs(signals['yaw_accel']) > b['max_abs_yaw_accel'])
        bad = {name: np.flatnonzero(v) for name, v in checks.items() if v.any()}
        for name, steps in bad.items():
            events.append(dict(type='discomfort', step=int(steps[0]), t=round(ego[steps[0]].t, 4), signal=name,
                               value=float(signals[name][steps[0]])))
        return float(not bad)

    # --- progress ------------------------------------------------------------------------------
    def _progress(self, xy, expert_xy):
        route = route_line(expert_xy)
        expert = float(route.length) if route is not None else 0.0
        if expert < self.p.min_expert_progress:
            return 1.0, 0.0, expert
        along = shapely.line_locate_point(route, shapely.points(xy[[0, -1]]))
        ego = float(along[1] - along[0])
        return float(np.clip(ego / expert, 0.0, 1.0)), ego, expert

    def _route_completion(self, xy, expert_xy):
        route = route_line(expert_xy)
        if route is None or route.length < self.p.min_expert_progress:
            return 1.0
        pts = shapely.points(xy)
        along = shapely.line_locate_point(route, pts)
        near = shapely.distance(route, pts) <= self.p.route_max_lateral
        reached = along[near].max() if near.any() else along[0]
        return float(np.clip((reached - along[0]) / route.length, 0.0, 1.0))


def route_line(xy: np.ndarray):
    """LineString through the distinct points of ``xy`` (T, 2), or None when it does not move."""
    keep = np.concatenate([[True], np.linalg.norm(np.diff(xy, axis=0), axis=1) > 1e-3])
    pts = xy[keep]
    return shapely.LineString(pts) if len(pts) >= 2 else None


def comfort_signals(ego: List[EgoState], window: int) -> Dict[str, np.ndarray]:
    """Kinematic signals (T,) from the poses of ``ego`` with Savitzky-Golay derivatives.

    Returns lon_accel, lat_accel (m/s^2), lon_jerk, jerk (m/s^3), yaw_rate (rad/s), yaw_accel (rad/s^2).
    """
    t = np.array([s.t for s in ego])
    dt = float(np.median(np.diff(t)))
    n = len(ego)
    window = min(window, n if n % 2 else n - 1)
    xy = np.array([[s.x, s.y] for s in ego])
    yaw = np.unwrap([s.yaw for s in ego])
    if window < 5:  # too short to differentiate three times: report nothing uncomfortable
        zeros = np.zeros(n)
        return dict(lon_accel=zeros, lat_accel=zeros, lon_jerk=zeros, jerk=zeros, yaw_rate=zeros, yaw_accel=zeros)

    def deriv(x, order):
        return savgol_filter(x, window, 3, deriv=order, delta=dt, axis=0, mode='interp')

    heading = np.stack([np.cos(yaw), np.sin(yaw)], axis=1)
    normal = np.stack([-np.sin(yaw), np.cos(yaw)], axis=1)
    acc = deriv(xy, 2)
    jerk = deriv(xy, 3)
    lon_accel = np.einsum('ij,ij->i', acc, heading)
    return dict(lon_accel=lon_accel, lat_accel=np.einsum('ij,ij->i', acc, normal),
                lon_jerk=deriv(lon_accel, 1), jerk=np.linalg.norm(jerk, axis=1),
                yaw_rate=deriv(yaw, 1), yaw_accel=deriv(yaw, 2))


def aggregate_scores(episodes: List[dict]) -> dict:
    """Aggregate episode records (``{'status': 'ok'|'failed', 'metrics': {...}}``) of one planner.

    Scores are means over all episodes, a failed episode counting 0 on every score;
    ``collisions_per_km`` is total at-fault collisions over total km of the completed episodes.
    """
    n = len(episodes)
    ok = [e['metrics'] for e in episodes if e['status'] == 'ok']
    out = {key: float(sum(m[key] for m in ok) / n) if n else 0.0 for key in SCORE_KEYS}
    km = sum(m['distance_m'] for m in ok) / 1000.0
    out['collisions_per_km'] = float(sum(m['num_at_fault_collisions'] for m in ok) / km) if km > 0 else 0.0
    out.update(num_episodes=n, num_failed=n - len(ok), distance_km=km)
    return out
