"""Pictures of occupancy, flow, trajectories and closed-loop episodes (open3d + matplotlib).

Library behind ``visualization/render_occupancy.py`` (samples, and episodes with ``--episodes``):
``palette`` (class colours, legend), ``scene`` (open3d geometry), ``render`` (headless
``OffscreenRenderer`` or a window), ``bev`` (matplotlib BEV), ``camera`` (projection into the six
cameras), ``sample_io`` (info file / GT / predictions), ``figure`` (the sample picture),
``episode`` (closed-loop GIF/MP4). Submodules are imported on use: open3d and mmdet3d load only
when a picture needs them.
"""
