"""MMEngine registries of DrivePI, children of mmdet3d's (scope ``drivepi``).

Every model, dataset, transform, metric and hook of the project registers here, so configs
build them the OpenMMLab way (``dict(type='DrivePI', ...)``). Lookups fall back to mmdet3d,
mmdet and mmengine through the parent chain, so ``dict(type='LoadPointsFromFile')`` or
``dict(type='Det3DDataPreprocessor')`` work in a ``drivepi``-scoped config. Only the registries
the project registers into exist; the others (samplers, loops, optimizers, visualizers, ...) are
MMEngine's, which the Runner uses for a scope without its own.
"""
from mmdet3d.registry import DATASETS as MMDET3D_DATASETS
from mmdet3d.registry import HOOKS as MMDET3D_HOOKS
from mmdet3d.registry import METRICS as MMDET3D_METRICS
from mmdet3d.registry import MODELS as MMDET3D_MODELS
from mmdet3d.registry import TRANSFORMS as MMDET3D_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMDET3D_MODELS, locations=['drivepi.models'])
DATASETS = Registry('dataset', parent=MMDET3D_DATASETS, locations=['drivepi.datasets'])
TRANSFORMS = Registry('transform', parent=MMDET3D_TRANSFORMS, locations=['drivepi.datasets.transforms'])
METRICS = Registry('metric', parent=MMDET3D_METRICS, locations=['drivepi.evaluation'])
HOOKS = Registry('hook', parent=MMDET3D_HOOKS, locations=['drivepi.engine'])
