"""One table and one JSON file for all metrics of an evaluation (used by ``tools/test.py``).

Metric names are MMEngine's ``prefix/name`` keys (``occ/RayIoU``, ``plan/L2@1s/per_step``, ``qa/accuracy``).
"""
import math
import os
from numbers import Number
from typing import Optional, Union

from terminaltables import AsciiTable

from drivepi.fileio import atomic_write_json


def _format(value) -> str:
    if isinstance(value, bool) or not isinstance(value, Number):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return 'nan' if math.isnan(value) else f'{value:.3f}'


def format_metrics_table(metrics: dict, title: Optional[str] = None) -> str:
    """An ASCII table (mmdet style) with one ``metric | value`` row per entry, in the dict's order."""
    rows = [['metric', 'value']] + [[name, _format(value)] for name, value in metrics.items()]
    return AsciiTable(rows, title).table


def save_metrics_json(metrics: dict, path: Union[str, os.PathLike]) -> None:
    """Write the metrics atomically as JSON; NaN (metric undefined, e.g. no rays of a class) becomes null."""
    def plain(value):
        if isinstance(value, Number) and not isinstance(value, bool):
            value = float(value) if not isinstance(value, int) else value
            return None if isinstance(value, float) and math.isnan(value) else value
        return value
    atomic_write_json(path, {name: plain(value) for name, value in metrics.items()})
