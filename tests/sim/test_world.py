"""World API used by the closed loop: rebuild, logged states, map, sensors with explicit poses."""
import json

import numpy as np
import pytest
import shapely

from drivepi.sim.generator import generate_world
from drivepi.sim.geometry import pose2d_matrix, transform_points
from drivepi.sim.sensors import cast_lidar, render_cameras
from drivepi.sim.world import AgentStates, SensorSetup, load_scene_world

SETUP = SensorSetup(image_width=160, image_height=90, lidar_azimuth_res_deg=1.0)


@pytest.fixture(scope='module')
def world():
    return generate_world('scene-0007', seed=7, num_keyframes=6, ego_actions=['left', 'straight'], sensors=SETUP,
                          ego_lead_in=(4.0, 10.0))


def test_generation_is_deterministic(world):
    again = generate_world('scene-0007', seed=7, num_keyframes=6, ego_actions=['left', 'straight'], sensors=SETUP,
                           ego_lead_in=(4.0, 10.0))
    assert json.dumps(again.to_dict()) == json.dumps(world.to_dict())
    other = generate_world('scene-0007', seed=8, num_keyframes=6, ego_actions=['left', 'straight'], sensors=SETUP)
    assert json.dumps(other.to_dict()) != json.dumps(world.to_dict())


def test_round_trip_through_file(world, tmp_path):
    (tmp_path / 'worlds').mkdir()
    world.save(tmp_path / 'worlds' / 'scene-0007.json')
    loaded = load_scene_world(tmp_path, 'scene-0007')
    for t in (0.0, 1.234, 2.5):
        np.testing.assert_allclose(loaded.ego_pose(t), world.ego_pose(t), atol=1e-4)
        np.testing.assert_allclose(loaded.agents_at(t).boxes, world.agents_at(t).boxes, atol=1e-3)
    assert loaded.agents_at(1.0).tokens == world.agents_at(1.0).tokens
    assert loaded.map['drivable_area'].equals_exact(world.map['drivable_area'], 1e-6)


def test_bad_world_files_raise_naming_the_file(world, tmp_path):
    (tmp_path / 'worlds').mkdir()
    with pytest.raises(FileNotFoundError, match='scene-0404'):
        load_scene_world(tmp_path, 'scene-0404')
    path = tmp_path / 'worlds' / 'cut.json'
    path.write_text(json.dumps(world.to_dict())[:5000])
    with pytest.raises(ValueError, match='cut.json.*truncated'):
        load_scene_world(tmp_path, 'cut')
    bad = world.to_dict()
    bad['ego_track'] = bad['ego_track'][:-3]
    (tmp_path / 'worlds' / 'short.json').write_text(json.dumps(bad))
    with pytest.raises(ValueError, match='short.json.*track lengths'):
        load_scene_world(tmp_path, 'short')
    with pytest.raises(ValueError, match='outside'):
        world.ego_pose(world.times[-1] + 1.0)


def test_logged_ego_stays_on_the_road_and_moves_consistently(world):
    drivable = world.map['drivable_area']
    dt = world.times[1] - world.times[0]
    for k in range(0, len(world.times) - 1, 5):
        x, y, yaw = world.ego_pose(world.times[k])
        assert drivable.contains(shapely.Point(x, y))
        x2, y2, _ = world.ego_pose(world.times[k + 1])
        speed = world.ego_track[k:k + 2, 3].mean()
        assert np.hypot(x2 - x, y2 - y) == pytest.approx(speed * dt, abs=0.02)
        if speed > 1.0:   # heading along the direction of motion
            assert abs(np.angle(np.exp(1j * (np.arctan2(y2 - y, x2 - x) - yaw)))) < np.deg2rad(3)
    lanes = world.map['lane']
    assert all(isinstance(lane, shapely.LineString) for lane in lanes)
    assert all(drivable.buffer(0.01).contains(c) for c in world.map['ped_crossing'])


def _nearest_lane_heading(lanes, x: float, y: float) -> tuple:
    """(distance m, heading rad) of the lane centreline nearest to (x, y), in its travel direction."""
    point = shapely.Point(x, y)
    lane = min(lanes, key=point.distance)
    s = lane.project(point)
    a, b = lane.interpolate(max(s - 0.5, 0.0)), lane.interpolate(min(s + 0.5, lane.length))
    return point.distance(lane), np.arctan2(b.y - a.y, b.x - a.x)


def test_map_lanes_point_the_way_traffic_drives(world):
    """Right-hand traffic: a vehicle driving along a straight road is on a lane pointing its way."""
    checked = 0
    for t in world.keyframe_times:
        agents = world.agents_at(t)
        for category, box, velocity in zip(agents.categories, agents.boxes, agents.velocities):
            if not category.startswith('vehicle.') or np.hypot(*velocity) < 2.0:
                continue
            distance, heading = _nearest_lane_heading(world.map['lane'], box[0], box[1])
            travel = np.arctan2(velocity[1], velocity[0])
            if distance < 0.5 and abs(np.sin(travel - heading)) < 0.1:  # on a lane, along it (not turning)
                assert np.cos(travel - heading) > 0.9, f'{category} drives against its lane at t={t}'
                checked += 1
    assert checked > 0


def test_logged_agents_move_by_their_velocity(world):
    a, b = world.agents_at(1.0), world.agents_at(1.05)
    np.testing.assert_allclose((b.boxes[:, :2] - a.boxes[:, :2]) / 0.05, (a.velocities + b.velocities) / 2,
                               atol=0.3)
    assert (np.linalg.norm(a.velocities, axis=1) > 0.5).sum() >= 3


def test_sensors_see_an_agent_placed_in_front_of_an_explicit_ego_pose(world):
    """Move the ego and put one car 10 m ahead of it: LiDAR and CAM_FRONT must see it there."""
    x, y, yaw = world.ego_pose(0.0)
    ego2global = pose2d_matrix(x, y, yaw)
    car = np.array([[10.0 + 2.25, 0.0, 0.0, 4.5, 1.9, 1.6, 0.3]])   # ego frame, z at the bottom
    car_global = car.copy()
    car_global[:, :3] = transform_points(ego2global, car[:, :3])
    car_global[:, 6] += yaw
    agents = AgentStates(['probe'], ['vehicle.car'], car_global, np.zeros((1, 2)))
    mesh = world.mesh(agents)
    scan = cast_lidar(mesh, world.sensors, ego2global)
    pts_ego = transform_points(world.sensors.lidar2ego, scan.points[:, :3].astype(np.float64))
    mine = pts_ego[scan.owner == 0]
    assert len(mine) > 20
    # the closest car returns are at the rear face, about 10 m ahead, centred on the ego's axis
    assert mine[:, 0].min() == pytest.approx(10.0, abs=0.8)
    assert abs(np.median(mine[:, 1])) < 1.0
    assert set(np.unique(scan.points[:, 4]).astype(int)) <= set(range(32))
    views = render_cameras(mesh, world.sensors, ego2global)
    front, calib = views['CAM_FRONT'], world.sensors.cameras['CAM_FRONT']
    rear_face_mid = np.array([[10.05, 0.0, 0.4]])            # ego frame, on the car's rear face
    cam = transform_points(np.linalg.inv(calib.cam2ego), rear_face_mid)[0]
    u, v = (calib.intrinsic @ cam)[:2] / cam[2]
    assert front.owner[int(v), int(u)] == 0 and front.owner[2, int(u)] == -1
    assert front.depth[int(v), int(u)] == pytest.approx(cam[2], abs=0.3)
    assert (views['CAM_BACK'].owner == 0).sum() == 0
    assert front.image.shape == (90, 160, 3) and front.image.dtype == np.uint8
    assert world.scan_lidar(ego2global, agents).shape == scan.points.shape
