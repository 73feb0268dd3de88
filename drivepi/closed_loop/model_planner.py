"""The trained DrivePI model as a closed-loop planner.

At every planning step the scene source renders the sensors at the simulated ego pose (the current
LiDAR sweep, ``num_sweeps`` earlier sweeps at the simulated poses of earlier steps, the six camera
images). They are written under ``work_dir`` in the nuScenes layout (``samples/LIDAR_TOP``,
``sweeps/LIDAR_TOP``, ``samples/CAM_*``) and described by an info dict built from the scene's nearest
logged keyframe info (calibration, scene fields) with the simulated pose, timestamps, ego status and
driving command (from the logged route) put in; the config's test pipeline (without the GT loaders
named in ``drop_transforms``) turns it into a model input exactly as in ``tools/test.py``, and
``model.test_step`` returns ``pred_traj`` (6, 2), ego frame. Planning GT fields are zero with a zero
mask, so no future leaks into the model. A scene outside the info file (a benchmark world, generated with
the mini dataset's sensors) takes its calibration from the info file's first keyframe. With a multi-mode
planning head the model's ``plan_refiner`` leaves candidates and costs (``pred_traj_candidates``,
``pred_traj_costs``); the planner remembers the plan it drove and keeps the candidate closest to it (at the same
times, seen from the new pose) unless another costs less by more than the refiner's ``hysteresis_margin``
(:func:`drivepi.models.occupancy_guided_stop.hysteresis_choice`). The previous
episode's files are deleted when an episode starts (file names carry the episode id, so worker processes
can share ``work_dir``). A planner built by :meth:`ModelPlanner.from_config` pickles as its recipe and is
rebuilt in the process that unpickles it (closed-loop workers).
"""
import copy
import hashlib
from pathlib import Path

import numpy as np
import torch

from drivepi.fileio import atomic_write_bytes, atomic_write_image

from .episode import PlanError
from .planners import NUM_WAYPOINTS, PLAN_DT, PlanningContext, global_to_ego, route_ahead

GT_TRANSFORMS = ('LoadOccFlowGT', 'LoadAnnotations3D', 'BoxesToEgo')
SWEEP_LOADERS = ('DrivePILoadPointsFromMultiSweeps', 'LoadPointsFromMultiSweeps')


def file_digest(path) -> str:
    """First 16 hex digits of the SHA-256 of a file's content: the same checkpoint under another path or
    name gives the same digest, a retrained one another."""
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha256').hexdigest()[:16]


def lidar_bytes(points: np.ndarray, t: float) -> bytes:
    """The ``.bin`` content of a rendered sweep (N, 5).

    Raises:
        PlanError: the sweep is empty (no return within range: the simulated ego is inside or against a
            solid, e.g. it drove into a building); the episode fails, the run goes on.
    """
    if not len(points):
        raise PlanError(f'no LiDAR return at the simulated pose at t={t:.1f} s (the ego is inside or against a solid)')
    return points.astype(np.float32).tobytes()


class ModelPlanner:
    """Plans with a built DrivePI model (see the module docstring).

    Args:
        model: the model (eval mode, on its device), with ``test_step``.
        dataset: a lazily initialised ``DrivePIDataset`` with ``data_root=work_dir`` and the inference
            pipeline; only ``parse_data_info`` and ``pipeline`` are used.
        scene_infos: scene name -> keyframe infos in time order (calibration templates).
        work_dir: folder for the rendered sensor files.
        num_sweeps: earlier sweeps rendered per plan. sweep_interval: their spacing (s), a multiple of
            the simulation step (the step is used when it is finer).
    """
    name = 'model'

    def __init__(self, model, dataset, scene_infos: dict, work_dir, num_sweeps: int = 0, sweep_interval: float = 0.1):
        self.model, self.dataset, self.scene_infos = model, dataset, scene_infos
        self.work_dir = Path(work_dir)
        self.num_sweeps, self.sweep_interval = num_sweeps, sweep_interval
        self.episode, self.sweep_files, self.written = None, {}, []
        self.previous_plan = None  # (times (T + 1,), global positions (T + 1, 2)) of the plan driven last
        self.checkpoint_digest = None  # set by from_config; part of the runner's resume fingerprint
        self.recipe = None  # from_config's arguments: what a pickled planner is rebuilt from

    def __getstate__(self) -> dict:
        if self.recipe is None:
            raise TypeError('only a ModelPlanner built by ModelPlanner.from_config can be pickled')
        return dict(recipe=self.recipe)

    def __setstate__(self, state: dict) -> None:
        from mmengine.config import Config
        cfg, *args = state['recipe']
        self.__dict__.update(ModelPlanner.from_config(Config(cfg), *args).__dict__)

    @classmethod
    def from_config(cls, cfg, checkpoint: str, scene_infos: dict, metainfo: dict, work_dir,
                    device: str = 'cpu', allow_partial: bool = False) -> 'ModelPlanner':
        """Build the model from ``cfg.model``, load ``checkpoint``, and the pipeline from ``cfg.test_dataloader``.

        The checkpoint must match the model (:func:`drivepi.engine.checkpoint_loading.check_checkpoint`);
        ``allow_partial`` loads the matching part of one that does not, listing the rest.

        ``metainfo`` is the info file's (``info_version``, ``occ_classes``, ...): the lazily initialised
        dataset never reads the file itself.

        ``cfg.closed_loop.model`` may set ``drop_transforms`` (default :data:`GT_TRANSFORMS`) and
        ``sweep_interval`` (s, default 0.1); ``num_sweeps`` is the test pipeline's ``sweeps_num``.
        """
        from drivepi.engine.checkpoint_loading import load_model_checkpoint
        from drivepi.registry import DATASETS, MODELS
        from drivepi.utils import register_all_modules
        register_all_modules()
        options = cfg.closed_loop.get('model', {})
        drop = set(options.get('drop_transforms', GT_TRANSFORMS))
        ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
        pipeline = [t for t in ds_cfg.pipeline if t['type'] not in drop]
        sweeps = [t.get('sweeps_num', 10) for t in pipeline if t['type'] in SWEEP_LOADERS]
        ds_cfg.update(data_root=str(work_dir), ann_file='', qa_file=None, pipeline=pipeline, test_mode=True,
                      lazy_init=True, metainfo=dict(ds_cfg.get('metainfo') or {}, **metainfo))
        model = MODELS.build(cfg.model)
        load_model_checkpoint(model, checkpoint, allow_partial)
        model.to(device).deploy()
        planner = cls(model, DATASETS.build(ds_cfg), scene_infos, work_dir, num_sweeps=sweeps[0] if sweeps else 0,
                      sweep_interval=options.get('sweep_interval', 0.1))
        planner.checkpoint_digest = file_digest(checkpoint)
        planner.recipe = (cfg.to_dict(), str(checkpoint), scene_infos, metainfo, str(work_dir), device, allow_partial)
        return planner

    def plan(self, ctx: PlanningContext) -> np.ndarray:
        """(6, 2) ego-frame waypoints predicted from the sensors rendered at the simulated pose."""
        if ctx.episode_id != self.episode:
            for path in self.written:
                path.unlink(missing_ok=True)
            self.episode, self.sweep_files, self.written = ctx.episode_id, {}, []
            self.previous_plan = None
        info = self.build_info(ctx)
        sample = self.dataset.pipeline(self.dataset.parse_data_info(info))
        from mmengine.dataset import pseudo_collate
        with torch.no_grad():
            out = self.model.test_step(pseudo_collate([sample]))[0]
        traj = out.pred_traj.detach().cpu().numpy().astype(np.float64).reshape(NUM_WAYPOINTS, 2)
        if out.get('pred_traj_candidates') is not None:
            from drivepi.models.occupancy_guided_stop import hysteresis_choice
            candidates = out.pred_traj_candidates.detach().cpu().numpy().astype(np.float64)
            margin = getattr(self.model.plan_refiner, 'hysteresis_margin', 0.0)
            choice = hysteresis_choice(candidates, out.pred_traj_costs.detach().cpu().numpy(),
                                       self.previous_at(ctx), margin)
            traj = candidates[choice].reshape(NUM_WAYPOINTS, 2)
        self.remember(ctx, traj)
        return traj

    def remember(self, ctx: PlanningContext, traj: np.ndarray) -> None:
        """Keep the (T, 2) ego-frame plan chosen at ``ctx`` (with the ego's position now) in the global frame."""
        c, s = np.cos(ctx.ego.yaw), np.sin(ctx.ego.yaw)
        points = np.concatenate([np.zeros((1, 2)), traj])
        world = np.stack([ctx.ego.x + c * points[:, 0] - s * points[:, 1],
                          ctx.ego.y + s * points[:, 0] + c * points[:, 1]], axis=1)
        self.previous_plan = (ctx.ego.t + PLAN_DT * np.arange(len(points)), world)

    def previous_at(self, ctx: PlanningContext):
        """The remembered plan at this plan's waypoint times (linear in time), in the ego frame now: (T, 2), NaN
        rows past its horizon; None without one."""
        if self.previous_plan is None:
            return None
        times, world = self.previous_plan
        now = ctx.ego.t + PLAN_DT * np.arange(1, NUM_WAYPOINTS + 1)
        inside = now <= times[-1] + 1e-6
        points = np.stack([np.interp(now, times, world[:, 0]), np.interp(now, times, world[:, 1])], axis=1)
        ego = global_to_ego(points, ctx.ego)
        ego[~inside] = np.nan
        return ego

    # ------------------------------------------------------------------ info of the simulated frame
    def build_info(self, ctx: PlanningContext) -> dict:
        """Info dict (docs/contracts.md) of the simulated frame, its sensor files written under work_dir."""
        source, ego = ctx.source, ctx.ego
        abs_time = ego.t + source.timestamp_offset
        template = self._template(source.scene_name, abs_time)
        info = copy.deepcopy(template)
        step = len(ctx.history)
        token = f'{ctx.episode_id}-{step:04d}'
        ego2global = source.ego2global(ego.x, ego.y, ego.yaw, ego.t)
        lidar2ego = np.asarray(template['lidar_points']['lidar2ego'], dtype=np.float64)
        lidar_name = f'{token}.bin'
        self._write(self.work_dir / 'samples' / 'LIDAR_TOP' / lidar_name,
                    lidar_bytes(source.render_lidar(ego2global, ctx.agents, ego.t), ego.t))
        for cam, image in source.render_cameras(ego2global, ctx.agents, ego.t).items():
            self._write(self.work_dir / 'samples' / cam / f'{token}.jpg', image)
            info['images'][cam].update(img_path=f'{token}.jpg', timestamp=abs_time)
        info.update(token=token, sample_idx=step, timestamp=abs_time, ego2global=ego2global.tolist(),
                    lidar_sweeps=self._sweeps(ctx, ego2global @ lidar2ego, lidar2ego),
                    instances=[], cam_instances={}, occ_path='', frame_idx=step,
                    ego_fut_traj=np.zeros((NUM_WAYPOINTS, 2), np.float32),
                    ego_fut_mask=np.zeros(NUM_WAYPOINTS, np.float32),
                    ego_fut_cmd=self._command(ctx), ego_status=self._status(ctx),
                    fut_boxes=[np.zeros((0, 7), np.float32) for _ in range(NUM_WAYPOINTS)])
        info['lidar_points'].update(lidar_path=lidar_name)
        return info

    def _template(self, scene_name: str, abs_time: float) -> dict:
        """The scene's keyframe info nearest to ``abs_time`` (s), or for a scene not in the info file (a
        benchmark world) the info file's first keyframe: its calibration, the rest is overwritten."""
        infos = self.scene_infos.get(scene_name)
        if infos is None:
            return next(iter(self.scene_infos.values()))[0]
        return infos[int(np.argmin([abs(i['timestamp'] - abs_time) for i in infos]))]

    def _write(self, path: Path, data) -> None:
        """Write sensor data (bytes, or an (H, W, 3) image as JPEG) and remember it for the clean-up."""
        if isinstance(data, bytes):
            atomic_write_bytes(path, data)
        else:
            atomic_write_image(path, data, quality=95)
        self.written.append(path)

    def _sweeps(self, ctx: PlanningContext, key_lidar2global: np.ndarray, lidar2ego: np.ndarray) -> list:
        """Earlier sweeps rendered at the simulated poses of earlier steps, newest first (mmdet3d v2 layout)."""
        if not ctx.history:
            return []
        sim_dt = ctx.ego.t - ctx.history[-1].t
        stride = max(1, int(round(self.sweep_interval / sim_dt)))
        sweeps = []
        for j in range(1, self.num_sweeps + 1):
            index = len(ctx.history) - j * stride
            if index < 0:
                break
            state, agents = ctx.history[index], ctx.agent_history[index]
            ego2global = ctx.source.ego2global(state.x, state.y, state.yaw, state.t)
            name = f'{ctx.episode_id}-{index:04d}.bin'
            if index not in self.sweep_files:
                points = ctx.source.render_lidar(ego2global, agents, state.t)
                self._write(self.work_dir / 'sweeps' / 'LIDAR_TOP' / name, lidar_bytes(points, state.t))
                self.sweep_files[index] = name
            sweep_lidar2global = ego2global @ lidar2ego
            sweeps.append(dict(
                timestamp=state.t + ctx.source.timestamp_offset, ego2global=ego2global.tolist(),
                sample_data_token=name,
                lidar_points=dict(lidar_path=f'sweeps/LIDAR_TOP/{name}', lidar2ego=lidar2ego.tolist(),
                                  lidar2sensor=(np.linalg.inv(sweep_lidar2global) @ key_lidar2global)
                                  .astype(np.float32).tolist())))
        return sweeps

    @staticmethod
    def _command(ctx: PlanningContext) -> int:
        """Driving command by the info-file rule (the lateral offset 3 s ahead) from the logged route ahead of
        the simulated ego (:func:`route_ahead`). The expert's poses at the clock's next 3 s would say "turn"
        before an ego that lags the expert reaches the junction, and "straight" to one that is ahead of it
        (7.6 % of the replans of a 12-mode model's 84 benchmark episodes, 2026-12-07)."""
        from drivepi.datasets.converters.ego_motion import driving_command
        return driving_command(route_ahead(ctx), np.ones(NUM_WAYPOINTS))

    @staticmethod
    def _status(ctx: PlanningContext) -> np.ndarray:
        """Ego status (5,) by the info-file finite differences over poses 0.5 s apart: simulated poses
        within the episode, logged ones before it; at the log start the next logged poses (as the infos do)."""
        from drivepi.datasets.converters.ego_motion import ego_status
        from drivepi.sim.geometry import pose2d_matrix
        states = ctx.history + [ctx.ego]
        sim_dt = ctx.ego.t - ctx.history[-1].t if ctx.history else 0.1

        def pose_at(t: float) -> np.ndarray:
            index = int(round((t - states[0].t) / sim_dt))
            return states[index].ego2global() if index >= 0 else pose2d_matrix(*ctx.source.expert_pose(t))

        now = ctx.ego.t
        past = [now - k * PLAN_DT for k in (2, 1) if now - k * PLAN_DT >= ctx.source.start_time - 1e-6]
        times = past + [now] if past else [now, now + PLAN_DT, now + 2 * PLAN_DT]
        poses = [pose_at(t) if t <= now else pose2d_matrix(*ctx.source.expert_pose(t)) for t in times]
        return ego_status(times, poses, len(past))
