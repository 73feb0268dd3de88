"""DrivePI models: importing this package registers every model module in ``drivepi.registry.MODELS``."""
from . import lidar  # noqa: F401  (first: its spconv CPU fix must load before any spconv module)
from . import ada3d, camera, heads, llm, losses  # noqa: F401
from .bev_fuser import ConvBEVFuser
from .drivepi import DrivePI

__all__ = ['DrivePI', 'ConvBEVFuser']
