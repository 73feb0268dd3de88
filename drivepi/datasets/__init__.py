"""DrivePI datasets: info creation, the dataset class and its transforms (all registered on import).

Class lists, camera names and driving commands live in :mod:`drivepi.geometry`.
"""
from .drivepi_dataset import DrivePIDataset
from .transforms import *  # noqa: F401,F403

__all__ = ['DrivePIDataset']
