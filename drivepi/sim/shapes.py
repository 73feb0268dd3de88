"""Solid shapes of agents: every agent is built from boxes that lie inside its annotation box.

Vehicles (except two-wheelers) are a full-footprint body up to 55 % of the height plus a shorter,
narrower cabin; everything else is its annotation box. Bodies reach the ground, so nothing below an
agent is visible inside its box.
"""
import numpy as np

from drivepi.sim.geometry import transform_boxes, pose2d_matrix

CABIN_CATEGORIES = ('vehicle.car', 'vehicle.truck', 'vehicle.bus.rigid', 'vehicle.trailer',
                    'vehicle.construction')


def agent_solids(agents, colours: np.ndarray):
    """:class:`~drivepi.sim.world.Solids` of ``agents`` (an ``AgentStates``), ``owner`` = agent index.

    Args:
        colours: (N,3) RGB in [0,1] of the agents' bodies.
    """
    from drivepi.sim.world import CATEGORY_TO_OCC, Solids
    boxes, labels, cols, owner = [], [], [], []
    for i, (category, box) in enumerate(zip(agents.categories, agents.boxes)):
        if category not in CATEGORY_TO_OCC:
            raise ValueError(f'agent {agents.tokens[i]}: unknown category {category!r}')
        x, y, z, length, width, height, yaw = box
        if category in CABIN_CATEGORIES:
            local = np.array([[0, 0, 0, length, width, 0.55 * height, 0],
                              [-0.1 * length, 0, 0.55 * height, 0.6 * length, 0.9 * width, 0.45 * height, 0]])
            parts = transform_boxes(pose2d_matrix(x, y, yaw, z), local)
            part_colours = [colours[i], 0.45 * colours[i] + 0.1]
        else:
            parts, part_colours = box[None], [colours[i]]
        boxes.extend(parts)
        cols.extend(part_colours)
        labels.extend([CATEGORY_TO_OCC[category]] * len(parts))
        owner.extend([i] * len(parts))
    return Solids(np.asarray(boxes, float).reshape(-1, 7), np.asarray(labels, np.uint8),
                  np.asarray(cols, float).reshape(-1, 3), np.asarray(owner, np.int64))
