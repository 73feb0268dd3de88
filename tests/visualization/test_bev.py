"""Matplotlib BEV plots and closed-loop episode animations, checked on their pixels."""
import json

import matplotlib
import numpy as np
import pytest

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from drivepi.closed_loop.episode import LOG_FORMAT  # noqa: E402
from drivepi.geometry import FREE_INDEX, OCC_GRID
from drivepi.visualization.bev import bev_image, box_corners_xy, plot_bev, top_class  # noqa: E402
from drivepi.visualization.episode import (  # noqa: E402
    draw_frame,
    ego_to_global,
    frame_steps,
    global_to_ego,
    load_episode,
    render_episode,
)
from drivepi.visualization.palette import AGENT_COLOR, PRED_TRAJ_COLOR, occ_palette  # noqa: E402

FREE, CAR, DRIVEABLE, VEGETATION = FREE_INDEX, 0, 10, 15


def test_top_class_takes_highest_non_free_voxel():
    sem = np.full(OCC_GRID, FREE, np.uint8)
    sem[5, 7, 2] = DRIVEABLE
    sem[5, 7, 6] = CAR
    sem[5, 7, 9] = FREE
    sem[6, 7, 1] = VEGETATION
    top = top_class(sem, FREE)
    assert top[5, 7] == CAR and top[6, 7] == VEGETATION and top[0, 0] == FREE


def test_bev_image_dims_columns_never_seen_by_a_camera():
    sem = np.full(OCC_GRID, FREE, np.uint8)
    sem[:, :, 2] = DRIVEABLE
    mask = np.zeros_like(sem)
    mask[:100] = 1
    img = bev_image(sem, mask_camera=mask)
    np.testing.assert_array_equal(img[50, 50], occ_palette()[DRIVEABLE])
    np.testing.assert_array_equal(img[150, 50], np.round(occ_palette()[DRIVEABLE] * 0.4 + 153).astype(np.uint8))


def test_box_corners_rotate_with_yaw():
    corners = box_corners_xy(np.array([[10.0, 5.0, 4.0, 2.0, np.pi / 2]]))[0]
    # a 4 m x 2 m box turned 90 degrees spans 2 m in x and 4 m in y
    np.testing.assert_allclose(corners.min(0), [9.0, 3.0], atol=1e-9)
    np.testing.assert_allclose(corners.max(0), [11.0, 7.0], atol=1e-9)


def _pixel(fig, ax, x, y):
    """Canvas (row, col) of ego-frame point (x, y) on a BEV axes (plot coordinates (-y, x))."""
    col, row_up = ax.transData.transform((-y, x))
    return int(round(fig.canvas.get_width_height()[1] - row_up)), int(round(col))


def test_plot_bev_puts_classes_forward_up_and_left_left():
    sem = np.full(OCC_GRID, FREE, np.uint8)
    sem[150:170, 150:170, 3] = CAR           # x in [20, 28), y in [20, 28): ahead and to the left
    sem[20:40, 30:50, 3] = VEGETATION        # x in [-32, -24), y in [-28, -20): behind and to the right
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    plot_bev(ax, sem, trajectories={'plan': (np.array([[0.0, 10.0], [0.0, 20.0]]), PRED_TRAJ_COLOR)})
    fig.canvas.draw()
    canvas = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    car_px, veg_px = _pixel(fig, ax, 24.0, 24.0), _pixel(fig, ax, -28.0, -24.0)
    np.testing.assert_array_equal(canvas[car_px], occ_palette()[CAR])
    np.testing.assert_array_equal(canvas[veg_px], occ_palette()[VEGETATION])
    assert car_px[0] < veg_px[0] and car_px[1] < veg_px[1]      # forward = up, left = left
    np.testing.assert_array_equal(canvas[_pixel(fig, ax, 0.0, 15.0)], PRED_TRAJ_COLOR)
    plt.close(fig)


def write_episode_log(path, steps=21, status='ok'):
    """A closed-loop log (drivepi-closed-loop-episode/1): 10 Hz, heading +y at 5 m/s, a parked car ahead."""
    times = 0.1 * np.arange(steps)
    ego = [[100.0, 200.0 + 5.0 * t, np.pi / 2, 5.0, 0.0, 0.0] for t in times]
    agents = [dict(tokens=['car1'], categories=['vehicle.car'], boxes=[[100.0, 230.0, 0.0, 4.5, 1.9, 1.6, np.pi / 2]],
                   velocities=[[0.0, 0.0]]) for _ in times]
    plans = [dict(step=k, t=float(times[k]), pose=ego[k][:3], waypoints=[[2.5 * i, 0.0] for i in range(1, 7)])
             for k in range(0, steps - 1, 5)]
    log = dict(format=LOG_FORMAT, episode_id='ep_test', scene_name='scene-0', planner='expert', status=status,
               failure=None, sim_hz=10.0, replan_hz=2.0,
               vehicle=dict(length=4.084, width=1.85, wheelbase=2.588, rear_axle_to_center=1.0),
               times=times.tolist(), ego=ego, expert=[e[:3] for e in ego], agents=agents, plans=plans,
               events=[dict(type='collision', step=steps - 1, t=float(times[-1]), agent='car1')], metrics=None)
    path.write_text(json.dumps(log))
    return path


def test_frames_convert_between_global_and_ego():
    pose = np.array([100.0, 200.0, np.pi / 2])
    np.testing.assert_allclose(global_to_ego([[100.0, 210.0], [90.0, 200.0]], pose), [[10, 0], [0, 10]], atol=1e-9)
    pts = np.array([[3.0, -1.0], [0.5, 7.0]])
    np.testing.assert_allclose(global_to_ego(ego_to_global(pts, pose), pose), pts, atol=1e-9)


def test_load_episode_reads_the_closed_loop_log_and_rejects_bad_ones(tmp_path):
    log = load_episode(write_episode_log(tmp_path / 'ep.json'))
    assert log['ego'].shape == (21, 6) and len(log['plans']) == 4
    assert frame_steps(log) == [0, 5, 10, 15, 20]         # one frame per replanning (10 Hz / 2 Hz)
    assert frame_steps(log, every=8) == [0, 8, 16, 20]
    bad = tmp_path / 'bad.json'
    bad.write_text('{"steps": [')
    with pytest.raises(ValueError, match='not valid JSON'):
        load_episode(bad)
    bad.write_text(json.dumps({'steps': []}))
    with pytest.raises(ValueError, match=r'bad\.json is not a drivepi-closed-loop-episode/1'):
        load_episode(bad)
    data = json.loads((tmp_path / 'ep.json').read_text())
    data['ego'] = data['ego'][:-1]
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match='same non-zero length'):
        load_episode(bad)
    with pytest.raises(FileNotFoundError, match='missing.json'):
        load_episode(tmp_path / 'missing.json')


def test_episode_frame_draws_the_plan_ahead_and_the_parked_car(tmp_path):
    log = load_episode(write_episode_log(tmp_path / 'ep.json'))
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    draw_frame(ax, log, 0)
    fig.canvas.draw()
    canvas = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    # heading +y globally = straight up in the ego frame: plan point 7.5 m ahead, car 30 m ahead
    np.testing.assert_array_equal(canvas[_pixel(fig, ax, 7.5 + 1.25, 0.0)], PRED_TRAJ_COLOR)
    car = canvas[_pixel(fig, ax, 29.0, 0.5)].astype(int)
    assert np.abs(car - (0.8 * np.array(AGENT_COLOR) + 0.2 * 255)).max() <= 2   # alpha 0.8 on white
    assert ax.get_title().endswith('t = 0.0 s')
    draw_frame(ax, log, 20)
    assert '[collision]' in ax.get_title()
    plt.close(fig)


def test_render_episode_gif_has_one_frame_per_replanning_step(tmp_path):
    from PIL import Image
    log = load_episode(write_episode_log(tmp_path / 'ep.json'))
    out = render_episode(log, tmp_path / 'out' / 'ep.gif', fps=4)
    assert out == tmp_path / 'out' / 'ep.gif' and out.is_file()
    assert not [p for p in out.parent.iterdir() if p.name.startswith('.')]   # no temp file left
    with Image.open(out) as gif:
        assert gif.n_frames == 5
        frame = np.asarray(gif.convert('RGB')).astype(int)
    # the plan (magenta) is drawn; allow the GIF palette quantisation a few levels
    assert (np.abs(frame - PRED_TRAJ_COLOR).sum(-1) < 12).sum() > 50
    with pytest.raises(ValueError, match='suffix'):
        render_episode(log, tmp_path / 'ep.avi')
