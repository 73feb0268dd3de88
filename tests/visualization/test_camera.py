"""Projection of occupancy and trajectories into the real nuScenes cameras of the demo keyframe."""
import pickle

import numpy as np
import pytest

from drivepi.geometry import CAMERA_NAMES, FREE_INDEX, GROUND_CLASSES, OCC_GRID
from drivepi.visualization.camera import cameras_seeing, ego_to_image, project_occupancy, project_trajectory
from drivepi.visualization.palette import occ_palette

FREE, CAR, DRIVEABLE = FREE_INDEX, 0, 10
IMAGE_SIZE = (900, 1600)      # nuScenes camera images (height, width)


@pytest.fixture(scope='module')
def demo(demo_dir):
    with open(demo_dir / 'n015-2018-07-24-11-22-45+0800.pkl', 'rb') as f:
        info = pickle.load(f)['data_list'][0]
    cameras = {cam: dict(cam2img=np.asarray(info['images'][cam]['cam2img']),
                         cam2ego=np.asarray(info['images'][cam]['cam2ego'])) for cam in CAMERA_NAMES}
    return info, cameras


def box_centres(info):
    """(N, 3) box centres in the ego frame.

    mmdet3d v2 nuScenes infos store the box *gravity* centre in ``bbox_3d[:3]`` (its NuScenesDataset
    builds the boxes with origin (0.5, 0.5, 0.5)); ``center_2d`` of ``cam_instances`` is its projection.
    """
    lidar = np.array([inst['bbox_3d'][:3] for inst in info['instances']], np.float64)
    lidar2ego = np.asarray(info['lidar_points']['lidar2ego'])
    return lidar @ lidar2ego[:3, :3].T + lidar2ego[:3, 3]


def annotated_centres(info, cam):
    """center_2d of the cam_instances of ``cam`` that lie inside the image."""
    uv = np.array([ci['center_2d'] for ci in info['cam_instances'][cam]], np.float64).reshape(-1, 2)
    return uv[(uv[:, 0] >= 0) & (uv[:, 0] < IMAGE_SIZE[1]) & (uv[:, 1] >= 0) & (uv[:, 1] < IMAGE_SIZE[0])]


def test_projection_reproduces_mmdet3d_centre_2d_exactly(demo):
    """With the camera pose the converter used (lidar2cam, which folds in the ego motion between the
    LiDAR and camera timestamps), every annotated centre_2d is hit to a hundredth of a pixel."""
    info, cameras = demo
    ego = box_centres(info)
    lidar2ego = np.asarray(info['lidar_points']['lidar2ego'])
    checked = 0
    for cam in CAMERA_NAMES:
        cam2ego_at_lidar_time = lidar2ego @ np.linalg.inv(np.asarray(info['images'][cam]['lidar2cam']))
        uv, depth = ego_to_image(ego, cameras[cam]['cam2img'], cam2ego_at_lidar_time)
        for target in annotated_centres(info, cam):
            assert np.linalg.norm(uv[depth > 0] - target, axis=1).min() < 0.01, f'{cam}: {target} not hit'
            checked += 1
    assert checked > 50


def test_box_centres_land_in_the_camera_that_annotated_them(demo):
    """With the keyframe's cam2ego (what DrivePI uses), each annotated centre is seen by its camera,
    off by at most the ego motion between the sensor timestamps (<= 0.33 m here)."""
    info, cameras = demo
    ego = box_centres(info)
    sizes = {c: IMAGE_SIZE for c in CAMERA_NAMES}
    seen_by = [cameras_seeing(p, cameras, sizes) for p in ego]
    for cam in CAMERA_NAMES:
        for target in annotated_centres(info, cam):
            dist = [np.linalg.norm(s[cam] - target) for s in seen_by if cam in s]
            assert dist and min(dist) < 30.0, f'{cam}: centre_2d {target} not near any box centre it sees'
    # CAM_BACK_LEFT was exposed within 1 ms of the LiDAR sweep: there the two poses agree
    uv, _ = ego_to_image(ego, **cameras['CAM_BACK_LEFT'])
    for target in annotated_centres(info, 'CAM_BACK_LEFT'):
        assert np.linalg.norm(uv - target, axis=1).min() < 0.5
    # a point 10 m ahead is seen by the front camera only, one 10 m behind by the back camera only
    assert set(cameras_seeing(np.array([10.0, 0.0, 1.0]), cameras, sizes)) == {'CAM_FRONT'}
    assert set(cameras_seeing(np.array([-10.0, 0.0, 1.0]), cameras, sizes)) == {'CAM_BACK'}


def test_trajectory_ahead_is_drawn_on_the_road_in_the_front_camera_only(demo):
    _, cameras = demo
    traj = np.stack([np.arange(1, 7) * 2.0 + 2.0, np.zeros(6)], axis=1)
    front = project_trajectory(traj, **cameras['CAM_FRONT'], image_size=IMAGE_SIZE)
    # the ground nearer than ~6.3 m is below the image; from x = 7 m on (last 70 of 121 samples) all visible
    assert not np.isnan(front[-70:]).any()
    visible = front[~np.isnan(front).any(1)]
    assert (visible[:, 1] > IMAGE_SIZE[0] / 2).all()              # on the ground: below the horizon
    assert np.abs(visible[:, 0] - IMAGE_SIZE[1] / 2).max() < 150   # straight ahead: near the centre column
    assert np.all(np.diff(visible[:, 1]) <= 1e-6)                  # farther = higher in the image
    assert np.isnan(project_trajectory(traj, **cameras['CAM_BACK'], image_size=IMAGE_SIZE)).all()


def test_project_occupancy_one_voxel(demo):
    _, cameras = demo
    sem = np.full(OCC_GRID, FREE, np.uint8)
    sem[125, 100, 5] = CAR                                  # centre (10.2, 0.2, 1.2) m: ahead
    centre = np.array([[-40 + 125.5 * 0.4, -40 + 100.5 * 0.4, -1 + 5.5 * 0.4]])
    proj = project_occupancy(sem, **cameras['CAM_FRONT'], image_size=IMAGE_SIZE)
    assert proj['labels'].tolist() == [CAR]
    np.testing.assert_array_equal(proj['colors'][0], occ_palette()[CAR])
    uv, depth = ego_to_image(centre, **cameras['CAM_FRONT'])
    np.testing.assert_allclose(proj['uv'], uv)
    np.testing.assert_allclose(proj['depth'], depth)
    assert len(project_occupancy(sem, **cameras['CAM_BACK'], image_size=IMAGE_SIZE)['uv']) == 0


def test_project_occupancy_orders_far_to_near_and_skips_ground(demo):
    _, cameras = demo
    sem = np.full(OCC_GRID, FREE, np.uint8)
    sem[:, :, 2] = DRIVEABLE
    sem[110:180, 95:105, 3] = CAR
    proj = project_occupancy(sem, **cameras['CAM_FRONT'], image_size=IMAGE_SIZE, max_depth=20.0)
    assert set(proj['labels'].tolist()) == {CAR, DRIVEABLE}
    assert np.all(np.diff(proj['depth']) <= 0) and proj['depth'].max() <= 20.0
    cars = project_occupancy(sem, **cameras['CAM_FRONT'], image_size=IMAGE_SIZE, max_depth=20.0,
                             skip_classes=GROUND_CLASSES)
    assert set(cars['labels'].tolist()) == {CAR}
    assert len(cars['labels']) == (proj['labels'] == CAR).sum()
