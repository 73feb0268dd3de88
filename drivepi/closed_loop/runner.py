"""The closed-loop run: every episode x every planner, resumable, in parallel workers, with one table.

Output directory layout::

    OUT/episodes/<planner>/<episode_id>.json   one episode log each (format: drivepi.closed_loop.episode)
    OUT/closed_loop_metrics.json              {"format", "setting", "sensor_note", "agents_mode",
                                               "config", "benchmark_version",
                                               "planners": {name: aggregate},
                                               "groups": {name: {group | "all": {score: {mean, low, high}}}},
                                               "episodes": {name: {episode_id: {group, status, pdms, failure}}}}

Every file is written atomically; an episode whose log already exists is not run again (resume), its
log is read back for the aggregate. Each log records a fingerprint of the settings (the ``closed_loop``
config without the episode selection and the worker count, the episode's own definition, and the planner's
checkpoint); resuming with other settings is refused. Episodes run in ``workers`` spawned processes, each
episode with every planner in one process; the summary is always built from the written logs, so a
parallel run gives the same result as a serial one. Aggregates: :func:`drivepi.closed_loop.scoring.aggregate_scores`
and, per group (scenario type) and overall, :func:`drivepi.closed_loop.statistics.scores_with_ci`.
"""
import hashlib
import json
import os
import sys
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Union

from tqdm import tqdm

from drivepi.fileio import atomic_write_json

from .episode import LOG_FORMAT, EpisodeRunner
from .scoring import SCORE_KEYS, aggregate_scores
from .settings import check_settings
from .statistics import scores_with_ci

METRICS_FORMAT = 'drivepi-closed-loop-metrics/2'
METRICS_FILE = 'closed_loop_metrics.json'
TABLE_KEYS = ('pdms', 'nc', 'dac', 'ttc', 'comfort', 'ep', 'ddc', 'route_completion', 'collisions_per_km')
OVERALL = 'all'
# config keys that choose which episodes run and how, not what an episode's result is (the ray-casting
# backends give the same sensor data, drivepi.sim.ray_backends)
SELECTION_KEYS = ('scenes', 'subset', 'workers', 'benchmark', 'episodes', 'ray_backend')


class EpisodeSpec(NamedTuple):
    """One episode to drive.

    Attributes:
        episode_id: log name. scene: what the source loader is called with.
        seconds: episode length (s; None: the runner's ``episode_seconds``), clipped to the scene's log.
        agents_mode: 'log_replay' | 'idm' (None: the runner's). group: aggregation group (scenario type).
        settings: facts that decide the episode's world (benchmark version, seed, ...), part of its fingerprint.
    """
    episode_id: str
    scene: str
    seconds: Optional[float] = None
    agents_mode: Optional[str] = None
    group: Optional[str] = None
    settings: Optional[dict] = None


def settings_fingerprint(config: dict, planner, episode: EpisodeSpec = None) -> str:
    """Hash of what decides an episode's result: the config (minus the episode selection, :data:`SELECTION_KEYS`),
    the episode's definition and the content digest of the planner's checkpoint (``checkpoint_digest``; none
    for rule-based planners)."""
    settings = dict({k: v for k, v in config.items() if k not in SELECTION_KEYS},
                    checkpoint=getattr(planner, 'checkpoint_digest', None))
    if episode is not None and (episode.seconds, episode.agents_mode, episode.settings) != (None, None, None):
        settings['episode'] = [episode.seconds, episode.agents_mode, episode.settings]
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
    """Runs episodes of several planners into an output directory.

    Args:
        episode_runner: :class:`EpisodeRunner` (rates, vehicle, controller, agents, scoring).
        out_dir: output directory. episode_seconds: default episode length (s), clipped to each scene's log.
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

    def run(self, episodes: Sequence[Union[str, EpisodeSpec]], load_source: Callable, planners: Dict[str, object],
            workers: int = 1) -> dict:
        """Run (or resume) every episode with every planner; write and return the metrics summary.

        Args:
            episodes: :class:`EpisodeSpec` or scene names (the episode id is then the scene name).
            load_source: ``scene -> SceneSource``; called only for episodes with missing logs. It and the
                planners must be picklable when ``workers > 1``.
            planners: name -> planner (``plan(PlanningContext) -> (6, 2)``).
            workers: processes (1: this one).
        """
        specs = [EpisodeSpec(e, e) if isinstance(e, str) else e for e in episodes]
        fingerprints = {(s.episode_id, name): settings_fingerprint(self.config, planner, s)
                        for s in specs for name, planner in planners.items()}
        todo = [(s, [n for n in planners if not self.episode_path(n, s.episode_id).is_file()]) for s in specs]
        todo = [(s, names) for s, names in todo if names]
        with tqdm(total=sum(len(n) for _, n in todo), desc='closed-loop episodes', unit='ep') as bar:
            for spec, names in self._execute(todo, load_source, planners, fingerprints, workers):
                bar.set_postfix(episode=spec.episode_id)
                bar.update(len(names))
        logs = {name: [read_episode_log(self.episode_path(name, s.episode_id), fingerprints[s.episode_id, name])
                       for s in specs] for name in planners}
        summary = self._summary(logs, {s.episode_id: s.group for s in specs})
        atomic_write_json(self.out_dir / METRICS_FILE, summary)
        return summary

    def _execute(self, todo: list, load_source: Callable, planners: dict, fingerprints: dict, workers: int):
        """Yield ``(spec, planner names)`` as each episode's missing logs are written (in ``todo`` order)."""
        jobs = [(spec, names, {n: fingerprints[spec.episode_id, n] for n in names}) for spec, names in todo]
        if workers <= 1 or len(jobs) <= 1:
            _WORKER.update(runner=self, load_source=load_source, planners=planners)
            for job in jobs:
                yield _run_job(job)
            return
        workers = min(workers, len(jobs))
        threads = max(1, os.cpu_count() // workers)
        with get_context('spawn').Pool(workers, initializer=_init_worker,
                                       initargs=(self, load_source, planners, threads)) as pool:
            yield from pool.imap(_run_job, jobs)

    def run_spec(self, spec: EpisodeSpec, source, planner, name: str) -> dict:
        """One episode of ``planner`` in ``source`` as defined by ``spec``; not written."""
        t0 = source.start_time + self.episode_start
        seconds = self.episode_seconds if spec.seconds is None else spec.seconds
        duration = min(seconds, source.end_time - t0)
        if duration <= 0:
            raise ValueError(f'scene {source.scene_name}: episode_start {self.episode_start} s is past the '
                             f'end of its {source.end_time - source.start_time:.1f} s log')
        return self.episode_runner.run(source, planner, name, t0, duration, spec.episode_id,
                                       agents_mode=spec.agents_mode)

    def run_episode(self, source, planner, name: str, episode_id: str) -> dict:
        """One episode of ``planner`` in ``source`` (start and length from the settings); not written."""
        return self.run_spec(EpisodeSpec(episode_id, source.scene_name), source, planner, name)

    def _summary(self, logs: Dict[str, List[dict]], groups: Dict[str, Optional[str]]) -> dict:
        notes = {log['setting']: log['sensor_note'] for eps in logs.values() for log in eps}
        modes = sorted({log['agents_mode'] for eps in logs.values() for log in eps})
        return dict(
            format=METRICS_FORMAT, setting=sorted(notes), sensor_note=[notes[k] for k in sorted(notes)],
            agents_mode=modes[0] if len(modes) == 1 else modes, config=self.config,
            benchmark_version=(self.config.get('benchmark') or {}).get('version')
            if self.config.get('episodes') == 'benchmark' else None,
            planners={name: aggregate_scores(eps) for name, eps in logs.items()},
            groups={name: grouped_scores(eps, groups) for name, eps in logs.items()},
            episodes={name: {e['episode_id']: dict(group=groups[e['episode_id']], status=e['status'],
                                                   failure=e['failure'],
                                                   pdms=e['metrics']['pdms'] if e['metrics'] else None)
                             for e in eps} for name, eps in logs.items()})


def grouped_scores(episodes: List[dict], groups: Dict[str, Optional[str]]) -> Dict[str, dict]:
    """Scores with bootstrap intervals per group (in order of first appearance) and over all episodes
    (:data:`OVERALL`); episodes without a group count only in the overall one."""
    names = list(dict.fromkeys(groups[e['episode_id']] for e in episodes if groups[e['episode_id']] is not None))
    out = {g: scores_with_ci([e for e in episodes if groups[e['episode_id']] == g], SCORE_KEYS) for g in names}
    out[OVERALL] = scores_with_ci(episodes, SCORE_KEYS)
    for g in out:
        out[g]['num_episodes'] = len(episodes) if g == OVERALL else sum(groups[e['episode_id']] == g for e in episodes)
    return out


_WORKER: dict = {}   # this process's runner, source loader and planners (set once per worker)


def _init_worker(runner: ClosedLoopRunner, load_source: Callable, planners: dict, threads: int) -> None:
    """Keep a worker's objects; a worker whose planners use torch gets its share of the cores (no oversubscription)."""
    _WORKER.update(runner=runner, load_source=load_source, planners=planners)
    if 'torch' in sys.modules:
        sys.modules['torch'].set_num_threads(threads)


def _run_job(job) -> tuple:
    """Run the missing planners of one episode and write their logs; returns ``(spec, names)``."""
    spec, names, fingerprints = job
    runner, planners = _WORKER['runner'], _WORKER['planners']
    source = _WORKER['load_source'](spec.scene)
    for name in names:
        log = dict(runner.run_spec(spec, source, planners[name], name), settings_fingerprint=fingerprints[name])
        atomic_write_json(runner.episode_path(name, spec.episode_id), log, indent=None)
    return spec, names


def format_table(summary: dict) -> str:
    """One plain-text table: per planner a row per group (scenario type) and one over all episodes
    (:data:`OVERALL`), each score as ``mean [95 % interval]``."""
    header = ['planner', 'group'] + list(TABLE_KEYS) + ['episodes', 'failed']
    rows = []
    for name, groups in summary['groups'].items():
        for group, scores in groups.items():
            failed = str(summary['planners'][name]['num_failed']) if group == OVERALL else ''
            rows.append([name, group] + [_cell(scores[k]) for k in TABLE_KEYS] + [str(scores['num_episodes']), failed])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: ' | '.join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
    lines = [fmt(header), '-+-'.join('-' * w for w in widths)] + [fmt(r) for r in rows]
    if summary.get('benchmark_version'):
        lines.append(f"benchmark {summary['benchmark_version']}; [low, high]: 95 % bootstrap interval over episodes")
    lines.append(f"agents: {summary['agents_mode']}; sensors: {' / '.join(summary['sensor_note'])}")
    return '\n'.join(lines)


def _cell(score: dict) -> str:
    return f"{score['mean']:.3f} [{score['low']:.2f}, {score['high']:.2f}]"


def build_runner(cfg: dict, out_dir) -> ClosedLoopRunner:
    """A :class:`ClosedLoopRunner` from a ``closed_loop`` config dict (``configs/_base_/closed_loop.py``),
    checked first (:func:`drivepi.closed_loop.settings.check_settings`)."""
    check_settings(cfg)
    episode_runner = EpisodeRunner(
        sim_hz=cfg.get('sim_hz', 10.0), replan_hz=cfg.get('replan_hz', 2.0), vehicle=cfg.get('vehicle'),
        controller=cfg.get('controller'), agents=cfg.get('agents'), scoring=cfg.get('scoring'),
        max_plan_speed=cfg.get('max_plan_speed', 40.0))
    return ClosedLoopRunner(episode_runner, out_dir, episode_seconds=cfg.get('episode_seconds', 15.0),
                            episode_start=cfg.get('episode_start', 0.0), config=cfg)


PLANNER_NAMES = ('expert', 'constant_velocity', 'model')


def build_planners(names, cfg, checkpoint, scenes: 'SceneSelection', work_dir, device: str = 'cpu',
                   allow_partial: bool = False) -> dict:
    """Planners by name (:data:`PLANNER_NAMES`); ``model`` is built from ``cfg`` and ``checkpoint``
    (``allow_partial``: see :meth:`~drivepi.closed_loop.model_planner.ModelPlanner.from_config`).

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
                                                      device, allow_partial)
        else:
            raise ValueError(f'unknown planner {name!r}; choose from {PLANNER_NAMES}')
    return planners


def build_source_loader(cl_cfg: dict, scene_infos: dict, data_prefix: dict) -> Callable:
    """``scene_name -> SceneSource`` (picklable) for the setting of a ``closed_loop`` config dict."""
    from .sources import MiniWorldLoader, NuScenesLogLoader
    if cl_cfg['setting'] == 'mini_world':
        return MiniWorldLoader(cl_cfg['data_root'], cl_cfg.get('ray_backend', 'auto'))
    if cl_cfg['setting'] == 'nuscenes_log':
        return NuScenesLogLoader(scene_infos, cl_cfg['data_root'], data_prefix,
                                 cl_cfg.get('map_root') or cl_cfg['data_root'])
    raise ValueError(f"closed_loop.setting must be 'mini_world' or 'nuscenes_log', got {cl_cfg['setting']!r}")


EPISODE_SOURCES = ('benchmark', 'info_file')


def select_episodes(cfg, scenes: 'SceneSelection' = None) -> tuple:
    """The episodes of a config and their source loader: ``closed_loop.episodes`` is ``'benchmark'`` (the
    benchmark's episodes or ``closed_loop.subset`` of them, worlds generated) or ``'info_file'`` (the scenes of
    ``scenes``, i.e. :func:`select_scenes`).

    Raises:
        ValueError: an unknown ``closed_loop.episodes`` or a malformed benchmark (naming the problem).
    """
    cl_cfg = cfg.closed_loop
    kind = cl_cfg.get('episodes', 'info_file')
    if kind == 'benchmark':
        from .benchmark import BenchmarkWorlds, benchmark_episodes
        episodes = benchmark_episodes(cl_cfg)
        return episodes, BenchmarkWorlds(episodes, cl_cfg.get('ray_backend', 'auto'))
    if kind == 'info_file':
        scenes = scenes or select_scenes(cfg)
        return scenes.names, build_source_loader(cl_cfg, scenes.infos, scenes.data_prefix)
    raise ValueError(f'closed_loop.episodes must be one of {EPISODE_SOURCES}, got {kind!r}')


def load_config(path: str, options: dict = None):
    """An MMEngine config with ``options`` (``--cfg-options``) merged; it must hold a ``closed_loop`` dict,
    which is checked (:func:`drivepi.closed_loop.settings.check_settings`) before anything runs.

    Raises:
        ValueError: naming ``path`` when there is no ``closed_loop`` dict, or the bad setting.
    """
    from drivepi.utils import load_config as load_config_file
    cfg = load_config_file(path, options)
    if 'closed_loop' not in cfg:
        raise ValueError(f'{path}: no closed_loop dict; inherit configs/_base_/closed_loop.py')
    check_settings(cfg.closed_loop.to_dict())
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
