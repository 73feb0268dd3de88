"""DrivePI data transforms (registered in ``drivepi.registry.TRANSFORMS``)."""
from .conversations import LoadConversations
from .formatting import PackDrivePIInputs
from .images import DrivePILoadMultiViewImageFromFiles, MultiViewImageResizeCrop
from .occupancy import LoadOccFlowGT
from .planning import LoadPlanningGT
from .points import DrivePILoadPointsFromFile, DrivePILoadPointsFromMultiSweeps, PointsToEgo

__all__ = ['LoadConversations', 'PackDrivePIInputs', 'DrivePILoadMultiViewImageFromFiles',
           'MultiViewImageResizeCrop', 'LoadOccFlowGT', 'LoadPlanningGT', 'DrivePILoadPointsFromFile',
           'DrivePILoadPointsFromMultiSweeps', 'PointsToEgo']
