"""One closed-loop episode: plan, track, move the agents, score; and its JSON log.

Loop (simulation rate ``sim_hz``, 10 Hz by default): every ``sim_hz / replan_hz`` steps the planner
returns ``(6, 2)`` ego-frame waypoints which are checked (:func:`check_plan`) and handed to the
tracking controller; each step the controller's commands drive the kinematic bicycle model and the
agents (log replay or IDM) advance. A plan that fails the check ends the episode as ``failed``.

Episode log (one JSON file per episode and planner, read by the visualization tools)::

    {
      "format": "drivepi-closed-loop-episode/1",
      "episode_id": str, "scene_name": str, "planner": str,
      "setting": "mini_world" | "nuscenes_log", "sensor_note": str,
      "status": "ok" | "failed",
      "failure": null | {"step": int, "t": float, "reason": str},
      "sim_hz": float, "replan_hz": float, "agents_mode": "log_replay" | "idm",
      "vehicle": {"length", "width", "wheelbase", "rear_axle_to_center"},   # m
      "times": [T floats],                                   # s, simulation steps
      "ego": [[x, y, yaw, v, steer, accel], ...],            # T rows: rear axle, global frame (m, rad, m/s, rad, m/s^2)
      "expert": [[x, y, yaw], ...],                          # T rows: logged expert rear axle, global
      "agents": [{"tokens": [...], "categories": [...],      # T entries: global boxes
                  "boxes": [[x, y, z_bottom, l, w, h, yaw], ...], "velocities": [[vx, vy], ...]}],
      "plans": [{"step": int, "t": float, "pose": [x, y, yaw],   # ego pose the plan was made at
                 "waypoints": [[x, y], ...6]}],                  # ego frame at that pose, 0.5 s apart
      "events": [{"type": "collision"|"offroad"|"ttc"|"wrong_way"|"discomfort", "step", "t", ...}],
      "metrics": null | {nc, dac, ttc, comfort, ep, ddc, pdms, route_completion, collisions_per_km,
                         num_at_fault_collisions, distance_m, ego_progress_m, expert_progress_m},
      "settings_fingerprint": str        # added by the runner (resume check)
    }

A failed episode keeps the log up to the failing step (``ego``/``agents``/``times`` as far as driven).
"""
from dataclasses import asdict
from typing import Optional

import numpy as np

from drivepi.sim.geometry import wrap_angle
from drivepi.sim.world import AgentStates

from .agents import IDMAgents, IDMParams, LogReplayAgents
from .controller import PurePursuitController, ReferenceTrajectory
from .kinematics import EgoState, KinematicBicycle, VehicleParams
from .planners import NUM_WAYPOINTS, PLAN_DT, PlanningContext
from .scoring import EpisodeScorer, ScoringParams

LOG_FORMAT = 'drivepi-closed-loop-episode/1'
AGENT_MODES = ('log_replay', 'idm')


class PlanError(ValueError):
    """A planner returned a plan that cannot be driven (wrong shape, NaN, absurd speed)."""


def check_plan(plan, max_speed: float) -> np.ndarray:
    """Validate a plan and return it as float64 (6, 2).

    Raises:
        PlanError: wrong shape, non-finite values, or a 0.5 s step (from the ego) faster than
            ``max_speed`` m/s.
    """
    plan = np.asarray(plan, dtype=np.float64)
    if plan.shape != (NUM_WAYPOINTS, 2):
        raise PlanError(f'plan has shape {plan.shape}, expected ({NUM_WAYPOINTS}, 2)')
    if not np.isfinite(plan).all():
        raise PlanError(f'plan has non-finite values: {plan.tolist()}')
    steps = np.linalg.norm(np.diff(np.concatenate([np.zeros((1, 2)), plan]), axis=0), axis=1)
    if steps.max() > max_speed * PLAN_DT:
        raise PlanError(f'plan implies {steps.max() / PLAN_DT:.1f} m/s > max_speed {max_speed} m/s')
    return plan


def agents_to_json(agents: AgentStates) -> dict:
    """JSON form of one agent set (see the module docstring)."""
    return dict(tokens=list(agents.tokens), categories=list(agents.categories),
                boxes=np.round(agents.boxes, 3).tolist(), velocities=np.round(agents.velocities, 3).tolist())


def initial_state(source, t0: float, wheelbase: float, dt: float) -> EgoState:
    """The expert's state at ``t0``: pose, speed and steering from finite differences of the log."""
    p0, p1 = source.expert_pose(t0), source.expert_pose(t0 + dt)
    v = float(np.linalg.norm(p1[:2] - p0[:2]) / dt)
    yaw_rate = float(wrap_angle(p1[2] - p0[2])) / dt
    steer = float(np.arctan(wheelbase * yaw_rate / v)) if v > 0.5 else 0.0
    return EgoState(x=float(p0[0]), y=float(p0[1]), yaw=float(p0[2]), v=v, steer=steer, t=t0)


class EpisodeRunner:
    """Runs one episode of a planner in a scene source.

    Args:
        sim_hz: simulation / control rate (Hz). replan_hz: planning rate (Hz), must divide ``sim_hz``.
        vehicle: ego parameters (dict of :class:`VehicleParams` fields).
        controller: :class:`PurePursuitController` keyword arguments.
        agents: ``dict(mode='log_replay' | 'idm', idm=dict(IDMParams fields))``.
        scoring: :class:`ScoringParams` fields. max_plan_speed: :func:`check_plan` bound (m/s).
    """

    def __init__(self, sim_hz: float = 10.0, replan_hz: float = 2.0, vehicle: Optional[dict] = None,
                 controller: Optional[dict] = None, agents: Optional[dict] = None,
                 scoring: Optional[dict] = None, max_plan_speed: float = 40.0):
        ratio = sim_hz / replan_hz
        if replan_hz <= 0 or abs(ratio - round(ratio)) > 1e-9:
            raise ValueError(f'closed_loop config: replan_hz={replan_hz} must divide sim_hz={sim_hz}')
        self.sim_hz, self.replan_hz = sim_hz, replan_hz
        self.replan_every = int(round(ratio))
        self.dt = 1.0 / sim_hz
        self.vehicle = VehicleParams(**(vehicle or {}))
        self.controller_cfg = dict(controller or {})
        self.agents_cfg = {**dict(mode='log_replay', idm={}), **(agents or {})}
        if self.agents_cfg['mode'] not in AGENT_MODES:
            raise ValueError(f"closed_loop config: agents.mode must be 'log_replay' or 'idm', "
                             f"got {self.agents_cfg['mode']!r}")
        self.scorer = EpisodeScorer(ScoringParams(**(scoring or {})), self.vehicle)
        self.max_plan_speed = max_plan_speed

    def make_agents(self, source, mode: str = None):
        """The agents of an episode: ``mode`` ('log_replay' | 'idm'; None: the configured one)."""
        mode = mode or self.agents_cfg['mode']
        if mode not in AGENT_MODES:
            raise ValueError(f'agents mode must be one of {AGENT_MODES}, got {mode!r}')
        if mode == 'idm':
            return IDMAgents(source, self.vehicle, IDMParams(**self.agents_cfg['idm']))
        return LogReplayAgents(source)

    def run(self, source, planner, planner_name: str, t0: float, duration: float, episode_id: str,
            agents_mode: str = None) -> dict:
        """Drive ``duration`` seconds from ``t0`` and return the episode log (module docstring);
        ``agents_mode`` overrides the configured agents mode for this episode."""
        times = t0 + self.dt * np.arange(int(np.floor(duration * self.sim_hz + 1e-6)) + 1)
        bicycle = KinematicBicycle(self.vehicle, self.dt)
        controller = PurePursuitController(self.vehicle, dt=self.dt, **self.controller_cfg)
        agent_model = self.make_agents(source, agents_mode)
        ego, agents = [initial_state(source, t0, self.vehicle.wheelbase, self.dt)], [agent_model.reset(times)]
        plans, failure = [], None
        for k in range(len(times) - 1):
            if k % self.replan_every == 0:
                ctx = PlanningContext(source, ego[-1], agents[-1], ego[:-1], agents[:-1], episode_id)
                try:
                    plan = check_plan(planner.plan(ctx), self.max_plan_speed)
                except PlanError as err:
                    failure = dict(step=k, t=float(times[k]), reason=str(err))
                    break
                controller.set_reference(ReferenceTrajectory.from_plan(plan, ego[-1], PLAN_DT))
                plans.append(dict(step=k, t=float(times[k]), pose=[ego[-1].x, ego[-1].y, ego[-1].yaw],
                                  waypoints=np.round(plan, 4).tolist()))
            ego.append(bicycle.step(ego[-1], *controller.control(ego[-1])))
            agents.append(agent_model.step(k + 1, ego[-2]))
        expert = np.array([source.expert_pose(float(t)) for t in times[:len(ego)]])
        metrics = None if failure else self.scorer(ego, agents, expert[:, :2], source.map)
        events = metrics.pop('events') if metrics else []
        return dict(format=LOG_FORMAT, episode_id=episode_id, scene_name=source.scene_name,
                    planner=planner_name, setting=source.setting, sensor_note=source.sensor_note,
                    status='failed' if failure else 'ok', failure=failure,
                    sim_hz=self.sim_hz, replan_hz=self.replan_hz, agents_mode=agents_mode or self.agents_cfg['mode'],
                    vehicle={k: v for k, v in asdict(self.vehicle).items()
                             if k in ('length', 'width', 'wheelbase', 'rear_axle_to_center')},
                    times=np.round(times[:len(ego)], 4).tolist(),
                    ego=[[s.x, s.y, s.yaw, s.v, s.steer, s.accel] for s in ego],
                    expert=expert.tolist(), agents=[agents_to_json(a) for a in agents], plans=plans,
                    events=events, metrics=metrics)
