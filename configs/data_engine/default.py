# QA data engine settings (data_engine/generate_qa.py --config, data_engine/verify.py --config), a tool
# config (not a training _base_), written out with their default values; see
# data_engine.generate_qa.QAEngineConfig and the family modules' docstrings for the definitions.
# Distances in m, speeds in m/s.
families = ('occupancy', 'flow', 'planning', 'caption')
max_answer_share = 0.6  # cap of the most frequent answer of a categorical / count question type
caption_radius = 30.0
occupancy = dict(num_place=2, num_direction=2, num_count=2, num_compare=1, ask_free_space=True,
                 corridor_half_width=1.2, ego_x_span=(-1.2, 4.0), clearance_height=3.0,
                 count_radii=(10, 20, 30))
flow = dict(num_object=2, ask_approach=True, ask_fastest=True, moving_speed=0.5, approach_radius=30.0)
planning = dict(stop_speed=0.5, speed_change=0.5, path_length=30.0, path_half_width=2.0, crossing_speed=0.5)
