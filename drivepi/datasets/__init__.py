"""DrivePI datasets: info creation, the dataset class and its transforms (all registered on import)."""
from .classes import CAMERA_NAMES, DETECTION_CLASSES, OCC3D_CLASSES, OPENOCC_CLASSES
from .drivepi_dataset import DrivePIDataset
from .transforms import *  # noqa: F401,F403

# Driving commands by index (VAD order), the value of ``ego_fut_cmd``.
COMMANDS = ('turn right', 'turn left', 'go straight')

__all__ = ['COMMANDS', 'CAMERA_NAMES', 'DETECTION_CLASSES', 'OCC3D_CLASSES', 'OPENOCC_CLASSES', 'DrivePIDataset']
