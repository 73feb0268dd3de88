"""MMEngine registries of DrivePI, children of mmdet3d's (scope ``drivepi``).

Every model, dataset, transform, metric and hook of the project registers here, so configs
build them the OpenMMLab way (``dict(type='DrivePI', ...)``). Lookups fall back to mmdet3d,
mmdet and mmengine through the parent chain, so ``dict(type='LoadPointsFromFile')`` or
``dict(type='Det3DDataPreprocessor')`` work in a ``drivepi``-scoped config. Every registry tree
the Runner builds from has a ``drivepi`` node, as mmdet3d's registry.py declares one for its scope:
without it MMEngine warns 'Failed to search registry with scope "drivepi"' and uses its root
registry, skipping mmdet3d's modules. A node is a child of mmdet3d's where mmdet3d has one, else of
MMEngine's; ``locations`` are set where the project registers modules.
"""
import mmdet3d.registry as mmdet3d_registry
import mmengine.registry as mmengine_registry
from mmengine.registry import Registry


def _child(name: str, *locations: str) -> Registry:
    """The ``drivepi`` node of the registry tree that MMEngine calls ``name`` (e.g. 'MODELS')."""
    parent = getattr(mmdet3d_registry if hasattr(mmdet3d_registry, name) else mmengine_registry, name)
    return Registry(parent.name, parent=parent, scope='drivepi', locations=list(locations))


MODELS = _child('MODELS', 'drivepi.models')
DATASETS = _child('DATASETS', 'drivepi.datasets')
TRANSFORMS = _child('TRANSFORMS', 'drivepi.datasets.transforms')
METRICS = _child('METRICS', 'drivepi.evaluation')
HOOKS = _child('HOOKS', 'drivepi.engine')
RUNNERS = _child('RUNNERS')
RUNNER_CONSTRUCTORS = _child('RUNNER_CONSTRUCTORS')
LOOPS = _child('LOOPS')
DATA_SAMPLERS = _child('DATA_SAMPLERS')
FUNCTIONS = _child('FUNCTIONS')
MODEL_WRAPPERS = _child('MODEL_WRAPPERS')
WEIGHT_INITIALIZERS = _child('WEIGHT_INITIALIZERS')
OPTIMIZERS = _child('OPTIMIZERS')
OPTIM_WRAPPERS = _child('OPTIM_WRAPPERS')
OPTIM_WRAPPER_CONSTRUCTORS = _child('OPTIM_WRAPPER_CONSTRUCTORS')
PARAM_SCHEDULERS = _child('PARAM_SCHEDULERS')
EVALUATOR = _child('EVALUATOR')
TASK_UTILS = _child('TASK_UTILS')
VISUALIZERS = _child('VISUALIZERS')
VISBACKENDS = _child('VISBACKENDS')
LOG_PROCESSORS = _child('LOG_PROCESSORS')
INFERENCERS = _child('INFERENCERS')
STRATEGIES = _child('STRATEGIES')
