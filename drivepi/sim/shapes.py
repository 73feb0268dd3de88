"""Solids of the mini worlds and their occupancy labels (a leaf of ``drivepi.sim``: world, sensors and
occupancy all import it, it imports none of them).

:class:`Solids` are the boxes that make up a world's geometry. Every agent is built from boxes that
lie inside its annotation box: vehicles (except two-wheelers) are a full-footprint body up to 55 % of
the height plus a shorter, narrower cabin; everything else is its annotation box. Bodies reach the
ground, so nothing below an agent is visible inside its box.
"""
from dataclasses import dataclass

import numpy as np

from drivepi.sim.geometry import pose2d_matrix, transform_boxes

# OpenOcc class (drivepi.geometry.OPENOCC_CLASSES index) of each agent category and ground material
CATEGORY_TO_OCC = {
    'vehicle.car': 0, 'vehicle.truck': 1, 'vehicle.trailer': 2, 'vehicle.bus.rigid': 3,
    'vehicle.construction': 4, 'vehicle.bicycle': 5, 'vehicle.motorcycle': 6,
    'human.pedestrian.adult': 7, 'movable_object.trafficcone': 8, 'movable_object.barrier': 9}
MATERIAL_TO_OCC = np.array([13, 10, 12, 10, 10], np.uint8)   # terrain, road, sidewalk, white/yellow paint

CABIN_CATEGORIES = ('vehicle.car', 'vehicle.truck', 'vehicle.bus.rigid', 'vehicle.trailer',
                    'vehicle.construction')


@dataclass
class Solids:
    """Boxes that make up the world's geometry at one instant: ``boxes`` (M,7) global, ``labels`` (M,)
    occupancy class, ``colours`` (M,3) float RGB in [0,1], ``owner`` (M,) agent index or -1 (static)."""
    boxes: np.ndarray
    labels: np.ndarray
    colours: np.ndarray
    owner: np.ndarray


def agent_solids(agents, colours: np.ndarray):
    """:class:`Solids` of ``agents`` (an ``AgentStates``), ``owner`` = agent index.

    Args:
        colours: (N,3) RGB in [0,1] of the agents' bodies.
    """
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
