"""Dense and planning heads of DrivePI."""
from .channel_to_height import ChannelToHeightDecoder
from .flow_head import FlowHead
from .occupancy_head import OccupancyHead
from .planning_head import PlanningHead

__all__ = ['ChannelToHeightDecoder', 'FlowHead', 'OccupancyHead', 'PlanningHead']
