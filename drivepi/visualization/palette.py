"""Colours of the occupancy classes (OpenOcc order) and of the overlays, plus a legend.

The class colours are nuScenes-devkit's lidarseg colour map (``nuscenes.utils.color_map``), looked
up through the nuScenes category each OpenOcc class comes from, so pictures match the colours
researchers know from the nuScenes and OpenOcc/Occ3D tooling.
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from nuscenes.utils.color_map import get_colormap

from drivepi.geometry import OPENOCC_CLASSES

FREE_CLASS = 'free'

# OpenOcc class -> the nuScenes lidarseg category whose devkit colour it takes.
_NUSCENES_CATEGORY = {
    'car': 'vehicle.car', 'truck': 'vehicle.truck', 'trailer': 'vehicle.trailer',
    'bus': 'vehicle.bus.bendy', 'construction_vehicle': 'vehicle.construction',
    'bicycle': 'vehicle.bicycle', 'motorcycle': 'vehicle.motorcycle',
    'pedestrian': 'human.pedestrian.adult', 'traffic_cone': 'movable_object.trafficcone',
    'barrier': 'movable_object.barrier', 'driveable_surface': 'flat.driveable_surface',
    'other_flat': 'flat.other', 'sidewalk': 'flat.sidewalk', 'terrain': 'flat.terrain',
    'manmade': 'static.manmade', 'vegetation': 'static.vegetation',
    # Occ3D's extra class
    'others': 'static.other',
}
FREE_COLOR = (255, 255, 255)

# Overlay colours (uint8 RGB), chosen apart from every class colour.
BACKGROUND_COLOR = (255, 255, 255)
EGO_COLOR = (40, 40, 40)
PRED_TRAJ_COLOR = (255, 0, 255)
GT_TRAJ_COLOR = (0, 110, 255)
FLOW_COLOR = (0, 0, 0)
AGENT_COLOR = (90, 90, 220)


def class_color(name: str) -> Tuple[int, int, int]:
    """uint8 RGB colour of one occupancy class name (OpenOcc or Occ3D naming)."""
    if name == FREE_CLASS:
        return FREE_COLOR
    if name not in _NUSCENES_CATEGORY:
        raise KeyError(f'no colour for occupancy class {name!r}; known: {sorted(_NUSCENES_CATEGORY)}')
    return tuple(int(c) for c in get_colormap()[_NUSCENES_CATEGORY[name]])


def occ_palette(class_names: Sequence[str] = OPENOCC_CLASSES) -> np.ndarray:
    """Palette indexed by class id.

    Args:
        class_names: the class list of the grid (config value ``occ_classes``), free last.

    Returns:
        uint8 array (K, 3), row k = RGB of class k.
    """
    return np.array([class_color(n) for n in class_names], dtype=np.uint8)


def legend_handles(class_names: Sequence[str] = OPENOCC_CLASSES,
                   present: Optional[Sequence[int]] = None,
                   extra: Optional[Dict[str, Tuple[int, int, int]]] = None) -> list:
    """Matplotlib legend patches for the classes (free excluded) and extra named colours.

    Args:
        class_names: the class list of the grid.
        present: class ids to list (e.g. the ones in the picture); all non-free classes when None.
        extra: further ``label -> uint8 RGB`` entries (trajectories, ego car).
    """
    from matplotlib.patches import Patch
    ids = range(len(class_names)) if present is None else sorted(set(int(i) for i in present))
    entries = [(class_names[i], class_color(class_names[i])) for i in ids
               if class_names[i] != FREE_CLASS]
    entries += list((extra or {}).items())
    return [Patch(facecolor=np.asarray(rgb) / 255.0, edgecolor='k', linewidth=0.3, label=label)
            for label, rgb in entries]
