"""Evaluation: RayIoU / mIoU / mAVE / OccScore, planning L2 and collision, QA accuracy (MMEngine metrics)."""
from drivepi.evaluation.metric_table import format_metrics_table, save_metrics_json
from drivepi.evaluation.metrics import OccupancyMetric, PlanningMetric, QAMetric

__all__ = ['OccupancyMetric', 'PlanningMetric', 'QAMetric', 'format_metrics_table', 'save_metrics_json']
