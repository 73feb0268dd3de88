"""Inference on one's own scenes: ``DrivePIInferencer`` (config + checkpoint -> occupancy, flow, trajectory,
answers, prediction files and pictures) and the calibration format of scenes given as raw files."""
from .calibration import calibration_from_info, load_calibration, raw_data_info, write_calibration
from .inferencer import DrivePIInferencer

__all__ = ['DrivePIInferencer', 'calibration_from_info', 'load_calibration', 'raw_data_info', 'write_calibration']
