"""Accuracy vs speed of the redundancy filters (BEV token keep ratio, Ada3D voxel keep ratios).

Joins, per filter setting of :data:`drivepi.benchmarking.FILTER_SETTINGS`, the all-heads latency that
``tools/benchmark.py`` measured on a GPU (its ``filter_sweep`` section) with the metrics that ``tools/test.py``
measured on the held-out mini set (one ``metrics.json`` per setting), into table rows and a Pareto plot.
"""
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from drivepi.benchmarking import parse_filter_setting  # noqa: E402
from drivepi.visualization.figure import save_figure  # noqa: E402

# metric key in metrics.json: (label, True when higher is better)
ACCURACY_METRICS = {'occ/RayIoU': ('RayIoU', True), 'occ/mAVE': ('mAVE', False),
                    'plan/L2@avg/per_step': ('L2, m (per-step avg.)', False), 'qa/accuracy': ('QA accuracy, %', True)}


def setting_dir_name(setting: str) -> str:
    """Folder name of a setting's evaluation: ``'0.25/0.4,0.7,1'`` -> ``'token0.25_voxel0.4-0.7-1'``."""
    token, voxels = setting.split('/')
    return f"token{token}_voxel{voxels.replace(',', '-')}"


def join_rows(settings: Sequence[str], metrics: Dict[str, dict], latency: Optional[Dict[str, dict]]) -> List[dict]:
    """One row per setting: token / voxel keep ratios, the GPU sweep's figures (``latency_ms``, ``lidar_ms``,
    ``tokens``, ``voxel_kept_share``; None without a GPU sweep or setting) and the accuracy metrics (None
    where that setting was not evaluated)."""
    rows = []
    for setting in settings:
        token, voxels = parse_filter_setting(setting)
        gpu = (latency or {}).get(setting, {})
        kept = gpu['num_kept_voxels'] / gpu['num_voxels'] if gpu else None
        row = dict(setting=setting, token_keep_ratio=token, voxel_keep_ratios=voxels,
                   latency_ms=gpu.get('latency_ms'), lidar_ms=gpu.get('lidar_ms'), tokens=gpu.get('tokens'),
                   voxel_kept_share=kept)
        row.update({key: metrics.get(setting, {}).get(key) for key in ACCURACY_METRICS})
        rows.append(row)
    return rows


def pareto_front(points: Sequence[tuple], higher_is_better: bool) -> List[tuple]:
    """The ``(latency, value)`` points that no other point beats on both (lower latency, better value),
    sorted by latency."""
    def better_or_equal(a: float, b: float) -> bool:
        return a >= b if higher_is_better else a <= b
    front = [p for p in points
             if not any(q != p and q[0] <= p[0] and better_or_equal(q[1], p[1]) for q in points)]
    return sorted(front)


def markdown_table(rows: Sequence[dict]) -> str:
    """The rows as a markdown table (``-`` where a figure is missing)."""
    def fmt(value, spec):
        return '-' if value is None else format(value, spec)
    lines = ['| token keep | voxel keep (near, mid, far) | LLM tokens | voxels kept | all heads, ms (GPU) | '
             'LiDAR branch, ms | RayIoU | mAVE | L2, m | QA, % |', '|' + '---|' * 10]
    for r in rows:
        kept = None if r['voxel_kept_share'] is None else 100 * r['voxel_kept_share']
        lines.append(f"| {r['token_keep_ratio']:g} | {', '.join(f'{v:g}' for v in r['voxel_keep_ratios'])} | "
                     f"{fmt(r['tokens'], 'd')} | {fmt(kept, '.0f')} % | "
                     f"{fmt(r['latency_ms'], '.1f')} | {fmt(r['lidar_ms'], '.1f')} | {fmt(r['occ/RayIoU'], '.1f')} | "
                     f"{fmt(r['occ/mAVE'], '.3f')} | {fmt(r['plan/L2@avg/per_step'], '.2f')} | "
                     f"{fmt(r['qa/accuracy'], '.1f')} |")
    return '\n'.join(lines)


def plot_accuracy_speed(rows: Sequence[dict], out_path, title: str = '') -> None:
    """One panel per accuracy metric: value vs all-heads GPU latency, token-sweep and voxel-sweep points
    labelled with their setting, and each metric's Pareto front as a dashed line."""
    fig, axes = plt.subplots(1, len(ACCURACY_METRICS), figsize=(5 * len(ACCURACY_METRICS), 4.2))
    for ax, (key, (label, higher)) in zip(axes, ACCURACY_METRICS.items()):
        points = [(r['latency_ms'], r[key], r) for r in rows if r['latency_ms'] is not None and r[key] is not None]
        for (x, y, r) in points:
            token_sweep = r['voxel_keep_ratios'] == rows[0]['voxel_keep_ratios']
            unfiltered = r['token_keep_ratio'] == 1 and all(v == 1 for v in r['voxel_keep_ratios'])
            ax.scatter(x, y, marker='*' if unfiltered else 'o' if token_sweep else 's', s=90 if unfiltered else 40,
                       color='black' if unfiltered else 'tab:blue' if token_sweep else 'tab:orange')
            ax.annotate(r['setting'], (x, y), fontsize=7, xytext=(3, 3), textcoords='offset points')
        front = pareto_front([(x, y) for x, y, _ in points], higher)
        if front:
            ax.plot(*zip(*front), '--', color='gray', linewidth=1)
        ax.set_xlabel('all-heads latency, ms/frame (GPU)')
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(handles=[plt.Line2D([], [], marker=m, color=c, linestyle='') for m, c in
                            (('o', 'tab:blue'), ('s', 'tab:orange'), ('*', 'black'))],
                   labels=['token keep ratio sweep', 'Ada3D voxel keep sweep', 'no filtering'], fontsize=7)
    fig.suptitle(title or 'DrivePI redundancy filters: accuracy (held-out mini set) vs latency (GPU)')
    fig.tight_layout()
    save_figure(fig, out_path, dpi=90)
