"""The ``closed_loop`` config dict checked before any episode runs (``configs/_base_/closed_loop.py``).

Rules (:func:`check_settings`):

- every key is known, in nested dicts too (:func:`settings_schema`; the nested keys are the fields of the
  classes that take them); an unknown key is named with the nearest valid one;
- every number is finite (a NaN bound would disable its check), and > 0 (rates, horizons, speeds, sizes,
  limits, gains of the IDM and the scores) except the keys of :data:`NON_NEGATIVE` (>= 0) and
  :data:`NEGATIVE` (< 0); :data:`INTEGERS` are integers;
- ``scenes`` is None or a list of scene names (a single string would be read letter by letter).
"""
import difflib
import inspect
import math
from dataclasses import fields
from numbers import Number

from .agents import IDMParams
from .controller import PurePursuitController
from .kinematics import VehicleParams
from .scoring import ScoringParams, default_comfort_bounds

NON_NEGATIVE = ('episode_start', 'controller.lookahead_time', 'controller.kp', 'controller.ki', 'controller.kd',
                'controller.position_gain', 'controller.stop_speed', 'agents.idm.moving_speed',
                'scoring.stopped_speed', 'scoring.lateral_fault_offset')
NEGATIVE = ('scoring.comfort_bounds.min_lon_accel',)
INTEGERS = ('workers', 'scoring.savgol_window')
BENCHMARK_KEYS = ('version', 'agents_mode', 'episodes', 'subsets')  # checked by drivepi.closed_loop.benchmark


def _numbers(annotations: dict) -> dict:
    """``{name: Number}`` for the float / int annotations, ``{name: None}`` for the others."""
    return {name: Number if kind in (float, int) else None for name, kind in annotations.items()}


def settings_schema() -> dict:
    """The valid keys of a ``closed_loop`` dict: a nested dict per nested dict, ``Number`` for a number,
    None for a value checked elsewhere (names, paths, the benchmark's episodes). The nested keys are the
    fields (and their annotations) of the classes that take them."""
    controller_args = list(inspect.signature(PurePursuitController).parameters.values())[2:]  # after params, dt
    return dict(
        dict.fromkeys(('episodes', 'subset', 'setting', 'data_root', 'info_file', 'scenes', 'map_root', 'ray_backend')),
        **dict.fromkeys(('workers', 'episode_seconds', 'episode_start', 'sim_hz', 'replan_hz', 'max_plan_speed'),
                        Number),
        vehicle=_numbers({f.name: f.type for f in fields(VehicleParams)}),
        controller=_numbers({p.name: p.annotation for p in controller_args}),
        agents=dict(mode=None, idm=_numbers({f.name: f.type for f in fields(IDMParams)})),
        scoring=dict(_numbers({f.name: f.type for f in fields(ScoringParams)}),
                     comfort_bounds=dict.fromkeys(default_comfort_bounds(), Number)),
        benchmark=dict.fromkeys(BENCHMARK_KEYS))


def check_number(value, where: str, sign: str = 'positive') -> None:
    """Raise a ValueError naming ``where`` unless ``value`` is a finite number of ``sign``
    ('positive', 'non-negative' or 'negative')."""
    if isinstance(value, bool) or not isinstance(value, Number) or not math.isfinite(value):
        raise ValueError(f'{where} must be a finite number, got {value!r}')
    if not {'positive': value > 0, 'non-negative': value >= 0, 'negative': value < 0}[sign]:
        raise ValueError(f'{where} must be {sign}, got {value!r}')


def check_settings(cl_cfg: dict) -> None:
    """Check a ``closed_loop`` config dict by the rules of the module docstring.

    Raises:
        ValueError: naming the key (``closed_loop.<path>``) and what is wrong.
    """
    _check_dict(cl_cfg, settings_schema(), '')
    scenes = cl_cfg.get('scenes')
    if scenes is not None and (not isinstance(scenes, (list, tuple)) or not all(isinstance(s, str) for s in scenes)):
        hint = f' (--cfg-options "closed_loop.scenes=[{scenes}]")' if isinstance(scenes, str) else ''
        raise ValueError(f'closed_loop.scenes must be None or a list of scene names, got {scenes!r}{hint}')


def _check_dict(cfg: dict, schema: dict, prefix: str) -> None:
    for key, value in cfg.items():
        path = prefix + key
        if key not in schema:
            raise ValueError(f'unknown key closed_loop.{path}{_nearest(key, schema)}')
        if isinstance(schema[key], dict) and isinstance(value, dict):
            _check_dict(value, schema[key], path + '.')
        elif schema[key] is Number:
            _check_value(value, path)


def _check_value(value, path: str) -> None:
    sign = 'non-negative' if path in NON_NEGATIVE else 'negative' if path in NEGATIVE else 'positive'
    check_number(value, f'closed_loop.{path}', sign)
    if path in INTEGERS and not isinstance(value, int):
        raise ValueError(f'closed_loop.{path} must be an integer, got {value!r}')


def _nearest(key: str, schema: dict) -> str:
    match = difflib.get_close_matches(key, list(schema), n=1, cutoff=0.0)
    return f' (did you mean {match[0]!r}?)' if match else ''
