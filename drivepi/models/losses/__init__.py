"""Losses of DrivePI that mmdet does not provide (cross-entropy and L1 come from mmdet)."""
from .lovasz_softmax import LovaszSoftmaxLoss, lovasz_softmax
from .plan_collision_loss import PlanCollisionLoss, box_signed_distance

__all__ = ['LovaszSoftmaxLoss', 'lovasz_softmax', 'PlanCollisionLoss', 'box_signed_distance']
