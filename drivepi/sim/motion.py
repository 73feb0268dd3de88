"""Paths and kinematics of the mini-world traffic: filleted polylines driven with a speed profile.

A :class:`Path` is a dense polyline (0.25 m spacing) with arc length; :func:`drive` integrates a
longitudinal motion along it at ``dt`` steps (acceleration / braking limits, lateral-acceleration
speed limit in curves, optional stops) and returns the sampled track.
"""
from dataclasses import dataclass

import numpy as np

STEP = 0.25  # m between path samples


@dataclass
class Path:
    """Dense planar path: ``points`` (N,2) m, ``s`` (N,) arc length m, ``heading`` (N,) rad, ``curvature`` (N,) 1/m."""
    points: np.ndarray
    s: np.ndarray
    heading: np.ndarray
    curvature: np.ndarray

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def sample(self, s: np.ndarray) -> tuple:
        """Positions (M,2) and headings (M,) at arc lengths ``s`` (clamped to the path)."""
        s = np.clip(s, 0, self.length)
        x = np.interp(s, self.s, self.points[:, 0])
        y = np.interp(s, self.s, self.points[:, 1])
        yaw = np.interp(s, self.s, np.unwrap(self.heading))
        return np.stack([x, y], -1), yaw


def fillet_path(corners: np.ndarray, radii) -> Path:
    """Polyline through ``corners`` (K,2) with each interior corner k replaced by a circular arc of
    radius ``radii[k-1]`` (m; tangent length must fit in the adjoining segments)."""
    corners = np.asarray(corners, float)
    pts = [corners[0]]
    for k in range(1, len(corners) - 1):
        d1 = corners[k] - corners[k - 1]
        d2 = corners[k + 1] - corners[k]
        d1, d2 = d1 / np.linalg.norm(d1), d2 / np.linalg.norm(d2)
        turn = np.arctan2(d1[0] * d2[1] - d1[1] * d2[0], d1 @ d2)
        if abs(turn) < 1e-6:
            pts.append(corners[k])
            continue
        radius = radii[k - 1]
        tangent = radius * np.tan(abs(turn) / 2)
        start = corners[k] - d1 * tangent
        normal = np.array([-d1[1], d1[0]]) * np.sign(turn)
        centre = start + normal * radius
        a0 = np.arctan2(start[1] - centre[1], start[0] - centre[0])
        n = max(2, int(np.ceil(abs(turn) * radius / STEP)) + 1)
        ang = a0 + np.linspace(0, turn, n)
        pts.extend(centre + radius * np.stack([np.cos(ang), np.sin(ang)], -1))
    pts.append(corners[-1])
    return resample(np.array(pts))


def resample(polyline: np.ndarray) -> Path:
    """:class:`Path` resampled every ``STEP`` metres from a (K,2) polyline (duplicate points removed)."""
    seg = np.linalg.norm(np.diff(polyline, axis=0), axis=1)
    keep = np.r_[True, seg > 1e-6]
    polyline = polyline[keep]
    s_in = np.r_[0, np.cumsum(np.linalg.norm(np.diff(polyline, axis=0), axis=1))]
    s = np.linspace(0, s_in[-1], max(2, int(np.ceil(s_in[-1] / STEP)) + 1))
    pts = np.stack([np.interp(s, s_in, polyline[:, 0]), np.interp(s, s_in, polyline[:, 1])], -1)
    grad = np.gradient(pts, s, axis=0)
    heading = np.arctan2(grad[:, 1], grad[:, 0])
    curvature = np.gradient(np.unwrap(heading), s)
    return Path(pts, s, heading, curvature)


@dataclass
class DriveProfile:
    """Longitudinal behaviour: cruise speed m/s, limits m/s^2, stops as (arc length m, wait s)."""
    cruise: float
    accel: float = 1.5
    decel: float = 2.5
    lat_accel: float = 2.0
    start_s: float = 0.0
    start_speed: float = None     # None: the highest speed the path allows there
    stops: tuple = ()
    jerk: float = None            # m/s^3 bound on the change of acceleration (None: speed steps at once)
    response: float = 1.0         # s to close a speed error when ``jerk`` is set (a first-order lag)
    brake_to_end: bool = False    # come to rest at the path end (else the track halts there at speed)


@dataclass
class Obstacle:
    """Something ahead on the path that the track must stay behind, per output step (T,):
    ``s`` the arc length (m) the position may not pass (inf: nothing ahead) and ``speed`` (m/s) its speed.
    The track keeps ``min_gap`` m plus ``headway`` s at its speed from it, braking at ``decel`` m/s^2."""
    s: np.ndarray
    speed: np.ndarray
    min_gap: float = 2.5
    headway: float = 1.0
    decel: float = 1.5

    def room(self, k: int, s: float) -> float:
        """Metres left at step ``k`` from arc length ``s`` to where the track must stay behind."""
        return float(self.s[k] - s - self.min_gap - self.headway * self.speed[k])

    def speed_limit(self, k: int, s: float) -> float:
        """Highest speed (m/s) at arc length ``s`` and step ``k`` that can still stop (or follow) in time."""
        room = self.room(k, s)
        return float(self.speed[k]) + float(np.sqrt(2.0 * self.decel * room)) if room > 0 else 0.0

    def braking(self, k: int, s: float, v: float) -> float:
        """Deceleration (m/s^2, >= 0) that brings speed ``v`` down to the obstacle's within the room left."""
        v_obs = float(self.speed[k])
        if v <= v_obs or not np.isfinite(self.s[k]):
            return 0.0
        return (v * v - v_obs * v_obs) / (2.0 * max(self.room(k, s), 0.05))


def drive(path: Path, profile: DriveProfile, duration: float, dt: float, obstacle: Obstacle = None) -> dict:
    """Sampled track along ``path``: ``t`` (T,), ``xy`` (T,2), ``yaw`` (T,), ``speed`` (T,) m/s,
    ``velocity`` (T,2) m/s, ``s`` (T,) arc length m, for ``T = round(duration / dt) + 1`` steps from t = 0;
    ``obstacle`` (its arrays of length T) limits the speed so that the track stays behind it."""
    v_curve = np.sqrt(profile.lat_accel / np.maximum(np.abs(path.curvature), 1e-3))
    vmax = np.minimum(profile.cruise, v_curve)
    if profile.brake_to_end:
        vmax[-1] = 0.0
    braking = profile.decel * (0.6 if profile.jerk else 1.0)   # a jerk-limited track starts braking earlier
    for i in range(len(vmax) - 2, -1, -1):   # brake in time for the curves ahead
        vmax[i] = min(vmax[i], np.sqrt(vmax[i + 1] ** 2 + 2 * braking * STEP))
    stops = sorted(profile.stops)
    steps = int(round(duration / dt)) + 1
    s = profile.start_s
    v = float(np.interp(s, path.s, vmax)) if profile.start_speed is None else profile.start_speed
    accel, wait_until = 0.0, None
    out_s, out_v = np.empty(steps), np.empty(steps)
    for k in range(steps):
        out_s[k], out_v[k] = s, v
        target, brake = np.interp(s, path.s, vmax), 0.0
        if obstacle is not None:
            target = min(target, obstacle.speed_limit(k, s))
            brake = obstacle.braking(k, s, v)
        if stops:
            gap = stops[0][0] - s
            target = min(target, np.sqrt(max(gap, 0) * 2 * braking * 0.8))
            brake = max(brake, v * v / (2 * max(gap, 0.05)))
            if gap < 0.3 and v < 0.3:
                wait_until = k * dt + stops[0][1] if wait_until is None else wait_until
                target, v, accel, brake = 0.0, 0.0, 0.0, 0.0
                if k * dt >= wait_until:
                    stops.pop(0)
                    wait_until = None
        accel = _acceleration(profile, target, v, accel, dt, brake)
        v_new = max(0.0, v + accel * dt)
        s = min(s + 0.5 * (v + v_new) * dt, path.length)
        v = v_new if s < path.length else 0.0
    xy, yaw = path.sample(out_s)
    tangent = np.stack([np.cos(yaw), np.sin(yaw)], -1)
    return dict(t=np.arange(steps) * dt, xy=xy, yaw=yaw, speed=out_v, velocity=tangent * out_v[:, None], s=out_s)


BRAKE_ONSET = 0.5   # m/s^2: a jerk-limited track starts braking for what is ahead once it needs this much


def _acceleration(profile: DriveProfile, target: float, v: float, accel: float, dt: float, brake: float) -> float:
    """Acceleration (m/s^2) for the next step towards speed ``target``: at once within the limits, or
    (``profile.jerk`` set) a first-order approach whose change per step is bounded by the jerk, braking
    at least ``brake`` m/s^2 (what stopping in time needs) once that exceeds :data:`BRAKE_ONSET`."""
    if profile.jerk is None:
        return float(np.clip((target - v) / dt, -profile.decel * 1.6, profile.accel))
    wanted = float(np.clip((target - v) / profile.response, -profile.decel * 1.6, profile.accel))
    if brake > BRAKE_ONSET:
        wanted = min(wanted, -min(brake, profile.decel * 1.6))
        if v < 0.15 and target < 0.1:   # the last few centimetres: come to rest
            return -v / dt
    return float(np.clip(wanted, accel - profile.jerk * dt, accel + profile.jerk * dt))


def offset_path(path: Path, offset) -> Path:
    """``path`` shifted sideways by ``offset(s)`` m (positive: left of the travel direction), resampled."""
    normal = np.stack([-np.sin(path.heading), np.cos(path.heading)], -1)
    return resample(path.points + normal * np.asarray(offset(path.s))[:, None])
