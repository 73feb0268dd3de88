"""The picture of one sample: 3D occupancy (open3d, headless) and BEV for ground truth and
prediction side by side, the class legend, the six cameras with projected occupancy and
trajectories, and a text panel with the driving command, the planned trajectory and the questions with
their ground-truth and predicted answers (:mod:`drivepi.visualization.answers`). Saved atomically as PNG.
"""
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np

from drivepi.fileio import atomic_open
from drivepi.geometry import OPENOCC_CLASSES

from .answers import CHARS_PER_INCH, LINE_HEIGHT, answer_lines, draw_answers_panel
from .bev import plot_bev
from .camera import CAMERA_ORDER, draw_camera_panel
from .palette import EGO_COLOR, GT_TRAJ_COLOR, PRED_TRAJ_COLOR, legend_handles
from .render import CHASE_VIEW, View, render_offscreen_many
from .sample_io import SampleView
from .scene import build_scene

# Figure layout in inches: one GT or prediction column pair (3D + BEV), the legend, the top row.
PANEL_PAIR_WIDTH = 6.5
LEGEND_WIDTH = 2.0
TOP_HEIGHT = 4.2


def _trajectories(view: SampleView, which: str) -> Dict[str, Tuple[np.ndarray, tuple]]:
    """Trajectories drawn on a panel: GT on GT panels, both on prediction panels."""
    trajs = {}
    if view.gt_traj is not None and len(view.gt_traj):
        trajs['GT trajectory'] = (view.gt_traj, GT_TRAJ_COLOR)
    if which == 'pred' and view.pred_traj is not None:
        trajs['planned trajectory'] = (view.pred_traj, PRED_TRAJ_COLOR)
    return trajs


def _panels(view: SampleView) -> list:
    """(name, occupancy, flow, mask) of the GT and prediction columns that have something to show (the GT
    column also when there is nothing else)."""
    has_pred = view.pred_occ is not None or view.pred_traj is not None
    panels = []
    if view.gt_occ is not None or view.gt_traj is not None or not has_pred:
        panels.append(('ground truth', view.gt_occ, view.gt_flow, view.gt_mask_camera, 'gt'))
    if has_pred:
        panels.append(('prediction', view.pred_occ, view.pred_flow, None, 'pred'))
    return panels


def draw_sample_figure(view: SampleView, view3d: View = CHASE_VIEW,
                       class_names: Sequence[str] = OPENOCC_CLASSES, render_size=(640, 480),
                       invisible: str = 'dim'):
    """Build the matplotlib Figure of one sample.

    Args:
        view: the sample's data (:func:`drivepi.visualization.sample_io.load_sample_view`).
        view3d: camera of the 3D panels.
        class_names: occupancy class list, free last.
        render_size: (width, height) in pixels of each 3D render.
        invisible: how camera-invisible GT voxels are drawn (``'show'``, ``'dim'``, ``'hide'``).

    Returns:
        matplotlib Figure (not shown; save it with :func:`save_figure`).
    """
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    panels = _panels(view)
    width = PANEL_PAIR_WIDTH * len(panels) + LEGEND_WIDTH
    lines = answer_lines(view, max_chars=int(width * CHARS_PER_INCH))
    heights = [TOP_HEIGHT]
    if view.cameras:
        image_h, image_w = view.cameras[CAMERA_ORDER[0]]['image'].shape[:2]
        heights.append(2 * (width / 3) * image_h / image_w + 0.8)   # two rows of three + titles
    if lines:
        heights.append(LINE_HEIGHT * (len(lines) + 1))
    fig = plt.figure(figsize=(width, sum(heights)))
    rows = list(fig.subfigures(len(heights), 1, height_ratios=heights)) if len(heights) > 1 else [fig]
    top = rows.pop(0)
    axes = top.subplots(1, 2 * len(panels), gridspec_kw=dict(width_ratios=[4 / 3, 1] * len(panels)))
    drawn = [(ax, build_scene(occ, flow, _trajectories(view, which), mask, class_names, invisible))
             for (_, occ, flow, mask, which), ax in zip(panels, axes[0::2]) if occ is not None]
    images = render_offscreen_many([items for _, items in drawn], *render_size, views=[view3d]) if drawn else []
    for (ax3d, _), image in zip(drawn, images):
        ax3d.imshow(image)
    present = set()
    for (name, occ, flow, mask, which), ax3d, axbev in zip(panels, axes[0::2], axes[1::2]):
        trajs = _trajectories(view, which)
        if occ is not None:
            present |= set(np.unique(occ).tolist())
        ax3d.set_title(f'{name} (3D)')
        ax3d.set_axis_off()
        plot_bev(axbev, occ, flow, trajs, view.boxes, mask, class_names, title=f'{name} (BEV)')
    extra = {'ego vehicle': EGO_COLOR}
    for label, (_, color) in _trajectories(view, 'pred').items():
        extra[label] = color
    top.legend(handles=legend_handles(class_names, sorted(present), extra), loc='center right',
               fontsize=8, frameon=False)
    top.subplots_adjust(left=0.01, right=1 - LEGEND_WIDTH / width, bottom=0.12, top=0.86, wspace=0.25)
    top.suptitle(f'sample {view.token}', fontsize=10)
    if view.cameras:
        _draw_cameras(rows.pop(0), view, class_names)
    if lines:
        panel = rows.pop(0)
        draw_answers_panel(panel.subplots(), lines)
        margin = 0.5 / (len(lines) + 1)  # half a line above and below
        panel.subplots_adjust(left=0.01, right=0.99, top=1 - margin, bottom=margin)
    return fig


def _draw_cameras(subfig, view: SampleView, class_names: Sequence[str]) -> None:
    """2x3 camera panels; occupancy from the prediction when there is one, else from GT."""
    use_pred = view.pred_occ is not None
    occ = view.pred_occ if use_pred else view.gt_occ
    trajs = _trajectories(view, 'pred')
    for ax, cam in zip(subfig.subplots(2, 3).ravel(), CAMERA_ORDER):
        params = view.cameras[cam]
        draw_camera_panel(ax, params['image'], params['cam2img'], params['cam2ego'], occ, trajs,
                          class_names, title=cam)
    source = 'predicted' if use_pred else 'ground-truth'
    subfig.suptitle(f'cameras with projected {source} occupancy (ground classes left out)', fontsize=10)
    subfig.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.01, wspace=0.03, hspace=0.12)


def save_figure(fig, out_path, dpi: int = 100) -> Path:
    """Write ``fig`` as PNG to ``out_path`` atomically (temp file + ``os.replace``) and close it."""
    import matplotlib.pyplot as plt
    out_path = Path(out_path)
    with atomic_open(out_path, 'wb') as f:
        fig.savefig(f, format='png', dpi=dpi)
    plt.close(fig)
    return out_path


def render_sample(view: SampleView, out_path, view3d: View = CHASE_VIEW,
                  class_names: Sequence[str] = OPENOCC_CLASSES, dpi: int = 100,
                  invisible: str = 'dim') -> Path:
    """Draw one sample and save it as PNG at ``out_path``; returns the path."""
    return save_figure(draw_sample_figure(view, view3d, class_names, invisible=invisible), out_path, dpi)
