# Closed-loop driving evaluation (tools/closed_loop.py, drivepi.closed_loop). Model configs inherit it
# and override data paths; every rate, horizon, episode length, IDM parameter and metric bound is here,
# the benchmark's episodes in closed_loop_benchmark.py.
_base_ = ['./closed_loop_benchmark.py']
closed_loop = dict(
    episodes='benchmark',  # 'benchmark' (closed_loop.benchmark, generated held-out worlds) | 'info_file'
    subset='first',  # benchmark: one of closed_loop.benchmark.subsets (None: all 84 episodes of both sets)
    workers=1,  # processes sharing the episodes (results are the same for any number)
    setting='mini_world',  # info_file: 'mini_world' (sensor-level re-rendering) | 'nuscenes_log' (log replay)
    ray_backend='auto',  # mini worlds' sensor ray casting: 'auto' (Embree where open3d imports) | 'embree' | 'torch'
    data_root='data/drivepi-mini/',
    # info_file: the scenes to drive; also the model planner's calibration templates on the benchmark
    info_file='data/drivepi-mini/drivepi_infos_val.pkl',
    scenes=None,  # info_file: optional list of scene names (subset of info_file's scenes)
    map_root=None,  # nuscenes_log: folder with the nuScenes map expansion (default: data_root)
    episode_seconds=15.0,  # info_file episodes, clipped to each scene's log (benchmark: per episode)
    episode_start=0.0,  # s after the scene's first logged time
    sim_hz=10.0,  # kinematic bicycle model + controller rate
    replan_hz=2.0,  # planner rate (must divide sim_hz)
    max_plan_speed=40.0,  # m/s; a faster (or NaN) plan fails the episode
    vehicle=dict(wheelbase=2.588, length=4.084, width=1.85, rear_axle_to_center=1.385,
                 max_steer=0.6, max_steer_rate=0.8, max_accel=3.0, max_decel=8.0),
    controller=dict(lookahead_min=3.0, lookahead_time=0.8, speed_window=0.5, kp=1.5, ki=0.2, kd=0.0,
                    position_gain=1.0,
                    stop_speed=0.2),
    agents=dict(
        mode='log_replay',  # 'log_replay' (non-reactive) | 'idm' (reactive lane followers)
        idm=dict(accel_max=1.5, decel_comfort=2.0, time_headway=1.5, min_gap=2.0, exponent=4.0,
                 decel_max=8.0, moving_speed=1.0, lookahead=50.0, lateral_tolerance=1.75)),
    scoring=dict(
        stopped_speed=0.05, ttc_horizon=1.0, ttc_step=0.1, min_expert_progress=5.0,
        ddc_window=1.0, ddc_ok=2.0, ddc_bad=6.0, ddc_align_deg=30.0, lane_match_radius=2.0, lateral_fault_offset=1.0,
        route_max_lateral=4.0, front_angle_deg=60.0, rear_angle_deg=120.0, savgol_window=7,
        comfort_bounds=dict(min_lon_accel=-4.05, max_lon_accel=2.40, max_abs_lat_accel=4.89,
                            max_abs_lon_jerk=4.13, max_abs_jerk=8.37, max_abs_yaw_rate=0.95,
                            max_abs_yaw_accel=1.93)),
)
