# The closed-loop benchmark of tools/closed_loop.py (docs/closed_loop.md), inherited by closed_loop.py.
# Held-out generated mini worlds grouped by scenario type, like Bench2Drive's routes. Each world is generated
# from (version, seed, scenario type) by drivepi.sim (drivepi/sim/scenarios.py); `version` must equal
# drivepi.sim.scenarios.BENCHMARK_VERSION, and every seed lies in drivepi.sim.scenarios.HELD_OUT_SEEDS
# ([900000, 1000000)), which the mini-dataset generator refuses, so no episode is ever a training world.
# Change an episode or the generator -> bump the version (results of two versions are not comparable).
closed_loop = dict(
    benchmark=dict(
        version='drivepi-cl-bench-1',
        # agents per scenario type (default: closed_loop.agents.mode): IDM where the scenario needs reaction
        agents_mode=dict(crossing_traffic='idm'),
        episodes=[
            dict(id='straight-00', seed=900000, scenario='straight', seconds=15.0),
            dict(id='straight-01', seed=900001, scenario='straight', seconds=15.0),
            dict(id='straight-02', seed=900002, scenario='straight', seconds=15.0),
            dict(id='straight-03', seed=900003, scenario='straight', seconds=15.0),
            dict(id='straight-04', seed=900004, scenario='straight', seconds=15.0),
            dict(id='straight-05', seed=900005, scenario='straight', seconds=15.0),
            dict(id='left_turn-00', seed=900006, scenario='left_turn', seconds=15.0),
            dict(id='left_turn-01', seed=900007, scenario='left_turn', seconds=15.0),
            dict(id='left_turn-02', seed=900008, scenario='left_turn', seconds=15.0),
            dict(id='left_turn-03', seed=900009, scenario='left_turn', seconds=15.0),
            dict(id='left_turn-04', seed=900010, scenario='left_turn', seconds=15.0),
            dict(id='left_turn-05', seed=900011, scenario='left_turn', seconds=15.0),
            dict(id='right_turn-00', seed=900012, scenario='right_turn', seconds=15.0),
            dict(id='right_turn-01', seed=900013, scenario='right_turn', seconds=15.0),
            dict(id='right_turn-02', seed=900014, scenario='right_turn', seconds=15.0),
            dict(id='right_turn-03', seed=900015, scenario='right_turn', seconds=15.0),
            dict(id='right_turn-04', seed=900016, scenario='right_turn', seconds=15.0),
            dict(id='right_turn-05', seed=900017, scenario='right_turn', seconds=15.0),
            dict(id='lead_vehicle-00', seed=900018, scenario='lead_vehicle', seconds=15.0),
            dict(id='lead_vehicle-01', seed=900019, scenario='lead_vehicle', seconds=15.0),
            dict(id='lead_vehicle-02', seed=900020, scenario='lead_vehicle', seconds=15.0),
            dict(id='lead_vehicle-03', seed=900021, scenario='lead_vehicle', seconds=15.0),
            dict(id='lead_vehicle-04', seed=900022, scenario='lead_vehicle', seconds=15.0),
            dict(id='lead_vehicle-05', seed=900023, scenario='lead_vehicle', seconds=15.0),
            dict(id='pedestrian_crossing-00', seed=900024, scenario='pedestrian_crossing', seconds=15.0),
            dict(id='pedestrian_crossing-01', seed=900025, scenario='pedestrian_crossing', seconds=15.0),
            dict(id='pedestrian_crossing-02', seed=900026, scenario='pedestrian_crossing', seconds=15.0),
            dict(id='pedestrian_crossing-03', seed=900027, scenario='pedestrian_crossing', seconds=15.0),
            dict(id='pedestrian_crossing-04', seed=900028, scenario='pedestrian_crossing', seconds=15.0),
            dict(id='pedestrian_crossing-05', seed=900029, scenario='pedestrian_crossing', seconds=15.0),
            dict(id='parked_cars-00', seed=900030, scenario='parked_cars', seconds=15.0),
            dict(id='parked_cars-01', seed=900031, scenario='parked_cars', seconds=15.0),
            dict(id='parked_cars-02', seed=900032, scenario='parked_cars', seconds=15.0),
            dict(id='parked_cars-03', seed=900033, scenario='parked_cars', seconds=15.0),
            dict(id='parked_cars-04', seed=900034, scenario='parked_cars', seconds=15.0),
            dict(id='parked_cars-05', seed=900035, scenario='parked_cars', seconds=15.0),
            dict(id='crossing_traffic-00', seed=900036, scenario='crossing_traffic', seconds=15.0),
            dict(id='crossing_traffic-01', seed=900037, scenario='crossing_traffic', seconds=15.0),
            dict(id='crossing_traffic-02', seed=900038, scenario='crossing_traffic', seconds=15.0),
            dict(id='crossing_traffic-03', seed=900039, scenario='crossing_traffic', seconds=15.0),
            dict(id='crossing_traffic-04', seed=900040, scenario='crossing_traffic', seconds=15.0),
            dict(id='crossing_traffic-05', seed=900041, scenario='crossing_traffic', seconds=15.0),
        ],
        # named subsets (closed_loop.subset=NAME); demo: one episode per scenario type (tools/demo_mini.sh)
        subsets=dict(demo=['straight-00', 'left_turn-00', 'right_turn-00', 'lead_vehicle-00',
                           'pedestrian_crossing-00', 'parked_cars-00', 'crossing_traffic-00']),
    ))
