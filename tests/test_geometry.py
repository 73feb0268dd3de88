"""drivepi.geometry: the one home of the grid, classes, commands and ego size; configs agree with it."""
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

from drivepi.geometry import (
    COMMANDS,
    EGO_LENGTH,
    EGO_REAR_AXLE_TO_CENTER,
    EGO_WIDTH,
    FREE_INDEX,
    NUM_OCC_CLASSES,
    OCC_CLASSES,
    OCC_GRID,
    OCC_RANGE,
    OCC_VOXEL_SIZE,
    OPENOCC_CLASSES,
    bev_corners,
    box_corners,
    grid_shape,
    wrap_angle,
)

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'


def test_grid_constants_agree():
    assert OCC_GRID == (200, 200, 16) == grid_shape(OCC_RANGE, [OCC_VOXEL_SIZE] * 3)
    assert grid_shape(OCC_RANGE, (1.6, 1.6)) == (50, 50)
    assert OPENOCC_CLASSES[FREE_INDEX] == 'free' and NUM_OCC_CLASSES == FREE_INDEX + 1 == 17
    assert COMMANDS == ('turn right', 'turn left', 'go straight')
    assert (EGO_LENGTH, EGO_WIDTH) == (4.084, 1.85)
    with pytest.raises(ValueError, match='whole number'):
        grid_shape(OCC_RANGE, 0.3)


def test_wrap_angle():
    np.testing.assert_allclose(wrap_angle([0.0, np.pi, -np.pi, 3 * np.pi / 2, 7.0]),
                               [0.0, -np.pi, -np.pi, -np.pi / 2, 7.0 - 2 * np.pi])


def test_bev_corners_are_the_bottom_face_counter_clockwise():
    """(box_corners itself is checked against mmdet3d's LiDARInstance3DBoxes in test_sim_geometry.)"""
    boxes = np.array([[1.0, -2.0, 0.5, 4.0, 2.0, 1.5, 0.3], [-5.0, 3.0, -1.0, 1.0, 0.6, 1.8, -2.5]])
    np.testing.assert_allclose(bev_corners(boxes), box_corners(boxes)[:, [0, 1, 3, 2], :2])
    bev = bev_corners(boxes)
    area = 0.5 * np.sum(bev[..., 0] * np.roll(bev[..., 1], -1, 1) - np.roll(bev[..., 0], -1, 1) * bev[..., 1], 1)
    np.testing.assert_allclose(area, boxes[:, 3] * boxes[:, 4])  # counter-clockwise, l x w
    front = bev[0, 1:3].mean(0) - boxes[0, :2]
    np.testing.assert_allclose(front, 2.0 * np.array([np.cos(0.3), np.sin(0.3)]))


@pytest.mark.parametrize('name', ['drivepi_mini', 'nuscenes_openocc', 'nuscenes_occ3d'])
def test_dataset_configs_use_the_geometry(name):
    cfg = Config.fromfile(CONFIGS / '_base_' / 'datasets' / f'{name}.py')
    assert tuple(cfg.point_cloud_range) == OCC_RANGE
    assert tuple(cfg.occ_classes) in OCC_CLASSES.values()


@pytest.mark.parametrize('name', ['drivepi_mini', 'drivepi_qwen2.5-0.5b'])
def test_model_configs_use_the_geometry(name):
    cfg = Config.fromfile(CONFIGS / '_base_' / 'models' / f'{name}.py')
    assert tuple(cfg.occ_range) == OCC_RANGE and tuple(cfg.occ_grid) == OCC_GRID
    assert cfg.num_occ_classes == NUM_OCC_CLASSES
    collision = cfg.model.heads.plan.loss_collision
    heads = cfg.model.heads
    assert tuple(cfg.model.grid_size) == tuple(heads.occ.grid_size) == tuple(heads.flow.grid_size) == OCC_GRID
    assert (collision.get('ego_length', EGO_LENGTH), collision.get('ego_width', EGO_WIDTH)) == (EGO_LENGTH, EGO_WIDTH)


def test_closed_loop_vehicle_config_uses_the_geometry():
    vehicle = Config.fromfile(CONFIGS / '_base_' / 'closed_loop.py').closed_loop.vehicle
    assert (vehicle.length, vehicle.width, vehicle.rear_axle_to_center) == \
        (EGO_LENGTH, EGO_WIDTH, EGO_REAR_AXLE_TO_CENTER)
