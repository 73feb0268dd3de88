"""The registries of drivepi/registry.py: a ``drivepi`` node in every MMEngine registry tree."""
import mmengine.registry as mmengine_registry
import pytest

import drivepi.registry as drivepi_registry
from drivepi.utils import register_all_modules

register_all_modules()

ROOTS = sorted(name for name in dir(mmengine_registry)
               if isinstance(getattr(mmengine_registry, name), mmengine_registry.Registry))


@pytest.mark.parametrize('name', ROOTS)
def test_every_registry_tree_has_a_drivepi_node_and_logs_no_warning(name, mmengine_warnings):
    """The Runner builds from every tree in scope ``drivepi``; a tree without a ``drivepi`` node makes MMEngine
    warn 'Failed to search registry with scope "drivepi"' and skip mmdet3d's modules."""
    with getattr(mmengine_registry, name).switch_scope_and_registry(None) as registry:
        assert registry is getattr(drivepi_registry, name) and registry.scope == 'drivepi'
    assert mmengine_warnings == []


def test_lookups_fall_back_through_mmdet3d_to_mmengine():
    assert drivepi_registry.DATA_SAMPLERS.get('DefaultSampler').__module__.startswith('mmengine.')
    assert drivepi_registry.OPTIM_WRAPPERS.get('AmpOptimWrapper').__module__.startswith('mmengine.')
    assert drivepi_registry.VISUALIZERS.get('Det3DLocalVisualizer').__module__.startswith('mmdet3d.')
    assert drivepi_registry.MODELS.get('DrivePI').__module__.startswith('drivepi.')
