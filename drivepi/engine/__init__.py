"""Runner-side pieces: checkpoint loading under torch >= 2.6, prediction dumping and model deployment
for tools/test.py."""
from . import checkpoint_loading  # noqa: F401  (registers the local checkpoint loader)
from .deploy_hook import DeployModelHook
from .prediction_writer import PredictionWriter

__all__ = ['DeployModelHook', 'PredictionWriter']
