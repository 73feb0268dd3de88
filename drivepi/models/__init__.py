"""DrivePI models: importing this package registers every model module in ``drivepi.registry.MODELS``."""
from . import camera, heads, lidar, llm, losses  # noqa: F401
from .drivepi import DrivePI
from .fusion import ConvBEVFuser
from .token_filter import BEVTokenFilter

__all__ = ['DrivePI', 'ConvBEVFuser', 'BEVTokenFilter']
