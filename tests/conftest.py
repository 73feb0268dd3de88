"""Shared pytest fixtures: the real nuScenes demo keyframe, a tiny generated mini set, a tiny LLM.

The session-scoped fixtures build their data once per test run in a temporary directory.
"""
import os
from pathlib import Path

import pytest

os.environ.setdefault('OMP_NUM_THREADS', '1')

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO_ROOT.parent / 'shared' / 'data' / 'nuscenes_demo'


@pytest.fixture(scope='session')
def demo_dir() -> Path:
    """The real nuScenes keyframe shipped beside the repository (read-only, CC BY-NC-SA 4.0)."""
    if not (DEMO_DIR / 'n015-2018-07-24-11-22-45+0800.pkl').is_file():
        pytest.fail(f'nuScenes demo keyframe not found at {DEMO_DIR}: the shared/ folder must sit '
                    'beside the repository checkout')
    return DEMO_DIR


@pytest.fixture(scope='session')
def mini_dataset(tmp_path_factory) -> dict:
    """A tiny mini set in nuScenes format plus its DrivePI info files.

    Returns:
        dict with ``root`` (data root), ``version``, ``train_info`` and ``val_info`` (Paths).
    """
    from drivepi.datasets.converters.nuscenes_converter import create_drivepi_infos
    from drivepi.sim.mini_dataset import generate_mini_dataset
    root = tmp_path_factory.mktemp('drivepi_mini')
    version = generate_mini_dataset(root, num_scenes=2, seed=0, preset='test')
    infos = create_drivepi_infos(root, root, version)
    return dict(root=root, version=version, train_info=infos['train'], val_info=infos['val'])


@pytest.fixture(scope='session')
def tiny_llm_dir(tmp_path_factory) -> Path:
    """A tiny Qwen2 checkpoint with a trained BPE tokenizer, in the Hugging Face directory format."""
    from drivepi.testing import make_tiny_llm
    out = tmp_path_factory.mktemp('tiny_qwen2')
    make_tiny_llm(out, seed=0)
    return out


@pytest.fixture(scope='module')
def mini_cfg(tiny_llm_dir):
    """The mini model config on the session's tiny LLM, keeping a tenth of the BEV positions as tokens."""
    from mmengine.config import Config

    from drivepi.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / '_base_' / 'models' / 'drivepi_mini.py')).model
    cfg.llm.llm_path = str(tiny_llm_dir)
    cfg.token_filter.keep_ratio = 0.1
    return cfg
