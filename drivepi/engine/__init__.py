"""Runner-side pieces: safe and checked checkpoint loading (the local checkpoint loader and
``CheckpointCheckHook``), prediction dumping, model deployment and throughput measurement for tools/test.py,
the training runner (distributed on CPU too), the non-finite step guard, sharded training (FSDP), a wall-clock
training budget, a resume that does not reload the skipped batches and how loader workers hand over tensors."""
from .checkpoint_loading import CheckpointCheckHook  # also registers the local checkpoint loader
from .deploy_hook import DeployModelHook
from .fast_resume_loop import FastResumeIterBasedTrainLoop
from .fsdp import DrivePIFSDPStrategy
from .nonfinite_guard import GuardedAmpOptimWrapper, GuardedOptimWrapper, NonFiniteGuardHook
from .prediction_writer import PredictionWriter
from .tensor_sharing_hook import TensorSharingHook
from .throughput_hook import TestThroughputHook
from .time_budget_hook import TrainTimeBudgetHook

__all__ = ['CheckpointCheckHook', 'DeployModelHook', 'DrivePIFSDPStrategy', 'FastResumeIterBasedTrainLoop',
           'GuardedAmpOptimWrapper', 'GuardedOptimWrapper', 'NonFiniteGuardHook', 'PredictionWriter',
           'TensorSharingHook', 'TestThroughputHook', 'TrainTimeBudgetHook']
