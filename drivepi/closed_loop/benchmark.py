"""The closed-loop benchmark: a fixed, versioned list of held-out generated worlds, grouped by scenario type.

The definition lives in ``configs/_base_/closed_loop_benchmark.py`` (``closed_loop.benchmark``): a
``version`` (must equal :data:`drivepi.sim.scenarios.BENCHMARK_VERSION`, the generator that makes the worlds),
``episodes`` (``id``, ``seed``, ``scenario`` type, ``seconds``), ``agents_mode`` per scenario type and named
``subsets`` of episode ids (``closed_loop.subset`` picks one). Each world is generated in memory from
(version, seed, scenario type) by :func:`drivepi.sim.generator.generate_scenario_world` with the sensors of
the default mini dataset, so the model sees the sensors it was trained on.
"""
from dataclasses import replace
from typing import Dict, List

from drivepi.sim.scenarios import BENCHMARK_VERSION, HELD_OUT_SEEDS, SCENARIO_TYPES

from .runner import EpisodeSpec
from .settings import check_number

EPISODE_KEYS = ('id', 'seed', 'scenario', 'seconds')


def benchmark_episodes(cl_cfg: dict) -> List[EpisodeSpec]:
    """The episodes to drive: all of ``closed_loop.benchmark`` or its subset ``closed_loop.subset``.

    Raises:
        ValueError: naming the problem: wrong version, malformed or duplicate episodes (lengths not finite and
            positive), unknown scenario types, seeds outside the held-out range, an unknown subset or subset entry.
    """
    bench = cl_cfg.get('benchmark')
    if not bench:
        raise ValueError("closed_loop.episodes='benchmark' but the config has no closed_loop.benchmark; "
                         'inherit configs/_base_/closed_loop.py')
    if bench['version'] != BENCHMARK_VERSION:
        raise ValueError(f"closed_loop.benchmark.version {bench['version']!r} != {BENCHMARK_VERSION!r}, the "
                         'version drivepi.sim generates: its worlds would differ from the definition')
    episodes = [_episode(e, bench, cl_cfg) for e in bench['episodes']]
    _check_unique(episodes)
    subset = cl_cfg.get('subset')
    if subset is None:
        return episodes
    subsets = bench.get('subsets', {})
    if subset not in subsets:
        raise ValueError(f'closed_loop.subset {subset!r} is not one of closed_loop.benchmark.subsets {sorted(subsets)}')
    by_id = {e.episode_id: e for e in episodes}
    unknown = [i for i in subsets[subset] if i not in by_id]
    if unknown:
        raise ValueError(f'closed_loop.benchmark.subsets.{subset}: unknown episode ids {unknown}')
    return [by_id[i] for i in subsets[subset]]


def _episode(entry: dict, bench: dict, cl_cfg: dict) -> EpisodeSpec:
    """One validated :class:`EpisodeSpec` from a config entry."""
    missing = [k for k in EPISODE_KEYS if k not in entry]
    if missing:
        raise ValueError(f'closed_loop.benchmark episode {entry}: missing {missing}')
    if entry['scenario'] not in SCENARIO_TYPES:
        raise ValueError(f"closed_loop.benchmark episode {entry['id']}: unknown scenario type "
                         f"{entry['scenario']!r}; choose from {SCENARIO_TYPES}")
    if entry['seed'] not in HELD_OUT_SEEDS:
        raise ValueError(f"closed_loop.benchmark episode {entry['id']}: seed {entry['seed']} outside the held-out "
                         f'range [{HELD_OUT_SEEDS.start}, {HELD_OUT_SEEDS.stop}) (it could be a training world)')
    check_number(entry['seconds'], f"closed_loop.benchmark episode {entry['id']}: seconds")
    mode = bench.get('agents_mode', {}).get(entry['scenario'], cl_cfg.get('agents', {}).get('mode', 'log_replay'))
    return EpisodeSpec(entry['id'], entry['id'], float(entry['seconds']), mode, entry['scenario'],
                       dict(version=bench['version'], seed=int(entry['seed']), scenario=entry['scenario']))


def _check_unique(episodes: List[EpisodeSpec]) -> None:
    for field in ('episode_id', 'seed'):
        values = [e.episode_id if field == 'episode_id' else e.settings['seed'] for e in episodes]
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise ValueError(f'closed_loop.benchmark: duplicate episode {field}s {duplicates}')


class BenchmarkWorlds:
    """``episode_id -> MiniWorldSource`` of a benchmark world, generated in memory (picklable, so that
    worker processes can rebuild worlds themselves).

    Args:
        episodes: the :class:`EpisodeSpec` of :func:`benchmark_episodes`.
        ray_backend: how the sensors are ray-cast (:data:`drivepi.sim.ray_backends.RAY_BACKENDS`; resolved here).
    """

    def __init__(self, episodes: List[EpisodeSpec], ray_backend: str = 'auto'):
        from drivepi.sim.ray_backends import resolve_ray_backend
        self.episodes: Dict[str, EpisodeSpec] = {e.episode_id: e for e in episodes}
        self.ray_backend = resolve_ray_backend(ray_backend)

    def __call__(self, episode_id: str):
        from drivepi.sim.generator import generate_scenario_world
        from drivepi.sim.mini_dataset import PRESETS

        from .sources import MiniWorldSource
        spec = self.episodes[episode_id]
        world = generate_scenario_world(episode_id, spec.settings['seed'], spec.settings['scenario'],
                                        spec.seconds, PRESETS['default'].sensors)
        return MiniWorldSource.from_world(replace(world, ray_backend=self.ray_backend))
