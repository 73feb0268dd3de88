"""Load local MMEngine checkpoints under torch >= 2.6.

A Runner checkpoint holds the MessageHub state (mmengine ``HistoryBuffer`` objects, numpy arrays)
next to the weights; torch >= 2.6 loads with ``weights_only=True`` by default and refuses it, so
``load_from`` and ``--resume`` would fail. DrivePI replaces MMEngine's local-file loader with one
that unpickles the full checkpoint: only load checkpoints you trust (your own training runs).
"""
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location=None) -> dict:
    """Load a local checkpoint file with its training state (``weights_only=False``)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    return torch.load(filename, map_location=map_location, weights_only=False)
