"""DrivePI data transforms (registered in ``drivepi.registry.TRANSFORMS``)."""
from .boxes import BoxesToEgo
from .conversations import LoadConversations
from .formatting import PackDrivePIInputs
from .images import DrivePILoadMultiViewImageFromFiles, MultiViewImageResizeCrop
from .occupancy import LoadOccFlowGT
from .planning import LoadPlanningGT
from .points import DrivePILoadPointsFromFile, DrivePILoadPointsFromMultiSweeps, PointsToEgo

__all__ = ['BoxesToEgo', 'LoadConversations', 'PackDrivePIInputs', 'DrivePILoadMultiViewImageFromFiles',
           'MultiViewImageResizeCrop', 'LoadOccFlowGT', 'LoadPlanningGT', 'DrivePILoadPointsFromFile',
           'DrivePILoadPointsFromMultiSweeps', 'PointsToEgo']
