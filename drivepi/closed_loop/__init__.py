"""Closed-loop driving evaluation: kinematic bicycle ego, tracking controller, log-replay / IDM
agents, NAVSIM-style scores, over generated mini worlds or nuScenes logs (``tools/closed_loop.py``)."""
