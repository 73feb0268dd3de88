"""Fixtures of the model tests."""
import pytest
from mmengine.config import Config

from drivepi.utils import register_all_modules

MINI_CONFIG = 'configs/_base_/models/drivepi_mini.py'


@pytest.fixture(scope='module')
def mini_cfg(tiny_llm_dir):
    """The mini model config on the session's tiny LLM, keeping a tenth of the BEV positions as tokens."""
    register_all_modules()
    cfg = Config.fromfile(MINI_CONFIG).model
    cfg.llm.llm_path = str(tiny_llm_dir)
    cfg.token_filter.keep_ratio = 0.1
    return cfg
