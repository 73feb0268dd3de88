"""Runner-side pieces: safe and checked checkpoint loading (the local checkpoint loader and
``CheckpointCheckHook``), prediction dumping and model deployment for tools/test.py."""
from .checkpoint_loading import CheckpointCheckHook  # also registers the local checkpoint loader
from .deploy_hook import DeployModelHook
from .prediction_writer import PredictionWriter

__all__ = ['CheckpointCheckHook', 'DeployModelHook', 'PredictionWriter']
