"""``closed_loop.ray_backend``: how the mini worlds' sensors are ray-cast in closed loop (drivepi.sim.ray_backends)."""
import sys

import pytest

from drivepi.closed_loop.benchmark import BenchmarkWorlds
from drivepi.closed_loop.runner import build_source_loader, settings_fingerprint
from drivepi.closed_loop.settings import check_settings


def test_the_closed_loop_takes_the_backend_from_its_config(monkeypatch):
    """A known key that reaches both source loaders, fails early when unknown and leaves the settings fingerprint
    alone (the backends give the same sensor data); 'auto' is torch where open3d does not import."""
    cl_cfg = dict(setting='mini_world', data_root='data/drivepi-mini/', ray_backend='torch')
    check_settings(cl_cfg)
    assert build_source_loader(cl_cfg, {}, {}).ray_backend == 'torch'
    assert BenchmarkWorlds([], 'torch').ray_backend == 'torch'
    with pytest.raises(ValueError, match='unknown ray backend'):
        build_source_loader(dict(cl_cfg, ray_backend='optix'), {}, {})
    assert settings_fingerprint(cl_cfg, None) == settings_fingerprint(dict(cl_cfg, ray_backend='embree'), None)
    monkeypatch.setitem(sys.modules, 'open3d', None)
    assert BenchmarkWorlds([], 'auto').ray_backend == 'torch'
