"""DrivePI models: importing this package registers every model module in ``drivepi.registry.MODELS``."""
from . import (  # noqa: F401
    ada3d,
    camera,
    heads,
    lidar,  # noqa: F401  (first: its spconv CPU fix must load before any spconv module)
    llm,
    losses,
)
from .bev_fuser import ConvBEVFuser
from .data_preprocessor import DrivePIDataPreprocessor
from .drivepi import DrivePI
from .occupancy_guided_stop import OccupancyGuidedStop

__all__ = ['DrivePI', 'ConvBEVFuser', 'DrivePIDataPreprocessor', 'OccupancyGuidedStop']
