"""Trajectory anchors of the multi-mode planning head from the training infos (k-means per driving command).

    python tools/make_plan_anchors.py --info data/drivepi-mini/drivepi_infos_train.pkl \
        --out model_zoo/plan_anchors/drivepi_mini_m6.npy [--num-modes 6] [--seed 0]

Writes a float32 ``.npy`` (commands, modes, waypoints, 2): the k-means centres of the complete future
trajectories (``ego_fut_traj`` with every ``ego_fut_mask`` step valid) of each command (turn right, turn left,
go straight), ego frame, m (``drivepi.models.heads.plan_anchors``). Deterministic for a seed. The config names the
file as ``model.heads.plan.anchors`` with ``num_modes`` set (``configs/drivepi/drivepi_mini_modes.py``).
"""
import argparse
from pathlib import Path

import numpy as np

from drivepi.fileio import atomic_open, read_pickle
from drivepi.geometry import COMMANDS
from drivepi.models.heads.plan_anchors import plan_anchors_from_infos


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='k-means trajectory anchors per driving command')
    parser.add_argument('--info', required=True, help='training info file (.pkl, mmdet3d v2 format)')
    parser.add_argument('--out', required=True, help='output .npy')
    parser.add_argument('--num-modes', type=int, default=6, help='anchors per command')
    parser.add_argument('--seed', type=int, default=0, help='k-means seed')
    return parser.parse_args(argv)


def main(argv=None) -> np.ndarray:
    args = parse_args(argv)
    data = read_pickle(args.info, 'info file')
    infos = data['data_list'] if isinstance(data, dict) and 'data_list' in data else None
    if infos is None:
        raise SystemExit(f'{args.info}: not an mmdet3d v2 info file (no data_list)')
    anchors = plan_anchors_from_infos(infos, args.num_modes, args.seed)
    out = Path(args.out)
    with atomic_open(out, 'wb') as f:
        np.save(f, anchors, allow_pickle=False)
    counts = np.bincount([int(i['ego_fut_cmd']) for i in infos], minlength=len(COMMANDS))
    print(f'{out}: anchors {anchors.shape} from {len(infos)} samples of {args.info}')
    for command, name in enumerate(COMMANDS):
        ends = ', '.join(f'({x:.1f}, {y:.1f})' for x, y in anchors[command, :, -1])
        print(f'  {name} ({counts[command]} samples): end points {ends}')
    return anchors


if __name__ == '__main__':
    main()
