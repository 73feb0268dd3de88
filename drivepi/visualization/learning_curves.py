"""Learning curves: every logged scalar of a training run against the iteration, as one PNG.

Reads MMEngine's ``LocalVisBackend`` log (``<work_dir>/<timestamp>/vis_data/scalars.json``: one JSON object
per line with a ``step``; training lines carry the losses, validation lines the metrics) and draws one
panel per group: the losses, QA accuracy per question type (with the overall most-common-answer baseline
dashed where the metric reports it), the QA gain over that baseline per type, occupancy (RayIoU, mIoU), flow
(mAVE) and planning (L2, collision).
"""
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Optional

# panel title -> (predicate on the scalar name, y label)
PANELS = (
    ('training losses', lambda k: k.startswith('loss') and '/' not in k, 'loss'),
    ('QA accuracy per type (dashed: most common answer)',
     lambda k: k.startswith('qa/accuracy') or k == 'qa/majority_accuracy', '%'),
    ('QA gain over the most common answer, per type (points)',
     lambda k: k == 'qa/gain_over_majority' or k.startswith('qa/gain_over_majority/'), 'points'),
    ('occupancy', lambda k: k in ('occ/RayIoU', 'occ/mIoU', 'occ/RayIoU@1', 'occ/RayIoU@2', 'occ/RayIoU@4'), '%'),
    ('flow', lambda k: k == 'occ/mAVE', 'm/s'),
    ('planning: 1-3 s averages', lambda k: k.startswith('plan/') and '@avg/' in k, 'm / %'),
)


def read_scalars(paths: Iterable[Path]) -> dict[str, list[tuple[int, float]]]:
    """``{scalar name: [(step, value), ...]}`` from one or more ``scalars.json`` files (runs resumed into
    several timestamp folders are concatenated; a later value of the same step wins). Validation lines
    logged at step 0 (MMEngine's ``LoggerHook`` logs metrics by epoch unless ``log_metric_by_epoch=False``)
    take the iteration of the training line before them.

    Raises:
        ValueError: a line that is not JSON, naming the file and line.
    """
    series: dict[str, dict[int, float]] = defaultdict(dict)
    train_step = 0
    for path in paths:
        for number, line in enumerate(Path(path).read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f'{path}:{number}: not a JSON line ({err})') from err
            step = int(record.get('step', record.get('iter', 0)))
            if 'loss' in record:
                train_step = step
            elif step == 0:  # validation logged by epoch (MMEngine's default): at the iteration reached
                step = train_step
            for name, value in record.items():
                if name not in ('step', 'iter', 'epoch') and isinstance(value, (int, float)):
                    series[name][step] = float(value)
    return {name: sorted(points.items()) for name, points in series.items()}


def find_scalar_files(work_dir) -> list[Path]:
    """Every ``vis_data/scalars.json`` under a work dir, oldest run first."""
    files = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    if not files:
        raise FileNotFoundError(f'no */vis_data/scalars.json under {work_dir}: was it trained with '
                                'LocalVisBackend (configs/_base_/default_runtime.py)?')
    return files


def plot_learning_curves(series: dict, out_file, title: Optional[str] = None) -> list[str]:
    """Draw the panels that have data into ``out_file`` (PNG); returns the titles of the panels drawn."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from drivepi.fileio import atomic_write_bytes

    panels = [(t, [k for k in sorted(series) if keep(k)], unit) for t, keep, unit in PANELS]
    panels = [p for p in panels if p[1]]
    if not panels:
        raise ValueError('no loss or metric scalars to plot')
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.2 * len(panels)), squeeze=False)
    for ax, (panel_title, names, unit) in zip(axes[:, 0], panels):
        for name in names:
            steps, values = zip(*series[name])
            ax.plot(steps, values, marker='o' if len(steps) < 30 else None, markersize=3,
                    linestyle='--' if 'majority' in name else '-', label=name)
        ax.set_title(panel_title)
        ax.set_xlabel('iteration')
        ax.set_ylabel(unit)
        if unit == 'loss':
            ax.set_yscale('log')  # losses of very different sizes
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=3, loc='best')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=90)
    plt.close(fig)
    atomic_write_bytes(out_file, buffer.getvalue())
    return [p[0] for p in panels]
