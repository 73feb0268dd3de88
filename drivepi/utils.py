"""Project-wide set-up helpers."""
import datetime
import os.path as osp
import warnings
from typing import Optional

from mmengine import DefaultScope
from mmengine.config import Config


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


def load_config(config: str, cfg_options: Optional[dict] = None) -> Config:
    """The config file with the ``--cfg-options`` overrides merged in."""
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
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
                    work_dir: Optional[str] = None) -> Config:
    """A Runner config: the file, the ``--cfg-options`` overrides, the launcher, and the work dir
    (given, else the config's, else ``work_dirs/<config name>``), as tools/train.py and tools/test.py use."""
    cfg = load_config(config, cfg_options)
    check_answers_against_the_model(cfg)
    cfg.launcher = launcher
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join('work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg
