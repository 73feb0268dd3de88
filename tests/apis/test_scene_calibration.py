"""The drivepi-calibration/1 JSON of drivepi/apis/calibration.py: written from the real demo keyframe's info entry,
read back to the same matrices, turned into the data info of raw files; malformed files name the problem."""
import json
import pickle

import numpy as np
import pytest

from drivepi.apis.calibration import (
    calibration_from_info,
    camera_files,
    load_calibration,
    raw_data_info,
    write_calibration,
)
from drivepi.geometry import CAMERA_NAMES, GO_STRAIGHT, TURN_RIGHT


@pytest.fixture(scope='module')
def demo_info(demo_dir) -> dict:
    with open(demo_dir / 'n015-2018-07-24-11-22-45+0800.pkl', 'rb') as f:
        return pickle.load(f)['data_list'][0]


def test_calibration_round_trips_the_info_entry_exactly(demo_info, tmp_path):
    calib = load_calibration(write_calibration(demo_info, tmp_path / 'calib.json'))
    assert calib['token'] == demo_info['token'] and calib['timestamp'] == demo_info['timestamp']
    np.testing.assert_array_equal(calib['lidar2ego'], demo_info['lidar_points']['lidar2ego'])
    np.testing.assert_array_equal(calib['ego2global'], demo_info['ego2global'])
    for cam in CAMERA_NAMES:
        np.testing.assert_array_equal(calib['cameras'][cam]['cam2ego'], demo_info['images'][cam]['cam2ego'])
        np.testing.assert_array_equal(calib['cameras'][cam]['intrinsics'], demo_info['images'][cam]['cam2img'])
    # a plain mmdet3d info has no command or ego status: go straight, standing still
    assert calib['sweeps'] == [] and calib['command'] == GO_STRAIGHT
    assert calib['ego_status'].dtype == np.float32 and not calib['ego_status'].any()


def test_raw_data_info_has_the_files_and_the_calibration(demo_info, demo_dir, tmp_path):
    calib = dict(calibration_from_info(demo_info), command='turn right', token=None)
    cams = [str(demo_dir / demo_info['images'][cam]['img_path']) for cam in CAMERA_NAMES]  # positional order
    lidar = demo_dir / demo_info['lidar_points']['lidar_path']
    info = raw_data_info(lidar, cams, calib)
    assert info['token'] == 'n015-2018-07-24-11-22-45+0800__LIDAR_TOP__1532402927647951'  # the file's stem
    assert info['lidar_points']['lidar_path'] == str(lidar) and info['ego_fut_cmd'] == TURN_RIGHT
    assert info['images']['CAM_BACK']['img_path'] == cams[3]
    np.testing.assert_array_equal(info['images']['CAM_BACK']['cam2img'], demo_info['images']['CAM_BACK']['cam2img'])
    assert camera_files([f'{cam}={path}' for cam, path in zip(CAMERA_NAMES, cams)]) == dict(zip(CAMERA_NAMES, cams))
    with pytest.raises(ValueError, match='1 sweep files but 0 sweeps'):
        raw_data_info(lidar, cams, calib, sweeps=[lidar])
    with pytest.raises(FileNotFoundError, match='CAM_FRONT image not found'):
        raw_data_info(lidar, [str(tmp_path / 'missing.jpg')] + cams[1:], calib)


@pytest.mark.parametrize('change, match', [
    (dict(format='other'), 'is not a drivepi-calibration/1 calibration'),
    (dict(lidar2ego=[[1, 0, 0], [0, 1, 0], [0, 0, 1]]),
     r'lidar2ego has shape \(3, 3\), expected \(4, 4\) \(a finite 4x4 matrix is needed\)'),
    (dict(command='reverse'), 'command must be one of'),
    (dict(ego_status=[1.0, 2.0]), r'ego_status has shape \(2,\), expected \(5,\) \(5 finite numbers'),
    (dict(cameras={}), r"cameras \['CAM_FRONT'"),
])
def test_malformed_calibration_names_the_file_and_the_problem(demo_info, tmp_path, change, match):
    path = tmp_path / 'calib.json'
    path.write_text(json.dumps(dict(calibration_from_info(demo_info), **change)))
    with pytest.raises(ValueError, match=match) as err:
        load_calibration(path)
    assert str(path) in str(err.value)


def test_sensor2ego_is_read_as_cam2ego(demo_info):
    calib = calibration_from_info(demo_info)
    calib['cameras']['CAM_FRONT']['sensor2ego'] = calib['cameras']['CAM_FRONT'].pop('cam2ego')
    np.testing.assert_array_equal(load_calibration(calib)['cameras']['CAM_FRONT']['cam2ego'],
                                  demo_info['images']['CAM_FRONT']['cam2ego'])
