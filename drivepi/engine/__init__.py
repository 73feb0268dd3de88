"""Runner-side pieces: safe and checked checkpoint loading (the local checkpoint loader and
``CheckpointCheckHook``), prediction dumping, model deployment and throughput measurement for tools/test.py,
the training runner (distributed on CPU too), the non-finite step guard and sharded training (FSDP)."""
from .checkpoint_loading import CheckpointCheckHook  # also registers the local checkpoint loader
from .deploy_hook import DeployModelHook
from .fsdp import DrivePIFSDPStrategy
from .nonfinite_guard import GuardedAmpOptimWrapper, GuardedOptimWrapper, NonFiniteGuardHook
from .prediction_writer import PredictionWriter
from .throughput_hook import TestThroughputHook

__all__ = ['CheckpointCheckHook', 'DeployModelHook', 'DrivePIFSDPStrategy', 'GuardedAmpOptimWrapper',
           'GuardedOptimWrapper', 'NonFiniteGuardHook', 'PredictionWriter', 'TestThroughputHook']
