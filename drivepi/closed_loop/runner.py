"""The closed-loop run: every scene x every planner, resumable, with a progress bar and a table.

Output directory layout::

    OUT/episodes/<planner>/<episode_id>.json   one episode log each (format: drivepi.closed_loop.episode)
    OUT/closed_loop_metrics.json              {"format", "setting", "sensor_note", "agents_mode",
                                               "config", "planners": {name: aggregate},
                                               "episodes": {name: {episode_id: {status, pdms, failure}}}}

Every file is written atomically; an episode whose log already exists is not run again (resume), its
log is read back for the aggregate. Each log records a fingerprint of the settings (the ``closed_loop``
config without ``scenes``, and the planner's checkpoint); resuming with other settings is refused.
Aggregates: :func:`drivepi.closed_loop.scoring.aggregate_scores`.
"""
import hashlib
import json
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Sequence

from tqdm import tqdm

from drivepi.fileio import atomic_write_json

from .episode import LOG_FORMAT, EpisodeRunner
from .scoring import aggregate_scores

METRICS_FORMAT = 'drivepi-closed-loop-metrics/1'
METRICS_FILE = 'closed_loop_metrics.json'
TABLE_KEYS = ('pdms', 'nc', 'dac', 'ttc', 'comfort', 'ep', 'ddc', 'route_completion', 'collisions_per_km')


def settings_fingerprint(config: dict, planner) -> str:
    """Hash of what decides an episode's result: the config (minus the scene list) and the content digest of
    the planner's checkpoint (``checkpoint_digest``; none for rule-based planners)."""
    settings = dict({k: v for k, v in config.items() if k != 'scenes'},
                    checkpoint=getattr(planner, 'checkpoint_digest', None))
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_episode_log(path: Path, fingerprint: str) -> dict:
    """Load an episode log written by an earlier run with the same settings.

    Raises:
        ValueError: the file is not valid JSON, not an episode log, or made with other settings.
    """
    try:
        log = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f'{path}: unreadable episode log ({err}); delete it to run the episode again') from err
    if log.get('format') != LOG_FORMAT or log.get('status') not in ('ok', 'failed'):
        raise ValueError(f'{path}: not a {LOG_FORMAT} episode log; delete it to run the episode again')
    if log.get('settings_fingerprint') != fingerprint:
        raise ValueError(f'{path}: made with other closed-loop settings or checkpoint (fingerprint '
                         f'{log.get("settings_fingerprint")} != {fingerprint}); use another --out-dir')
    return log


class ClosedLoopRunner:
    """Runs episodes of several planners over several scenes into an output directory.

    Args:
        episode_runner: :class:`EpisodeRunner` (rates, vehicle, controller, agents, scoring).
        out_dir: output directory. episode_seconds: episode length (s), clipped to each scene's log.
        episode_start: offset (s) of the episode start from the scene's first logged time.
        config: the ``closed_loop`` config dict, copied into the metrics file.
    """

    def __init__(self, episode_runner: EpisodeRunner, out_dir, episode_seconds: float = 15.0,
                 episode_start: float = 0.0, config: dict = None):
        self.episode_runner = episode_runner
        self.out_dir = Path(out_dir)
        self.episode_seconds, self.episode_start = episode_seconds, episode_start
        self.config = config or {}

    def episode_path(self, planner: str, episode_id: str) -> Path:
        return self.out_dir / 'episodes' / planner / f'{episode_id}.json'

    def run(self, scene_names: Sequence[str], load_source: Callable, planners: Dict[str, object]) -> dict:
        """Run (or resume) every scene with every planner; write and return the metrics summary.

        Args:
            scene_names: scenes to drive (the episode id is the scene name).
            load_source: ``scene_name -> SceneSource``; called only for scenes with missing episodes.
            planners: name -> planner (``plan(PlanningContext) -> (6, 2)``).
        """
        logs: Dict[str, List[dict]] = {name: [] for name in planners}
        notes = {}
        with tqdm(total=len(scene_names) * len(planners), desc='closed-loop episodes', unit='ep') as bar:
            for scene in scene_names:
                todo = [p for p in planners if not self.episode_path(p, scene).is_file()]
                source = load_source(scene) if todo else None
                for name, planner in planners.items():
                    path = self.episode_path(name, scene)
                    fingerprint = settings_fingerprint(self.config, planner)
                    if name in todo:
                        log = dict(self.run_episode(source, planner, name, scene), settings_fingerprint=fingerprint)
                        atomic_write_json(path, log, indent=None)
                    else:
                        log = read_episode_log(path, fingerprint)
                    logs[name].append(log)
                    notes[log['setting']] = log['sensor_note']
                    bar.set_postfix(scene=scene, planner=name)
                    bar.update()
        summary = self._summary(logs, notes)
        atomic_write_json(self.out_dir / METRICS_FILE, summary)
        return summary

    def run_episode(self, source, planner, name: str, episode_id: str) -> dict:
        """One episode of ``planner`` in ``source`` (start and length from the settings); not written."""
        t0 = source.start_time + self.episode_start
        duration = min(self.episode_seconds, source.end_time - t0)
        if duration <= 0:
            raise ValueError(f'scene {source.scene_name}: episode_start {self.episode_start} s is past the '
                             f'end of its {source.end_time - source.start_time:.1f} s log')
        return self.episode_runner.run(source, planner, name, t0, duration, episode_id)

    def _summary(self, logs: Dict[str, List[dict]], notes: dict) -> dict:
        return dict(
            format=METRICS_FORMAT, setting=sorted(notes), sensor_note=[notes[k] for k in sorted(notes)],
            agents_mode=self.episode_runner.agents_cfg['mode'], config=self.config,
            planners={name: aggregate_scores(eps) for name, eps in logs.items()},
            episodes={name: {e['episode_id']: dict(status=e['status'], failure=e['failure'],
                                                   pdms=e['metrics']['pdms'] if e['metrics'] else None)
                             for e in eps} for name, eps in logs.items()})


def format_table(summary: dict) -> str:
    """A plain-text table of the planners' aggregate scores (one row per planner)."""
    header = ['planner'] + list(TABLE_KEYS) + ['episodes', 'failed']
    rows = [[name] + [f'{agg[k]:.3f}' for k in TABLE_KEYS] + [str(agg['num_episodes']), str(agg['num_failed'])]
            for name, agg in summary['planners'].items()]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: ' | '.join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
    lines = [fmt(header), '-+-'.join('-' * w for w in widths)] + [fmt(r) for r in rows]
    lines.append(f"agents: {summary['agents_mode']}; sensors: {' / '.join(summary['sensor_note'])}")
    return '\n'.join(lines)


def build_runner(cfg: dict, out_dir) -> ClosedLoopRunner:
    """A :class:`ClosedLoopRunner` from a ``closed_loop`` config dict (``configs/_base_/closed_loop.py``)."""
    episode_runner = EpisodeRunner(
        sim_hz=cfg.get('sim_hz', 10.0), replan_hz=cfg.get('replan_hz', 2.0), vehicle=cfg.get('vehicle'),
        controller=cfg.get('controller'), agents=cfg.get('agents'), scoring=cfg.get('scoring'),
        max_plan_speed=cfg.get('max_plan_speed', 40.0))
    return ClosedLoopRunner(episode_runner, out_dir, episode_seconds=cfg.get('episode_seconds', 15.0),
                            episode_start=cfg.get('episode_start', 0.0), config=cfg)


PLANNER_NAMES = ('expert', 'constant_velocity', 'model')


def build_planners(names, cfg, checkpoint, scenes: 'SceneSelection', work_dir, device: str = 'cpu') -> dict:
    """Planners by name (:data:`PLANNER_NAMES`); ``model`` is built from ``cfg`` and ``checkpoint``.

    Raises:
        ValueError: ``model`` is asked for without a checkpoint, or a name is unknown.
    """
    from .planners import ConstantVelocityPlanner, ExpertPlanner
    planners = {}
    for name in names:
        if name == 'expert':
            planners[name] = ExpertPlanner()
        elif name == 'constant_velocity':
            planners[name] = ConstantVelocityPlanner()
        elif name == 'model':
            if checkpoint is None:
                raise ValueError('the model planner needs CKPT: tools/closed_loop.py CONFIG CKPT (or run only '
                                 'the baselines with --planner expert --planner constant_velocity)')
            from .model_planner import ModelPlanner
            planners[name] = ModelPlanner.from_config(cfg, checkpoint, scenes.infos, scenes.metainfo, work_dir,
                                                      device)
        else:
            raise ValueError(f'unknown planner {name!r}; choose from {PLANNER_NAMES}')
    return planners


def build_source_loader(cl_cfg: dict, scene_infos: dict, data_prefix: dict) -> Callable:
    """``scene_name -> SceneSource`` for the setting of a ``closed_loop`` config dict."""
    from .sources import MiniWorldSource, NuScenesLogSource
    if cl_cfg['setting'] == 'mini_world':
        return lambda scene: MiniWorldSource(cl_cfg['data_root'], scene)
    if cl_cfg['setting'] == 'nuscenes_log':
        map_root = cl_cfg.get('map_root') or cl_cfg['data_root']
        return lambda scene: NuScenesLogSource(scene_infos[scene], cl_cfg['data_root'], data_prefix, map_root)
    raise ValueError(f"closed_loop.setting must be 'mini_world' or 'nuscenes_log', got {cl_cfg['setting']!r}")


def load_config(path: str, options: dict = None):
    """An MMEngine config with ``options`` (``--cfg-options``) merged; it must hold a ``closed_loop`` dict.

    Raises:
        ValueError: naming ``path`` when there is no ``closed_loop`` dict.
    """
    from drivepi.utils import load_config as load_config_file
    cfg = load_config_file(path, options)
    if 'closed_loop' not in cfg:
        raise ValueError(f'{path}: no closed_loop dict; inherit configs/_base_/closed_loop.py')
    return cfg


class SceneSelection(NamedTuple):
    """The scenes a run drives: ``infos`` (scene name -> keyframe infos), the info file's ``metainfo``,
    ``names`` (the scenes to drive, in order) and the ``data_prefix`` of the sensor files."""
    infos: dict
    metainfo: dict
    names: list
    data_prefix: dict


def select_scenes(cfg) -> SceneSelection:
    """The scenes of a config: ``closed_loop.scenes`` or all scenes of ``closed_loop.info_file``; the data
    prefix is the test dataset's (the nuScenes layout when the config has no dataset)."""
    from .sources import load_scene_infos
    cl_cfg = cfg.closed_loop
    scene_infos, metainfo = load_scene_infos(cl_cfg.info_file)
    scenes = list(cl_cfg.scenes) if cl_cfg.get('scenes') else list(scene_infos)
    unknown = sorted(set(scenes) - set(scene_infos))
    if unknown:
        raise ValueError(f'closed_loop.scenes {unknown} are not in {cl_cfg.info_file}')
    data_prefix = cfg.get('test_dataloader', {}).get('dataset', {}).get('data_prefix') or \
        dict(pts='samples/LIDAR_TOP', **{cam: f'samples/{cam}' for cam in scene_infos[scenes[0]][0]['images']})
    return SceneSelection(scene_infos, metainfo, scenes, data_prefix)
