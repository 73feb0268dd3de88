"""Hand-made closed-loop scenes for the closed-loop tests: a straight two-lane road.

Road: drivable strip y in [-3.5, 3.5] m for x in [-50, 400] m; lane +x at y = -1.75, lane -x at y = +1.75.
The expert drives the +x lane at ``speed`` m/s from x = 0.
"""
import numpy as np
import shapely

from drivepi.closed_loop.geometry import MapGeometry
from drivepi.closed_loop.sources import SceneSource
from drivepi.sim.world import AgentStates

LANE_Y = -1.75
CAR_SIZE = (4.5, 1.9, 1.6)  # l, w, h


class StraightRoadSource(SceneSource):
    """Straight road with static agents ``parked`` (list of (token, category, x, y, yaw))
    and moving agents ``movers`` (list of (token, x0, y, speed)) driving +x."""
    setting = 'mini_world'
    sensor_note = 'hand-made test scene (no sensors)'

    def __init__(self, speed=8.0, parked=(), movers=(), duration=10.0, name='straight'):
        self.scene_name, self.speed = name, speed
        self.parked, self.movers = list(parked), list(movers)
        self.start_time, self.end_time, self.timestamp_offset = 0.0, duration, 0.0
        road = shapely.box(-50, -3.5, 400, 3.5)
        lanes = [shapely.LineString([(-50, LANE_Y), (400, LANE_Y)]),
                 shapely.LineString([(400, -LANE_Y), (-50, -LANE_Y)])]
        self.map = MapGeometry(road, lanes)

    def expert_pose(self, t):
        return np.array([self.speed * t, LANE_Y, 0.0])

    def agents_at(self, t):
        tokens, cats, boxes, vels = [], [], [], []
        for token, cat, x, y, yaw in self.parked:
            tokens.append(token), cats.append(cat), vels.append([0.0, 0.0])
            boxes.append([x, y, 0.0, *CAR_SIZE, yaw])
        for token, x0, y, v in self.movers:
            tokens.append(token), cats.append('vehicle.car'), vels.append([v, 0.0])
            boxes.append([x0 + v * t, y, 0.0, *CAR_SIZE, 0.0])
        return AgentStates(tokens, cats, np.array(boxes).reshape(-1, 7), np.array(vels).reshape(-1, 2))

    def render_lidar(self, ego2global, agents, t):
        raise NotImplementedError('StraightRoadSource has no sensors')

    def render_cameras(self, ego2global, agents, t):
        raise NotImplementedError('StraightRoadSource has no sensors')


def make_scene(name: str) -> StraightRoadSource:
    """Named hand-made scenes (a picklable loader for worker processes): ``perfect`` (empty road),
    ``crash`` (a car parked in the ego lane 40 m ahead), ``busy`` (a car parked beside the lane and a
    mover ahead in it)."""
    scenes = dict(perfect=dict(speed=8.0),
                  crash=dict(speed=8.0, parked=[('parked', 'vehicle.car', 40.0, LANE_Y, 0.0)]),
                  busy=dict(speed=6.0, parked=[('p', 'vehicle.car', 30.0, -5.6, 0.0)],
                            movers=[('m', 30.0, LANE_Y, 7.0)]))
    return StraightRoadSource(name=name, **scenes[name])
