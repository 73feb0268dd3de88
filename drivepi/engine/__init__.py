"""Runner-side pieces: prediction dumping for tools/test.py."""
from .prediction_writer import PredictionWriter

__all__ = ['PredictionWriter']
