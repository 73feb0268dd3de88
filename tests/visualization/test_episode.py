"""Closed-loop episode frames show the episode's scores (PDMS and its sub-scores) in their top-left corner."""
import json

import matplotlib
import numpy as np

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from test_bev import write_episode_log  # noqa: E402

from drivepi.visualization.episode import draw_frame, load_episode, score_text  # noqa: E402

METRICS = dict(nc=1.0, dac=1.0, ttc=0.0, comfort=1.0, ep=0.9, ddc=1.0, pdms=0.54, route_completion=0.95,
               collisions_per_km=0.0, num_at_fault_collisions=0, distance_m=10.0, ego_progress_m=9.0,
               expert_progress_m=10.0)


def episode(tmp_path, **changes) -> dict:
    path = write_episode_log(tmp_path / 'ep.json')
    log = json.loads(path.read_text())
    path.write_text(json.dumps(dict(log, **changes)))
    return load_episode(path)


def frame_pixels(log: dict) -> np.ndarray:
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    draw_frame(ax, log, 0)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return pixels


def test_scores_are_written_pdms_first(tmp_path):
    assert score_text(episode(tmp_path, metrics=METRICS)) == (
        'pdms 0.54  nc 1.00  dac 1.00  ttc 0.00  comfort 1.00  ep 0.90  ddc 1.00  route_completion 0.95')
    assert score_text(episode(tmp_path, metrics=None, status='failed')) == 'not scored (failed episode)'


def test_frame_pixels_change_with_the_scores_in_the_top_left_corner(tmp_path):
    scored = frame_pixels(episode(tmp_path, metrics=METRICS))
    worse = frame_pixels(episode(tmp_path, metrics=dict(METRICS, pdms=0.12, ep=0.2)))
    np.testing.assert_array_equal(scored, frame_pixels(episode(tmp_path, metrics=METRICS)))
    rows, cols = np.nonzero((scored != worse).any(-1))
    height, width = scored.shape[:2]
    assert len(rows) and rows.max() < 0.3 * height and cols.max() < 0.9 * width  # the text box at the top left
