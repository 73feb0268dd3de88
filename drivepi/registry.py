"""MMEngine registries of DrivePI, children of mmdet3d's (scope ``drivepi``).

Every model, dataset, transform, metric and hook of the project registers here, so configs
build them the OpenMMLab way (``dict(type='DrivePI', ...)``). Lookups fall back to mmdet3d,
mmdet and mmengine through the parent chain, so ``dict(type='LoadPointsFromFile')`` or
``dict(type='Det3DDataPreprocessor')`` work in a ``drivepi``-scoped config.
"""
from mmdet3d.registry import DATA_SAMPLERS as MMDET3D_DATA_SAMPLERS
from mmdet3d.registry import DATASETS as MMDET3D_DATASETS
from mmdet3d.registry import EVALUATOR as MMDET3D_EVALUATOR
from mmdet3d.registry import HOOKS as MMDET3D_HOOKS
from mmdet3d.registry import LOOPS as MMDET3D_LOOPS
from mmdet3d.registry import METRICS as MMDET3D_METRICS
from mmdet3d.registry import MODELS as MMDET3D_MODELS
from mmdet3d.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMDET3D_OPTIM_WRAPPER_CONSTRUCTORS
from mmdet3d.registry import TASK_UTILS as MMDET3D_TASK_UTILS
from mmdet3d.registry import TRANSFORMS as MMDET3D_TRANSFORMS
from mmdet3d.registry import VISUALIZERS as MMDET3D_VISUALIZERS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMDET3D_MODELS, locations=['drivepi.models'])
DATASETS = Registry('dataset', parent=MMDET3D_DATASETS, locations=['drivepi.datasets'])
DATA_SAMPLERS = Registry('data sampler', parent=MMDET3D_DATA_SAMPLERS, locations=['drivepi.datasets'])
TRANSFORMS = Registry('transform', parent=MMDET3D_TRANSFORMS, locations=['drivepi.datasets.transforms'])
METRICS = Registry('metric', parent=MMDET3D_METRICS, locations=['drivepi.evaluation'])
EVALUATOR = Registry('evaluator', parent=MMDET3D_EVALUATOR, locations=['drivepi.evaluation'])
HOOKS = Registry('hook', parent=MMDET3D_HOOKS, locations=['drivepi.engine'])
LOOPS = Registry('loop', parent=MMDET3D_LOOPS, locations=['drivepi.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMDET3D_OPTIM_WRAPPER_CONSTRUCTORS, locations=['drivepi.engine'])
TASK_UTILS = Registry('task util', parent=MMDET3D_TASK_UTILS, locations=['drivepi.models'])
VISUALIZERS = Registry('visualizer', parent=MMDET3D_VISUALIZERS, locations=['drivepi.visualization'])
