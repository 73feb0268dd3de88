"""Project-wide set-up helpers."""
import datetime
import difflib
import inspect
import os.path as osp
import warnings
from typing import Optional

from mmengine import DefaultScope
from mmengine.config import Config
from mmengine.runner import Runner

from drivepi.fileio import read_config

# Top-level config keys something reads: MMEngine's Runner (the arguments of Runner.__init__, which
# Runner.from_cfg fills from the config), MMEngine's Config itself, and the project's tools.
RUNNER_KEYS = tuple(name for name in inspect.signature(Runner.__init__).parameters if name not in ('self', 'cfg'))
PROJECT_KEYS = ('custom_imports',  # MMEngine Config: modules to import
                'closed_loop')  # tools/closed_loop.py (configs/_base_/closed_loop.py)
KNOWN_KEYS = RUNNER_KEYS + PROJECT_KEYS
RUNNER_KEY_SUFFIXES = ('_dataloader', '_cfg', '_evaluator', '_hooks', '_wrapper', '_scheduler')
TYPO_SIMILARITY = 0.8  # difflib ratio from which an unknown key is taken for a misspelt known key


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every DrivePI (and mmdet3d) module so that it registers, and set scope ``drivepi``.

    Args:
        init_default_scope: make ``drivepi`` the current default scope, so that registries
            build from DrivePI's nodes first and fall back to mmdet3d / mmdet / mmengine.
    """
    from mmdet3d.utils import register_all_modules as register_mmdet3d_modules
    register_mmdet3d_modules(init_default_scope=False)
    import drivepi.datasets  # noqa: F401
    import drivepi.engine  # noqa: F401
    import drivepi.evaluation  # noqa: F401
    import drivepi.models  # noqa: F401
    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created('drivepi'):
        DefaultScope.get_instance('drivepi', scope_name='drivepi')
    elif current.scope_name != 'drivepi':
        warnings.warn(f'default scope "{current.scope_name}" is replaced by "drivepi"')
        DefaultScope.get_instance(f'drivepi-{datetime.datetime.now()}', scope_name='drivepi')


def check_config_keys(cfg: Config, config: str) -> None:
    """Reject a top-level key that looks like a misspelt Runner or project key (:data:`KNOWN_KEYS`).

    MMEngine ignores top-level keys it does not read, so ``trian_dataloader = ...`` would silently train
    on nothing of what it says. Configs also define helper variables (``data_root``, ``img_size``,
    ``occ_classes``, ``max_iters``, ...), which are legitimate. The rule that tells the two apart: an
    unknown key is an error when its difflib similarity to a known key is at least
    :data:`TYPO_SIMILARITY`, or when it ends like a Runner key (:data:`RUNNER_KEY_SUFFIXES`:
    ``_dataloader``, ``_cfg``, ``_evaluator``, ...); any other key is a helper variable.

    Raises:
        ValueError: naming ``config``, the key and the nearest known key.
    """
    for key in cfg.keys():
        if key in KNOWN_KEYS:
            continue
        typo = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=TYPO_SIMILARITY)
        if typo or key.endswith(RUNNER_KEY_SUFFIXES):
            nearest = typo or difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.0)
            raise ValueError(f'{config}: unknown top-level key {key!r} (did you mean {nearest[0]!r}?); MMEngine '
                             'would ignore it. Helper variables must not end in '
                             f'{"/".join(RUNNER_KEY_SUFFIXES)} nor look like a Runner key')


def load_config(config: str, cfg_options: Optional[dict] = None) -> Config:
    """The config file with the ``--cfg-options`` overrides merged in, its top-level keys checked
    (:func:`check_config_keys`)."""
    cfg = read_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    check_config_keys(cfg, config)
    return cfg


def check_answers_against_the_model(cfg: Config) -> None:
    """Have the evaluation datasets check their QA answers against the model's generation limit in tokens of
    the model's tokenizer (``DrivePIDataset(max_answer_tokens, tokenizer_path)``). Taken from ``cfg.model`` here,
    so the fact is defined once and an override such as ``model.llm.llm_path=DIR`` reaches the check too."""
    model = cfg.get('model') or {}
    llm, limit = model.get('llm') or {}, model.get('max_answer_tokens')
    tokenizer = llm.get('tokenizer_path') or llm.get('llm_path')
    if limit is None or tokenizer is None:
        return
    for split in ('val_dataloader', 'test_dataloader'):
        loader = cfg.get(split)
        if loader and loader.get('dataset', {}).get('type') == 'DrivePIDataset':
            loader.dataset.update(max_answer_tokens=limit, tokenizer_path=tokenizer)


def load_run_config(config: str, launcher: str = 'none', cfg_options: Optional[dict] = None,
                    work_dir: Optional[str] = None, allow_partial: bool = False) -> Config:
    """A Runner config: the file, the ``--cfg-options`` overrides, the launcher, the work dir (given, else the
    config's, else ``work_dirs/<config name>``) and the checkpoint check (``allow_partial``: load a checkpoint
    that does not match the model, listing what was not loaded), as tools/train.py and tools/test.py use."""
    from drivepi.engine.checkpoint_loading import add_checkpoint_check
    cfg = load_config(config, cfg_options)
    check_answers_against_the_model(cfg)
    add_checkpoint_check(cfg, allow_partial)
    cfg.launcher = launcher
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join('work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg
