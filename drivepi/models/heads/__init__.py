"""The heads of DrivePI, behind one contract (``base_head``): occupancy, flow, planning."""
from .base_head import BaseDrivePIHead, HeadInputs, stack_field
from .channel_to_height import ChannelToHeightDecoder
from .flow_head import FlowHead
from .occupancy_head import OccupancyHead
from .planning_head import PlanningHead

__all__ = ['BaseDrivePIHead', 'HeadInputs', 'stack_field', 'ChannelToHeightDecoder', 'FlowHead', 'OccupancyHead',
           'PlanningHead']
