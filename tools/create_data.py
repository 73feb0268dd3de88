"""Create DrivePI info files (mmdet3d v2 format + DrivePI keys) from a nuScenes-format dataset.

    python tools/create_data.py nuscenes --root-path data/drivepi-mini --out-dir data/drivepi-mini \
        --version v1.0-drivepi-mini
    python tools/create_data.py nuscenes --root-path data/nuscenes --out-dir data/nuscenes \
        --version v1.0-trainval --occ-format openocc --occ-root openocc_v2
"""
import argparse

from drivepi.datasets.converters.nuscenes_converter import create_drivepi_infos


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Create DrivePI info files')
    parser.add_argument('dataset', choices=['nuscenes'], help='dataset format (real nuScenes and the mini set)')
    parser.add_argument('--root-path', required=True, help='data root that nuscenes-devkit loads')
    parser.add_argument('--out-dir', required=True, help='folder for drivepi_infos_{train,val}.pkl')
    parser.add_argument('--version', default='v1.0-drivepi-mini',
                        help="'v1.0-trainval', 'v1.0-mini' (official splits) or 'v1.0-drivepi-mini' (splits.json)")
    parser.add_argument('--max-sweeps', type=int, default=10, help='previous LiDAR sweeps per keyframe')
    parser.add_argument('--occ-format', choices=['openocc', 'occ3d'], default='openocc',
                        help='occupancy GT format (class list written to the metainfo)')
    parser.add_argument('--occ-root', default=None,
                        help="occupancy folder relative to the root (default 'openocc_v2' / 'gts'; 'occupancy' "
                             'for the mini set); files <occ-root>/<scene_name>/<sample_token>/labels.npz')
    parser.add_argument('--info-prefix', default='drivepi', help='info file name prefix')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    paths = create_drivepi_infos(args.root_path, args.out_dir, args.version, max_sweeps=args.max_sweeps,
                                 occ_format=args.occ_format, occ_root=args.occ_root, info_prefix=args.info_prefix)
    for split, path in paths.items():
        print(f'{split}: {path}')


if __name__ == '__main__':
    main()
