"""Matplotlib BEV plots and closed-loop episode animations, checked on their pixels."""
import json

import matplotlib
import numpy as np
import pytest

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from drivepi.visualization.bev import bev_image, box_corners_xy, plot_bev, top_class  # noqa: E402
from drivepi.visualization.episode import global_to_ego, load_episode, render_episode  # noqa: E402
from drivepi.visualization.palette import PRED_TRAJ_COLOR, occ_palette  # noqa: E402

FREE, CAR, DRIVEABLE, VEGETATION = 16, 0, 10, 15


def test_top_class_takes_highest_non_free_voxel():
    sem = np.full((200, 200, 16), FREE, np.uint8)
    sem[5, 7, 2] = DRIVEABLE
    sem[5, 7, 6] = CAR
    sem[5, 7, 9] = FREE
    sem[6, 7, 1] = VEGETATION
    top = top_class(sem, FREE)
    assert top[5, 7] == CAR and top[6, 7] == VEGETATION and top[0, 0] == FREE


def test_bev_image_dims_columns_never_seen_by_a_camera():
    sem = np.full((200, 200, 16), FREE, np.uint8)
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
    sem = np.full((200, 200, 16), FREE, np.uint8)
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


def _write_log(path, steps=4):
    """A straight drive at 5 m/s heading +y in the global frame, one parked car ahead."""
    log = dict(episode_id='ep_test', dt=0.5, steps=[
        dict(t=0.5 * i, ego_pose=[100.0, 200.0 + 2.5 * i, np.pi / 2],
             plan=[[2.5 * k, 0.0] for k in range(1, 7)],
             agents=[[100.0, 230.0, 4.5, 1.9, np.pi / 2]],
             events=['collision'] if i == steps - 1 else [])
        for i in range(steps)])
    path.write_text(json.dumps(log))
    return path


def test_global_to_ego_puts_heading_along_x():
    pose = np.array([100.0, 200.0, np.pi / 2])
    np.testing.assert_allclose(global_to_ego([[100.0, 210.0], [90.0, 200.0]], pose), [[10, 0], [0, 10]], atol=1e-9)


def test_load_episode_validates(tmp_path):
    episode = load_episode(_write_log(tmp_path / 'ep.json'))
    assert len(episode['steps']) == 4 and episode['steps'][2]['t'] == 1.0
    assert episode['steps'][0]['agents'].shape == (1, 5)
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'steps': [{'ego_pose': [1.0, float('nan'), 0.0]}]}))
    with pytest.raises(ValueError, match=r'bad\.json, step 0: ego_pose'):
        load_episode(bad)
    bad.write_text('{"steps": [')
    with pytest.raises(ValueError, match='not valid JSON'):
        load_episode(bad)
    with pytest.raises(FileNotFoundError, match='missing.json'):
        load_episode(tmp_path / 'missing.json')
    # the closed-loop AgentBoxes encoding (x, y, z, l, w, h, yaw) is read as BEV boxes too
    bad.write_text(json.dumps({'steps': [{'ego_pose': [0, 0, 0], 'agents': {
        'tokens': ['a'], 'categories': ['vehicle.car'], 'boxes': [[1, 2, 0, 4, 2, 1.5, 0.3]],
        'velocities': [[0, 0]]}}]}))
    np.testing.assert_allclose(load_episode(bad)['steps'][0]['agents'], [[1, 2, 4, 2, 0.3]])


def test_render_episode_gif_has_one_frame_per_step_with_the_plan(tmp_path):
    from PIL import Image
    episode = load_episode(_write_log(tmp_path / 'ep.json'))
    out = render_episode(episode, tmp_path / 'out' / 'ep.gif', fps=4)
    assert out == tmp_path / 'out' / 'ep.gif' and out.is_file()
    assert not [p for p in out.parent.iterdir() if p.name.startswith('.')]   # no temp file left
    with Image.open(out) as gif:
        assert gif.n_frames == 4
        gif.seek(0)
        frame = np.asarray(gif.convert('RGB')).astype(int)
    # the plan (magenta) is drawn; allow the GIF palette quantisation a few levels
    assert (np.abs(frame - PRED_TRAJ_COLOR).sum(-1) < 12).sum() > 50
    with pytest.raises(ValueError, match='suffix'):
        render_episode(episode, tmp_path / 'ep.avi')
